/*
 * iq4_ref.c — scalar reference kernels for the non-linear 4-bit quants iq4_nl (32-element blocks,
 * activations q8_0) and iq4_xs (256-element super-blocks of 8 x 32 with 6-bit sub-block scales,
 * activations q8_K).
 *
 * A 4-bit index selects one of 16 fixed int8 levels (inf__iq4nl_values, denser near zero);
 * value = scale * level. Nibbles are laid out as q4_0's: per 32 elements, 16 bytes, element l in
 * the low nibble of qs[l] and element l + 16 in the high one. The quantizer follows ggml's
 * (no importance matrix): per 32 elements, weights x^2, a scale search over 15 candidates around
 * -max / levels[0] maximizing the weighted projection, then (iq4_xs) the sub-block scales rounded
 * to 6 bits against the super-block's largest and the indices recomputed.
 * Dot products sum level * q8 in integers per block (sub-block) and scale once.
 *
 * Invariants: n is a multiple of 32 (iq4_nl) / 256 (iq4_xs). Threads: pure functions.
 */
#include "kernels/ref/ref.h"

#include <math.h>
#include <string.h>

#define FP16(x) inf_fp16_to_fp32(x)
#define GROUP_MAX_EPS 1e-15f

const int8_t inf__iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                      1,    13,   25,  38,  53,  69,  89,  113};

/* Index of the level nearest to v (ties go to the upper level, as ggml's search). */
static int nearest_level(float v) {
    const int8_t *val = inf__iq4nl_values;
    if (v <= val[0]) return 0;
    if (v >= val[15]) return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (v < val[mid]) hi = mid;
        else lo = mid;
    }
    return v - val[hi - 1] < val[hi] - v ? hi - 1 : hi;
}

/* Best scale for 32 elements (0 for an all-zero block). L is not set. */
static float fit_block(const float *x) {
    float amax = 0.0f, max = 0.0f, w[32];
    for (int j = 0; j < 32; j++) {
        w[j] = x[j] * x[j];
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    if (amax < GROUP_MAX_EPS) return 0.0f;
    const int8_t *val = inf__iq4nl_values;
    float d = -max / val[0], id = 1.0f / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; j++) {
        const float q = val[nearest_level(id * x[j])];
        sumqx += w[j] * q * x[j];
        sumq2 += w[j] * q * q;
    }
    d = sumqx / sumq2;
    float best = d * sumqx;
    for (int itry = -7; itry <= 7; itry++) {
        id = (itry + val[0]) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < 32; j++) {
            const float q = val[nearest_level(id * x[j])];
            sumqx += w[j] * q * x[j];
            sumq2 += w[j] * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

/* 32 indices for scale d into 16 nibble bytes. */
static void pack_block(const float *x, float d, uint8_t *qs) {
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 16; j++)
        qs[j] = (uint8_t)(nearest_level(id * x[j]) | (nearest_level(id * x[j + 16]) << 4));
}

static void unpack_block(const uint8_t *qs, float d, float *y) {
    for (int j = 0; j < 16; j++) {
        y[j] = d * inf__iq4nl_values[qs[j] & 0x0f];
        y[j + 16] = d * inf__iq4nl_values[qs[j] >> 4];
    }
}

/* sum over 32 elements of level * q. */
static int dot_block(const uint8_t *qs, const int8_t *q) {
    int sum = 0;
    for (int j = 0; j < 16; j++)
        sum += inf__iq4nl_values[qs[j] & 0x0f] * q[j] + inf__iq4nl_values[qs[j] >> 4] * q[j + 16];
    return sum;
}

/* ---- iq4_nl ------------------------------------------------------------------------------- */

void inf__ref_to_float_iq4_nl(const void *restrict vx, float *restrict y, int64_t n) {
    const inf_block_iq4_nl *x = vx;
    for (int64_t i = 0; i < n / INF_QK4_NL; i++)
        unpack_block(x[i].qs, FP16(x[i].d), y + 32 * i);
}

void inf__ref_from_float_iq4_nl(const float *restrict x, void *restrict vy, int64_t n) {
    inf_block_iq4_nl *y = vy;
    for (int64_t i = 0; i < n / INF_QK4_NL; i++, x += 32) {
        const float d = fit_block(x);
        y[i].d = inf_fp32_to_fp16(d);
        pack_block(x, d, y[i].qs); /* with the unrounded scale, as ggml */
    }
}

void inf__ref_vec_dot_iq4_nl(int64_t n, float *restrict s, const void *restrict vx,
                             const void *restrict vy) {
    const inf_block_iq4_nl *x = vx;
    const inf_block_q8_0 *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / INF_QK4_NL; i++)
        sum += FP16(x[i].d) * FP16(y[i].d) * (float)dot_block(x[i].qs, y[i].qs);
    *s = sum;
}

/* ---- iq4_xs ------------------------------------------------------------------------------- */

static inline int xs_scale(const inf_block_iq4_xs *b, int j) {
    const int lo = (b->scales_l[j / 2] >> (4 * (j % 2))) & 0x0f;
    const int hi = (b->scales_h >> (2 * j)) & 3;
    return (lo | (hi << 4)) - 32;
}

void inf__ref_to_float_iq4_xs(const void *restrict vx, float *restrict y, int64_t n) {
    const inf_block_iq4_xs *x = vx;
    for (int64_t i = 0; i < n / INF_QK_K; i++) {
        const float d = FP16(x[i].d);
        for (int j = 0; j < 8; j++, y += 32)
            unpack_block(x[i].qs + 16 * j, d * xs_scale(&x[i], j), y);
    }
}

void inf__ref_from_float_iq4_xs(const float *restrict x, void *restrict vy, int64_t n) {
    inf_block_iq4_xs *y = vy;
    for (int64_t i = 0; i < n / INF_QK_K; i++, x += INF_QK_K) {
        float scales[8], max_scale = 0.0f, amax = 0.0f;
        for (int j = 0; j < 8; j++) {
            scales[j] = fit_block(x + 32 * j);
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        const float d = -max_scale / 32;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = inf_fp32_to_fp16(d);
        y[i].scales_h = 0;
        memset(y[i].scales_l, 0, sizeof(y[i].scales_l));
        for (int j = 0; j < 8; j++) {
            int l = inf__nearest_int(id * scales[j]);
            l = l < -32 ? -32 : l > 31 ? 31 : l;
            pack_block(x + 32 * j, d * l, y[i].qs + 16 * j);
            l += 32;
            y[i].scales_l[j / 2] |= (uint8_t)((l & 0x0f) << (4 * (j % 2)));
            y[i].scales_h |= (uint16_t)((l >> 4) << (2 * j));
        }
    }
}

void inf__ref_vec_dot_iq4_xs(int64_t n, float *restrict s, const void *restrict vx,
                             const void *restrict vy) {
    const inf_block_iq4_xs *x = vx;
    const inf_block_q8_k *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / INF_QK_K; i++) {
        int sumi = 0;
        for (int j = 0; j < 8; j++)
            sumi += xs_scale(&x[i], j) * dot_block(x[i].qs + 16 * j, y[i].qs + 32 * j);
        sum += FP16(x[i].d) * y[i].d * (float)sumi;
    }
    *s = sum;
}
