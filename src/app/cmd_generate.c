/*
 * cmd_generate.c — `inferneo generate`: single-sequence text generation from a prompt.
 *
 * Uses only the public API: load the model, tokenize the prompt (special tokens as the model's
 * metadata says; "" gives BOS alone), evaluate it in one batch, then sample one token at a time
 * through the KV cache. Only the generated text goes to stdout, streamed (flushed per token) at
 * UTF-8 boundaries by the streaming detokenizer; diagnostics go to stderr.
 *
 * Exit status: 0 ok, 1 runtime failure (one line on stderr), 2 bad command line.
 * Generation ends after -n tokens, at an end-of-generation token (not printed), or when the
 * context is full.
 */
#include "app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void generate_usage(FILE *f) {
    fprintf(f,
            "usage: inferneo generate -m MODEL [-p TEXT] [options]\n"
            "\n"
            "  -m, --model PATH          GGUF model file (required)\n"
            "  -p, --prompt TEXT         prompt (default \"\": start from BOS alone)\n"
            "  -n, --n-predict N         tokens to generate (default 128, -1: until the context "
            "is full)\n"
            "  -c, --ctx-size N          context length (default 0: the model's trained context)\n"
            "  -t, --threads N           compute threads (default: number of cores)\n"
            "      --temp T              temperature (default 0.8; 0: greedy)\n"
            "      --top-k K             top-k (default 40; 0: off)\n"
            "      --top-p P             top-p (default 0.95; 1: off)\n"
            "      --min-p P             min-p (default 0.05; 0: off)\n"
            "      --repeat-penalty R    repetition penalty (default 1.0: off)\n"
            "      --repeat-last-n N     penalty window (default 64; -1: whole context; 0: off)\n"
            "      --frequency-penalty F frequency penalty in [-2, 2] (default 0)\n"
            "      --presence-penalty F  presence penalty in [-2, 2] (default 0)\n"
            "  -s, --seed S              sampling seed (default -1: random)\n"
            "  -v, --verbose             print timings to stderr\n"
            "  -h, --help                this help\n");
}

