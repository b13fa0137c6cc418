/*
 * dot256_tmpl.h — 256-bit vec_dot kernels and activation quantizers, written once and compiled
 * twice: by quants_avx2.c (AVX2 maddubs/madd integer dots) and by quants_avx512.c (AVX-512VL
 * VNNI vpdpbusd). Not a public header: include it only from those two files, after defining
 *   DOT_U8S8(u, s)          -> __m256i, 8 int32 lanes, lane i = sum of the 4 products of bytes
 *                              4i..4i+3 (u unsigned, s signed). Callers keep every pair of
 *                              products within int16 range, so the AVX2 form never saturates.
 *   DOT_U8S8_SC(u, s, sc)   -> like DOT_U8S8 with lanes multiplied by the scale vector sc made by
 *   SC1(a) / SC2(a, b)         (one scale / scale a for the low 16 bytes and b for the high 16).
 *   TMPL_FN(name)           -> the ISA-suffixed function name.
 * Integer block sums are exact, so these agree with ref/ up to float summation order.
 * Threads: pure functions.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/ref/ref.h" /* inf__iq4nl_values */
#include "kernels/types.h"

static inline float t_fp16(inf_half h) { return _cvtsh_ss(h); }
static inline inf_half t_to_fp16(float f) {
    return (inf_half)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

/* Sum of 8 floats in a fixed order. */
static inline float t_hsum_ps(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

static inline int t_hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* 16 bytes of nibbles -> 32 bytes: low nibbles (elements 0..15) then high nibbles (16..31). */
static inline __m256i t_unpack_nibbles(const uint8_t *p) {
    __m128i q = _mm_loadu_si128((const __m128i *)p);
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

/* Bit j of the 32-bit word -> byte j = 0xff when set. */
static inline __m256i t_bits_to_bytes(uint32_t bits) {
    const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000ll, 0x0101010101010101ll,
                                            0x0202020202020202ll, 0x0303030303030303ll);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf);
    const __m256i bitm = _mm256_set1_epi64x(0x8040201008040201ll);
    v = _mm256_and_si256(v, bitm);
    return _mm256_cmpeq_epi8(v, bitm);
}

/* C's roundf (half away from zero) on 8 floats, exact for |x| < 2^23. */
static inline __m256 t_roundf(__m256 v) {
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    __m256 ge = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    __m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(v, sign));
    return _mm256_add_ps(t, _mm256_and_ps(ge, one));
}

/* 32 int32 in 4 vectors -> 32 int8 in element order (values already within int8). */
static inline __m256i t_pack_i32_to_i8(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i ab = _mm256_packs_epi32(a, b); /* a0-3 b0-3 | a4-7 b4-7 */
    __m256i cd = _mm256_packs_epi32(c, d);
    __m256i v = _mm256_packs_epi16(ab, cd); /* a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7 */
    return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline float t_absmax32(const float *x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_andnot_ps(sign, _mm256_loadu_ps(x));
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8)));
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 16)));
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 24)));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* One 32-float block to 32 int8 q = roundf(x * id) (as the reference does). */
static inline __m256i t_quant32(const float *x, float id) {
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q0 = _mm256_cvttps_epi32(t_roundf(_mm256_mul_ps(_mm256_loadu_ps(x), vid)));
    __m256i q1 = _mm256_cvttps_epi32(t_roundf(_mm256_mul_ps(_mm256_loadu_ps(x + 8), vid)));
    __m256i q2 = _mm256_cvttps_epi32(t_roundf(_mm256_mul_ps(_mm256_loadu_ps(x + 16), vid)));
    __m256i q3 = _mm256_cvttps_epi32(t_roundf(_mm256_mul_ps(_mm256_loadu_ps(x + 24), vid)));
    return t_pack_i32_to_i8(q0, q1, q2, q3);
}

/* Sum of 32 int8. */
static inline int t_sum_i8(__m256i q) {
    __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q),
                                  _mm256_set1_epi16(1));
    return t_hsum_epi32(s);
}

/* ---- activation quantizers ---------------------------------------------------------------- */

