/*
 * cmd_bench.c — `inferneo bench`: prompt-processing and generation speed of the forward pass.
 *
 * Two tests, as llama-bench runs them: pp = one batched prefill of -p tokens, tg = -n
 * single-token decode steps through the KV cache, each with --depth D tokens already in the
 * cache (default 0). The D-token prefix is prefilled once (untimed) and kept: before each test
 * the sequence is truncated back to it, so pp covers positions D..D+p-1 and tg starts at D. Each
 * figure is the median of -r runs after one warm-up run (which also pages in the mmapped
 * weights). Decode is bound by memory bandwidth, so the report relates the weight bytes read per
 * second during generation to the read bandwidth this program measures on the same machine in
 * the same run (a ratio, not a bare absolute figure: machines are shared and noisy); KV-cache
 * reads are not counted in it. --json prints one JSON object per test instead of the text.
 * Exit status: 0 ok, 1 runtime failure, 2 bad command line.
 */
#include "app.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void bench_usage(FILE *f) {
    fprintf(f, "usage: inferneo bench -m MODEL [-p 128] [-n 64] [-t N] [-r 3] [-d 0] [--json]\n"
               "\n"
               "  -m, --model PATH     GGUF model file (required)\n"
               "  -p, --n-prompt N     prompt tokens prefilled in one batch (default 128)\n"
               "  -n, --n-gen N        tokens generated one at a time (default 64)\n"
               "  -t, --threads N      compute threads (default: number of cores)\n"
               "  -r, --repetitions N  runs; the median is reported (default 3)\n"
               "  -d, --depth D        tokens already in the KV cache at each test (default 0)\n"
               "      --json           one JSON object per test (format, threads, depth, tok/s,\n"
               "                       GB/s, bandwidth ratio) instead of the text report\n"
               "      --concurrency N  also measure aggregate generation with N concurrent sequences\n"
               "  -h, --help           this help\n");
}

/* What the library's "<= 0 threads" resolves to (online CPUs). */
static int64_t n_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
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

/* One run on a context holding the depth-token prefix (and maybe more): prefill n_prompt tokens
 * after the prefix, back to the prefix, then n_gen greedy decode steps. Times in seconds. */
static int run_once(inf_context *ctx, int64_t depth, const int32_t *prompt, int64_t n_prompt,
                    int64_t n_gen, float *logits, int64_t n_vocab, double *t_pp, double *t_tg) {
    int rc;
    if ((rc = inf_context_truncate(ctx, depth)) < 0) return rc;
    double t0 = now_s();
    if ((rc = inf_context_eval(ctx, prompt, n_prompt, false, logits)) < 0) return rc;
    double t1 = now_s();
    if ((rc = inf_context_truncate(ctx, depth)) < 0) return rc;
    double t2 = now_s();
    for (int64_t i = 0; i < n_gen; i++) {
        int32_t tok = argmax(logits, n_vocab);
        if ((rc = inf_context_eval(ctx, &tok, 1, false, logits)) < 0) return rc;
    }
    double t3 = now_s();
    *t_pp = t1 - t0;
    *t_tg = t3 - t2;
    return 0;
}

/* Fixed pseudo-random tokens (speed does not depend on the text; every run sees the same). */
static void fill_tokens(int32_t *t, int64_t n, int64_t n_vocab, uint64_t seed) {
    uint64_t x = seed;
    for (int64_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        t[i] = (int32_t)((x >> 33) % (uint64_t)n_vocab);
    }
}

/* s as a JSON string body (quotes and backslashes escaped, control bytes as \u00XX). */
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* A JSON number, or null for a negative marker / non-finite value. */
static void json_num(FILE *f, const char *key, double v, const char *end) {
    if (v >= 0 && isfinite(v)) fprintf(f, ", \"%s\": %.6g%s", key, v, end);
    else fprintf(f, ", \"%s\": null%s", key, end);
}

/* One bench test as a JSON line. gbs / ratio < 0: null (not a bandwidth-bound test). */
static void json_line(const char *model, const char *format, int64_t threads, int64_t depth,
                      const char *test, int64_t n_prompt, int64_t n_gen, int64_t reps, double tok_s,
                      double gbs, double bw, double ratio) {
    printf("{\"model\": ");
    json_str(stdout, model);
    printf(", \"format\": ");
    json_str(stdout, format);
    printf(", \"threads\": %lld, \"depth\": %lld, \"test\": \"%s\", \"n_prompt\": %lld, "
           "\"n_gen\": %lld, \"repetitions\": %lld",
           (long long)threads, (long long)depth, test, (long long)n_prompt, (long long)n_gen,
           (long long)reps);
    json_num(stdout, "tok_s", tok_s, "");
    json_num(stdout, "gb_s", gbs, "");
    json_num(stdout, "bw_gb_s", bw > 0 ? bw : -1, "");
    json_num(stdout, "bw_ratio", ratio, "}\n");
}

