/*
 * ops.c — per-token transformer ops (see ops.h).
 *
 * Invariant: every function is a pure function of its arguments with a fixed summation order, so
 * results are bit-identical whatever the batch composition or thread split. Reductions use eight
 * independent float lanes (which the compiler maps onto SIMD registers without -ffast-math)
 * or double accumulation where llama.cpp accumulates in double (RMSNorm, softmax sums).
 * Threads: all functions are reentrant; callers parallelize over tokens/heads.
 */
#include "kernels/ops.h"

#include <math.h>
#include <string.h>

void inf_op_rmsnorm(const float *x, const float *w, float *y, int64_t n, float eps) {
    double acc[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++) acc[j] += (double)(x[i + j] * x[i + j]);
    for (; i < n; i++) acc[0] += (double)(x[i] * x[i]);
    double sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    float mean = (float)(sum / (double)(n > 0 ? n : 1));
    float scale = 1.0f / sqrtf(mean + eps);
    if (w)
        for (i = 0; i < n; i++) y[i] = (x[i] * scale) * w[i];
    else
        for (i = 0; i < n; i++) y[i] = x[i] * scale;
}

void inf_op_rope_cache(float *cs, int64_t n_rot, int64_t pos, float base, float freq_scale) {
    float theta_scale = powf(base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int64_t i = 0; i < n_rot / 2; i++) {
        float t = freq_scale * theta;
        cs[2 * i] = cosf(t);
        cs[2 * i + 1] = sinf(t);
        theta *= theta_scale;
    }
}

void inf_op_rope(float *x, int64_t n_head, int64_t head_dim, int64_t n_rot, const float *cs,
                 int neox) {
    int64_t half = n_rot / 2;
    for (int64_t h = 0; h < n_head; h++) {
        float *xh = x + h * head_dim;
        if (neox) {
            for (int64_t i = 0; i < half; i++) {
                float c = cs[2 * i], s = cs[2 * i + 1];
                float x0 = xh[i], x1 = xh[i + half];
                xh[i] = x0 * c - x1 * s;
                xh[i + half] = x0 * s + x1 * c;
            }
        } else {
            for (int64_t i = 0; i < half; i++) {
                float c = cs[2 * i], s = cs[2 * i + 1];
                float x0 = xh[2 * i], x1 = xh[2 * i + 1];
                xh[2 * i] = x0 * c - x1 * s;
                xh[2 * i + 1] = x0 * s + x1 * c;
            }
        }
    }
}

/* The hot loops are plain C compiled three times (AVX-512, AVX2+FMA, baseline) and picked at
 * load time by the CPU (GCC function multiversioning). Within one machine the choice is fixed,
 * so results stay deterministic; the lane structure below is identical in every clone. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(INF_NO_CLONES)
#define INF_OPS_CLONES                                                                            \
    __attribute__((target_clones("arch=skylake-avx512", "arch=haswell", "default")))
#else
#define INF_OPS_CLONES
#endif

/* Sixteen independent lanes: one zmm, two ymm or four xmm registers, whatever the compiler
 * targets; the lane order and the final tree are fixed, so the result is too. */
#define DOT_LANES 16

INF_OPS_CLONES
float inf_op_dot(const float *restrict a, const float *restrict b, int64_t n) {
    float acc[DOT_LANES] = {0};
    int64_t i = 0;
    for (; i + DOT_LANES <= n; i += DOT_LANES)
#pragma GCC unroll 16
        for (int j = 0; j < DOT_LANES; j++) acc[j] += a[i + j] * b[i + j];
    for (int j = 0; i < n; i++, j++) acc[j] += a[i] * b[i];
    for (int w = DOT_LANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++) acc[j] += acc[j + w];
    return acc[0];
}

/* exp(x - max) in place; returns the sum (accumulated in double, fixed order). */
static double exp_sum(float *x, int64_t n, float max) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        float e = expf(x[i] - max);
        x[i] = e;
        sum += (double)e;
    }
    return sum;
}

static float max_of(const float *x, int64_t n) {
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

void inf_op_softmax(float *x, int64_t n) {
    if (n <= 0) return;
    double sum = exp_sum(x, n, max_of(x, n));
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

void inf_op_silu_mul(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* Round-to-nearest-even to binary16 precision on the float bits: normals drop 13 mantissa bits
 * with RNE (a carry into the exponent is the correct result); below binary16's smallest normal
 * the grid is 2^-24, which adding and subtracting 0.5f rounds to exactly once. */
void inf_op_round_f16(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        uint32_t sign = u & 0x80000000u, a = u & 0x7fffffffu;
        if (a >= 0x477ff000u) { /* >= 65520: overflows binary16 (NaN stays NaN) */
            if (a <= 0x7f800000u) a = 0x7f800000u;
        } else if (a < 0x38800000u) { /* below 2^-14: subnormal binary16 grid */
            float f;
            memcpy(&f, &a, 4);
            f = (f + 0.5f) - 0.5f;
            memcpy(&a, &f, 4);
        } else {
            a = (a + 0x0fffu + ((a >> 13) & 1u)) & ~0x1fffu;
        }
        u = sign | a;
        memcpy(&x[i], &u, 4);
    }
}

void inf_op_add(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

INF_OPS_CLONES
void inf_op_attention(const float *q, const float *k, const float *v, size_t stride,
                      const int32_t *slots, int64_t n_pos, int64_t head_dim, float scale,
                      float *scores, float *out) {
    if (n_pos <= 0) {
        for (int64_t d = 0; d < head_dim; d++) out[d] = 0.0f;
        return;
    }
    for (int64_t j = 0; j < n_pos; j++)
        scores[j] = inf_op_dot(q, k + (size_t)slots[j] * stride, head_dim) * scale;
    inf_op_softmax(scores, n_pos);
    /* llama.cpp multiplies the probabilities with its f16 V cache in f16: same precision. */
    inf_op_round_f16(scores, n_pos);
    /* out = sum_j p_j v_j, a block of 16 output dims at a time so the accumulators stay in
     * registers across all positions. */
    int64_t d0 = 0;
    for (; d0 + DOT_LANES <= head_dim; d0 += DOT_LANES) {
        float acc[DOT_LANES] = {0};
        for (int64_t j = 0; j < n_pos; j++) {
            const float *restrict vj = v + (size_t)slots[j] * stride + d0;
            float p = scores[j];
#pragma GCC unroll 16
            for (int d = 0; d < DOT_LANES; d++) acc[d] += p * vj[d];
        }
        for (int d = 0; d < DOT_LANES; d++) out[d0 + d] = acc[d];
    }
    for (; d0 < head_dim; d0++) {
        float acc = 0.0f;
        for (int64_t j = 0; j < n_pos; j++) acc += scores[j] * v[(size_t)slots[j] * stride + d0];
        out[d0] = acc;
    }
}