static void TMPL_FN(from_float_q8_0)(const float *restrict x, void *restrict vy, int64_t n) {
    inf_block_q8_0 *y = vy;
    const int64_t nb = n / INF_QK8_0;
    for (int64_t i = 0; i < nb; i++, x += INF_QK8_0) {
        const float d = t_absmax32(x) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = t_to_fp16(d);
        _mm256_storeu_si256((__m256i *)y[i].qs, t_quant32(x, id));
    }
}

static void TMPL_FN(from_float_q8_1)(const float *restrict x, void *restrict vy, int64_t n) {
    inf_block_q8_1 *y = vy;
    const int64_t nb = n / INF_QK8_1;
    for (int64_t i = 0; i < nb; i++, x += INF_QK8_1) {
        const float d = t_absmax32(x) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = t_to_fp16(d);
        __m256i q = t_quant32(x, id);
        _mm256_storeu_si256((__m256i *)y[i].qs, q);
        y[i].s = t_to_fp16((float)t_sum_i8(q) * d);
    }
}

static void TMPL_FN(from_float_q8_k)(const float *restrict x, void *restrict vy, int64_t n) {
    inf_block_q8_k *y = vy;
    const int64_t nb = n / INF_QK_K;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < nb; i++, x += INF_QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < INF_QK_K; j += 8) {
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
        }
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        const float amax = _mm_cvtss_f32(h);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        /* The signed value of the first element of largest magnitude, as the reference. */
        float max = 0.0f;
        for (int j = 0; j < INF_QK_K; j++) {
            if (fabsf(x[j]) == amax) {
                max = x[j];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m256 vis = _mm256_set1_ps(iscale);
        const __m256i lim = _mm256_set1_epi32(127);
        for (int j = 0; j < INF_QK_K; j += 32) {
            /* cvtps rounds half to even like the reference's nearest_int. */
            __m256i q0 = _mm256_min_epi32(lim, _mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(x + j))));
            __m256i q1 = _mm256_min_epi32(lim, _mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(x + j + 8))));
            __m256i q2 = _mm256_min_epi32(lim, _mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(x + j + 16))));
            __m256i q3 = _mm256_min_epi32(lim, _mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(x + j + 24))));
            __m256i q = t_pack_i32_to_i8(q0, q1, q2, q3);
            _mm256_storeu_si256((__m256i *)(y[i].qs + j), q);
            /* Two group-of-16 sums. */
            __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);
            __m256i s32 = _mm256_madd_epi16(s16, _mm256_set1_epi16(1));
            __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm_setzero_si128());
            __m128i t = _mm256_extracti128_si256(s32, 1);
            s = _mm_hadd_epi32(s, t);             /* s0+s1, s2+s3, t0+t1, t2+t3 */
            s = _mm_hadd_epi32(s, s);             /* group0, group1, ... */
            y[i].bsums[j / 16] = (int16_t)_mm_cvtsi128_si32(s);
            y[i].bsums[j / 16 + 1] = (int16_t)_mm_extract_epi32(s, 1);
        }
        y[i].d = 1.0f / iscale;
    }
}

/* ---- float dots --------------------------------------------------------------------------- */

static void TMPL_FN(vec_dot_f32)(int64_t n, float *restrict s, const void *restrict vx,
                                 const void *restrict vy) {
    const float *x = vx, *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    float sum = t_hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) sum += x[i] * y[i];
    *s = sum;
}