int inf_cmd_bench(int argc, char **argv) {
    const char *model_path = NULL;
    int64_t n_prompt = 128, n_gen = 64, n_threads = 0, reps = 3, concurrency = 1, depth = 0;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            bench_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) {
            json = true;
            continue;
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
        } else if (!strcmp(a, "-d") || !strcmp(a, "--depth")) {
            if (!inf_app_parse_i64(a, v, 0, 1 << 24, &depth)) return 2;
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
    if (concurrency > 1 && json) {
        fprintf(stderr, "inferneo bench: --concurrency has no --json form yet\n");
        return 2;
    }

    int status = 1, rc;
    inf_model *model = NULL;
    inf_context *ctx = NULL;
    int32_t *prompt = NULL, *prefix = NULL;
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
    if ((rc = inf_context_new(model, depth + (n_prompt > n_gen ? n_prompt : n_gen), &ctx)) < 0) {
        inf_app_fail("context", rc);
        goto done;
    }
    prompt = malloc((size_t)n_prompt * sizeof *prompt);
    prefix = malloc((size_t)(depth > 0 ? depth : 1) * sizeof *prefix);
    logits = malloc((size_t)info.n_vocab * sizeof *logits);
    pp = calloc((size_t)reps, sizeof *pp);
    tg = calloc((size_t)reps, sizeof *tg);
    if (!prompt || !prefix || !logits || !pp || !tg) {
        fprintf(stderr, "inferneo bench: out of memory\n");
        goto done;
    }
    /* Pseudo-random tokens, BOS first in the sequence when the model has one. */
    fill_tokens(prompt, n_prompt, info.n_vocab, 0x9e3779b97f4a7c15ull);
    fill_tokens(prefix, depth, info.n_vocab, 0x243f6a8885a308d3ull);
    if (info.bos >= 0) (depth ? prefix : prompt)[0] = info.bos;
    inf_context_reset(ctx);
    if ((rc = inf_context_eval(ctx, prefix, depth, false, logits)) < 0) { /* the depth prefix */
        inf_app_fail("depth prefill", rc);
        goto done;
    }

    double t_pp, t_tg;
    if ((rc = run_once(ctx, depth, prompt, n_prompt, n_gen < 4 ? n_gen : 4, logits, info.n_vocab,
                       &t_pp, &t_tg)) < 0) {
        inf_app_fail("warm-up", rc);
        goto done;
    }
    for (int64_t r = 0; r < reps; r++) {
        if ((rc = run_once(ctx, depth, prompt, n_prompt, n_gen, logits, info.n_vocab, &t_pp,
                           &t_tg)) < 0) {
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
    char format[128], test[64];
    inf_model_format_name(&info, format, sizeof format);
    if (json) {
        const int64_t threads = n_threads > 0 ? n_threads : n_cores();
        snprintf(test, sizeof test, "pp%lld", (long long)n_prompt);
        json_line(base, format, threads, depth, test, n_prompt, 0, reps, pp_med, -1, bw, -1);
        if (n_gen) {
            snprintf(test, sizeof test, "tg%lld", (long long)n_gen);
            json_line(base, format, threads, depth, test, 0, n_gen, reps, tg_med, gbs, bw,
                      bw > 0 ? gbs / bw : -1);
        }
        status = 0;
        goto done;
    }
    printf("model: %s (%s, %lld layers, n_embd %lld, %.3f GB of weights)\n", base,
           info.arch ? info.arch : "?", (long long)info.n_layer, (long long)info.n_embd,
           (double)info.weight_bytes * 1e-9);
    if (n_threads > 0)
        printf("threads: %lld, ", (long long)n_threads);
    else
        printf("threads: all cores, ");
    printf("repetitions: %lld (median reported), format: %s\n", (long long)reps, format);
    if (info.weight_bytes_per_token != info.weight_bytes)
        printf("weight bytes read per token: %.3f GB (%lld of %lld experts routed per layer)\n",
               (double)info.weight_bytes_per_token * 1e-9, (long long)info.n_expert_used,
               (long long)info.n_expert);
    char at[48] = "";
    if (depth) snprintf(at, sizeof at, " @ d%lld", (long long)depth);
    printf("pp%lld%s: %.2f tok/s\n", (long long)n_prompt, at, pp_med);
    if (n_gen) printf("tg%lld%s: %.2f tok/s\n", (long long)n_gen, at, tg_med);
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
    free(prefix);
    free(logits);
    inf_context_free(ctx);
    inf_model_free(model);
    return status;
}
