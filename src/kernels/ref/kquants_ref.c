/*
 * kquants_ref.c — scalar reference kernels for the 256-wide "K" quants: q2_K, q3_K, q4_K, q5_K,
 * q6_K and the activation type q8_K.
 *
 * Layouts (GGUF):
 *  - q4_K/q5_K: 8 sub-blocks of 32; each has a 6-bit scale and a 6-bit min packed in 12 bytes
 *    (see scale_min()); value = d * sc * q - dmin * m. Nibbles: per 64 elements, 32 bytes of qs
 *    hold elements 0..31 in the low nibbles and 32..63 in the high ones. q5_K adds bit 4 from
 *    qh[l], bit 2k for element l of the first half of 64-chunk k, bit 2k+1 for the second half.
 *  - q6_K: 16 sub-blocks of 16, int8 scales, value = d * sc * (q - 32). Per 128 elements: 64 ql
 *    bytes (elements l and l+64 share ql[l], l+32 and l+96 share ql[l+32]) and 32 qh bytes (2
 *    bits each for l, l+32, l+64, l+96).
 *  - q2_K / q3_K: 16 sub-blocks of 16 (see types.h); q2_K has 4-bit scales and mins, q3_K
 *    signed 6-bit scales and a 3-bit level whose top bit sits in hmask.
 *  - q8_K: float d, 256 int8, bsums = sums of each 16 values (lets q4_K/q5_K apply mins once).
 * Quantizers follow ggml's reference search (weighted least squares over a few candidate
 * scales), dot products sum integers per block and scale by d_x * d_y.
 *
 * Invariants: n is a multiple of 256. Threads: pure functions.
 */
#include "kernels/ref/ref.h"

#include <math.h>
#include <string.h>

#define FP16(x) inf_fp16_to_fp32(x)
#define TO_FP16(x) inf_fp32_to_fp16(x)
#define GROUP_MAX_EPS 1e-15f