static void TMPL_FN(vec_dot_f16)(int64_t n, float *restrict s, const void *restrict vx,
                                 const void *restrict vy) {
    const inf_half *x = vx, *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
#define T_LH(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(T_LH(x + i), T_LH(y + i), a0);
        a1 = _mm256_fmadd_ps(T_LH(x + i + 8), T_LH(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(T_LH(x + i + 16), T_LH(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(T_LH(x + i + 24), T_LH(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(T_LH(x + i), T_LH(y + i), a0);
#undef T_LH
    float sum = t_hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) sum += t_fp16(x[i]) * t_fp16(y[i]);
    *s = sum;
}

static void TMPL_FN(to_float_f16)(const void *restrict vx, float *restrict y, int64_t n) {
    const inf_half *x = vx;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    }
    for (; i < n; i++) y[i] = t_fp16(x[i]);
}

static void TMPL_FN(from_float_f16)(const float *restrict x, void *restrict vy, int64_t n) {
    inf_half *y = vy;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(y + i), h);
    }
    for (; i < n; i++) y[i] = t_to_fp16(x[i]);
}

/* ---- 32-wide block quants ----------------------------------------------------------------- */

static void TMPL_FN(vec_dot_q8_0)(int64_t n, float *restrict s, const void *restrict vx,
                                  const void *restrict vy) {
    const inf_block_q8_0 *x = vx;
    const inf_block_q8_0 *y = vy;
    const int64_t nb = n / INF_QK8_0;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m256i qx = _mm256_loadu_si256((const __m256i *)x[i].qs);
        __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        /* |x| * (y with x's sign): pairs stay <= 2 * 128 * 127. */
        __m256i p = DOT_U8S8(_mm256_sign_epi8(qx, qx), _mm256_sign_epi8(qy, qx));
        __m256 d = _mm256_set1_ps(t_fp16(x[i].d) * t_fp16(y[i].d));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc);
    }
    *s = t_hsum_ps(acc);
}

static void TMPL_FN(vec_dot_q4_0)(int64_t n, float *restrict s, const void *restrict vx,
                                  const void *restrict vy) {
    const inf_block_q4_0 *x = vx;
    const inf_block_q8_0 *y = vy;
    const int64_t nb = n / INF_QK8_0;
    const __m256i eight = _mm256_set1_epi8(8);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m256i qx = t_unpack_nibbles(x[i].qs);
        __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        __m256i p = _mm256_sub_epi32(DOT_U8S8(qx, qy), DOT_U8S8(eight, qy));
        __m256 d = _mm256_set1_ps(t_fp16(x[i].d) * t_fp16(y[i].d));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc);
    }
    *s = t_hsum_ps(acc);
}

static void TMPL_FN(vec_dot_q4_1)(int64_t n, float *restrict s, const void *restrict vx,
                                  const void *restrict vy) {
    const inf_block_q4_1 *x = vx;
    const inf_block_q8_1 *y = vy;
    const int64_t nb = n / INF_QK8_1;
    __m256 acc = _mm256_setzero_ps();
    float summ = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        __m256i qx = t_unpack_nibbles(x[i].qs);
        __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        __m256 d = _mm256_set1_ps(t_fp16(x[i].d) * t_fp16(y[i].d));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(DOT_U8S8(qx, qy)), d, acc);
        summ += t_fp16(x[i].m) * t_fp16(y[i].s);
    }
    *s = t_hsum_ps(acc) + summ;
}

static void TMPL_FN(vec_dot_q5_0)(int64_t n, float *restrict s, const void *restrict vx,
                                  const void *restrict vy) {
    const inf_block_q5_0 *x = vx;
    const inf_block_q8_0 *y = vy;
    const int64_t nb = n / INF_QK8_0;
    const __m256i sixteen = _mm256_set1_epi8(16);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof(qh));
        __m256i qx = _mm256_or_si256(t_unpack_nibbles(x[i].qs),
                                     _mm256_and_si256(t_bits_to_bytes(qh), sixteen));
        __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        __m256i p = _mm256_sub_epi32(DOT_U8S8(qx, qy), DOT_U8S8(sixteen, qy));
        __m256 d = _mm256_set1_ps(t_fp16(x[i].d) * t_fp16(y[i].d));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc);
    }
    *s = t_hsum_ps(acc);
}

