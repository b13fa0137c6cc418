/*
 * stubs.c — TEMPORARY during bring-up: weak placeholders for subcommands whose files have not
 * landed yet. Deleted once every cmd_*.c exists.
 */
#include "app.h"

#include <stdio.h>

#define INF_STUB(fn, name)                                                                        \
    __attribute__((weak)) int fn(int argc, char **argv) {                                         \
        (void)argc;                                                                               \
        (void)argv;                                                                               \
        fprintf(stderr, "inferneo: '%s' is not built yet\n", name);                               \
        return 2;                                                                                 \
    }
INF_STUB(inf_cmd_info, "info")
INF_STUB(inf_cmd_tokenize, "tokenize")
INF_STUB(inf_cmd_generate, "generate")
INF_STUB(inf_cmd_logits, "logits")
INF_STUB(inf_cmd_bench, "bench")
INF_STUB(inf_cmd_synth, "synth")
INF_STUB(inf_cmd_batch, "batch")
INF_STUB(inf_cmd_serve, "serve")
