/*
 * test_ops_kv16.c — the f16 KV cache ops: exact binary16 conversions (every half value, rounding
 * of floats equal to inf_op_round_f16), and attention over f16 K/V rows equal bit for bit to the
 * float attention over the same values (grouped, single-call and split into phases), and close
 * to a plain scalar computation written here.
 * The dispatched ISA is fixed per process, so when INFERNEO_ISA is unset main() reruns this
 * program with INFERNEO_ISA=ref: both the F16C and the portable conversions get checked.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "kernels/ops.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd32(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 32);
}
static float frand(void) { /* uniform in [-1, 1) */
    return (float)((double)rnd32() / 4294967296.0 * 2.0 - 1.0);
}

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static bool same_float(float a, float b) {
    return isnan(a) ? isnan(b) : bits(a) == bits(b);
}

/* Every binary16 value converts exactly (against the scalar inf_fp16_to_fp32), through rows of
 * several widths (vector bodies and scalar tails), gathered through a slot table. */
static void test_f16_to_f32_all(void **state) {
    (void)state;
    static const int64_t widths[] = {256, 64, 20, 7, 1};
    inf_half *src = malloc(65536 * sizeof *src);
    float *dst = malloc(65536 * sizeof *dst);
    int32_t *slots = malloc(65536 * sizeof *slots);
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
        int64_t hd = widths[w], rows = 65536 / hd;
        /* stored in reverse row order: row r of the gather reads slot rows - 1 - r */
        for (int64_t r = 0; r < rows; r++) {
            slots[r] = (int32_t)(rows - 1 - r);
            for (int64_t d = 0; d < hd; d++)
                src[(rows - 1 - r) * hd + d] = (inf_half)(r * hd + d);
        }
        inf_op_f16_gather(src, (size_t)hd, slots, rows, hd, dst);
        for (int64_t i = 0; i < rows * hd; i++) {
            float want = inf_fp16_to_fp32((inf_half)i);
            if (!same_float(dst[i], want))
                fail_msg("width %lld: half 0x%04x -> %a, want %a", (long long)hd, (unsigned)i,
                         dst[i], want);
        }
    }
    free(src);
    free(dst);
    free(slots);
}

/* Float -> binary16 rounds to nearest even exactly as inf_fp32_to_fp16, and back to float the
 * value is inf_op_round_f16's (the rounding the f32 KV store used to apply). */
static void test_f32_to_f16(void **state) {
    (void)state;
    enum { N = 1 << 16 };
    float *x = malloc(N * sizeof *x), *r = malloc(N * sizeof *r), *back = malloc(N * sizeof *back);
    inf_half *h = malloc(N * sizeof *h);
    int32_t slot0 = 0;
    static const float special[] = {0.0f,      -0.0f,     1.0f,      65504.0f, 65519.0f,
                                    65520.0f,  -65520.0f, 1e6f,      INFINITY, -INFINITY,
                                    6.1035156e-05f, 6.1032e-05f, 5.9604645e-08f, 2.98e-08f,
                                    2.9802322e-08f, 1e-30f, -3.0e-06f, 1.00048828125f,
                                    1.00146484375f};
    size_t ns = sizeof special / sizeof special[0];
    for (int i = 0; i < N; i++) {
        if ((size_t)i < ns) {
            x[i] = special[i];
        } else {
            /* random bit patterns across all exponents of interest (tiny to overflow) */
            uint32_t u = rnd32();
            uint32_t e = 90 + rnd32() % 60; /* 2^-37 .. 2^22 */
            x[i] = from_bits((u & 0x807fffffu) | (e << 23));
        }
    }
    inf_op_f32_to_f16(x, h, N);
    memcpy(r, x, N * sizeof *x);
    inf_op_round_f16(r, N);
    for (int i = 0; i < N; i++) {
        inf_half want = inf_fp32_to_fp16(x[i]);
        if (h[i] != want)
            fail_msg("%a -> 0x%04x, want 0x%04x", x[i], (unsigned)h[i], (unsigned)want);
        inf_op_f16_gather(h + i, 1, &slot0, 1, 1, back + i);
        if (!same_float(back[i], r[i]))
            fail_msg("%a: via f16 %a, inf_op_round_f16 %a", x[i], back[i], r[i]);
    }
    /* odd lengths: vector body plus scalar tail */
    for (int n = 1; n < 40; n++) {
        inf_half part[40];
        inf_op_f32_to_f16(x + 100, part, n);
        assert_memory_equal(part, h + 100, (size_t)n * sizeof *part);
    }
    free(x);
    free(r);
    free(back);
    free(h);
}