static void TMPL_FN(vec_dot_q5_1)(int64_t n, float *restrict s, const void *restrict vx,
                                  const void *restrict vy) {
    const inf_block_q5_1 *x = vx;
    const inf_block_q8_1 *y = vy;
    const int64_t nb = n / INF_QK8_1;
    const __m256i sixteen = _mm256_set1_epi8(16);
    __m256 acc = _mm256_setzero_ps();
    float summ = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof(qh));
        __m256i qx = _mm256_or_si256(t_unpack_nibbles(x[i].qs),
                                     _mm256_and_si256(t_bits_to_bytes(qh), sixteen));
        __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        __m256 d = _mm256_set1_ps(t_fp16(x[i].d) * t_fp16(y[i].d));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(DOT_U8S8(qx, qy)), d, acc);
        summ += t_fp16(x[i].m) * t_fp16(y[i].s);
    }
    *s = t_hsum_ps(acc) + summ;
}

/* ---- K quants ----------------------------------------------------------------------------- */

/* Decodes the 12 packed scale bytes into 8 scales then 8 mins (bytes), 32 bits at a time:
 * scales 0..3 / mins 0..3 are the low 6 bits of bytes 0..3 / 4..7; scales 4..7 take their low
 * nibble from bytes 8..11 and their top 2 bits from bytes 0..3, mins 4..7 the high nibble of
 * bytes 8..11 and the top 2 bits of bytes 4..7. */
static inline __m128i t_k_scales(const uint8_t *q) {
    uint32_t u0, u1, u2;
    memcpy(&u0, q, 4);
    memcpy(&u1, q + 4, 4);
    memcpy(&u2, q + 8, 4);
    const uint32_t sc_lo = u0 & 0x3f3f3f3fu;
    const uint32_t sc_hi = (u2 & 0x0f0f0f0fu) | (((u0 >> 6) & 0x03030303u) << 4);
    const uint32_t m_lo = u1 & 0x3f3f3f3fu;
    const uint32_t m_hi = ((u2 >> 4) & 0x0f0f0f0fu) | (((u1 >> 6) & 0x03030303u) << 4);
    return _mm_setr_epi32((int)sc_lo, (int)sc_hi, (int)m_lo, (int)m_hi);
}

/* sum_j mins[j] * (bsums[2j] + bsums[2j+1]) for the 8 mins in bytes 8..15 of sm. */
static inline int t_k_mins_dot(__m128i sm, const int16_t *bsums) {
    const __m128i b0 = _mm_loadu_si128((const __m128i *)bsums);
    const __m128i b1 = _mm_loadu_si128((const __m128i *)(bsums + 8));
    const __m128i pairs = _mm_hadd_epi16(b0, b1); /* |pair| <= 2 * 16 * 127: no overflow */
    const __m128i mins = _mm_cvtepu8_epi16(_mm_srli_si128(sm, 8));
    __m128i p = _mm_madd_epi16(pairs, mins);
    p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0x4e));
    p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0xb1));
    return _mm_cvtsi128_si32(p);
}

static void TMPL_FN(vec_dot_q4_k)(int64_t n, float *restrict s, const void *restrict vx,
                                  const void *restrict vy) {
    const inf_block_q4_k *x = vx;
    const inf_block_q8_k *y = vy;
    const int64_t nb = n / INF_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256 acc = _mm256_setzero_ps();
    float accm = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const __m128i sm = t_k_scales(x[i].scales);
        const int summ = t_k_mins_dot(sm, y[i].bsums);
        uint8_t sc[16];
        _mm_storeu_si128((__m128i *)sc, sm);
        const uint8_t *q = x[i].qs;
        const int8_t *p = y[i].qs;
        __m256i isum = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++, q += 32, p += 64) {
            __m256i qb = _mm256_loadu_si256((const __m256i *)q);
            __m256i lo = _mm256_and_si256(qb, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qb, 4), m4);
            __m256i y0 = _mm256_loadu_si256((const __m256i *)p);
            __m256i y1 = _mm256_loadu_si256((const __m256i *)(p + 32));
            isum = _mm256_add_epi32(isum, DOT_U8S8_SC(lo, y0, SC1(sc[2 * k])));
            isum = _mm256_add_epi32(isum, DOT_U8S8_SC(hi, y1, SC1(sc[2 * k + 1])));
        }
        const float dy = y[i].d;
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(t_fp16(x[i].d) * dy), acc);
        accm += t_fp16(x[i].dmin) * dy * (float)summ;
    }
    *s = t_hsum_ps(acc) - accm;
}

