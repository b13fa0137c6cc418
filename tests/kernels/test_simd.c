/*
 * test_simd.c — every SIMD kernel against the scalar reference, and the matmul driver.
 *
 * - vec_dot of each ISA table (avx2, avx512; those this CPU has) vs ref on random rows of many
 *   lengths: the integer kernels differ from ref only in float summation order;
 * - activation quantizers (q8_0, q8_1, q8_K) and the converters: bit-identical to ref, including
 *   rounding ties and all-zero blocks;
 * - tiled matmul kernels of each ISA vs ref vec_dot on the same quantized activations, and
 *   bitwise batch invariance of each kernel alone (n_tok, token position, row slices); the
 *   K-quant kernels at the int16 limits of their integer sums;
 * - inf_matmul (the dispatched ISA) vs a naive float reference, and its determinism contract:
 *   Y[t][o] bitwise identical for n_tok = 1, 37, 128 and 1 or 2 threads, ragged row counts.
 * When INFERNEO_ISA is unset the matmul group is re-run in child processes with INFERNEO_ISA=ref
 * and =avx2 (the dispatch is chosen once per process).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "kernels/kernels.h"
#include "kernels/x86/x86.h"

extern char **environ;

static inf_type_traits isa_tab[3][INF_TYPE_COUNT];
static bool isa_ok[3];
static const char *isa_names[3] = {"ref", "avx2", "avx512"};

static const int dot_types[] = {INF_TYPE_F32,  INF_TYPE_F16,    INF_TYPE_Q4_0,  INF_TYPE_Q4_1,
                                INF_TYPE_Q5_0, INF_TYPE_Q5_1,   INF_TYPE_Q8_0,  INF_TYPE_Q4_K,
                                INF_TYPE_Q5_K, INF_TYPE_Q6_K,   INF_TYPE_Q2_K,  INF_TYPE_Q3_K,
                                INF_TYPE_IQ4_NL, INF_TYPE_IQ4_XS};

static int setup(void **state) {
    (void)state;
    assert_int_equal(inf_kernels_init(), 0);
    for (int t = 0; t < INF_TYPE_COUNT; t++) {
        const inf_type_traits *r = inf_type_traits_ref(t);
        if (r) isa_tab[0][t] = isa_tab[1][t] = isa_tab[2][t] = *r;
    }
    const inf_cpu_features *f = inf__cpu_features();
    isa_ok[0] = true;
    isa_ok[1] = f->avx2 && f->fma && f->f16c;
    __builtin_cpu_init();
    isa_ok[2] = isa_ok[1] && f->avx512f && f->avx512bw && f->avx512vl && f->avx512vnni &&
                __builtin_cpu_supports("avx512dq");
    if (isa_ok[1]) inf__avx2_override(isa_tab[1]);
    if (isa_ok[2]) {
        inf__avx2_override(isa_tab[2]);
        inf__avx512_override(isa_tab[2]);
    }
    return 0;
}

static void rand_floats(inf_rng *r, float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(inf__rng_uniform(r) * 2.0 - 1.0) * scale;
    /* Outliers, as real activations have. */
    if (n > 8) x[inf__rng_next(r) % (uint64_t)n] = scale * 7.5f;
}

/* ---- vec_dot ------------------------------------------------------------------------------ */

static void test_vec_dot(void **state) {
    (void)state;
    inf_rng rng;
    inf__rng_seed(&rng, 1234);
    const int64_t lens[] = {256, 512, 768, 2048, 4096, 1280};
    for (int isa = 1; isa < 3; isa++) {
        if (!isa_ok[isa]) continue;
        for (size_t ti = 0; ti < INF_ARRAY_LEN(dot_types); ti++) {
            const int type = dot_types[ti];
            const inf_type_traits *ref = inf_type_traits_ref(type);
            const inf_type_traits *vt = inf_type_traits_ref(ref->vec_dot_type);
            const inf_type_traits *simd = &isa_tab[isa][type];
            double err2 = 0.0, ref2 = 0.0;
            for (int trial = 0; trial < 40; trial++) {
                int64_t n = lens[trial % INF_ARRAY_LEN(lens)];
                if (ref->blck_size == 1) n += trial % 13; /* ragged tails for float types */
                if (ref->blck_size == 32) n += 32 * (trial % 5);
                float *x = malloc((size_t)n * sizeof(float)), *y = malloc((size_t)n * sizeof(float));
                rand_floats(&rng, x, n, 1.0f);
                rand_floats(&rng, y, n, 3.0f);
                void *qx = malloc(inf_type_row_size(type, n));
                void *qy = malloc(inf_type_row_size(ref->vec_dot_type, n));
                ref->from_float(x, qx, n);
                vt->from_float(y, qy, n);
                float s_ref = 0, s_simd = 0;
                ref->vec_dot(n, &s_ref, qx, qy);
                simd->vec_dot(n, &s_simd, qx, qy);
                /* Bound: float-order error, relative to the sum of |terms|. */
                float *dx = malloc((size_t)n * sizeof(float)), *dy = malloc((size_t)n * sizeof(float));
                ref->to_float(qx, dx, n);
                vt->to_float(qy, dy, n);
                double abs_sum = 0.0;
                for (int64_t i = 0; i < n; i++) abs_sum += fabs((double)dx[i] * dy[i]);
                double diff = fabs((double)s_ref - s_simd);
                if (diff > 1e-5 * abs_sum + 1e-6) {
                    fail_msg("%s %s n=%lld: ref %.9g simd %.9g (|terms| %.6g)", isa_names[isa],
                             ref->name, (long long)n, s_ref, s_simd, abs_sum);
                }
                err2 += diff * diff;
                ref2 += (double)s_ref * s_ref;
                free(x), free(y), free(qx), free(qy), free(dx), free(dy);
            }
            if (err2 / ref2 > 1e-10) {
                fail_msg("%s %s: normalized MSE %.3g", isa_names[isa], ref->name, err2 / ref2);
            }
        }
    }
}