/* Random binary16 values of mixed magnitudes (some subnormal, some zero). */
static inf_half rand_half(void) {
    uint32_t k = rnd32() % 16;
    float m = frand();
    float f = k == 0 ? m * 1e-5f : k == 1 ? 0.0f : k == 2 ? m * 8.0f : m;
    return inf_fp32_to_fp16(f);
}

/* Attention over f16 rows == attention over their float values (bit for bit), for head sizes
 * hitting every vector path and position counts around the block and chunk sizes; the phase
 * functions give the same values; and all are close to a plain scalar computation. */
static void test_attention_f16(void **state) {
    (void)state;
    static const int64_t hds[] = {64, 128, 80, 20, 8};
    static const int64_t nps[] = {1, 15, 16, 17, 63, 64, 65, 255, 256, 300, 513};
    enum { G = 5, KVH = 2 };
    for (size_t a = 0; a < sizeof hds / sizeof hds[0]; a++)
        for (size_t b = 0; b < sizeof nps / sizeof nps[0]; b++) {
            int64_t hd = hds[a], np = nps[b];
            size_t stride = (size_t)(KVH * hd), n_el = (size_t)np * stride;
            inf_half *kh = malloc(n_el * sizeof *kh), *vh = malloc(n_el * sizeof *vh);
            float *kf = malloc(n_el * sizeof *kf), *vf = malloc(n_el * sizeof *vf);
            for (size_t i = 0; i < n_el; i++) {
                kh[i] = rand_half();
                vh[i] = rand_half();
                kf[i] = inf_fp16_to_fp32(kh[i]);
                vf[i] = inf_fp16_to_fp32(vh[i]);
            }
            float q[G * 128];
            for (int64_t i = 0; i < G * hd; i++)
                q[i] = frand();
            inf_op_round_f16(q, G * hd);
            int32_t *slots = malloc(sizeof(int32_t) * (size_t)np);
            for (int64_t j = 0; j < np; j++)
                slots[j] = (int32_t)((j * 7 + 3) % np);
            size_t conv_n = INF_ATTN_CONV_FLOATS(hd);
            size_t scr_n = (size_t)(G * (np + hd)) + conv_n;
            float *scratch = malloc(sizeof(float) * scr_n);
            float out16[G * 128], out32[G * 128], one[128];
            float scale = 1.0f / sqrtf((float)hd);
            /* second KV head: offsets inside the rows are exercised */
            inf_op_attention_group_f16(q, G, kh + hd, vh + hd, stride, slots, np, hd, scale, 0.0f,
                                       scratch, out16);
            inf_op_attention_group(q, G, kf + hd, vf + hd, stride, slots, np, hd, scale, scratch,
                                   out32);
            if (memcmp(out16, out32, sizeof(float) * (size_t)(G * hd)))
                fail_msg("hd %lld n_pos %lld: f16 group != f32 group", (long long)hd,
                         (long long)np);
            for (int h = 0; h < G; h++) {
                inf_op_attention_group_f16(q + h * hd, 1, kh + hd, vh + hd, stride, slots, np, hd,
                                           scale, 0.0f, scratch, one);
                if (memcmp(one, out16 + h * hd, sizeof(float) * (size_t)hd))
                    fail_msg("hd %lld n_pos %lld head %d: single != group", (long long)hd,
                             (long long)np, h);
            }

            /* phases, chunk by chunk, into rows of leading dimension ld > n_pos */
            int64_t ld = np + 3;
            float *rows = malloc(sizeof(float) * (size_t)(G * ld));
            float *conv = malloc(sizeof(float) * conv_n);
            float *part = malloc(sizeof(float) * (size_t)(G * hd));
            float sum[G * 128];
            for (int64_t c0 = 0; c0 < np; c0 += INF_ATTN_CHUNK)
                inf_op_attn_scores_f16(q, G, kh + hd, stride, slots + c0,
                                       INF_MIN(INF_ATTN_CHUNK, np - c0), hd, scale, rows + c0, ld,
                                       conv);
            for (int h = 0; h < G; h++)
                inf_op_attn_softmax(rows + h * ld, np, 0.0f);
            memset(sum, 0, sizeof sum);
            for (int64_t c0 = 0; c0 < np; c0 += INF_ATTN_CHUNK) {
                inf_op_attn_pv_f16(rows + c0, G, ld, vh + hd, stride, slots + c0,
                                   INF_MIN(INF_ATTN_CHUNK, np - c0), hd, part, conv);
                for (int64_t i = 0; i < G * hd; i++)
                    sum[i] += part[i];
            }
            if (memcmp(sum, out16, sizeof(float) * (size_t)(G * hd)))
                fail_msg("hd %lld n_pos %lld: phases != group", (long long)hd, (long long)np);

            /* plain scalar reference in double: softmax(scale * q.k) . v */
            double *p = malloc(sizeof(double) * (size_t)np);
            for (int h = 0; h < G; h++) {
                double mx = -INFINITY, tot = 0;
                for (int64_t j = 0; j < np; j++) {
                    double t = 0;
                    for (int64_t d = 0; d < hd; d++)
                        t += (double)q[h * hd + d] *
                             inf_fp16_to_fp32(kh[(size_t)slots[j] * stride + (size_t)(hd + d)]);
                    p[j] = t * scale;
                    mx = fmax(mx, p[j]);
                }
                for (int64_t j = 0; j < np; j++)
                    tot += (p[j] = exp(p[j] - mx));
                for (int64_t d = 0; d < hd; d++) {
                    double o = 0, mag = 0;
                    for (int64_t j = 0; j < np; j++) {
                        double vv =
                            inf_fp16_to_fp32(vh[(size_t)slots[j] * stride + (size_t)(hd + d)]);
                        o += p[j] / tot * vv;
                        mag += p[j] / tot * fabs(vv);
                    }
                    /* probabilities carry binary16 precision (llama.cpp's numerics) */
                    if (fabs(out16[h * hd + d] - o) > 2e-3 * mag + 1e-6)
                        fail_msg("hd %lld n_pos %lld head %d dim %lld: %g vs reference %g",
                                 (long long)hd, (long long)np, h, (long long)d,
                                 out16[h * hd + d], o);
                }
            }
            free(p);
            free(rows);
            free(conv);
            free(part);
            free(scratch);
            free(slots);
            free(kh);
            free(vh);
            free(kf);
            free(vf);
        }
}