static inline int clamp_int(int v, int lo, int hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

/* Sub-block j (0..7) of the 12-byte q4_K/q5_K scales: bytes 0..3 hold scales 0..3 (low 6 bits),
 * bytes 4..7 mins 0..3; bytes 8..11 hold the low 4 bits of scale (low nibble) and min (high
 * nibble) for 4..7, whose top 2 bits sit in the top bits of bytes 0..3 (scale) and 4..7 (min). */
static inline void scale_min(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void pack_scale_min(uint8_t *q, const uint8_t *ls, const uint8_t *lm) {
    memset(q, 0, INF_K_SCALE_SIZE);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            q[j] = ls[j];
            q[j + 4] = lm[j];
        } else {
            q[j + 4] = (uint8_t)((ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4));
            q[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            q[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* ---- quantizer searches ------------------------------------------------------------------- */

/* Asymmetric: x ≈ scale * L + min with L in [0, nmax], min <= 0. Tries nstep+1 candidate scales
 * around nmax / (max - min), refitting scale and min by weighted least squares for each, and
 * keeps the best weighted squared (mad: absolute) error. Returns scale; *neg_min = -min. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                           float *neg_min, float rmin, float rdelta, int nstep, bool mad) {
    float mn = x[0], mx = x[0];
    float sum_w = w[0], sum_x = w[0] * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (mn > 0) mn = 0;
    if (mx == mn) {
        memset(L, 0, (size_t)n);
        *neg_min = -mn;
        return 0.0f;
    }
    float iscale = nmax / (mx - mn);
    float scale = 1.0f / iscale;
    float best_err = 0.0f;
    for (int i = 0; i < n; i++) {
        int l = clamp_int(inf__nearest_int(iscale * (x[i] - mn)), 0, nmax);
        L[i] = (uint8_t)l;
        float diff = scale * l + mn - x[i];
        best_err += w[i] * (mad ? fabsf(diff) : diff * diff);
    }
    uint8_t Laux[32];
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (mx - mn);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = clamp_int(inf__nearest_int(iscale * (x[i] - mn)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float det = sum_w * sum_l2 - sum_l * sum_l;
        if (det > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0.0f;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                err += w[i] * (mad ? fabsf(diff) : diff * diff);
            }
            if (err < best_err) {
                memcpy(L, Laux, (size_t)n);
                best_err = err;
                scale = this_scale;
                mn = this_min;
            }
        }
    }
    *neg_min = -mn;
    return scale;
}

/* Symmetric: x ≈ scale * (L - nmax) with L - nmax in [-nmax, nmax - 1], weights x^2. Tries 19
 * candidate scales around -nmax / (signed absmax) and keeps the best least-squares fit. */
static float fit_scale_sym(int n, int nmax, const float *x, int8_t *L) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clamp_int(inf__nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = clamp_int(inf__nearest_int(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                L[i] = (int8_t)(nmax + clamp_int(inf__nearest_int(iscale * x[i]), -nmax, nmax - 1));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Shared q4_K/q5_K front half: per sub-block scale/min search, 6-bit quantization of those, then
 * the element levels L[256] against the rounded scales. */
static void quantize_k_scales(const float *x, int nmax, float rmin, int nstep, uint8_t *scales12,
                              inf_half *d_out, inf_half *dmin_out, uint8_t *L) {
    float scales[8], mins[8], w[32];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += xs[l] * xs[l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            w[l] = av_x + fabsf(xs[l]);
        scales[j] = fit_scale_min(32, nmax, xs, w, L + 32 * j, &mins[j], rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)INF_MIN(63, inf__nearest_int(inv_scale * scales[j]));
        lm[j] = (uint8_t)INF_MIN(63, inf__nearest_int(inv_min * mins[j]));
    }
    pack_scale_min(scales12, ls, lm);
    *d_out = TO_FP16(max_scale / 63.0f);
    *dmin_out = TO_FP16(max_min / 63.0f);
    const float d = FP16(*d_out), dmin = FP16(*dmin_out);
    for (int j = 0; j < 8; j++) {
        int sc, m;
        scale_min(j, scales12, &sc, &m);
        const float ds = d * sc;
        if (ds == 0.0f) continue;
        const float dm = dmin * m;
        for (int ii = 0; ii < 32; ii++) {
            int l = inf__nearest_int((x[32 * j + ii] + dm) / ds);
            L[32 * j + ii] = (uint8_t)clamp_int(l, 0, nmax);
        }
    }
}

/* ---- q4_K --------------------------------------------------------------------------------- */

void inf__ref_to_float_q4_k(const void *restrict vx, float *restrict y, int64_t n) {
    const inf_block_q4_k *x = vx;
    const int64_t nb = n / INF_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16(x[i].d), dmin = FP16(x[i].dmin);
        const uint8_t *q = x[i].qs;
        for (int k = 0; k < 4; k++) { /* 64 elements per step, sub-blocks 2k and 2k+1 */
            int sc, m;
            scale_min(2 * k, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            scale_min(2 * k + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (q[l] & 0x0f) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (q[l] >> 4) - m2;
            q += 32;
        }
    }
}

void inf__ref_from_float_q4_k(const float *restrict x, void *restrict vy, int64_t n) {
    inf_block_q4_k *y = vy;
    const int64_t nb = n / INF_QK_K;
    uint8_t L[INF_QK_K];
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * INF_QK_K;
        quantize_k_scales(xb, 15, -1.0f, 20, y[i].scales, &y[i].d, &y[i].dmin, L);
        uint8_t *q = y[i].qs;
        for (int j = 0; j < INF_QK_K; j += 64) {
            for (int l = 0; l < 32; l++)
                q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
            q += 32;
        }
    }
}

/* Sum of q8_K values over sub-block j (32 wide) via bsums. */
static inline int q8k_sub32_sum(const inf_block_q8_k *y, int j) {
    return y->bsums[2 * j] + y->bsums[2 * j + 1];
}

void inf__ref_vec_dot_q4_k(int64_t n, float *restrict s, const void *restrict vx,
                           const void *restrict vy) {
    const inf_block_q4_k *x = vx;
    const inf_block_q8_k *y = vy;
    const int64_t nb = n / INF_QK_K;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *q = x[i].qs;
        const int8_t *p = y[i].qs;
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m;
            scale_min(j, x[i].scales, &sc, &m);
            const int shift = (j & 1) * 4;
            const uint8_t *qq = q + 32 * (j / 2);
            int dot = 0;
            for (int l = 0; l < 32; l++)
                dot += ((qq[l] >> shift) & 0x0f) * p[32 * j + l];
            sumi += sc * dot;
            summ += m * q8k_sub32_sum(&y[i], j);
        }
        sum += FP16(x[i].d) * y[i].d * (float)sumi - FP16(x[i].dmin) * y[i].d * (float)summ;
    }
    *s = sum;
}

/* ---- q5_K --------------------------------------------------------------------------------- */

void inf__ref_to_float_q5_k(const void *restrict vx, float *restrict y, int64_t n) {
    const inf_block_q5_k *x = vx;
    const int64_t nb = n / INF_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16(x[i].d), dmin = FP16(x[i].dmin);
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        for (int k = 0; k < 4; k++) {
            int sc, m;
            scale_min(2 * k, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            scale_min(2 * k + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            const uint8_t u1 = (uint8_t)(1u << (2 * k)), u2 = (uint8_t)(2u << (2 * k));
            for (int l = 0; l < 32; l++)
                *y++ = d1 * ((ql[l] & 0x0f) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            ql += 32;
        }
    }
}

void inf__ref_from_float_q5_k(const float *restrict x, void *restrict vy, int64_t n) {
    inf_block_q5_k *y = vy;
    const int64_t nb = n / INF_QK_K;
    uint8_t L[INF_QK_K];
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * INF_QK_K;
        quantize_k_scales(xb, 31, -0.5f, 15, y[i].scales, &y[i].d, &y[i].dmin, L);
        uint8_t *ql = y[i].qs, *qh = y[i].qh;
        memset(qh, 0, INF_QK_K / 8);
        for (int k = 0; k < 4; k++) {
            const int j = 64 * k;
            for (int l = 0; l < 32; l++) {
                int l1 = L[j + l], l2 = L[j + l + 32];
                if (l1 > 15) {
                    l1 -= 16;
                    qh[l] |= (uint8_t)(1u << (2 * k));
                }
                if (l2 > 15) {
                    l2 -= 16;
                    qh[l] |= (uint8_t)(2u << (2 * k));
                }
                ql[l] = (uint8_t)(l1 | (l2 << 4));
            }
            ql += 32;
        }
    }
}

void inf__ref_vec_dot_q5_k(int64_t n, float *restrict s, const void *restrict vx,
                           const void *restrict vy) {
    const inf_block_q5_k *x = vx;
    const inf_block_q8_k *y = vy;
    const int64_t nb = n / INF_QK_K;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const int8_t *p = y[i].qs;
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m;
            scale_min(j, x[i].scales, &sc, &m);
            const int shift = (j & 1) * 4;
            const uint8_t *ql = x[i].qs + 32 * (j / 2);
            const uint8_t hb = (uint8_t)(1u << j); /* bit 2k (+1 for the high half) */
            int dot = 0;
            for (int l = 0; l < 32; l++) {
                int q = ((ql[l] >> shift) & 0x0f) | (x[i].qh[l] & hb ? 16 : 0);
                dot += q * p[32 * j + l];
            }
            sumi += sc * dot;
            summ += m * q8k_sub32_sum(&y[i], j);
        }
        sum += FP16(x[i].d) * y[i].d * (float)sumi - FP16(x[i].dmin) * y[i].d * (float)summ;
    }
    *s = sum;
}

/* ---- q6_K --------------------------------------------------------------------------------- */

/* The 6-bit value (0..63) of element e (0..255) of a q6_K block. */
static inline int q6k_level(const inf_block_q6_k *b, int e) {
    const int half = e / 128, r = e % 128, quad = r / 32, l = r % 32;
    const uint8_t lo = b->ql[64 * half + l + 32 * (quad & 1)];
    const int low4 = (quad < 2) ? (lo & 0x0f) : (lo >> 4);
    const int hi2 = (b->qh[32 * half + l] >> (2 * quad)) & 3;
    return low4 | (hi2 << 4);
}

void inf__ref_to_float_q6_k(const void *restrict vx, float *restrict y, int64_t n) {
    const inf_block_q6_k *x = vx;
    const int64_t nb = n / INF_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16(x[i].d);
        for (int e = 0; e < INF_QK_K; e++) {
            y[i * INF_QK_K + e] = d * x[i].scales[e / 16] * (q6k_level(&x[i], e) - 32);
        }
    }
}

void inf__ref_from_float_q6_k(const float *restrict x, void *restrict vy, int64_t n) {
    inf_block_q6_k *y = vy;
    const int64_t nb = n / INF_QK_K;
    int8_t L[INF_QK_K];
    float scales[INF_QK_K / 16];
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * INF_QK_K;
        float max_scale = 0.0f, max_abs_scale = 0.0f;
        for (int ib = 0; ib < INF_QK_K / 16; ib++) {
            scales[ib] = fit_scale_sym(16, 32, xb + 16 * ib, L + 16 * ib);
            if (fabsf(scales[ib]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof(y[i]));
            y[i].d = TO_FP16(0.0f);
            continue;
        }
        const float iscale = -128.0f / max_scale;
        y[i].d = TO_FP16(1.0f / iscale);
        for (int ib = 0; ib < INF_QK_K / 16; ib++) {
            y[i].scales[ib] = (int8_t)INF_MIN(127, inf__nearest_int(iscale * scales[ib]));
        }
        const float d0 = FP16(y[i].d);
        for (int j = 0; j < INF_QK_K / 16; j++) {
            const float d = d0 * y[i].scales[j];
            if (d == 0.0f) continue;
            for (int ii = 0; ii < 16; ii++) {
                int l = clamp_int(inf__nearest_int(xb[16 * j + ii] / d), -32, 31);
                L[16 * j + ii] = (int8_t)(l + 32);
            }
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < INF_QK_K; j += 128) {
            for (int l = 0; l < 32; l++) {
                const int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
                ql[l] = (uint8_t)((q1 & 0x0f) | ((q3 & 0x0f) << 4));
                ql[l + 32] = (uint8_t)((q2 & 0x0f) | ((q4 & 0x0f) << 4));
                qh[l] =
                    (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
            }
            ql += 64;
            qh += 32;
        }
    }
}

void inf__ref_vec_dot_q6_k(int64_t n, float *restrict s, const void *restrict vx,
                           const void *restrict vy) {
    const inf_block_q6_k *x = vx;
    const inf_block_q8_k *y = vy;
    const int64_t nb = n / INF_QK_K;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int sumi = 0;
        for (int g = 0; g < INF_QK_K / 16; g++) {
            int dot = 0;
            for (int l = 0; l < 16; l++) {
                const int e = 16 * g + l;
                dot += (q6k_level(&x[i], e) - 32) * y[i].qs[e];
            }
            sumi += x[i].scales[g] * dot;
        }
        sum += FP16(x[i].d) * y[i].d * (float)sumi;
    }
    *s = sum;
}

/* ---- q2_K --------------------------------------------------------------------------------- */

/* Bits 2k..2k+1 of qs[l] hold element 32k + l of each 128-element half (k < 4). */
static inline int q2k_level(const uint8_t *qs, int e) {
    const int half = e / 128, r = e % 128;
    return (qs[32 * half + r % 32] >> (2 * (r / 32))) & 3;
}

static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < INF_QK_K; j += 128) {
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                      (L[j + l + 96] << 6));
    }
}

void inf__ref_to_float_q2_k(const void *restrict vx, float *restrict y, int64_t n) {
    const inf_block_q2_k *x = vx;
    const int64_t nb = n / INF_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16(x[i].d), dmin = FP16(x[i].dmin);
        for (int e = 0; e < INF_QK_K; e++) {
            const uint8_t sc = x[i].scales[e / 16];
            *y++ = d * (sc & 0x0f) * q2k_level(x[i].qs, e) - dmin * (sc >> 4);
        }
    }
}

