/*
 * quants_avx512.c — AVX-512 (F/BW/VL/DQ/VNNI) kernels: the 256-bit vec_dot set of dot256_tmpl.h
 * with vpdpbusd, plus tiled matmul kernels (inf__mm_kernel) used by inf_matmul.
 *
 * q4_0 / q8_0 weights ("row-lane" kernel): 16 weight rows sit in the 16 int32 lanes of a zmm.
 * Each 32-wide block is re-laid out ("repacked") as 8 zmm of 4 weight bytes per row, unsigned
 * (q4_0 nibbles 0..15; q8_0 bytes + 128), so one vpdpbusd with 4 activation bytes broadcast from
 * memory adds 4 products for 16 rows. The activation row holds int8 q (the reference q8_0
 * quantization), the block scale and the offset that undoes the unsigned shift (-8 or -128 times
 * the block's sum of q). Per (row, token) the output is exactly
 *     acc = 0; for each block b in order: acc = fma((float)isum_b, d_w[b] * d_x[b], acc)
 * with isum_b the exact integer block dot: a fixed scalar recurrence, evaluated lane-wise, so the
 * result does not depend on tiling, n_tok or threads. Blocks are repacked a slab at a time into
 * a stack buffer and reused by every token; accumulators are parked in Y between slabs (a float
 * store/load round trip is exact).
 *
 * f16 / f32 weights ("pair" kernel): each (row, token) pair owns a 16-lane accumulator over k,
 * fma per 16 elements in k order, reduced by one fixed tree at the end; a tile of rows x tokens
 * shares the loads.
 *
 * Only called after kernels.c has checked cpuid. Threads: pure functions; the stack buffers are
 * per call.
 */
#include "kernels/x86/x86.h"

#include <immintrin.h>
#include <limits.h>
#include <string.h>

#define DOT_U8S8(u, s) _mm256_dpbusd_epi32(_mm256_setzero_si256(), (u), (s))
#define DOT_U8S8_SC(u, s, sc) _mm256_mullo_epi32(DOT_U8S8((u), (s)), (sc))
#define SC1(a) _mm256_set1_epi32(a)
#define SC2(a, b) _mm256_setr_m128i(_mm_set1_epi32(a), _mm_set1_epi32(b))
#define TMPL_FN(name) avx512_##name

#include "kernels/x86/dot256_tmpl.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* An int32 read from any address (broadcast operands straight from the activation row). */
typedef int32_t i32u __attribute__((aligned(1), may_alias));

/* ==== row-lane kernel for q4_0 / q8_0 weights ============================================== */

#define RL_ROWS 16      /* weight rows per zmm */
#define RL_SLAB 32      /* blocks repacked at a time */
#define RL_TMAX 8       /* tokens per register tile */

/* Prepared activation row: int8 q[nb * 32] | float d[nb] | int32 off[nb]. */
static size_t rl_act_size(int64_t n_in) { return (size_t)(n_in / 32) * 40; }

static ALWAYS_INLINE void rl_prep(const float *restrict x, void *restrict out, int64_t n_in,
                                  int shift_mul) {
    const int64_t nb = n_in / 32;
    int8_t *q = out;
    float *d = (float *)(q + nb * 32);
    int32_t *off = (int32_t *)(d + nb);
    for (int64_t b = 0; b < nb; b++, x += 32) {
        /* The reference q8_0 quantization: same d, same rounding. */
        const float db = t_absmax32(x) / 127.0f;
        const float id = db != 0.0f ? 1.0f / db : 0.0f;
        __m256i qv = t_quant32(x, id);
        _mm256_storeu_si256((__m256i *)(q + b * 32), qv);
        d[b] = t_fp16(t_to_fp16(db));
        off[b] = -shift_mul * t_sum_i8(qv);
    }
}

static void rl_prep_q4_0(const float *restrict x, void *restrict out, int64_t n_in) {
    rl_prep(x, out, n_in, 8);
}
static void rl_prep_q8_0(const float *restrict x, void *restrict out, int64_t n_in) {
    rl_prep(x, out, n_in, 128);
}

/* Repacked slab: per block, 8 zmm of weight bytes then one zmm of 16 row scales. */
typedef struct {
    __m512i w[8];
    __m512 d;
} rl_block;