static void TMPL_FN(vec_dot_q5_k)(int64_t n, float *restrict s, const void *restrict vx,
                                  const void *restrict vy) {
    const inf_block_q5_k *x = vx;
    const inf_block_q8_k *y = vy;
    const int64_t nb = n / INF_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    float accm = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const __m128i sm = t_k_scales(x[i].scales);
        const int summ = t_k_mins_dot(sm, y[i].bsums);
        uint8_t sc[16];
        _mm_storeu_si128((__m128i *)sc, sm);
        const uint8_t *q = x[i].qs;
        const int8_t *p = y[i].qs;
        const __m256i qh = _mm256_loadu_si256((const __m256i *)x[i].qh);
        __m256i isum = _mm256_setzero_si256();
        for (int k = 0; k < 4; k++, q += 32, p += 64) {
            __m256i qb = _mm256_loadu_si256((const __m256i *)q);
            __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), one);
            __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k + 1), one);
            __m256i lo = _mm256_or_si256(_mm256_and_si256(qb, m4), _mm256_slli_epi16(h0, 4));
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4),
                                         _mm256_slli_epi16(h1, 4));
            __m256i y0 = _mm256_loadu_si256((const __m256i *)p);
            __m256i y1 = _mm256_loadu_si256((const __m256i *)(p + 32));
            isum = _mm256_add_epi32(isum, DOT_U8S8_SC(lo, y0, SC1(sc[2 * k])));
            isum = _mm256_add_epi32(isum, DOT_U8S8_SC(hi, y1, SC1(sc[2 * k + 1])));
        }
        const float dy = y[i].d;
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(t_fp16(x[i].d) * dy), acc);
        accm += t_fp16(x[i].dmin) * dy * (float)summ;
    }
    *s = t_hsum_ps(acc) - accm;
}

static void TMPL_FN(vec_dot_q6_k)(int64_t n, float *restrict s, const void *restrict vx,
                                  const void *restrict vy) {
    const inf_block_q6_k *x = vx;
    const inf_block_q8_k *y = vy;
    const int64_t nb = n / INF_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m3 = _mm256_set1_epi8(0x03);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const int8_t *sc = x[i].scales;
        /* The -32 offset, applied once through the group sums: -32 * sum_g sc_g * bsum_g. */
        int off = 0;
        for (int g = 0; g < 16; g++) off += sc[g] * y[i].bsums[g];
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h, *qhp = x[i].qh + 32 * h;
            const int8_t *p = y[i].qs + 128 * h;
            const int8_t *sg = sc + 8 * h;
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i hb = _mm256_loadu_si256((const __m256i *)qhp);
            __m256i q0 = _mm256_or_si256(_mm256_and_si256(l0, m4),
                                         _mm256_slli_epi16(_mm256_and_si256(hb, m3), 4));
            __m256i q1 = _mm256_or_si256(
                _mm256_and_si256(l1, m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m3), 4));
            __m256i q2 = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m3), 4));
            __m256i q3 = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m3), 4));
            __m256i y0 = _mm256_loadu_si256((const __m256i *)p);
            __m256i y1 = _mm256_loadu_si256((const __m256i *)(p + 32));
            __m256i y2 = _mm256_loadu_si256((const __m256i *)(p + 64));
            __m256i y3 = _mm256_loadu_si256((const __m256i *)(p + 96));
            isum = _mm256_add_epi32(isum, DOT_U8S8_SC(q0, y0, SC2(sg[0], sg[1])));
            isum = _mm256_add_epi32(isum, DOT_U8S8_SC(q1, y1, SC2(sg[2], sg[3])));
            isum = _mm256_add_epi32(isum, DOT_U8S8_SC(q2, y2, SC2(sg[4], sg[5])));
            isum = _mm256_add_epi32(isum, DOT_U8S8_SC(q3, y3, SC2(sg[6], sg[7])));
        }
        isum = _mm256_add_epi32(isum, _mm256_setr_epi32(-32 * off, 0, 0, 0, 0, 0, 0, 0));
        const float d = t_fp16(x[i].d) * y[i].d;
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d), acc);
    }
    *s = t_hsum_ps(acc);
}