/* Weight blocks of random bits (every scale, min and level pattern, the extremes included)
 * against activations at the int8 limits: the SIMD integer sums must be exact, so SIMD and ref
 * differ only in float summation order; q2_K, q3_K, iq4_nl and iq4_xs combine blocks in the
 * reference's order and must equal it bitwise. Scales are fixed to sane halves (random bits
 * there could be inf/nan). */
static void test_vec_dot_random_bits(void **state) {
    (void)state;
    inf_rng rng;
    inf__rng_seed(&rng, 777);
    const int types[] = {INF_TYPE_Q2_K, INF_TYPE_Q3_K, INF_TYPE_IQ4_NL, INF_TYPE_IQ4_XS,
                         INF_TYPE_Q4_K, INF_TYPE_Q5_K, INF_TYPE_Q6_K};
    for (int isa = 1; isa < 3; isa++) {
        if (!isa_ok[isa]) continue;
        for (size_t ti = 0; ti < INF_ARRAY_LEN(types); ti++) {
            const int type = types[ti];
            const inf_type_traits *ref = inf_type_traits_ref(type);
            const inf_type_traits *vt = inf_type_traits_ref(ref->vec_dot_type);
            for (int trial = 0; trial < 24; trial++) {
                const int64_t n = 256 * (1 + trial % 4) + (ref->blck_size == 32 ? 32 * (trial % 3) : 0);
                const int64_t nbx = n / ref->blck_size;
                uint8_t *qx = malloc(inf_type_row_size(type, n));
                for (size_t i = 0; i < inf_type_row_size(type, n); i++)
                    qx[i] = (uint8_t)inf__rng_next(&rng);
                for (int64_t b = 0; b < nbx; b++) { /* halves at fixed offsets: sane values */
                    uint8_t *blk = qx + b * ref->type_size;
                    const inf_half h = inf_fp32_to_fp16(0.01f * (float)(1 + (b % 7)));
                    size_t off[2] = {0, SIZE_MAX};
                    if (type == INF_TYPE_Q2_K) off[0] = 80, off[1] = 82;
                    if (type == INF_TYPE_Q3_K) off[0] = 108;
                    if (type == INF_TYPE_Q4_K || type == INF_TYPE_Q5_K) off[1] = 2;
                    if (type == INF_TYPE_Q6_K) off[0] = 208;
                    for (int k = 0; k < 2; k++)
                        if (off[k] != SIZE_MAX) memcpy(blk + off[k], &h, 2);
                }
                float *y = malloc((size_t)n * sizeof(float));
                /* Full-scale activations: every q8 level at +-127 (trial parity picks signs). */
                for (int64_t i = 0; i < n; i++)
                    y[i] = (trial & 1) ? ((inf__rng_next(&rng) & 1) ? 1.0f : -1.0f)
                                       : (float)(inf__rng_uniform(&rng) * 2.0 - 1.0);
                void *qy = malloc(inf_type_row_size(ref->vec_dot_type, n));
                vt->from_float(y, qy, n);
                float s_ref = 0, s_simd = 0;
                ref->vec_dot(n, &s_ref, qx, qy);
                isa_tab[isa][type].vec_dot(n, &s_simd, qx, qy);
                float *dx = malloc((size_t)n * sizeof(float)), *dy = malloc((size_t)n * sizeof(float));
                ref->to_float(qx, dx, n);
                vt->to_float(qy, dy, n);
                double abs_sum = 0.0;
                for (int64_t i = 0; i < n; i++) abs_sum += fabs((double)dx[i] * dy[i]);
                const bool exact = type == INF_TYPE_Q2_K || type == INF_TYPE_Q3_K ||
                                   type == INF_TYPE_IQ4_NL || type == INF_TYPE_IQ4_XS;
                if (exact && memcmp(&s_ref, &s_simd, sizeof(float)) != 0)
                    fail_msg("%s %s random bits n=%lld: ref %.9g != simd %.9g (must be bitwise)",
                             isa_names[isa], ref->name, (long long)n, s_ref, s_simd);
                if (fabs((double)s_ref - s_simd) > 1e-5 * abs_sum + 1e-6)
                    fail_msg("%s %s random bits n=%lld: ref %.9g simd %.9g (|terms| %.6g)",
                             isa_names[isa], ref->name, (long long)n, s_ref, s_simd, abs_sum);
                free(qx), free(y), free(qy), free(dx), free(dy);
            }
        }
    }
}