/* Repacks blocks [b0, b0 + nblk) of 16 rows (row r at base + vidx[r]). */
static ALWAYS_INLINE void rl_repack(int q8, const uint8_t *base, __m512i vidx, int64_t b0,
                                    int nblk, rl_block *out) {
    const size_t bsz = q8 ? sizeof(inf_block_q8_0) : sizeof(inf_block_q4_0);
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512i x80 = _mm512_set1_epi8((char)0x80);
    for (int i = 0; i < nblk; i++) {
        const uint8_t *blk = base + (size_t)(b0 + i) * bsz;
        __m512i dg = _mm512_i32gather_epi32(vidx, blk, 1);
        out[i].d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dg));
        if (q8) {
            for (int j = 0; j < 8; j++) {
                __m512i g = _mm512_i32gather_epi32(vidx, blk + 2 + 4 * j, 1);
                out[i].w[j] = _mm512_xor_si512(g, x80);
            }
        } else {
            for (int j = 0; j < 4; j++) {
                __m512i g = _mm512_i32gather_epi32(vidx, blk + 2 + 4 * j, 1);
                out[i].w[j] = _mm512_and_si512(g, m4);
                out[i].w[j + 4] = _mm512_and_si512(_mm512_srli_epi16(g, 4), m4);
            }
        }
    }
}

/* T tokens x 16 rows over blocks [b0, b0 + nblk) of the slab. acc parked in y (first: zero). */
static ALWAYS_INLINE void rl_tile(int T, const rl_block *slab, int64_t b0, int nblk,
                                  const uint8_t *act, size_t astride, int64_t nb, float *y,
                                  int64_t ldy, __mmask16 mask, int first) {
    __m512 acc[RL_TMAX];
    const int8_t *xq[RL_TMAX];
    const float *xd[RL_TMAX];
    const int32_t *xo[RL_TMAX];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        const uint8_t *a = act + (size_t)t * astride;
        xq[t] = (const int8_t *)a + b0 * 32;
        xd[t] = (const float *)(a + nb * 32) + b0;
        xo[t] = (const int32_t *)(a + nb * 36) + b0;
        acc[t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, y + t * ldy);
    }
    for (int i = 0; i < nblk; i++) {
        const rl_block *bk = &slab[i];
        /* j outer, tokens inner: 2T independent dpbusd chains in flight (integer sums are
         * exact, so the split does not change the result). */
        __m512i s0[RL_TMAX], s1[RL_TMAX];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            s0[t] = _mm512_set1_epi32(xo[t][i]);
            s1[t] = _mm512_setzero_si512();
        }
#pragma GCC unroll 8
        for (int j = 0; j < 8; j += 2) {
            const __m512i w0 = bk->w[j], w1 = bk->w[j + 1];
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                const i32u *xw = (const i32u *)(xq[t] + i * 32);
                s0[t] = _mm512_dpbusd_epi32(s0[t], w0, _mm512_set1_epi32(xw[j]));
                s1[t] = _mm512_dpbusd_epi32(s1[t], w1, _mm512_set1_epi32(xw[j + 1]));
            }
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            __m512 sc = _mm512_mul_ps(bk->d, _mm512_set1_ps(xd[t][i]));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0[t], s1[t])), sc, acc[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ldy, mask, acc[t]);
}