/* ---- low-bit K quants and iq4 -------------------------------------------------------------- */

/* These kernels reduce each block's exact integer sum horizontally and then combine blocks with
 * the reference's scalar float sequence (SSE scalar ops: never contracted into an FMA), so they
 * return bitwise the reference's result; the cost is one integer reduction per block. */

/* acc + (a * b) * (float)isum, rounded after each operation as the reference does. */
static inline float t_ref_axpy(float acc, float a, float b, int32_t isum) {
    const __m128 fi = _mm_cvtsi32_ss(_mm_setzero_ps(), isum);
    const __m128 p = _mm_mul_ss(_mm_mul_ss(_mm_set_ss(a), _mm_set_ss(b)), fi);
    return _mm_cvtss_f32(_mm_add_ss(_mm_set_ss(acc), p));
}

/* acc + ((a * b) * (float)i1 - (c * b) * (float)i2), each operation rounded (q2_K's mins). */
static inline float t_ref_axpy2(float acc, float a, float b, int32_t i1, float c, int32_t i2) {
    const __m128 z = _mm_setzero_ps();
    __m128 p = _mm_mul_ss(_mm_mul_ss(_mm_set_ss(a), _mm_set_ss(b)), _mm_cvtsi32_ss(z, i1));
    __m128 q = _mm_mul_ss(_mm_mul_ss(_mm_set_ss(c), _mm_set_ss(b)), _mm_cvtsi32_ss(z, i2));
    return _mm_cvtss_f32(_mm_add_ss(_mm_set_ss(acc), _mm_sub_ss(p, q)));
}

/* sum_j w[j] * bsums[j] over the 16 groups of a q8_K block (w: 16 int16, |w| <= 64). */
static inline int t_bsums_dot16(__m256i w, const int16_t *bsums) {
    const __m256i p = _mm256_madd_epi16(w, _mm256_loadu_si256((const __m256i *)bsums));
    return t_hsum_epi32(p);
}

static void TMPL_FN(vec_dot_q2_k)(int64_t n, float *restrict s, const void *restrict vx,
                                  const void *restrict vy) {
    const inf_block_q2_k *x = vx;
    const inf_block_q8_k *y = vy;
    const int64_t nb = n / INF_QK_K;
    const __m256i m3 = _mm256_set1_epi8(3);
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *sc = x[i].scales;
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)sc);
        /* Mins (high nibbles) against the group sums, applied once per block. */
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4),
                                                                 _mm_set1_epi8(0x0f)));
        const int summ = t_bsums_dot16(mins, y[i].bsums);
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i qb = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            const int8_t *p = y[i].qs + 128 * h;
            const uint8_t *sg = sc + 8 * h;
            for (int k = 0; k < 4; k++) {
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(qb, 2 * k), m3);
                const __m256i yv = _mm256_loadu_si256((const __m256i *)(p + 32 * k));
                isum = _mm256_add_epi32(
                    isum, DOT_U8S8_SC(q, yv, SC2(sg[2 * k] & 0x0f, sg[2 * k + 1] & 0x0f)));
            }
        }
        sum = t_ref_axpy2(sum, t_fp16(x[i].d), y[i].d, t_hsum_epi32(isum), t_fp16(x[i].dmin),
                          summ);
    }
    *s = sum;
}

/* The 16 signed q3_K scales (sc - 32) of a block as int8. */
static inline void t_q3k_scales(const uint8_t *q, int8_t out[16]) {
    uint32_t a0, a1, t;
    memcpy(&a0, q, 4);
    memcpy(&a1, q + 4, 4);
    memcpy(&t, q + 8, 4);
    uint32_t w[4] = {(a0 & 0x0f0f0f0fu) | ((t & 0x03030303u) << 4),
                     (a1 & 0x0f0f0f0fu) | (((t >> 2) & 0x03030303u) << 4),
                     ((a0 >> 4) & 0x0f0f0f0fu) | (((t >> 4) & 0x03030303u) << 4),
                     ((a1 >> 4) & 0x0f0f0f0fu) | (((t >> 6) & 0x03030303u) << 4)};
    __m128i v = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)w), _mm_set1_epi8(32));
    _mm_storeu_si128((__m128i *)out, v);
}