void inf__ref_from_float_q2_k(const float *restrict x, void *restrict vy, int64_t n) {
    inf_block_q2_k *y = vy;
    const int64_t nb = n / INF_QK_K;
    uint8_t L[INF_QK_K];
    float scales[16], mins[16], w[16];
    for (int64_t i = 0; i < nb; i++, x += INF_QK_K) {
        float max_scale = 0.0f, max_min = 0.0f;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++)
                w[l] = fabsf(x[16 * j + l]);
            scales[j] = fit_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15,
                                      true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        /* Scales and mins share a byte: 4 bits each against the block maxima. */
        memset(y[i].scales, 0, sizeof(y[i].scales));
        y[i].d = y[i].dmin = TO_FP16(0.0f);
        if (max_scale > 0) {
            const float is = 15.0f / max_scale;
            for (int j = 0; j < 16; j++)
                y[i].scales[j] = (uint8_t)inf__nearest_int(is * scales[j]);
            y[i].d = TO_FP16(max_scale / 15.0f);
        }
        if (max_min > 0) {
            const float im = 15.0f / max_min;
            for (int j = 0; j < 16; j++)
                y[i].scales[j] |= (uint8_t)(inf__nearest_int(im * mins[j]) << 4);
            y[i].dmin = TO_FP16(max_min / 15.0f);
        }
        for (int j = 0; j < 16; j++) {
            const float d = FP16(y[i].d) * (y[i].scales[j] & 0x0f);
            if (d == 0.0f) continue;
            const float dm = FP16(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int l = 0; l < 16; l++) {
                const int q = inf__nearest_int((x[16 * j + l] + dm) / d);
                L[16 * j + l] = (uint8_t)clamp_int(q, 0, 3);
            }
        }
        pack_2bit(L, y[i].qs);
    }
}

