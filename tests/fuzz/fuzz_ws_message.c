/*
 * fuzz_ws_message.c — libFuzzer target: the WebSocket message handler (inf__ws_message,
 * src/server/ws.c) on hostile text messages: JSON parsing, auth / ping / cancel / request
 * routing, request_id rules and the full request validator with chat templates. The server is a
 * zeroed struct inf_server with a vocabulary-only model and no engine (so a valid request ends
 * in a 503 frame instead of running) and the connection has no socket: frames go to its output
 * queue, which is checked — every queued frame must be one JSON object — and freed.
 *
 * Input: byte 0 = socket state (bit 0: chat or completions URL, bit 1: authenticated, bit 2:
 * the server has API keys); the rest is the message.
 */
#include "server/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {"fuzz-model", "alias"};
static char *keys[] = {"sk-fuzz"};
static struct inf_server srv;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    inf_model_params p = inf_model_params_default();
    p.vocab_only = true;
    if (inf_model_load(INF_FIXTURES_DIR "/models/tiny-llama-q4_0.gguf", &p, &srv.model) < 0) {
        fprintf(stderr, "fuzz_ws_message: cannot load the model: %s\n", inf_last_error());
        exit(1);
    }
    inf_model_info info;
    inf_model_get_info(srv.model, &info);
    inf_server_config_default(&srv.cfg);
    srv.names = (char **)names;
    srv.n_names = 2;
    srv.n_vocab = info.n_vocab;
    srv.n_ctx = 256;
    srv.n_embd = info.n_embd;
    srv.ready_announced = true;
    inf_set_log(NULL, NULL); /* quiet */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int flags = data[0];
    srv.keys = flags & 4 ? keys : NULL;
    srv.n_keys = flags & 4 ? 1 : 0;
    inf__conn c;
    memset(&c, 0, sizeof c);
    c.srv = &srv;
    c.tp = &inf__ws_transport;
    c.rate_key = -1;
    c.ws.route = flags & 1 ? 1 : 2;
    c.ws.authed = (flags & 2) || !srv.n_keys;
    inf__ws_message(&c, (const char *)data + 1, size - 1);
    if (c.calls || c.n_calls) abort(); /* no engine: no request may stay in flight */
    while (c.out_head) {
        inf__out *o = c.out_head;
        c.out_head = o->next;
        if (o->kind == INF__OUT_WS_TEXT) {
            json_t *j = json_loadb((const char *)o->data + LWS_PRE, o->len, 0, NULL);
            if (!json_is_object(j)) abort();
            json_decref(j);
        }
        free(o);
    }
    return 0;
}