/* ---- quantizers and converters: bit-identical ---------------------------------------------- */

static void fill_special(inf_rng *rng, float *x, int64_t n, int mode) {
    switch (mode) {
    case 0: rand_floats(rng, x, n, 1.0f); break;
    case 1: memset(x, 0, (size_t)n * sizeof(float)); break;
    case 2: /* exact .5 ties after scaling: amax 127 -> d = 1 */
        for (int64_t i = 0; i < n; i++) x[i] = (float)((int64_t)(i % 50) - 25) + 0.5f;
        for (int64_t i = 0; i < n; i += 32) x[i] = 127.0f;
        for (int64_t i = 16; i < n; i += 256) x[i] = -127.0f;
        break;
    case 3: /* tiny and huge magnitudes */
        rand_floats(rng, x, n, 1e-30f);
        for (int64_t i = 0; i < n; i += 97) x[i] = 1e30f;
        break;
    default: /* negative extreme first: q8_K takes the signed max */
        rand_floats(rng, x, n, 2.0f);
        for (int64_t i = 0; i < n; i += 256) {
            x[i] = -9.0f;
            if (i + 5 < n) x[i + 5] = 9.0f;
        }
        break;
    }
}

static void test_quantizers(void **state) {
    (void)state;
    inf_rng rng;
    inf__rng_seed(&rng, 99);
    const int types[] = {INF_TYPE_Q8_0, INF_TYPE_Q8_1, INF_TYPE_Q8_K, INF_TYPE_F16};
    for (int isa = 1; isa < 3; isa++) {
        if (!isa_ok[isa]) continue;
        for (size_t ti = 0; ti < INF_ARRAY_LEN(types); ti++) {
            const inf_type_traits *ref = inf_type_traits_ref(types[ti]);
            const inf_type_traits *simd = &isa_tab[isa][types[ti]];
            for (int mode = 0; mode < 5; mode++) {
                for (int64_t n = 256; n <= 2304; n += 1024) {
                    float *x = malloc((size_t)n * sizeof(float));
                    fill_special(&rng, x, n, mode);
                    size_t rs = inf_type_row_size(types[ti], n);
                    uint8_t *a = calloc(1, rs), *b = calloc(1, rs);
                    ref->from_float(x, a, n);
                    simd->from_float(x, b, n);
                    if (memcmp(a, b, rs) != 0) {
                        size_t k = 0;
                        while (a[k] == b[k]) k++;
                        fail_msg("%s from_float %s mode %d n=%lld: byte %zu differs (%u vs %u)",
                                 isa_names[isa], ref->name, mode, (long long)n, k, a[k], b[k]);
                    }
                    free(x), free(a), free(b);
                }
            }
        }
        /* Converters used by the dispatched table: bit-identical to ref. */
        const int conv[] = {INF_TYPE_F16, INF_TYPE_Q8_0, INF_TYPE_Q4_0};
        for (size_t ti = 0; ti < INF_ARRAY_LEN(conv); ti++) {
            const inf_type_traits *ref = inf_type_traits_ref(conv[ti]);
            const inf_type_traits *simd = &isa_tab[isa][conv[ti]];
            const int64_t n = 1024 + (ref->blck_size == 1 ? 5 : 0);
            float *x = malloc((size_t)n * sizeof(float));
            float *ya = malloc((size_t)n * sizeof(float)), *yb = malloc((size_t)n * sizeof(float));
            rand_floats(&rng, x, n, 4.0f);
            void *q = malloc(inf_type_row_size(conv[ti], n));
            ref->from_float(x, q, n);
            ref->to_float(q, ya, n);
            simd->to_float(q, yb, n);
            assert_memory_equal(ya, yb, (size_t)n * sizeof(float));
            free(x), free(ya), free(yb), free(q);
        }
    }
}

/* ---- matmul kernels vs ref vec_dot ----------------------------------------------------------- */

struct mm_case {
    int type;
    int64_t n_in, n_out;
    size_t rs;
    void *w;
    float *wf; /* dequantized weights [n_out][n_in] */
};

static void make_weights(inf_rng *rng, struct mm_case *c, int type, int64_t n_in, int64_t n_out) {
    c->type = type;
    c->n_in = n_in;
    c->n_out = n_out;
    const inf_type_traits *ref = inf_type_traits_ref(type);
    c->rs = inf_type_row_size(type, n_in);
    c->w = malloc(c->rs * (size_t)n_out);
    c->wf = malloc((size_t)(n_in * n_out) * sizeof(float));
    float *row = malloc((size_t)n_in * sizeof(float));
    for (int64_t o = 0; o < n_out; o++) {
        rand_floats(rng, row, n_in, 0.5f);
        ref->from_float(row, (char *)c->w + c->rs * (size_t)o, n_in);
        ref->to_float((char *)c->w + c->rs * (size_t)o, c->wf + o * n_in, n_in);
    }
    free(row);
}