void inf__ref_vec_dot_q2_k(int64_t n, float *restrict s, const void *restrict vx,
                           const void *restrict vy) {
    const inf_block_q2_k *x = vx;
    const inf_block_q8_k *y = vy;
    const int64_t nb = n / INF_QK_K;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int sumi = 0, summ = 0;
        for (int j = 0; j < 16; j++) {
            int dot = 0;
            for (int l = 0; l < 16; l++)
                dot += q2k_level(x[i].qs, 16 * j + l) * y[i].qs[16 * j + l];
            sumi += (x[i].scales[j] & 0x0f) * dot;
            summ += (x[i].scales[j] >> 4) * y[i].bsums[j];
        }
        sum += FP16(x[i].d) * y[i].d * (float)sumi - FP16(x[i].dmin) * y[i].d * (float)summ;
    }
    *s = sum;
}

/* ---- q3_K --------------------------------------------------------------------------------- */

/* Signed 6-bit scale j (0..15): low nibble from byte j (j < 8) or the high nibble of byte j - 8,
 * top 2 bits from byte 8 + j % 4 at bit 2 * (j / 4); biased by 32. */
static inline int q3k_scale(const uint8_t *sc, int j) {
    const int lo = j < 8 ? sc[j] & 0x0f : sc[j - 8] >> 4;
    const int hi = (sc[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

/* Level 0..7 of element e (the value is level - 4). */
static inline int q3k_level(const inf_block_q3_k *b, int e) {
    return q2k_level(b->qs, e) | (((b->hmask[e % 32] >> (e / 32)) & 1) << 2);
}

/* Symmetric fit x ≈ scale * (L - nmax), L - nmax in [-nmax, nmax - 1], weights x^2: starts from
 * -nmax / (signed absmax) and moves single levels while that raises the weighted projection
 * (up to 5 sweeps). Returns the least-squares scale for the final levels. */
static float fit_scale_sym_iter(int n, int nmax, const float *x, int8_t *L) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (int8_t)clamp_int(inf__nearest_int(iscale * x[i]), -nmax, nmax - 1);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * L[i];
        suml2 += w * L[i] * L[i];
    }
    for (int itry = 0; itry < 5; itry++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx <= 0) continue;
            float sl2 = suml2 - w * L[i] * L[i];
            const int nl = clamp_int(inf__nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (nl == L[i]) continue;
            slx += w * x[i] * nl;
            sl2 += w * nl * nl;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)nl;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

void inf__ref_to_float_q3_k(const void *restrict vx, float *restrict y, int64_t n) {
    const inf_block_q3_k *x = vx;
    const int64_t nb = n / INF_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = FP16(x[i].d);
        for (int e = 0; e < INF_QK_K; e++)
            *y++ = d * q3k_scale(x[i].scales, e / 16) * (q3k_level(&x[i], e) - 4);
    }
}

void inf__ref_from_float_q3_k(const float *restrict x, void *restrict vy, int64_t n) {
    inf_block_q3_k *y = vy;
    const int64_t nb = n / INF_QK_K;
    int8_t L[INF_QK_K];
    float scales[16];
    for (int64_t i = 0; i < nb; i++, x += INF_QK_K) {
        float max_scale = 0.0f, amax = 0.0f;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_scale_sym_iter(16, 4, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        memset(y[i].scales, 0, sizeof(y[i].scales));
        y[i].d = TO_FP16(0.0f);
        if (max_scale != 0.0f) {
            const float iscale = -32.0f / max_scale;
            for (int j = 0; j < 16; j++) {
                const int l = clamp_int(inf__nearest_int(iscale * scales[j]), -32, 31) + 32;
                if (j < 8) y[i].scales[j] = (uint8_t)(l & 0x0f);
                else y[i].scales[j - 8] |= (uint8_t)((l & 0x0f) << 4);
                y[i].scales[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            y[i].d = TO_FP16(1.0f / iscale);
        }
        for (int j = 0; j < 16; j++) {
            const float d = FP16(y[i].d) * q3k_scale(y[i].scales, j);
            if (d == 0.0f) continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(clamp_int(inf__nearest_int(x[16 * j + l] / d), -4, 3) + 4);
        }
        uint8_t low[INF_QK_K];
        memset(y[i].hmask, 0, sizeof(y[i].hmask));
        for (int e = 0; e < INF_QK_K; e++) {
            if (L[e] > 3) y[i].hmask[e % 32] |= (uint8_t)(1u << (e / 32));
            low[e] = (uint8_t)(L[e] & 3);
        }
        pack_2bit(low, y[i].qs);
    }
}

void inf__ref_vec_dot_q3_k(int64_t n, float *restrict s, const void *restrict vx,
                           const void *restrict vy) {
    const inf_block_q3_k *x = vx;
    const inf_block_q8_k *y = vy;
    const int64_t nb = n / INF_QK_K;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            int dot = 0;
            for (int l = 0; l < 16; l++)
                dot += (q3k_level(&x[i], 16 * j + l) - 4) * y[i].qs[16 * j + l];
            sumi += q3k_scale(x[i].scales, j) * dot;
        }
        sum += FP16(x[i].d) * y[i].d * (float)sumi;
    }
    *s = sum;
}

/* ---- q8_K --------------------------------------------------------------------------------- */

void inf__ref_to_float_q8_k(const void *restrict vx, float *restrict y, int64_t n) {
    const inf_block_q8_k *x = vx;
    const int64_t nb = n / INF_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        for (int j = 0; j < INF_QK_K; j++)
            y[i * INF_QK_K + j] = x[i].d * x[i].qs[j];
    }
}

void inf__ref_from_float_q8_k(const float *restrict x, void *restrict vy, int64_t n) {
    inf_block_q8_k *y = vy;
    const int64_t nb = n / INF_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * INF_QK_K;
        float max = 0.0f, amax = 0.0f;
        for (int j = 0; j < INF_QK_K; j++) {
            float ax = fabsf(xb[j]);
            if (ax > amax) {
                amax = ax;
                max = xb[j];
            }
        }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        /* -127 (not -128) keeps every level in [-127, 127]. */
        const float iscale = -127.0f / max;
        for (int j = 0; j < INF_QK_K; j++) {
            y[i].qs[j] = (int8_t)INF_MIN(127, inf__nearest_int(iscale * xb[j]));
        }
        for (int g = 0; g < INF_QK_K / 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += y[i].qs[16 * g + l];
            y[i].bsums[g] = (int16_t)sum;
        }
        y[i].d = 1.0f / iscale;
    }
}

void inf__ref_vec_dot_q8_k(int64_t n, float *restrict s, const void *restrict vx,
                           const void *restrict vy) {
    const inf_block_q8_k *x = vx;
    const inf_block_q8_k *y = vy;
    const int64_t nb = n / INF_QK_K;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int sumi = 0;
        for (int j = 0; j < INF_QK_K; j++)
            sumi += x[i].qs[j] * y[i].qs[j];
        sum += x[i].d * y[i].d * (float)sumi;
    }
    *s = sum;
}