static bool takes_value(const char *opt) {
    static const char *const opts[] = {"-m",
                                       "--model",
                                       "-p",
                                       "--prompt",
                                       "-n",
                                       "--n-predict",
                                       "-c",
                                       "--ctx-size",
                                       "-t",
                                       "--threads",
                                       "-s",
                                       "--seed",
                                       "--top-k",
                                       "--repeat-last-n",
                                       "--temp",
                                       "--temperature",
                                       "--top-p",
                                       "--min-p",
                                       "--repeat-penalty",
                                       "--frequency-penalty",
                                       "--presence-penalty"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (!strcmp(opt, opts[i])) return true;
    return false;
}

static uint64_t random_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x =
        (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    /* splitmix64 finaliser spreads the clock bits */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void emit(const char *text, size_t len) {
    if (len) fwrite(text, 1, len, stdout);
    fflush(stdout);
}

int inf_cmd_generate(int argc, char **argv) {
    const char *model_path = NULL, *prompt = "";
    int64_t n_predict = 128, n_ctx = 0, n_threads = 0, seed = -1;
    bool verbose = false;
    inf_sampling_params sp = inf_sampling_params_default();

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            generate_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            verbose = true;
            continue;
        }
        if (a[0] != '-') {
            fprintf(stderr, "inferneo generate: unexpected argument '%s'\n", a);
            return 2;
        }
        if (!takes_value(a)) {
            fprintf(stderr, "inferneo generate: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "inferneo generate: option %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        int64_t iv;
        float fv;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            model_path = v;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            prompt = v;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (!inf_app_parse_i64(a, v, -1, INT32_MAX, &n_predict)) return 2;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (!inf_app_parse_i64(a, v, 0, INT32_MAX, &n_ctx)) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!inf_app_parse_i64(a, v, 0, 4096, &n_threads)) return 2;
        } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
            if (!inf_app_parse_i64(a, v, -1, INT64_MAX, &seed)) return 2;
        } else if (!strcmp(a, "--top-k")) {
            if (!inf_app_parse_i64(a, v, -1, INT32_MAX, &iv)) return 2;
            sp.top_k = (int32_t)iv;
        } else if (!strcmp(a, "--repeat-last-n")) {
            if (!inf_app_parse_i64(a, v, -1, INT32_MAX, &iv)) return 2;
            sp.repeat_last_n = (int32_t)iv;
        } else if (!strcmp(a, "--temp") || !strcmp(a, "--temperature")) {
            if (!inf_app_parse_f32(a, v, &fv)) return 2;
            sp.temperature = fv;
        } else if (!strcmp(a, "--top-p")) {
            if (!inf_app_parse_f32(a, v, &fv)) return 2;
            sp.top_p = fv;
        } else if (!strcmp(a, "--min-p")) {
            if (!inf_app_parse_f32(a, v, &fv)) return 2;
            sp.min_p = fv;
        } else if (!strcmp(a, "--repeat-penalty")) {
            if (!inf_app_parse_f32(a, v, &fv)) return 2;
            sp.repetition_penalty = fv;
        } else if (!strcmp(a, "--frequency-penalty")) {
            if (!inf_app_parse_f32(a, v, &fv)) return 2;
            sp.frequency_penalty = fv;
        } else if (!strcmp(a, "--presence-penalty")) {
            if (!inf_app_parse_f32(a, v, &fv)) return 2;
            sp.presence_penalty = fv;
        } else {
            fprintf(stderr, "inferneo generate: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!model_path) {
        fprintf(stderr, "inferneo generate: -m MODEL is required (see --help)\n");
        return 2;
    }
    sp.seed = seed < 0 ? random_seed() : (uint64_t)seed;

    /* Validate the sampling values before the (possibly slow) model load: the sampler is the
     * one place that knows the valid ranges. */
    {
        inf_sampler *probe = NULL;
        int err = inf_sampler_new(&sp, 1, &probe);
        if (err) {
            fprintf(stderr, "inferneo generate: %s\n", inf_last_error());
            return 2;
        }
        inf_sampler_free(probe);
    }

    int rc = 1, err;
    inf_model *model = NULL;
    inf_context *ctx = NULL;
    inf_sampler *smp = NULL;
    inf_detok *detok = NULL;
    int32_t *tokens = NULL;
    float *logits = NULL;
    int64_t n_tokens = 0;

    if (verbose) inf_set_log(inf_app_log_stderr, NULL);
    double t0 = now_s();
    inf_model_params mp = inf_model_params_default();
    mp.n_threads = (int)n_threads;
    if ((err = inf_model_load(model_path, &mp, &model))) {
        inf_app_fail(model_path, err);
        goto done;
    }
    inf_model_info info;
    inf_model_get_info(model, &info);

    if ((err = inf_tokenize(model, prompt, strlen(prompt), true, true, &tokens, &n_tokens))) {
        inf_app_fail("tokenizing the prompt", err);
        goto done;
    }
    if (n_tokens == 0) {
        /* llama.cpp: an empty input starts from BOS when the model has one */
        if (info.bos < 0) {
            fprintf(stderr, "inferneo: the prompt is empty and the model has no BOS token\n");
            goto done;
        }
        inf_free(tokens);
        tokens = malloc(sizeof *tokens);
        if (!tokens) {
            fprintf(stderr, "inferneo: out of memory\n");
            goto done;
        }
        tokens[0] = info.bos;
        n_tokens = 1;
    }

    const int64_t ctx_len = n_ctx > 0 ? n_ctx : info.n_ctx_train;
    if (ctx_len > 0 && n_tokens > ctx_len) {
        fprintf(stderr, "inferneo: the prompt has %lld tokens, more than the context (%lld)\n",
                (long long)n_tokens, (long long)ctx_len);
        goto done;
    }
    if ((err = inf_context_new(model, n_ctx, &ctx))) {
        inf_app_fail("creating the context", err);
        goto done;
    }
    if ((err = inf_sampler_new(&sp, info.n_vocab, &smp))) {
        inf_app_fail("creating the sampler", err);
        goto done;
    }
    if ((err = inf_detok_new(model, &detok))) {
        inf_app_fail("creating the detokenizer", err);
        goto done;
    }
    logits = malloc((size_t)info.n_vocab * sizeof *logits);
    if (!logits) {
        fprintf(stderr, "inferneo: out of memory\n");
        goto done;
    }

    /* The prompt feeds the penalties and the detokenizer (whose output for it is not printed:
     * it only sets the state, e.g. whether a leading space is the first of the text). */
    for (int64_t i = 0; i < n_tokens; i++) {
        const char *text;
        size_t len;
        inf_sampler_accept(smp, tokens[i]);
        if ((err = inf_detok_push(detok, tokens[i], &text, &len))) {
            inf_app_fail("detokenizing the prompt", err);
            goto done;
        }
    }

    double t1 = now_s();
    if ((err = inf_context_eval(ctx, tokens, n_tokens, false, logits))) {
        inf_app_fail("evaluating the prompt", err);
        goto done;
    }
    double t2 = now_s();

    int64_t n_gen = 0;
    const char *stop_why = "length";
    while (n_predict < 0 || n_gen < n_predict) {
        int32_t tok = inf_sampler_sample(smp, logits);
        if (tok < 0 || tok >= info.n_vocab) {
            fprintf(stderr, "inferneo: sampler returned an invalid token %d\n", (int)tok);
            goto done;
        }
        inf_sampler_accept(smp, tok);
        if (inf_token_is_eog(model, tok)) {
            stop_why = "end of generation";
            break;
        }
        const char *text;
        size_t len;
        if ((err = inf_detok_push(detok, tok, &text, &len))) {
            inf_app_fail("detokenizing", err);
            goto done;
        }
        emit(text, len);
        n_gen++;
        if (n_predict >= 0 && n_gen >= n_predict) break;
        if (ctx_len > 0 && inf_context_pos(ctx) >= ctx_len) {
            stop_why = "context full";
            break;
        }
        err = inf_context_eval(ctx, &tok, 1, false, logits);
        if (err == INF_ECONTEXT) {
            stop_why = "context full";
            break;
        }
        if (err) {
            inf_app_fail("evaluating", err);
            goto done;
        }
    }
    {
        const char *text;
        size_t len;
        if ((err = inf_detok_flush(detok, &text, &len))) {
            inf_app_fail("detokenizing", err);
            goto done;
        }
        emit(text, len);
    }
    if (ferror(stdout)) {
        fprintf(stderr, "inferneo: writing the output failed\n");
        goto done;
    }
    double t3 = now_s();
    if (verbose) {
        double pp = t2 - t1, tg = t3 - t2;
        fprintf(stderr,
                "\n[generate] load %.3f s | prompt %lld tokens in %.3f s (%.1f tok/s) | "
                "generated %lld tokens in %.3f s (%.1f tok/s) | stop: %s | seed %llu\n",
                t1 - t0, (long long)n_tokens, pp, pp > 0 ? (double)n_tokens / pp : 0.0,
                (long long)n_gen, tg, tg > 0 ? (double)n_gen / tg : 0.0, stop_why,
                (unsigned long long)sp.seed);
    }
    rc = 0;
done:
    free(logits);
    inf_detok_free(detok);
    inf_sampler_free(smp);
    inf_context_free(ctx);
    inf_free(tokens);
    inf_model_free(model);
    return rc;
}
