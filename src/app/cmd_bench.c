/*
 * cmd_bench.c — `inferneo bench`: prompt-processing and generation speed of the forward pass.
 *
 * pp: one batched prefill of -p tokens; tg: -n single-token decode steps through the KV cache
 * after that prefill. Each figure is the median of -r runs after one warm-up run (which also
 * pages in the mmapped weights). Decode is bound by memory bandwidth, so the report relates the
 * weight bytes read per second during generation to the read bandwidth this program measures
 * on the same machine in the same run (a ratio, not a bare absolute figure: machines are shared
 * and noisy). Exit status: 0 ok, 1 runtime failure, 2 bad command line.
 */
#include "app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void bench_usage(FILE *f) {
    fprintf(f, "usage: inferneo bench -m MODEL [-p 128] [-n 64] [-t N] [-r 3]\n"
               "\n"
               "  -m, --model PATH     GGUF model file (required)\n"
               "  -p, --n-prompt N     prompt tokens prefilled in one batch (default 128)\n"
               "  -n, --n-gen N        tokens generated one at a time (default 64)\n"
               "  -t, --threads N      compute threads (default: number of cores)\n"
               "  -r, --repetitions N  runs; the median is reported (default 3)\n"
               "      --concurrency N  also measure aggregate generation with N concurrent sequences\n"
               "  -h, --help           this help\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int32_t argmax(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return (int32_t)best;
}

/* One run: prefill n_prompt tokens, then n_gen greedy decode steps. Times in seconds. */
static int run_once(inf_context *ctx, const int32_t *prompt, int64_t n_prompt, int64_t n_gen,
                    float *logits, int64_t n_vocab, double *t_pp, double *t_tg) {
    inf_context_reset(ctx);
    double t0 = now_s();
    int rc = inf_context_eval(ctx, prompt, n_prompt, false, logits);
    if (rc < 0) return rc;
    double t1 = now_s();
    for (int64_t i = 0; i < n_gen; i++) {
        int32_t tok = argmax(logits, n_vocab);
        if ((rc = inf_context_eval(ctx, &tok, 1, false, logits)) < 0) return rc;
    }
    double t2 = now_s();
    *t_pp = t1 - t0;
    *t_tg = t2 - t1;
    return 0;
}