static void free_weights(struct mm_case *c) {
    free(c->w);
    free(c->wf);
}

static void test_mm_kernels(void **state) {
    (void)state;
    inf_rng rng;
    inf__rng_seed(&rng, 7);
    const int types[] = {INF_TYPE_Q4_0, INF_TYPE_Q8_0, INF_TYPE_F16,
                         INF_TYPE_F32,  INF_TYPE_Q4_K, INF_TYPE_Q6_K};
    for (int isa = 1; isa < 3; isa++) {
        if (!isa_ok[isa]) continue;
        for (size_t ti = 0; ti < INF_ARRAY_LEN(types); ti++) {
            const inf__mm_kernel *k =
                isa == 1 ? inf__avx2_mm_kernel(types[ti]) : inf__avx512_mm_kernel(types[ti]);
            if (!k) continue;
            const inf_type_traits *ref = inf_type_traits_ref(types[ti]);
            const inf_type_traits *vt = inf_type_traits_ref(ref->vec_dot_type);
            struct mm_case c;
            /* odd block counts, ragged rows, several repack slabs */
            const int64_t n_in = ref->blck_size == 256 ? 256 * 9 : 32 * 67, n_out = 45, n_tok = 11;
            make_weights(&rng, &c, types[ti], n_in, n_out);
            float *x = malloc((size_t)(n_in * n_tok) * sizeof(float));
            rand_floats(&rng, x, n_in * n_tok, 1.0f);
            size_t asz = (k->act_size(n_in, n_tok) + 63) & ~(size_t)63;
            uint8_t *act = aligned_alloc(64, asz);
            for (int64_t t = n_tok - 1; t >= 0; t--) k->act_prep(x + t * n_in, act, n_in, t);
            float *y = malloc((size_t)(n_out * n_tok) * sizeof(float));
            k->run(n_in, c.w, c.rs, n_out, act, n_tok, y, n_out);
            size_t vrs = inf_type_row_size(ref->vec_dot_type, n_in);
            void *qx = malloc(vrs);
            for (int64_t t = 0; t < n_tok; t++) {
                vt->from_float(x + t * n_in, qx, n_in);
                for (int64_t o = 0; o < n_out; o++) {
                    float s = 0;
                    ref->vec_dot(n_in, &s, (char *)c.w + c.rs * (size_t)o, qx);
                    double abs_sum = 0.0;
                    for (int64_t i = 0; i < n_in; i++)
                        abs_sum += fabs((double)c.wf[o * n_in + i] * x[t * n_in + i]);
                    float got = y[t * n_out + o];
                    if (fabs((double)got - s) > 2e-5 * abs_sum + 1e-6) {
                        fail_msg("%s mm %s t=%lld o=%lld: %.9g vs ref %.9g", isa_names[isa],
                                 ref->name, (long long)t, (long long)o, got, s);
                    }
                }
            }
            free(qx), free(y), free(act), free(x);
            free_weights(&c);
        }
    }
}

/* K-quant kernels at the int16 limits of their maddubs sums: raw random (and all-ones) quant
 * bytes, so scales reach 63 (q4_K) / +-127 (q6_K) and quants 15 / 63, against activations of
 * one magnitude (every q8_K value +-127), vs ref vec_dot. */
