/*
 * bench_matmul.c — micro-benchmark of inf_matmul on TinyLlama-1.1B shapes (not part of ctest).
 *
 * Build (from the repo root, after building the core library into build/):
 *   cc -O2 -Iinclude -Isrc bench/bench_matmul.c build/libinferneo_core.a -lpthread -lm \
 *      -o build/bench_matmul
 * Run: build/bench_matmul [threads=2] [types=q4_0,q8_0,f16,q4_K,q6_K] [seconds-per-case=0.5]
 *      [repack=1]
 *
 * Prints, per weight type: GEMV (n_tok = 1) GB/s of weights streamed and GEMM (n_tok = 128)
 * GFLOP/s on 2048x2048, 5632x2048 and 2048x5632, then a whole "model pass" of TinyLlama's 22
 * layers (+ output): decode tokens/s bounded by matmuls (weights far larger than the caches)
 * and pp128 tokens/s of the matmuls. Every figure is also given as a ratio to the machine's read
 * bandwidth measured in the same run. Weights are random bytes with sane block scales; values do
 * not matter for speed. With repack=1 (default) weights go through inf_matmul_repack first, as
 * a model loader would do; per-shape lines show both layouts.
 */
#include "kernels/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fill_weights(int type, uint8_t *w, size_t bytes, uint64_t seed) {
    inf_rng r;
    inf__rng_seed(&r, seed);
    for (size_t i = 0; i + 8 <= bytes; i += 8) {
        uint64_t v = inf__rng_next(&r);
        memcpy(w + i, &v, 8);
    }
    const inf_type_traits *t = inf_type_traits_ref(type);
    inf_half d = inf_fp32_to_fp16(0.01f);
    size_t n = bytes / t->type_size;
    for (size_t b = 0; b < n; b++) {
        uint8_t *blk = w + b * t->type_size;
        switch (type) {
        case INF_TYPE_F16:
            break;
        case INF_TYPE_Q6_K:
            memcpy(blk + 208, &d, 2);
            break;
        case INF_TYPE_Q4_K:
        case INF_TYPE_Q5_K:
            memcpy(blk, &d, 2);
            memcpy(blk + 2, &d, 2);
            break;
        default:
            memcpy(blk, &d, 2);
            break;
        }
    }
    if (type == INF_TYPE_F16) {
        inf_half *h = (inf_half *)w;
        for (size_t i = 0; i < bytes / 2; i++) h[i] = inf_fp32_to_fp16((float)((i * 7919) % 200) * 0.001f - 0.1f);
    }
}

typedef struct {
    inf_tensor t;
    void *mem, *rmem;
} weight;

static int g_repack = 1;
static inf_pool *g_pool;

static int make_weight(weight *w, int type, int64_t n_in, int64_t n_out, uint64_t seed) {
    size_t rs = inf_type_row_size(type, n_in);
    size_t bytes = rs * (size_t)n_out;
    w->mem = inf__aligned_alloc(64, bytes);
    if (!w->mem) return -1;
    fill_weights(type, w->mem, bytes, seed);
    w->t = (inf_tensor){.type = type, .ne = {n_in, n_out, 1, 1}, .nb = {0, rs, bytes, bytes},
                        .data = w->mem, .name = "w"};
    w->rmem = NULL;
    if (g_repack) {
        inf_tensor r;
        if (inf_matmul_repack(g_pool, &w->t, &r, &w->rmem) != 0) return -1;
        if (w->rmem) {
            free(w->mem);
            w->mem = w->rmem;
            w->t = r;
        }
    }
    return 0;
}

static double bench_one(inf_pool *pool, weight *w, int64_t n_tok, const float *x, float *y,
                        void *scratch, double seconds) {
    inf_matmul(pool, &w->t, x, n_tok, y, w->t.ne[1], scratch);
    int reps = 0;
    double t0 = inf__time_s(), t;
    do {
        inf_matmul(pool, &w->t, x, n_tok, y, w->t.ne[1], scratch);
        reps++;
        t = inf__time_s() - t0;
    } while (t < seconds);
    return t / reps;
}

static int parse_type(const char *s) {
    for (int t = 0; t < INF_TYPE_COUNT; t++) {
        const inf_type_traits *tr = inf_type_traits_ref(t);
        if (tr && tr->name && !strcmp(tr->name, s)) return t;
    }
    return -1;
}