/* With F16C, the dispatched conversions are the F16C ones: check them (and the avx512 gather)
 * directly against the portable scalar ones too (the rerun under INFERNEO_ISA=ref covers ops.c's
 * portable path). */
static void test_f16c_direct(void **state) {
    (void)state;
    if (inf_kernels_isa() < INF_ISA_AVX2) skip();
#if defined(__x86_64__)
    float x[37], y[37];
    inf_half h[37];
    int32_t s0 = 0;
    for (int i = 0; i < 37; i++)
        x[i] = frand() * 70000.0f;
    inf__f32_to_f16_avx2(x, h, 37);
    for (int i = 0; i < 37; i++)
        assert_int_equal(h[i], inf_fp32_to_fp16(x[i]));
    inf__f16_gather_avx2(h, 37, &s0, 1, 37, y);
    for (int i = 0; i < 37; i++)
        assert_true(same_float(y[i], inf_fp16_to_fp32(h[i])));
    if (inf_kernels_isa() >= INF_ISA_AVX512) {
        memset(y, 0, sizeof y);
        inf__f16_gather_avx512(h, 37, &s0, 1, 37, y);
        for (int i = 0; i < 37; i++)
            assert_true(same_float(y[i], inf_fp16_to_fp32(h[i])));
    }
#endif
}

/* Reruns this test program with INFERNEO_ISA=ref (portable conversions). */
static int rerun_ref(void) {
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        setenv("INFERNEO_ISA", "ref", 1);
        execl("/proc/self/exe", "test_ops_kv16", (char *)NULL);
        _exit(127);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) < 0) return 1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

int main(void) {
    const char *isa = getenv("INFERNEO_ISA");
    if (inf_kernels_init() < 0) return 1;
    fprintf(stderr, "test_ops_kv16: ISA %s\n", inf_isa_name(inf_kernels_isa()));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_to_f32_all),
        cmocka_unit_test(test_f32_to_f16),
        cmocka_unit_test(test_attention_f16),
        cmocka_unit_test(test_f16c_direct),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0 && (!isa || !*isa) && inf_kernels_isa() != INF_ISA_REF) rc = rerun_ref();
    return rc;
}
