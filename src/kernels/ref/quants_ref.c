/*
 * quants_ref.c — scalar reference kernels for the float types (f32, f16, bf16) and the 32-wide
 * block quants (q4_0, q4_1, q5_0, q5_1, q8_0, q8_1).
 *
 * These are the oracle: plain loops, no tricks. The quantizers use ggml's reference rounding
 * (q8: d = amax/127, q = roundf(x/d); q4_0/q5_0: d = the value of largest magnitude / -8 (-16);
 * q4_1/q5_1: d = (max - min)/15 (31), m = min). Dot products sum integer products per block and
 * scale once by d_x * d_y, as ggml does. Float dot products accumulate in double like ggml's
 * scalar path.
 *
 * Invariants: n is a multiple of the block size. Threads: pure functions.
 */
#include "kernels/ref/ref.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define FP16(x) inf_fp16_to_fp32(x)
#define TO_FP16(x) inf_fp32_to_fp16(x)

/* ---- f32 ---------------------------------------------------------------------------------- */

void inf__ref_to_float_f32(const void *restrict x, float *restrict y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

void inf__ref_from_float_f32(const float *restrict x, void *restrict y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

void inf__ref_vec_dot_f32(int64_t n, float *restrict s, const void *restrict vx,
                          const void *restrict vy) {
    const float *x = vx, *y = vy;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(x[i] * y[i]);
    *s = (float)sum;
}

/* ---- f16 ---------------------------------------------------------------------------------- */

void inf__ref_to_float_f16(const void *restrict vx, float *restrict y, int64_t n) {
    const inf_half *x = vx;
    for (int64_t i = 0; i < n; i++)
        y[i] = FP16(x[i]);
}

void inf__ref_from_float_f16(const float *restrict x, void *restrict vy, int64_t n) {
    inf_half *y = vy;
    for (int64_t i = 0; i < n; i++)
        y[i] = TO_FP16(x[i]);
}

void inf__ref_vec_dot_f16(int64_t n, float *restrict s, const void *restrict vx,
                          const void *restrict vy) {
    const inf_half *x = vx, *y = vy;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(FP16(x[i]) * FP16(y[i]));
    *s = (float)sum;
}

/* ---- bf16 --------------------------------------------------------------------------------- */

void inf__ref_to_float_bf16(const void *restrict vx, float *restrict y, int64_t n) {
    const uint16_t *x = vx;
    for (int64_t i = 0; i < n; i++)
        y[i] = inf_bf16_to_fp32(x[i]);
}

void inf__ref_from_float_bf16(const float *restrict x, void *restrict vy, int64_t n) {
    uint16_t *y = vy;
    for (int64_t i = 0; i < n; i++)
        y[i] = inf_fp32_to_bf16(x[i]);
}

void inf__ref_vec_dot_bf16(int64_t n, float *restrict s, const void *restrict vx,
                           const void *restrict vy) {
    const uint16_t *x = vx, *y = vy;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(inf_bf16_to_fp32(x[i]) * inf_bf16_to_fp32(y[i]));
    *s = (float)sum;
}

/* ---- helpers ------------------------------------------------------------------------------ */

/* The element of largest magnitude (first one on ties), as ggml picks it for q4_0/q5_0. */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void min_max(const float *x, int n, float *mn, float *mx) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

/* ---- q4_0: 32 x 4-bit, value = d * (q - 8); low nibbles hold elements 0..15 ---------------- */

void inf__ref_to_float_q4_0(const void *restrict vx, float *restrict y, int64_t n) {
    const inf_block_q4_0 *x = vx;
    const int64_t nb = n / INF_QK4_0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16(x[i].d);
        for (int j = 0; j < INF_QK4_0 / 2; j++) {
            y[i * INF_QK4_0 + j] = (float)((x[i].qs[j] & 0x0f) - 8) * d;
            y[i * INF_QK4_0 + j + INF_QK4_0 / 2] = (float)((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void inf__ref_from_float_q4_0(const float *restrict x, void *restrict vy, int64_t n) {
    inf_block_q4_0 *y = vy;
    const int64_t nb = n / INF_QK4_0;
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * INF_QK4_0;
        const float d = signed_absmax(xb, INF_QK4_0) / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = TO_FP16(d);
        for (int j = 0; j < INF_QK4_0 / 2; j++) {
            /* Truncation after +8.5 is rounding for values in [-8, 8]; 8 itself clamps to 15. */
            int q0 = INF_MIN(15, (int8_t)(xb[j] * id + 8.5f));
            int q1 = INF_MIN(15, (int8_t)(xb[j + INF_QK4_0 / 2] * id + 8.5f));
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void inf__ref_vec_dot_q4_0(int64_t n, float *restrict s, const void *restrict vx,
                           const void *restrict vy) {
    const inf_block_q4_0 *x = vx;
    const inf_block_q8_0 *y = vy;
    const int64_t nb = n / INF_QK8_0;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int sumi = 0;
        for (int j = 0; j < INF_QK4_0 / 2; j++) {
            sumi += ((x[i].qs[j] & 0x0f) - 8) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + INF_QK4_0 / 2];
        }
        sum += (float)sumi * (FP16(x[i].d) * FP16(y[i].d));
    }
    *s = sum;
}

/* ---- q4_1: 32 x 4-bit, value = d * q + m -------------------------------------------------- */

void inf__ref_to_float_q4_1(const void *restrict vx, float *restrict y, int64_t n) {
    const inf_block_q4_1 *x = vx;
    const int64_t nb = n / INF_QK4_1;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16(x[i].d), m = FP16(x[i].m);
        for (int j = 0; j < INF_QK4_1 / 2; j++) {
            y[i * INF_QK4_1 + j] = (float)(x[i].qs[j] & 0x0f) * d + m;
            y[i * INF_QK4_1 + j + INF_QK4_1 / 2] = (float)(x[i].qs[j] >> 4) * d + m;
        }
    }
}

void inf__ref_from_float_q4_1(const float *restrict x, void *restrict vy, int64_t n) {
    inf_block_q4_1 *y = vy;
    const int64_t nb = n / INF_QK4_1;
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * INF_QK4_1;
        float mn, mx;
        min_max(xb, INF_QK4_1, &mn, &mx);
        const float d = (mx - mn) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = TO_FP16(d);
        y[i].m = TO_FP16(mn);
        for (int j = 0; j < INF_QK4_1 / 2; j++) {
            int q0 = INF_MIN(15, (int8_t)((xb[j] - mn) * id + 0.5f));
            int q1 = INF_MIN(15, (int8_t)((xb[j + INF_QK4_1 / 2] - mn) * id + 0.5f));
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void inf__ref_vec_dot_q4_1(int64_t n, float *restrict s, const void *restrict vx,
                           const void *restrict vy) {
    const inf_block_q4_1 *x = vx;
    const inf_block_q8_1 *y = vy;
    const int64_t nb = n / INF_QK8_1;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int sumi = 0;
        for (int j = 0; j < INF_QK4_1 / 2; j++) {
            sumi += (x[i].qs[j] & 0x0f) * y[i].qs[j];
            sumi += (x[i].qs[j] >> 4) * y[i].qs[j + INF_QK4_1 / 2];
        }
        /* sum_j (d_x q_j + m_x) d_y p_j = d_x d_y sum q p + m_x * (d_y sum p) */
        sum += (FP16(x[i].d) * FP16(y[i].d)) * (float)sumi + FP16(x[i].m) * FP16(y[i].s);
    }
    *s = sum;
}

/* ---- q5_0: 32 x 5-bit, value = d * (q - 16); bit 4 of element j is bit j of qh ------------- */

void inf__ref_to_float_q5_0(const void *restrict vx, float *restrict y, int64_t n) {
    const inf_block_q5_0 *x = vx;
    const int64_t nb = n / INF_QK5_0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16(x[i].d);
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof(qh));
        for (int j = 0; j < INF_QK5_0 / 2; j++) {
            int h0 = (int)((qh >> j) & 1) << 4;
            int h1 = (int)((qh >> (j + INF_QK5_0 / 2)) & 1) << 4;
            y[i * INF_QK5_0 + j] = (float)(((x[i].qs[j] & 0x0f) | h0) - 16) * d;
            y[i * INF_QK5_0 + j + INF_QK5_0 / 2] = (float)(((x[i].qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

void inf__ref_from_float_q5_0(const float *restrict x, void *restrict vy, int64_t n) {
    inf_block_q5_0 *y = vy;
    const int64_t nb = n / INF_QK5_0;
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * INF_QK5_0;
        const float d = signed_absmax(xb, INF_QK5_0) / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = TO_FP16(d);
        uint32_t qh = 0;
        for (int j = 0; j < INF_QK5_0 / 2; j++) {
            int q0 = INF_MIN(31, (int8_t)(xb[j] * id + 16.5f));
            int q1 = INF_MIN(31, (int8_t)(xb[j + INF_QK5_0 / 2] * id + 16.5f));
            y[i].qs[j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            qh |= (uint32_t)((q0 >> 4) & 1) << j;
            qh |= (uint32_t)((q1 >> 4) & 1) << (j + INF_QK5_0 / 2);
        }
        memcpy(y[i].qh, &qh, sizeof(qh));
    }
}

void inf__ref_vec_dot_q5_0(int64_t n, float *restrict s, const void *restrict vx,
                           const void *restrict vy) {
    const inf_block_q5_0 *x = vx;
    const inf_block_q8_0 *y = vy;
    const int64_t nb = n / INF_QK8_0;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof(qh));
        int sumi = 0;
        for (int j = 0; j < INF_QK5_0 / 2; j++) {
            int h0 = (int)((qh >> j) & 1) << 4;
            int h1 = (int)((qh >> (j + INF_QK5_0 / 2)) & 1) << 4;
            sumi += (((x[i].qs[j] & 0x0f) | h0) - 16) * y[i].qs[j];
            sumi += (((x[i].qs[j] >> 4) | h1) - 16) * y[i].qs[j + INF_QK5_0 / 2];
        }
        sum += (float)sumi * (FP16(x[i].d) * FP16(y[i].d));
    }
    *s = sum;
}

/* ---- q5_1: 32 x 5-bit, value = d * q + m -------------------------------------------------- */

void inf__ref_to_float_q5_1(const void *restrict vx, float *restrict y, int64_t n) {
    const inf_block_q5_1 *x = vx;
    const int64_t nb = n / INF_QK5_1;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16(x[i].d), m = FP16(x[i].m);
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof(qh));
        for (int j = 0; j < INF_QK5_1 / 2; j++) {
            int h0 = (int)((qh >> j) & 1) << 4;
            int h1 = (int)((qh >> (j + INF_QK5_1 / 2)) & 1) << 4;
            y[i * INF_QK5_1 + j] = (float)((x[i].qs[j] & 0x0f) | h0) * d + m;
            y[i * INF_QK5_1 + j + INF_QK5_1 / 2] = (float)((x[i].qs[j] >> 4) | h1) * d + m;
        }
    }
}

void inf__ref_from_float_q5_1(const float *restrict x, void *restrict vy, int64_t n) {
    inf_block_q5_1 *y = vy;
    const int64_t nb = n / INF_QK5_1;
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * INF_QK5_1;
        float mn, mx;
        min_max(xb, INF_QK5_1, &mn, &mx);
        const float d = (mx - mn) / 31.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = TO_FP16(d);
        y[i].m = TO_FP16(mn);
        uint32_t qh = 0;
        for (int j = 0; j < INF_QK5_1 / 2; j++) {
            int q0 = INF_MIN(31, (uint8_t)((xb[j] - mn) * id + 0.5f));
            int q1 = INF_MIN(31, (uint8_t)((xb[j + INF_QK5_1 / 2] - mn) * id + 0.5f));
            y[i].qs[j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            qh |= (uint32_t)((q0 >> 4) & 1) << j;
            qh |= (uint32_t)((q1 >> 4) & 1) << (j + INF_QK5_1 / 2);
        }
        memcpy(y[i].qh, &qh, sizeof(qh));
    }
}

void inf__ref_vec_dot_q5_1(int64_t n, float *restrict s, const void *restrict vx,
                           const void *restrict vy) {
    const inf_block_q5_1 *x = vx;
    const inf_block_q8_1 *y = vy;
    const int64_t nb = n / INF_QK8_1;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof(qh));
        int sumi = 0;
        for (int j = 0; j < INF_QK5_1 / 2; j++) {
            int h0 = (int)((qh >> j) & 1) << 4;
            int h1 = (int)((qh >> (j + INF_QK5_1 / 2)) & 1) << 4;
            sumi += ((x[i].qs[j] & 0x0f) | h0) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) | h1) * y[i].qs[j + INF_QK5_1 / 2];
        }
        sum += (FP16(x[i].d) * FP16(y[i].d)) * (float)sumi + FP16(x[i].m) * FP16(y[i].s);
    }
    *s = sum;
}

/* ---- q8_0: 32 x int8, value = d * q ------------------------------------------------------- */

void inf__ref_to_float_q8_0(const void *restrict vx, float *restrict y, int64_t n) {
    const inf_block_q8_0 *x = vx;
    const int64_t nb = n / INF_QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16(x[i].d);
        for (int j = 0; j < INF_QK8_0; j++)
            y[i * INF_QK8_0 + j] = (float)x[i].qs[j] * d;
    }
}

void inf__ref_from_float_q8_0(const float *restrict x, void *restrict vy, int64_t n) {
    inf_block_q8_0 *y = vy;
    const int64_t nb = n / INF_QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * INF_QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < INF_QK8_0; j++)
            amax = INF_MAX(amax, fabsf(xb[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = TO_FP16(d);
        for (int j = 0; j < INF_QK8_0; j++)
            y[i].qs[j] = (int8_t)roundf(xb[j] * id);
    }
}

void inf__ref_vec_dot_q8_0(int64_t n, float *restrict s, const void *restrict vx,
                           const void *restrict vy) {
    const inf_block_q8_0 *x = vx;
    const inf_block_q8_0 *y = vy;
    const int64_t nb = n / INF_QK8_0;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int sumi = 0;
        for (int j = 0; j < INF_QK8_0; j++)
            sumi += x[i].qs[j] * y[i].qs[j];
        sum += (float)sumi * (FP16(x[i].d) * FP16(y[i].d));
    }
    *s = sum;
}

/* ---- q8_1: q8_0 plus s = d * sum(q) (kept for the q4_1/q5_1 min term) --------------------- */

void inf__ref_to_float_q8_1(const void *restrict vx, float *restrict y, int64_t n) {
    const inf_block_q8_1 *x = vx;
    const int64_t nb = n / INF_QK8_1;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16(x[i].d);
        for (int j = 0; j < INF_QK8_1; j++)
            y[i * INF_QK8_1 + j] = (float)x[i].qs[j] * d;
    }
}

void inf__ref_from_float_q8_1(const float *restrict x, void *restrict vy, int64_t n) {
    inf_block_q8_1 *y = vy;
    const int64_t nb = n / INF_QK8_1;
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * INF_QK8_1;
        float amax = 0.0f;
        for (int j = 0; j < INF_QK8_1; j++)
            amax = INF_MAX(amax, fabsf(xb[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = TO_FP16(d);
        int sum = 0;
        for (int j = 0; j < INF_QK8_1; j++) {
            y[i].qs[j] = (int8_t)roundf(xb[j] * id);
            sum += y[i].qs[j];
        }
        y[i].s = TO_FP16((float)sum * d);
    }
}

void inf__ref_vec_dot_q8_1(int64_t n, float *restrict s, const void *restrict vx,
                           const void *restrict vy) {
    const inf_block_q8_1 *x = vx;
    const inf_block_q8_1 *y = vy;
    const int64_t nb = n / INF_QK8_1;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int sumi = 0;
        for (int j = 0; j < INF_QK8_1; j++)
            sumi += x[i].qs[j] * y[i].qs[j];
        sum += (float)sumi * (FP16(x[i].d) * FP16(y[i].d));
    }
    *s = sum;
}