static void test_mm_kquant_extremes(void **state) {
    (void)state;
    inf_rng rng;
    inf__rng_seed(&rng, 1234);
    if (isa_ok[1]) {
        /* A type without a kernel here would silently skip the checks of this file. */
        const int need[] = {INF_TYPE_Q4_0, INF_TYPE_Q8_0, INF_TYPE_Q4_K, INF_TYPE_Q6_K};
        for (size_t i = 0; i < INF_ARRAY_LEN(need); i++)
            assert_non_null(inf__avx2_mm_kernel(need[i]));
    }
    const int types[] = {INF_TYPE_Q4_K, INF_TYPE_Q6_K};
    const int64_t n_in = 256 * 3, n_out = 11, n_tok = 6;
    for (int isa = 1; isa < 3; isa++) {
        if (!isa_ok[isa]) continue;
        for (size_t ti = 0; ti < INF_ARRAY_LEN(types); ti++) {
            const inf__mm_kernel *k =
                isa == 1 ? inf__avx2_mm_kernel(types[ti]) : inf__avx512_mm_kernel(types[ti]);
            if (!k) continue;
            const inf_type_traits *ref = inf_type_traits_ref(types[ti]);
            const size_t rs = inf_type_row_size(types[ti], n_in);
            uint8_t *w = malloc(rs * (size_t)n_out);
            for (int64_t o = 0; o < n_out; o++) {
                uint8_t *row = w + rs * (size_t)o;
                for (size_t i = 0; i < rs; i++)
                    row[i] = o < 3 ? 0xff : (uint8_t)inf__rng_next(&rng);
                for (int64_t b = 0; b < n_in / 256; b++) {
                    if (types[ti] == INF_TYPE_Q4_K) {
                        inf_block_q4_k *blk = (inf_block_q4_k *)(void *)row + b;
                        blk->d = 0x2000; /* 2^-7 */
                        blk->dmin = (inf_half)(o == 1 ? 0 : 0x1c00);
                    } else {
                        inf_block_q6_k *blk = (inf_block_q6_k *)(void *)row + b;
                        blk->d = 0x2000;
                        if (o == 2) memset(blk->scales, 0x80, sizeof(blk->scales)); /* -128 */
                    }
                }
            }
            float *x = malloc((size_t)(n_in * n_tok) * sizeof(float));
            for (int64_t t = 0; t < n_tok; t++)
                for (int64_t i = 0; i < n_in; i++)
                    x[t * n_in + i] = t == 0   ? 1.0f
                                      : t == 1 ? -1.0f
                                               : (inf__rng_next(&rng) & 1 ? 2.0f : -2.0f);
            size_t asz = (k->act_size(n_in, n_tok) + 63) & ~(size_t)63;
            uint8_t *act = aligned_alloc(64, asz);
            for (int64_t t = 0; t < n_tok; t++) k->act_prep(x + t * n_in, act, n_in, t);
            float *y = malloc((size_t)(n_out * n_tok) * sizeof(float));
            const inf_type_traits *vt = inf_type_traits_ref(ref->vec_dot_type);
            void *qx = malloc(inf_type_row_size(ref->vec_dot_type, n_in));
            for (int pass = 0; pass < 2; pass++) {
                /* all tokens at once, then one at a time (the decode path) */
                if (pass == 0) {
                    k->run(n_in, w, rs, n_out, act, n_tok, y, n_out);
                } else {
                    for (int64_t t = 0; t < n_tok; t++) {
                        k->act_prep(x + t * n_in, act, n_in, 0);
                        k->run(n_in, w, rs, n_out, act, 1, y + t * n_out, n_out);
                    }
                }
                for (int64_t t = 0; t < n_tok; t++) {
                    vt->from_float(x + t * n_in, qx, n_in);
                    for (int64_t o = 0; o < n_out; o++) {
                        float s = 0;
                        ref->vec_dot(n_in, &s, w + rs * (size_t)o, qx);
                        const float got = y[t * n_out + o];
                        if (fabs((double)got - s) > 1e-5 * fabs((double)s) + 1e-3)
                            fail_msg("%s mm %s extremes pass %d t=%lld o=%lld: %.9g vs ref %.9g",
                                     isa_names[isa], ref->name, pass, (long long)t, (long long)o,
                                     got, s);
                    }
                }
            }
            free(qx), free(y), free(act), free(x), free(w);
        }
    }
}

/* Each ISA's tiled kernel alone: Y[t][o] bitwise identical whatever n_tok (1, 2, 5, 17), the
 * token's position in the batch, and which / how many rows run() gets (offsets that cut the
 * kernel's row groups, single rows, ragged tails), with n_in past several transposed chunks. */
static void test_mm_batch_invariance(void **state) {
    (void)state;
    inf_rng rng;
    inf__rng_seed(&rng, 99);
    const int types[] = {INF_TYPE_Q4_0, INF_TYPE_Q8_0, INF_TYPE_F16,
                         INF_TYPE_F32,  INF_TYPE_Q4_K, INF_TYPE_Q6_K};
    const int64_t toks[] = {1, 2, 5, 17};
    /* {first row, row count}: whole, a single row, cuts inside and across 8/16-row groups */
    const int64_t slices[][2] = {{0, 45}, {44, 1}, {5, 1}, {3, 13}, {9, 33}, {16, 29}, {1, 7}};
    for (int isa = 1; isa < 3; isa++) {
        if (!isa_ok[isa]) continue;
        for (size_t ti = 0; ti < INF_ARRAY_LEN(types); ti++) {
            const inf__mm_kernel *k =
                isa == 1 ? inf__avx2_mm_kernel(types[ti]) : inf__avx512_mm_kernel(types[ti]);
            if (!k) continue;
            const inf_type_traits *ref = inf_type_traits_ref(types[ti]);
            const int64_t n_in = ref->blck_size == 256 ? 256 * 9 : 32 * 67, n_out = 45;
            const int64_t n_all = 17;
            struct mm_case c;
            make_weights(&rng, &c, types[ti], n_in, n_out);
            float *x = malloc((size_t)(n_in * n_all) * sizeof(float));
            rand_floats(&rng, x, n_in * n_all, 1.0f);
            /* Reference: all 17 tokens, all rows, in one call. */
            size_t asz = (k->act_size(n_in, n_all) + 63) & ~(size_t)63;
            uint8_t *act = aligned_alloc(64, asz);
            for (int64_t t = 0; t < n_all; t++) k->act_prep(x + t * n_in, act, n_in, t);
            float *yall = malloc((size_t)(n_out * n_all) * sizeof(float));
            k->run(n_in, c.w, c.rs, n_out, act, n_all, yall, n_out);
            const int64_t ldy = n_out + 3;
            float *y = malloc((size_t)(ldy * n_all) * sizeof(float));
            for (size_t q = 0; q < INF_ARRAY_LEN(toks); q++) {
                const int64_t n_tok = toks[q];
                for (int64_t t0 = 0; t0 + n_tok <= n_all; t0 += n_tok == 1 ? 4 : n_tok + 1) {
                    for (int64_t t = 0; t < n_tok; t++)
                        k->act_prep(x + (t0 + t) * n_in, act, n_in, t);
                    for (size_t si = 0; si < INF_ARRAY_LEN(slices); si++) {
                        const int64_t o0 = slices[si][0], nr = slices[si][1];
                        for (int64_t i = 0; i < ldy * n_tok; i++) y[i] = -777.0f;
                        k->run(n_in, (const char *)c.w + c.rs * (size_t)o0, c.rs, nr, act, n_tok,
                               y + o0, ldy);
                        for (int64_t t = 0; t < n_tok; t++) {
                            for (int64_t o = 0; o < ldy; o++) {
                                const float got = y[t * ldy + o];
                                const bool in = o >= o0 && o < o0 + nr;
                                const float want = in ? yall[(t0 + t) * n_out + o] : -777.0f;
                                if (memcmp(&got, &want, sizeof(float)) != 0)
                                    fail_msg("%s mm %s n_tok=%lld t=%lld rows [%lld,+%lld) o=%lld: "
                                             "%.9g vs %.9g", isa_names[isa], ref->name,
                                             (long long)n_tok, (long long)(t0 + t), (long long)o0,
                                             (long long)nr, (long long)o, got, want);
                            }
                        }
                    }
                }
            }
            free(y), free(yall), free(act), free(x);
            free_weights(&c);
        }
    }
}