static ALWAYS_INLINE void rl_run(int q8, int64_t n_in, const void *w, size_t wstride,
                                 int64_t n_rows, const void *act, size_t astride, int64_t n_tok,
                                 float *y, int64_t ldy) {
    const int64_t nb = n_in / 32;
    _Alignas(64) rl_block slab[RL_SLAB];
    for (int64_t r0 = 0; r0 < n_rows; r0 += RL_ROWS) {
        const int nr = (int)INF_MIN(RL_ROWS, n_rows - r0);
        const __mmask16 mask = (__mmask16)((1u << nr) - 1);
        /* Rows past the end repeat the last row: valid memory, results never stored. */
        int32_t idx[RL_ROWS];
        for (int r = 0; r < RL_ROWS; r++) idx[r] = (int32_t)((size_t)INF_MIN(r, nr - 1) * wstride);
        const __m512i vidx = _mm512_loadu_si512(idx);
        const uint8_t *base = (const uint8_t *)w + (size_t)r0 * wstride;
        for (int64_t b0 = 0; b0 < nb; b0 += RL_SLAB) {
            const int nblk = (int)INF_MIN(RL_SLAB, nb - b0);
            rl_repack(q8, base, vidx, b0, nblk, slab);
            const int first = b0 == 0;
            int64_t t = 0;
            for (; t + RL_TMAX <= n_tok; t += RL_TMAX) {
                rl_tile(RL_TMAX, slab, b0, nblk, (const uint8_t *)act + (size_t)t * astride,
                        astride, nb, y + t * ldy + r0, ldy, mask, first);
            }
            const uint8_t *a = (const uint8_t *)act + (size_t)t * astride;
            float *yt = y + t * ldy + r0;
            switch (n_tok - t) {
            case 0: break;
            case 1: rl_tile(1, slab, b0, nblk, a, astride, nb, yt, ldy, mask, first); break;
            case 2: rl_tile(2, slab, b0, nblk, a, astride, nb, yt, ldy, mask, first); break;
            case 3: rl_tile(3, slab, b0, nblk, a, astride, nb, yt, ldy, mask, first); break;
            case 4: rl_tile(4, slab, b0, nblk, a, astride, nb, yt, ldy, mask, first); break;
            case 5: rl_tile(5, slab, b0, nblk, a, astride, nb, yt, ldy, mask, first); break;
            case 6: rl_tile(6, slab, b0, nblk, a, astride, nb, yt, ldy, mask, first); break;
            default: rl_tile(7, slab, b0, nblk, a, astride, nb, yt, ldy, mask, first); break;
            }
        }
    }
}

static void rl_run_q4_0(int64_t n_in, const void *w, size_t wstride, int64_t n_rows,
                        const void *act, size_t astride, int64_t n_tok, float *y, int64_t ldy) {
    rl_run(0, n_in, w, wstride, n_rows, act, astride, n_tok, y, ldy);
}
static void rl_run_q8_0(int64_t n_in, const void *w, size_t wstride, int64_t n_rows,
                        const void *act, size_t astride, int64_t n_tok, float *y, int64_t ldy) {
    rl_run(1, n_in, w, wstride, n_rows, act, astride, n_tok, y, ldy);
}

static const inf__mm_kernel mm_q4_0 = {rl_act_size, rl_prep_q4_0, rl_run_q4_0,
                                       INT32_MAX / RL_ROWS};
static const inf__mm_kernel mm_q8_0 = {rl_act_size, rl_prep_q8_0, rl_run_q8_0,
                                       INT32_MAX / RL_ROWS};

/* ==== pair kernel for f16 / f32 weights ===================================================== */

#define PR_R 4 /* rows per tile */
#define PR_T 4 /* tokens per tile */

/* Prepared activation row: n_in floats (rounded through f16 for f16 weights, as the reference
 * vec_dot_type says), zero-padded to a multiple of 16. */
static size_t pr_act_size(int64_t n_in) { return (size_t)((n_in + 15) & ~(int64_t)15) * 4; }

static void pr_prep_f16(const float *restrict x, void *restrict out, int64_t n_in) {
    float *o = out;
    int64_t i = 0;
    for (; i + 16 <= n_in; i += 16) {
        __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm512_storeu_ps(o + i, _mm512_cvtph_ps(h));
    }
    for (; i < n_in; i++) o[i] = t_fp16(t_to_fp16(x[i]));
    for (; i & 15; i++) o[i] = 0.0f;
}

static void pr_prep_f32(const float *restrict x, void *restrict out, int64_t n_in) {
    float *o = out;
    memcpy(o, x, (size_t)n_in * sizeof(float));
    for (int64_t i = n_in; i & 15; i++) o[i] = 0.0f;
}

/* Sum of 16 floats in a fixed order. */
static ALWAYS_INLINE float hsum16(__m512 v) {
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    return t_hsum_ps(h);
}

static ALWAYS_INLINE __m512 pr_load_w(int f16, const void *row, int64_t k, __mmask16 m) {
    if (f16) {
        const inf_half *p = (const inf_half *)row + k;
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
    }
    return _mm512_maskz_loadu_ps(m, (const float *)row + k);
}