int main(int argc, char **argv) {
    int nth = argc > 1 ? atoi(argv[1]) : 2;
    const char *types_arg = argc > 2 ? argv[2] : "q4_0,q8_0,f16,q4_K,q6_K";
    double secs = argc > 3 ? atof(argv[3]) : 0.5;
    g_repack = argc > 4 ? atoi(argv[4]) : 1;
    if (inf_kernels_init() != 0) {
        fprintf(stderr, "kernels: %s\n", inf_last_error());
        return 1;
    }
    inf_pool *pool;
    if (inf_pool_create(nth, &pool) != 0) return 1;
    g_pool = pool;
    double bw = inf_kernels_measure_read_bw(pool);
    printf("isa %s, %d threads, read bandwidth %.2f GB/s, weights %s\n",
           inf_isa_name(inf_kernels_isa()), nth, bw, g_repack ? "repacked where possible" : "as in GGUF");

    const int64_t dim = 2048, ff = 5632, kv = 256, vocab = 32000, layers = 22, ntok = 128;
    float *x = malloc(sizeof(float) * ntok * ff), *y = malloc(sizeof(float) * ntok * vocab);
    inf_rng r;
    inf__rng_seed(&r, 1);
    for (int64_t i = 0; i < ntok * ff; i++) x[i] = (float)inf__rng_uniform(&r) - 0.5f;
    size_t scr_sz = 0;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", types_arg);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int type = parse_type(tok);
        if (type < 0) {
            fprintf(stderr, "unknown type %s\n", tok);
            continue;
        }
        const int64_t shapes[3][2] = {{dim, dim}, {dim, ff}, {ff, dim}}; /* n_in, n_out */
        printf("\n== %s ==\n", tok);
        for (int s = 0; s < 3; s++) {
            weight w;
            if (make_weight(&w, type, shapes[s][0], shapes[s][1], 7 + s) != 0) return 1;
            size_t need = inf_matmul_scratch_size(type, shapes[s][0], ntok);
            void *scr = inf__aligned_alloc(64, need);
            double t1 = bench_one(pool, &w, 1, x, y, scr, secs);
            double tg = bench_one(pool, &w, ntok, x, y, scr, secs);
            double bytes = (double)inf_type_row_size(type, shapes[s][0]) * (double)shapes[s][1];
            double flops = 2.0 * shapes[s][0] * shapes[s][1];
            printf("  %5lldx%-5lld GEMV %7.1f us %6.2f GB/s (hot, %.2fx bw) | GEMM n=128 %7.2f ms "
                   "%6.1f GFLOP/s\n",
                   (long long)shapes[s][1], (long long)shapes[s][0], t1 * 1e6, bytes / t1 / 1e9,
                   bytes / t1 / 1e9 / bw, tg * 1e3, flops * ntok / tg / 1e9);
            free(scr);
            free(w.mem);
        }
        /* Whole model pass: 22 layers x (q, k, v, o, gate, up, down) + output, cold weights. */
        const int per_layer = 7;
        weight *ws = calloc((size_t)(layers * per_layer + 1), sizeof(weight));
        double total_bytes = 0;
        int ok = 1;
        for (int l = 0; l < layers && ok; l++) {
            const int64_t sh[7][2] = {{dim, dim}, {dim, kv}, {dim, kv}, {dim, dim},
                                      {dim, ff},  {dim, ff}, {ff, dim}};
            for (int k = 0; k < per_layer; k++) {
                if (make_weight(&ws[l * per_layer + k], type, sh[k][0], sh[k][1], l * 10 + k)) {
                    ok = 0;
                    break;
                }
                total_bytes += (double)inf_type_row_size(type, sh[k][0]) * (double)sh[k][1];
            }
        }
        /* Output matrix: q6_K for q4_0 models (as llama.cpp quantizes them), else the type. */
        int out_type = type == INF_TYPE_Q4_0 || type == INF_TYPE_Q4_K ? INF_TYPE_Q6_K : type;
        weight *wo = &ws[layers * per_layer];
        if (ok && make_weight(wo, out_type, dim, vocab, 999)) ok = 0;
        if (!ok) {
            printf("  (model pass skipped: out of memory)\n");
        } else {
            double out_bytes = (double)inf_type_row_size(out_type, dim) * (double)vocab;
            size_t need = inf_matmul_scratch_size(type, ff, ntok);
            if (need > scr_sz) scr_sz = need;
            void *scr = inf__aligned_alloc(64, need + inf_matmul_scratch_size(out_type, dim, ntok));
            for (int pass = 0; pass < 2; pass++) {
                int64_t n = pass == 0 ? 1 : ntok;
                int reps = pass == 0 ? 6 : 2;
                double best = 1e30;
                for (int rep = 0; rep < reps; rep++) {
                    double t0 = inf__time_s();
                    for (int i = 0; i < layers * per_layer; i++)
                        inf_matmul(pool, &ws[i].t, x, n, y, ws[i].t.ne[1], scr);
                    /* Logits only for the last token, as a server computes them. */
                    inf_matmul(pool, &wo->t, x, 1, y, vocab, scr);
                    double t = inf__time_s() - t0;
                    if (t < best) best = t;
                }
                if (pass == 0) {
                    double gbs = (total_bytes + out_bytes) / best / 1e9;
                    printf("  model decode: %.2f GB weights, %.1f ms/token -> %.1f tok/s (matmul "
                           "only), %.2f GB/s = %.2fx bw\n",
                           (total_bytes + out_bytes) / 1e9, best * 1e3, 1.0 / best, gbs, gbs / bw);
                } else {
                    printf("  model pp%lld: %.1f ms -> %.1f tok/s (matmul only)\n",
                           (long long)ntok, best * 1e3, ntok / best);
                }
            }
            free(scr);
        }
        for (int i = 0; i <= layers * per_layer; i++) free(ws[i].mem);
        free(ws);
    }
    free(x);
    free(y);
    inf_pool_destroy(pool);
    return 0;
}