/* ---- inf_matmul: accuracy and determinism --------------------------------------------------- */

static void run_matmul(inf_pool *pool, struct mm_case *c, const float *x, int64_t n_tok,
                       float *y, int64_t ldy) {
    inf_tensor W = {.type = c->type,
                    .ne = {c->n_in, c->n_out, 1, 1},
                    .nb = {0, c->rs, c->rs * (size_t)c->n_out, c->rs * (size_t)c->n_out},
                    .data = c->w,
                    .name = "w"};
    size_t sz = inf_matmul_scratch_size(c->type, c->n_in, n_tok);
    assert_true(sz > 0);
    void *scratch = aligned_alloc(64, (sz + 63) & ~(size_t)63);
    assert_non_null(scratch);
    inf_matmul(pool, &W, x, n_tok, y, ldy, scratch);
    free(scratch);
}

static void test_matmul(void **state) {
    (void)state;
    inf_rng rng;
    inf__rng_seed(&rng, 4242);
    inf_pool *p1 = NULL, *p2 = NULL;
    assert_int_equal(inf_pool_create(1, &p1), 0);
    assert_int_equal(inf_pool_create(2, &p2), 0);
    const int types[] = {INF_TYPE_Q4_0, INF_TYPE_Q8_0, INF_TYPE_F16,    INF_TYPE_F32,
                         INF_TYPE_Q4_K, INF_TYPE_Q6_K, INF_TYPE_Q5_0,   INF_TYPE_Q4_1,
                         INF_TYPE_Q2_K, INF_TYPE_Q3_K, INF_TYPE_IQ4_NL, INF_TYPE_IQ4_XS};
    for (size_t ti = 0; ti < INF_ARRAY_LEN(types); ti++) {
        const int type = types[ti];
        const bool k_type = inf_type_traits_ref(type)->blck_size == 256;
        const int64_t n_in = k_type ? 768 : 32 * 23, n_out = 83;
        const int64_t toks[] = {1, 37, 128};
        struct mm_case c;
        make_weights(&rng, &c, type, n_in, n_out);
        float *x = malloc((size_t)(n_in * 128) * sizeof(float));
        rand_floats(&rng, x, n_in * 128, 1.0f);
        const int64_t ldy = n_out + 5;
        float *y_first = NULL;
        for (int pi = 0; pi < 2; pi++) {
            for (size_t k = 0; k < INF_ARRAY_LEN(toks); k++) {
                const int64_t n_tok = toks[k];
                float *y = malloc((size_t)(ldy * n_tok) * sizeof(float));
                for (int64_t i = 0; i < ldy * n_tok; i++) y[i] = -12345.0f;
                run_matmul(pi ? p2 : p1, &c, x, n_tok, y, ldy);
                /* Padding between rows untouched. */
                for (int64_t t = 0; t < n_tok; t++)
                    for (int64_t o = n_out; o < ldy; o++) assert_true(y[t * ldy + o] == -12345.0f);
                if (!y_first) {
                    y_first = y;
                    /* Accuracy vs the naive float product of dequantized weights. */
                    double err2 = 0, ref2 = 0;
                    for (int64_t o = 0; o < n_out; o++) {
                        double s = 0;
                        for (int64_t i = 0; i < n_in; i++) s += (double)c.wf[o * n_in + i] * x[i];
                        err2 += (s - y[o]) * (s - y[o]);
                        ref2 += s * s;
                    }
                    double bound = type == INF_TYPE_F32 ? 1e-10 : type == INF_TYPE_F16 ? 1e-6 : 1e-3;
                    if (err2 / ref2 > bound)
                        fail_msg("matmul %s: nmse %.3g > %.3g", c.w ? inf_type_traits_ref(type)->name : "",
                                 err2 / ref2, bound);
                    continue;
                }
                /* Determinism: token 0 row identical to the 1-token run; and against the
                 * 128-token reference for every token both computed. */
                if (memcmp(y, y_first, (size_t)n_out * sizeof(float)) != 0) {
                    fail_msg("matmul %s: n_tok=%lld threads=%d differs from n_tok=1",
                             inf_type_traits_ref(type)->name, (long long)n_tok, pi + 1);
                }
                free(y);
            }
        }
        /* Every token of a 128 run equals its own 1-token run (2 threads), spot-checked. */
        float *y128 = malloc((size_t)(ldy * 128) * sizeof(float));
        run_matmul(p2, &c, x, 128, y128, ldy);
        const int64_t probe[] = {1, 7, 36, 37, 64, 100, 127};
        for (size_t k = 0; k < INF_ARRAY_LEN(probe); k++) {
            float y1[128];
            run_matmul(p1, &c, x + probe[k] * n_in, 1, y1, n_out);
            if (memcmp(y1, y128 + probe[k] * ldy, (size_t)n_out * sizeof(float)) != 0) {
                fail_msg("matmul %s: token %lld of 128 differs from its 1-token run",
                         inf_type_traits_ref(type)->name, (long long)probe[k]);
            }
        }
        /* 37-token run of an offset window equals the same tokens in the 128 run. */
        float *y37 = malloc((size_t)(ldy * 37) * sizeof(float));
        run_matmul(p2, &c, x + 50 * n_in, 37, y37, ldy);
        for (int64_t t = 0; t < 37; t++) {
            assert_memory_equal(y37 + t * ldy, y128 + (t + 50) * ldy, (size_t)n_out * sizeof(float));
        }
        free(y37), free(y128), free(y_first), free(x);
        free_weights(&c);
    }
    inf_pool_destroy(p1);
    inf_pool_destroy(p2);
}