int inf_cmd_bench(int argc, char **argv) {
    const char *model_path = NULL;
    int64_t n_prompt = 128, n_gen = 64, n_threads = 0, reps = 3, concurrency = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            bench_usage(stdout);
            return 0;
        }
        if (a[0] != '-' || i + 1 >= argc) {
            fprintf(
                stderr, "inferneo bench: %s '%s'\n",
                a[0] != '-' ? "unexpected argument" : "option needs a value (or is unknown):", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            model_path = v;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            if (!inf_app_parse_i64(a, v, 1, 1 << 20, &n_prompt)) return 2;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
            if (!inf_app_parse_i64(a, v, 0, 1 << 20, &n_gen)) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!inf_app_parse_i64(a, v, 0, 4096, &n_threads)) return 2;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) {
            if (!inf_app_parse_i64(a, v, 1, 1000, &reps)) return 2;
        } else if (!strcmp(a, "--concurrency")) {
            if (!inf_app_parse_i64(a, v, 1, 4096, &concurrency)) return 2;
        } else {
            fprintf(stderr, "inferneo bench: unknown option '%s'\n", a);
            return 2;
        }
    }
    if (!model_path) {
        fprintf(stderr, "inferneo bench: -m is required\n");
        bench_usage(stderr);
        return 2;
    }
    if (concurrency > 1 && n_gen < 2) {
        fprintf(stderr, "inferneo bench: --concurrency needs -n >= 2\n");
        return 2;
    }

    int status = 1, rc;
    inf_model *model = NULL;
    inf_context *ctx = NULL;
    int32_t *prompt = NULL;
    float *logits = NULL;
    double *pp = NULL, *tg = NULL;
    inf_model_params mp = inf_model_params_default();
    mp.n_threads = (int)n_threads;
    if ((rc = inf_model_load(model_path, &mp, &model)) < 0) {
        inf_app_fail("loading model", rc);
        goto done;
    }
    inf_model_info info;
    inf_model_get_info(model, &info);
    if ((rc = inf_context_new(model, n_prompt + n_gen, &ctx)) < 0) {
        inf_app_fail("context", rc);
        goto done;
    }
    prompt = malloc((size_t)n_prompt * sizeof *prompt);
    logits = malloc((size_t)info.n_vocab * sizeof *logits);
    pp = calloc((size_t)reps, sizeof *pp);
    tg = calloc((size_t)reps, sizeof *tg);
    if (!prompt || !logits || !pp || !tg) {
        fprintf(stderr, "inferneo bench: out of memory\n");
        goto done;
    }
    /* A fixed pseudo-random prompt (BOS first when the model has one): speed does not depend on
     * the text, and every run sees the same tokens. */
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int64_t i = 0; i < n_prompt; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        prompt[i] = (int32_t)((x >> 33) % (uint64_t)info.n_vocab);
    }
    if (info.bos >= 0) prompt[0] = info.bos;

    double t_pp, t_tg;
    if ((rc = run_once(ctx, prompt, n_prompt, n_gen < 4 ? n_gen : 4, logits, info.n_vocab, &t_pp,
                       &t_tg)) < 0) {
        inf_app_fail("warm-up", rc);
        goto done;
    }
    for (int64_t r = 0; r < reps; r++) {
        if ((rc = run_once(ctx, prompt, n_prompt, n_gen, logits, info.n_vocab, &t_pp, &t_tg)) < 0) {
            inf_app_fail("run", rc);
            goto done;
        }
        pp[r] = (double)n_prompt / t_pp;
        tg[r] = n_gen ? (double)n_gen / t_tg : 0.0;
    }
    double pp_med = median(pp, (int)reps), tg_med = median(tg, (int)reps);
    double bw = inf_model_measure_read_bw(model);
    /* Weights one decoded token reads (MoE: only the routed experts). */
    double gbs = (double)info.weight_bytes_per_token * tg_med * 1e-9;

    const char *base = strrchr(model_path, '/');
    base = base ? base + 1 : model_path;
    printf("model: %s (%s, %lld layers, n_embd %lld, %.3f GB of weights)\n", base,
           info.arch ? info.arch : "?", (long long)info.n_layer, (long long)info.n_embd,
           (double)info.weight_bytes * 1e-9);
    if (n_threads > 0)
        printf("threads: %lld, ", (long long)n_threads);
    else
        printf("threads: all cores, ");
    printf("repetitions: %lld (median reported)\n", (long long)reps);
    if (info.weight_bytes_per_token != info.weight_bytes)
        printf("weight bytes read per token: %.3f GB (%lld of %lld experts routed per layer)\n",
               (double)info.weight_bytes_per_token * 1e-9, (long long)info.n_expert_used,
               (long long)info.n_expert);
    printf("pp%lld: %.2f tok/s\n", (long long)n_prompt, pp_med);
    if (n_gen) printf("tg%lld: %.2f tok/s\n", (long long)n_gen, tg_med);
    if (n_gen && bw > 0)
        printf("tg weight reads: %.2f GB/s = %.3f x measured read bandwidth (%.2f GB/s)\n", gbs,
               gbs / bw, bw);
    else if (n_gen)
        printf("tg weight reads: %.2f GB/s (read bandwidth could not be measured)\n", gbs);
    if (concurrency > 1) {
        double conc_single, conc_agg;
        /* Both figures through the engine in this run, so the ratio compares like with like. */
        if ((rc = inf_app_bench_concurrency(model, 1, (int)n_gen, &conc_single)) < 0 ||
            (rc = inf_app_bench_concurrency(model, (int)concurrency, (int)n_gen, &conc_agg)) < 0) {
            inf_app_fail("concurrency run", rc);
            goto done;
        }
        printf("engine tg%lld, 1 sequence: %.2f tok/s\n", (long long)n_gen, conc_single);
        printf("engine tg%lld, %lld concurrent sequences: %.2f tok/s aggregate = %.2f x single\n",
               (long long)n_gen, (long long)concurrency, conc_agg,
               conc_single > 0 ? conc_agg / conc_single : 0.0);
    }
    status = 0;
done:
    free(pp);
    free(tg);
    free(prompt);
    free(logits);
    inf_context_free(ctx);
    inf_model_free(model);
    return status;
}
