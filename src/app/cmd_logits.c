/*
 * cmd_logits.c — `inferneo logits`: logits of every prompt position, for golden comparisons.
 *
 * Tokenizes like `tokenize` does by default (add_special per metadata, parse_special off), runs
 * one batched prefill through a single-sequence context, writes little-endian float32
 * [n_tokens][n_vocab] row-major to the output file, and prints the token ids space-separated as
 * the last line of stdout. Exit status: 0 ok, 1 runtime failure, 2 bad command line.
 */
#include "app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void logits_usage(FILE *f) {
    fprintf(f, "usage: inferneo logits -m MODEL -p TEXT -o FILE [-t N] [-c N]\n"
               "\n"
               "  -m, --model PATH    GGUF model file (required)\n"
               "  -p, --prompt TEXT   prompt (BOS/EOS added as the model's metadata says)\n"
               "  -o, --output FILE   where to write float32 [n_tokens][n_vocab] (required)\n"
               "  -t, --threads N     compute threads (default: number of cores)\n"
               "  -c, --ctx N         context size the model is run with (default: the model's\n"
               "                      training context, at most 4096, at least the prompt);\n"
               "                      LongRoPE models (phi3) pick their factors from it\n"
               "  -h, --help          this help\n");
}

int inf_cmd_logits(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL, *out_path = NULL;
    int64_t n_threads = 0, n_ctx = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            logits_usage(stdout);
            return 0;
        }
        if (a[0] != '-' || i + 1 >= argc) {
            fprintf(
                stderr, "inferneo logits: %s '%s'\n",
                a[0] != '-' ? "unexpected argument" : "option needs a value (or is unknown):", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            model_path = v;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            prompt = v;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            out_path = v;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!inf_app_parse_i64(a, v, 0, 4096, &n_threads)) return 2;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            if (!inf_app_parse_i64(a, v, 1, INT32_MAX, &n_ctx)) return 2;
        } else {
            fprintf(stderr, "inferneo logits: unknown option '%s'\n", a);
            return 2;
        }
    }
    if (!model_path || !prompt || !out_path) {
        fprintf(stderr, "inferneo logits: -m, -p and -o are required\n");
        logits_usage(stderr);
        return 2;
    }

    int status = 1, rc;
    inf_model *model = NULL;
    inf_context *ctx = NULL;
    int32_t *toks = NULL;
    float *logits = NULL;
    FILE *f = NULL;
    inf_model_params mp = inf_model_params_default();
    mp.n_threads = (int)n_threads;
    if ((rc = inf_model_load(model_path, &mp, &model)) < 0) {
        inf_app_fail("loading model", rc);
        goto done;
    }
    int64_t n_tok = 0;
    if ((rc = inf_tokenize(model, prompt, strlen(prompt), true, false, &toks, &n_tok)) < 0) {
        inf_app_fail("tokenize", rc);
        goto done;
    }
    if (n_tok == 0) {
        fprintf(stderr, "inferneo logits: the prompt has no tokens\n");
        goto done;
    }
    inf_model_info info;
    inf_model_get_info(model, &info);
    size_t n_vals = (size_t)n_tok * (size_t)info.n_vocab;
    if (n_ctx == 0) n_ctx = info.n_ctx_train < 4096 ? info.n_ctx_train : 4096;
    if (n_ctx < n_tok) n_ctx = n_tok;
    if ((rc = inf_context_new(model, n_ctx, &ctx)) < 0) {
        inf_app_fail("context", rc);
        goto done;
    }
    logits = malloc(n_vals * sizeof *logits);
    if (!logits) {
        fprintf(stderr, "inferneo logits: out of memory for %zu logits\n", n_vals);
        goto done;
    }
    if ((rc = inf_context_eval(ctx, toks, n_tok, true, logits)) < 0) {
        inf_app_fail("eval", rc);
        goto done;
    }
    f = fopen(out_path, "wb");
    if (!f || fwrite(logits, sizeof *logits, n_vals, f) != n_vals) {
        fprintf(stderr, "inferneo logits: cannot write '%s'\n", out_path);
        goto done;
    }
    if (fclose(f) != 0) {
        f = NULL;
        fprintf(stderr, "inferneo logits: cannot write '%s'\n", out_path);
        goto done;
    }
    f = NULL;
    for (int64_t i = 0; i < n_tok; i++)
        printf("%s%d", i ? " " : "", toks[i]);
    printf("\n");
    status = 0;
done:
    if (f) fclose(f);
    free(logits);
    inf_free(toks);
    inf_context_free(ctx);
    inf_model_free(model);
    return status;
}