/* Large-shape smoke test: rows not a multiple of 16, K spanning several repack slabs. */
static void test_matmul_big(void **state) {
    (void)state;
    inf_rng rng;
    inf__rng_seed(&rng, 5);
    inf_pool *p2 = NULL;
    assert_int_equal(inf_pool_create(2, &p2), 0);
    const int types[] = {INF_TYPE_Q4_0, INF_TYPE_Q8_0};
    for (size_t ti = 0; ti < INF_ARRAY_LEN(types); ti++) {
        struct mm_case c;
        const int64_t n_in = 32 * 130, n_out = 301, n_tok = 19;
        make_weights(&rng, &c, types[ti], n_in, n_out);
        float *x = malloc((size_t)(n_in * n_tok) * sizeof(float));
        rand_floats(&rng, x, n_in * n_tok, 1.0f);
        float *y = malloc((size_t)(n_out * n_tok) * sizeof(float));
        run_matmul(p2, &c, x, n_tok, y, n_out);
        const inf_type_traits *ref = inf_type_traits_ref(types[ti]);
        void *qx = malloc(inf_type_row_size(INF_TYPE_Q8_0, n_in));
        for (int64_t t = 0; t < n_tok; t += 6) {
            inf_type_traits_ref(INF_TYPE_Q8_0)->from_float(x + t * n_in, qx, n_in);
            for (int64_t o = 0; o < n_out; o++) {
                float s;
                ref->vec_dot(n_in, &s, (char *)c.w + c.rs * (size_t)o, qx);
                double abs_sum = 0;
                for (int64_t i = 0; i < n_in; i++)
                    abs_sum += fabs((double)c.wf[o * n_in + i] * x[t * n_in + i]);
                assert_true(fabs((double)s - y[t * n_out + o]) <= 2e-5 * abs_sum + 1e-6);
            }
        }
        free(qx), free(y), free(x);
        free_weights(&c);
    }
    inf_pool_destroy(p2);
}