static ALWAYS_INLINE void pr_tile(int f16, int R, int T, int64_t n_in, const uint8_t *w,
                                  size_t wstride, const uint8_t *act, size_t astride, float *y,
                                  int64_t ldy) {
    __m512 acc[PR_R][PR_T];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
    for (int64_t k = 0; k < n_in; k += 16) {
        const __mmask16 m = n_in - k >= 16 ? 0xffff : (__mmask16)((1u << (n_in - k)) - 1);
        __m512 wv[PR_R];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) wv[r] = pr_load_w(f16, w + (size_t)r * wstride, k, m);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            const __m512 xv = _mm512_load_ps((const float *)(act + (size_t)t * astride) + k);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) y[t * ldy + r] = hsum16(acc[r][t]);
}

static ALWAYS_INLINE void pr_tile_any(int f16, int R, int T, int64_t n_in, const uint8_t *w,
                                      size_t wstride, const uint8_t *act, size_t astride,
                                      float *y, int64_t ldy) {
    /* Dispatch to constant tile shapes so the accumulators live in registers. */
#define PR_CASE_T(RR)                                                                             \
    switch (T) {                                                                                  \
    case 1: pr_tile(f16, RR, 1, n_in, w, wstride, act, astride, y, ldy); break;                  \
    case 2: pr_tile(f16, RR, 2, n_in, w, wstride, act, astride, y, ldy); break;                  \
    case 3: pr_tile(f16, RR, 3, n_in, w, wstride, act, astride, y, ldy); break;                  \
    default: pr_tile(f16, RR, 4, n_in, w, wstride, act, astride, y, ldy); break;                 \
    }
    switch (R) {
    case 1: PR_CASE_T(1) break;
    case 2: PR_CASE_T(2) break;
    case 3: PR_CASE_T(3) break;
    default: PR_CASE_T(4) break;
    }
#undef PR_CASE_T
}

static ALWAYS_INLINE void pr_run(int f16, int64_t n_in, const void *w, size_t wstride,
                                 int64_t n_rows, const void *act, size_t astride, int64_t n_tok,
                                 float *y, int64_t ldy) {
    for (int64_t r0 = 0; r0 < n_rows; r0 += PR_R) {
        const int R = (int)INF_MIN(PR_R, n_rows - r0);
        const uint8_t *wr = (const uint8_t *)w + (size_t)r0 * wstride;
        for (int64_t t0 = 0; t0 < n_tok; t0 += PR_T) {
            const int T = (int)INF_MIN(PR_T, n_tok - t0);
            pr_tile_any(f16, R, T, n_in, wr, wstride, (const uint8_t *)act + (size_t)t0 * astride,
                        astride, y + t0 * ldy + r0, ldy);
        }
    }
}

static void pr_run_f16(int64_t n_in, const void *w, size_t wstride, int64_t n_rows,
                       const void *act, size_t astride, int64_t n_tok, float *y, int64_t ldy) {
    pr_run(1, n_in, w, wstride, n_rows, act, astride, n_tok, y, ldy);
}
static void pr_run_f32(int64_t n_in, const void *w, size_t wstride, int64_t n_rows,
                       const void *act, size_t astride, int64_t n_tok, float *y, int64_t ldy) {
    pr_run(0, n_in, w, wstride, n_rows, act, astride, n_tok, y, ldy);
}

static const inf__mm_kernel mm_f16 = {pr_act_size, pr_prep_f16, pr_run_f16, 0};
static const inf__mm_kernel mm_f32 = {pr_act_size, pr_prep_f32, pr_run_f32, 0};

/* ==== entry points ========================================================================== */

void inf__avx512_override(inf_type_traits *tab) { avx512_install(tab); }

const inf__mm_kernel *inf__avx512_mm_kernel(int wtype) {
    switch (wtype) {
    case INF_TYPE_Q4_0: return &mm_q4_0;
    case INF_TYPE_Q8_0: return &mm_q8_0;
    case INF_TYPE_F16: return &mm_f16;
    case INF_TYPE_F32: return &mm_f32;
    }
    return NULL;
}