static void TMPL_FN(vec_dot_q3_k)(int64_t n, float *restrict s, const void *restrict vx,
                                  const void *restrict vy) {
    const inf_block_q3_k *x = vx;
    const inf_block_q8_k *y = vy;
    const int64_t nb = n / INF_QK_K;
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int8_t sc[16];
        t_q3k_scales(x[i].scales, sc);
        /* Levels are used unsigned (0..7); the -4 comes back through the group sums. */
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
        const int off = t_bsums_dot16(sc16, y[i].bsums);
        const __m256i hm = _mm256_loadu_si256((const __m256i *)x[i].hmask);
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i qb = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            const int8_t *p = y[i].qs + 128 * h;
            const int8_t *sg = sc + 8 * h;
            for (int k = 0; k < 4; k++) {
                const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + k), one);
                const __m256i lo2 = _mm256_and_si256(_mm256_srli_epi16(qb, 2 * k), m3);
                const __m256i q = _mm256_or_si256(lo2, _mm256_slli_epi16(hb, 2));
                const __m256i yv = _mm256_loadu_si256((const __m256i *)(p + 32 * k));
                isum = _mm256_add_epi32(isum, DOT_U8S8_SC(q, yv, SC2(sg[2 * k], sg[2 * k + 1])));
            }
        }
        sum = t_ref_axpy(sum, t_fp16(x[i].d), y[i].d, t_hsum_epi32(isum) - 4 * off);
    }
    *s = sum;
}

/* 16 nibble bytes -> 32 signed iq4 levels in element order (table lookup by pshufb). */
static inline __m256i t_iq4_levels(const uint8_t *qs) {
    const __m128i tab = _mm_loadu_si128((const __m128i *)inf__iq4nl_values);
    const __m256i tab2 = _mm256_broadcastsi128_si256(tab);
    return _mm256_shuffle_epi8(tab2, t_unpack_nibbles(qs));
}

/* Signed x signed 32-byte dot: |x| * (y with x's sign); pairs stay <= 2 * 127 * 127. */
#define T_DOT_S8S8(xv, yv) DOT_U8S8(_mm256_sign_epi8((xv), (xv)), _mm256_sign_epi8((yv), (xv)))
#define T_DOT_S8S8_SC(xv, yv, sc)                                                                 \
    DOT_U8S8_SC(_mm256_sign_epi8((xv), (xv)), _mm256_sign_epi8((yv), (xv)), (sc))

static void TMPL_FN(vec_dot_iq4_nl)(int64_t n, float *restrict s, const void *restrict vx,
                                    const void *restrict vy) {
    const inf_block_iq4_nl *x = vx;
    const inf_block_q8_0 *y = vy;
    const int64_t nb = n / INF_QK4_NL;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const __m256i qx = t_iq4_levels(x[i].qs);
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[i].qs);
        sum = t_ref_axpy(sum, t_fp16(x[i].d), t_fp16(y[i].d), t_hsum_epi32(T_DOT_S8S8(qx, qy)));
    }
    *s = sum;
}

static void TMPL_FN(vec_dot_iq4_xs)(int64_t n, float *restrict s, const void *restrict vx,
                                    const void *restrict vy) {
    const inf_block_iq4_xs *x = vx;
    const inf_block_q8_k *y = vy;
    const int64_t nb = n / INF_QK_K;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        __m256i isum = _mm256_setzero_si256();
        uint32_t h = x[i].scales_h;
        for (int j = 0; j < 8; j++) {
            const int ls = (((x[i].scales_l[j / 2] >> (4 * (j % 2))) & 0x0f) |
                            (int)(((h >> (2 * j)) & 3) << 4)) - 32;
            const __m256i qx = t_iq4_levels(x[i].qs + 16 * j);
            const __m256i qy = _mm256_loadu_si256((const __m256i *)(y[i].qs + 32 * j));
            isum = _mm256_add_epi32(isum, T_DOT_S8S8_SC(qx, qy, SC1(ls)));
        }
        sum = t_ref_axpy(sum, t_fp16(x[i].d), y[i].d, t_hsum_epi32(isum));
    }
    *s = sum;
}