/* A repacked copy of the weights gives bitwise-identical matmuls. */
static void test_repack(void **state) {
    (void)state;
    inf_rng rng;
    inf__rng_seed(&rng, 31);
    inf_pool *p2 = NULL;
    assert_int_equal(inf_pool_create(2, &p2), 0);
    const int types[] = {INF_TYPE_Q4_0, INF_TYPE_Q8_0, INF_TYPE_F16, INF_TYPE_Q4_K};
    const int64_t shapes[][2] = {{32 * 67, 45}, {32 * 64, 64}, {256, 301}, {32 * 3, 17},
                                 {256 * 5, 37}};
    for (size_t ti = 0; ti < INF_ARRAY_LEN(types); ti++) {
        for (size_t si = 0; si < INF_ARRAY_LEN(shapes); si++) {
            const int64_t n_in = shapes[si][0], n_out = shapes[si][1];
            if (n_in % inf_type_traits_ref(types[ti])->blck_size) continue;
            struct mm_case c;
            make_weights(&rng, &c, types[ti], n_in, n_out);
            inf_tensor W = {.type = c.type, .ne = {n_in, n_out, 1, 1},
                            .nb = {0, c.rs, c.rs * (size_t)n_out, c.rs * (size_t)n_out},
                            .data = c.w, .name = "w"};
            inf_tensor R;
            void *mem = NULL;
            assert_int_equal(inf_matmul_repack(p2, &W, &R, &mem), 0);
            if ((inf_kernels_isa() >= INF_ISA_AVX2 &&
                 (c.type == INF_TYPE_Q4_0 || c.type == INF_TYPE_Q8_0)) ||
                (inf_kernels_isa() == INF_ISA_AVX512 && c.type == INF_TYPE_Q4_K)) {
                assert_non_null(mem);
                assert_int_not_equal(R.type, W.type);
            } else {
                assert_null(mem);
                assert_memory_equal(&R, &W, sizeof(W));
            }
            const int64_t toks[] = {1, 5, 37};
            for (size_t k = 0; k < INF_ARRAY_LEN(toks); k++) {
                const int64_t n_tok = toks[k];
                float *x = malloc((size_t)(n_in * n_tok) * sizeof(float));
                rand_floats(&rng, x, n_in * n_tok, 1.0f);
                float *ya = malloc((size_t)(n_out * n_tok) * sizeof(float));
                float *yb = malloc((size_t)(n_out * n_tok) * sizeof(float));
                size_t sz = inf_matmul_scratch_size(c.type, n_in, n_tok);
                void *scr = aligned_alloc(64, (sz + 63) & ~(size_t)63);
                inf_matmul(p2, &W, x, n_tok, ya, n_out, scr);
                inf_matmul(p2, &R, x, n_tok, yb, n_out, scr);
                if (memcmp(ya, yb, (size_t)(n_out * n_tok) * sizeof(float)) != 0) {
                    fail_msg("repacked %s %lldx%lld n_tok=%lld differs",
                             inf_type_traits_ref(c.type)->name, (long long)n_out, (long long)n_in,
                             (long long)n_tok);
                }
                free(scr), free(ya), free(yb), free(x);
            }
            free(mem);
            free_weights(&c);
        }
    }
    inf_pool_destroy(p2);
}

static void test_dispatch(void **state) {
    (void)state;
    int isa = inf_kernels_isa();
    assert_true(isa >= INF_ISA_REF && isa <= INF_ISA_AVX512);
    assert_string_not_equal(inf_isa_name(isa), "unknown");
    assert_true(isa_ok[isa]);
    const inf_type_traits *t = inf_type_traits_get(INF_TYPE_Q4_0);
    assert_non_null(t);
    assert_int_equal(t->vec_dot_type, INF_TYPE_Q8_0);
    assert_null(inf_type_traits_get(-1));
    assert_null(inf_type_traits_get(INF_TYPE_COUNT));
    assert_null(inf_type_traits_get(INF_TYPE_I8)); /* known geometry, no kernels */
    assert_non_null(inf_type_traits_get(INF_TYPE_Q2_K));
    const char *env = getenv("INFERNEO_ISA");
    if (env && *env) assert_string_equal(inf_isa_name(isa), env);
    if (!env && isa_ok[2]) assert_int_equal(isa, INF_ISA_AVX512);
}

static int run_child(const char *self, const char *isa) {
    char envbuf[64];
    snprintf(envbuf, sizeof(envbuf), "INFERNEO_ISA=%s", isa);
    size_t n = 0;
    while (environ[n]) n++;
    char **env = calloc(n + 2, sizeof(char *));
    for (size_t i = 0; i < n; i++) env[i] = environ[i];
    env[n] = envbuf;
    char *argv[] = {(char *)self, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, env);
    free(env);
    if (rc != 0) return -1;
    int status = 0;
    if (waitpid(pid, &status, 0) < 0) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int main(int argc, char **argv) {
    (void)argc;
    const char *env = getenv("INFERNEO_ISA");
    if (env && *env) {
        /* Child run: the dispatched-path tests under a forced ISA. */
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_dispatch),
            cmocka_unit_test(test_matmul),
            cmocka_unit_test(test_matmul_big),
            cmocka_unit_test(test_repack),
        };
        return cmocka_run_group_tests_name(env, tests, setup, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch),   cmocka_unit_test(test_vec_dot),
        cmocka_unit_test(test_vec_dot_random_bits),
        cmocka_unit_test(test_quantizers), cmocka_unit_test(test_mm_kernels),
        cmocka_unit_test(test_mm_batch_invariance), cmocka_unit_test(test_mm_kquant_extremes),
        cmocka_unit_test(test_matmul),     cmocka_unit_test(test_matmul_big),
        cmocka_unit_test(test_repack),
    };
    int failed = cmocka_run_group_tests(tests, setup, NULL);
    const inf_cpu_features *f = inf__cpu_features();
    const char *children[] = {"ref", "avx2"};
    for (size_t i = 0; i < INF_ARRAY_LEN(children); i++) {
        if (i == 1 && !(f->avx2 && f->fma && f->f16c)) continue;
        int rc = run_child(argv[0], children[i]);
        if (rc != 0) {
            fprintf(stderr, "child run with INFERNEO_ISA=%s failed (%d)\n", children[i], rc);
            failed++;
        }
    }
    return failed;
}