/* ---- dequantizers (embedding rows, tests) -------------------------------------------------- */

static void TMPL_FN(to_float_q8_0)(const void *restrict vx, float *restrict y, int64_t n) {
    const inf_block_q8_0 *x = vx;
    const int64_t nb = n / INF_QK8_0;
    for (int64_t i = 0; i < nb; i++, y += 32) {
        const __m256 d = _mm256_set1_ps(t_fp16(x[i].d));
        for (int j = 0; j < 32; j += 8) {
            __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(x[i].qs + j)));
            _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
        }
    }
}

static void TMPL_FN(to_float_q4_0)(const void *restrict vx, float *restrict y, int64_t n) {
    const inf_block_q4_0 *x = vx;
    const int64_t nb = n / INF_QK4_0;
    for (int64_t i = 0; i < nb; i++, y += 32) {
        const __m256 d = _mm256_set1_ps(t_fp16(x[i].d));
        uint8_t b[32];
        _mm256_storeu_si256((__m256i *)b,
                            _mm256_sub_epi8(t_unpack_nibbles(x[i].qs), _mm256_set1_epi8(8)));
        for (int j = 0; j < 32; j += 8) {
            __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b + j)));
            _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
        }
    }
}

/* Installs this template's kernels into a trait table (a copy of the reference table). */
static void TMPL_FN(install)(inf_type_traits *tab) {
    tab[INF_TYPE_F32].vec_dot = TMPL_FN(vec_dot_f32);
    tab[INF_TYPE_F16].vec_dot = TMPL_FN(vec_dot_f16);
    tab[INF_TYPE_F16].to_float = TMPL_FN(to_float_f16);
    tab[INF_TYPE_F16].from_float = TMPL_FN(from_float_f16);
    tab[INF_TYPE_Q8_0].vec_dot = TMPL_FN(vec_dot_q8_0);
    tab[INF_TYPE_Q8_0].from_float = TMPL_FN(from_float_q8_0);
    tab[INF_TYPE_Q8_0].to_float = TMPL_FN(to_float_q8_0);
    tab[INF_TYPE_Q8_1].from_float = TMPL_FN(from_float_q8_1);
    tab[INF_TYPE_Q8_K].from_float = TMPL_FN(from_float_q8_k);
    tab[INF_TYPE_Q4_0].vec_dot = TMPL_FN(vec_dot_q4_0);
    tab[INF_TYPE_Q4_0].to_float = TMPL_FN(to_float_q4_0);
    tab[INF_TYPE_Q4_1].vec_dot = TMPL_FN(vec_dot_q4_1);
    tab[INF_TYPE_Q5_0].vec_dot = TMPL_FN(vec_dot_q5_0);
    tab[INF_TYPE_Q5_1].vec_dot = TMPL_FN(vec_dot_q5_1);
    tab[INF_TYPE_Q4_K].vec_dot = TMPL_FN(vec_dot_q4_k);
    tab[INF_TYPE_Q5_K].vec_dot = TMPL_FN(vec_dot_q5_k);
    tab[INF_TYPE_Q6_K].vec_dot = TMPL_FN(vec_dot_q6_k);
    tab[INF_TYPE_Q2_K].vec_dot = TMPL_FN(vec_dot_q2_k);
    tab[INF_TYPE_Q3_K].vec_dot = TMPL_FN(vec_dot_q3_k);
    tab[INF_TYPE_IQ4_NL].vec_dot = TMPL_FN(vec_dot_iq4_nl);
    tab[INF_TYPE_IQ4_XS].vec_dot = TMPL_FN(vec_dot_iq4_xs);
}
