/*
 * quants_avx2.c — AVX2/FMA/F16C kernels: the 256-bit vec_dot set and activation quantizers from
 * dot256_tmpl.h with maddubs/madd integer dots, and tiled matmul kernels (inf__mm_kernel) for
 * q4_0, q8_0, q4_K and q6_K weights: 8 weight rows per vector, one lane per row (see the
 * sections below).
 *
 * Only called after kernels.c has checked cpuid for avx2, fma and f16c. Threads: pure functions.
 */
#include "kernels/x86/x86.h"

#include <immintrin.h>

/* maddubs sums pairs of u8*s8 products into int16 (callers keep pairs in range), madd by ones
 * sums pairs of those into int32: lane i = bytes 4i..4i+3. */
#define DOT_U8S8(u, s) _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1))
#define DOT_U8S8_SC(u, s, sc) _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), (sc))
#define SC1(a) _mm256_set1_epi16((short)(a))
#define SC2(a, b) _mm256_setr_m128i(_mm_set1_epi16((short)(a)), _mm_set1_epi16((short)(b)))
#define TMPL_FN(name) avx2_##name

#include "kernels/x86/dot256_tmpl.h"

/* ---- tiled matmul kernels ----------------------------------------------------------------------
 *
 * Lanes are weight rows: a tile covers 8 consecutive rows, and 32-bit lane r of every vector
 * belongs to row r. Per 32-element block the 8 rows' quants are transposed so that one vector
 * holds 4 consecutive elements of each row; an activation group of 4 elements is broadcast to
 * all lanes, and maddubs/madd then give each lane its row's partial dot. A lane ends the block
 * with its row's exact integer block sum, so the float accumulator per (8 rows, token) is one
 * ymm whose lane r is Y[t][o0 + r] itself: acc = fma(float(isum), dx * dy, acc) per block, in
 * block order, as the reference does (fused). No horizontal sums.
 *
 * Decode (one token) transposes each block in registers and uses it at once (8 row streams,
 * software-prefetched; the 8 scales come from one dword gather). With more tokens, a chunk of
 * MM_KB blocks of the 8 rows is transposed once into a stack buffer and reused by tiles of up
 * to MM_TB tokens; between chunks the accumulators live in y (a float store and reload are
 * exact). Weights repacked at load (inf_matmul_repack -> the R8 layout at the end of this file)
 * are already in the transposed form: one memory stream per 8 rows, no shuffles, no gather.
 *
 * Determinism: every Y[t][o] is computed by the same float sequence (per block: the exact
 * integer block sum, cvt, dx * dy, fma; blocks in order, starting from +0) whatever n_tok,
 * n_rows, the tile width, the lane or the layout; only how the exact integer is formed may
 * differ (q8_0 decode: int8 sign trick, tiles: int16 madd). Rows past n_rows repeat the last
 * row (R8: zero rows) and are never stored.
 *
 * Activation formats (one 64-byte-aligned row per token, nb = n_in / 32 blocks), quantized like
 * the reference q8_0 (same int8 values and fp16-rounded scale):
 *   q4_0 weights: qs int8 [nb][32] | dy float [nb] | 8 * sum(qs) int32 [nb]
 *     (weights are used as unsigned nibbles 0..15; the -8 offset is applied via the sum)
 *   q8_0 weights: per block int16 pairs (x[4g], x[4g+2]) for g < 8, then (x[4g+1], x[4g+3]),
 *     then the 32 int8 [nb][96 bytes] | dy float [nb] (tiles madd on int16: no saturation;
 *     decode uses the int8 copy)
 */

#ifndef MM_TB
#define MM_TB 6 /* tokens per tile (4..6: the switches below) */
#endif
#define MM_KB 16 /* blocks per transposed chunk */
#define MM_INLINE static inline __attribute__((always_inline))
/* Pins a value in a register at this point: keeps GCC from re-associating the integer add chains
 * into trees (which keeps every product live and spills; integer sums are exact either way). */
#define MM_KEEP(v) __asm__("" : "+x"(v))

static size_t mm_round64(size_t n) { return (n + 63) & ~(size_t)63; }

static size_t mm_act_size(int64_t n_in, int64_t n_tok, size_t per_block) {
    if (n_in <= 0 || n_tok <= 0 || n_in % 32 != 0) return 0;
    size_t rs, total;
    if (inf__mul_overflow((size_t)(n_in / 32), per_block, &rs)) return 0;
    rs = mm_round64(rs);
    if (inf__mul_overflow(rs, (size_t)n_tok, &total)) return 0;
    return total;
}

static inline int32_t mm_ld32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline __m256i mm_bcast32(const void *p) { return _mm256_set1_epi32(mm_ld32(p)); }

static inline uint16_t mm_ld16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* Decode streams 8 rows at once: software prefetch MM_PF bytes ahead in each row (0: none). */
#ifndef MM_PF
#define MM_PF 256
#endif
MM_INLINE void mm_prefetch8(const uint8_t *const rp[8], size_t off) {
    if (MM_PF == 0) return;
#pragma GCC unroll 8
    for (int r = 0; r < 8; r++) _mm_prefetch((const char *)rp[r] + off + MM_PF, _MM_HINT_T0);
}

#ifndef MM_GATHER_D
#define MM_GATHER_D 1
#endif

/* fp16 scales at byte offset off of the 8 rows -> 8 floats. With MM_GATHER_D one dword gather
 * (row r at rp[0] + offs[r]; the 2 bytes after each scale are the block's own quants). */
MM_INLINE __m256 mm_load_d8(const uint8_t *const rp[8], __m256i offs, size_t off) {
#if MM_GATHER_D
    __m256i v = _mm256_i32gather_epi32((const int *)(const void *)(rp[0] + off), offs, 1);
    v = _mm256_shuffle_epi8(v, _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1,
                                                -1, -1, 0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1,
                                                -1, -1, -1, -1));
    v = _mm256_permute4x64_epi64(v, 0x08);
    return _mm256_cvtph_ps(_mm256_castsi256_si128(v));
#else
    (void)offs;
    __m128i h = _mm_setr_epi16((short)mm_ld16(rp[0] + off), (short)mm_ld16(rp[1] + off),
                               (short)mm_ld16(rp[2] + off), (short)mm_ld16(rp[3] + off),
                               (short)mm_ld16(rp[4] + off), (short)mm_ld16(rp[5] + off),
                               (short)mm_ld16(rp[6] + off), (short)mm_ld16(rp[7] + off));
    return _mm256_cvtph_ps(h);
#endif
}

/* 16 bytes at offset off of rows r (low half) and r + 4 (high half), r < 4, transposed so that
 * out[j] lane r = dword j of row r (j < 4). */
MM_INLINE void mm_transpose16(const uint8_t *const rp[8], size_t off, __m256i out[4]) {
#define MM_LD2(r)                                                                                  \
    _mm256_inserti128_si256(                                                                       \
        _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(rp[r] + off))),                   \
        _mm_loadu_si128((const __m128i *)(rp[(r) + 4] + off)), 1)
    const __m256i v0 = MM_LD2(0), v1 = MM_LD2(1), v2 = MM_LD2(2), v3 = MM_LD2(3);
#undef MM_LD2
    __m256i t0 = _mm256_unpacklo_epi32(v0, v1), t1 = _mm256_unpackhi_epi32(v0, v1);
    __m256i t2 = _mm256_unpacklo_epi32(v2, v3), t3 = _mm256_unpackhi_epi32(v2, v3);
    out[0] = _mm256_unpacklo_epi64(t0, t2);
    out[1] = _mm256_unpackhi_epi64(t0, t2);
    out[2] = _mm256_unpacklo_epi64(t1, t3);
    out[3] = _mm256_unpackhi_epi64(t1, t3);
}

/* Lane masks for the first n rows (n in 1..8). */
static inline __m256i mm_row_mask(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The 8-row group starting at row o0 (rows < 8 at the end: the last row repeats): rp[r] = row
 * o0 + r of a GGUF layout, or the group's start for a packed one (packed != 0); returns the rows'
 * byte offsets from rp[0] as int32 lanes (for gathers from the GGUF layout). */
MM_INLINE __m256i mm_row_group(int packed, const void *w, size_t wstride, int64_t o0,
                               int64_t rows, const uint8_t *rp[8]) {
    for (int r = 0; r < 8; r++)
        rp[r] = (const uint8_t *)w + (size_t)(o0 + (packed ? 0 : INF_MIN(r, rows - 1))) * wstride;
    return _mm256_mullo_epi32(_mm256_min_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                               _mm256_set1_epi32((int)rows - 1)),
                              _mm256_set1_epi32((int)wstride));
}

MM_INLINE __m256 mm_acc_load(const float *y, int64_t rows, __m256i mask) {
    return rows == 8 ? _mm256_loadu_ps(y) : _mm256_maskload_ps(y, mask);
}

MM_INLINE void mm_acc_store(float *y, int64_t rows, __m256i mask, __m256 v) {
    if (rows == 8) _mm256_storeu_ps(y, v);
    else _mm256_maskstore_ps(y, mask, v);
}

/* ---- q4_0 ---- */

#define Q40_NV 9 /* per block in the transposed chunk: 8 weight vectors, then dx */

static size_t q40_act_row(int64_t n_in) { return mm_round64((size_t)(n_in / 32) * 40); }

static size_t q40_act_size(int64_t n_in, int64_t n_tok) { return mm_act_size(n_in, n_tok, 40); }

static void q40_act_prep(const float *restrict x, void *restrict act, int64_t n_in, int64_t t) {
    const int64_t nb = n_in / 32;
    uint8_t *row = (uint8_t *)act + (size_t)t * q40_act_row(n_in);
    int8_t *qs = (int8_t *)row;
    float *dy = (float *)(row + (size_t)nb * 32);
    int32_t *sy = (int32_t *)(dy + nb);
    for (int64_t b = 0; b < nb; b++, x += 32) {
        const float d = t_absmax32(x) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const __m256i q = t_quant32(x, id);
        _mm256_storeu_si256((__m256i *)(qs + 32 * b), q);
        dy[b] = t_fp16(t_to_fp16(d));
        sy[b] = 8 * t_sum_i8(q);
    }
}

/* Block b of the 8 rows: w[j] / w[4 + j] lane r = low / high nibbles of qs dword j of row r,
 * i.e. elements 4j..4j+3 / 16+4j..16+4j+3 as unsigned 0..15. */
MM_INLINE void q40_unpack(int packed, const uint8_t *const rp[8], __m256i offs, int64_t b,
                          __m256i w[8], __m256 *dx) {
    const size_t off = (size_t)b * sizeof(inf_block_q4_0);
    __m256i n[4];
    if (packed) {
        /* R8 record of 8 rows = 8 * 18 bytes at the same offset as the rows' blocks */
        const uint8_t *rec = rp[0] + 8 * off;
#pragma GCC unroll 8
        for (int j = 0; j < 4; j++) n[j] = _mm256_loadu_si256((const __m256i *)(rec + 16 + 32 * j));
        *dx = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)rec));
    } else {
        mm_transpose16(rp, off + 2, n);
        *dx = mm_load_d8(rp, offs, off);
    }
    const __m256i m4 = _mm256_set1_epi8(0x0f);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        w[j] = _mm256_and_si256(n[j], m4);
        w[4 + j] = _mm256_and_si256(_mm256_srli_epi16(n[j], 4), m4);
    }
}

/* One block for TB tokens. W(g) yields weight vector g; a[t] = token t's activation row. */
#define Q40_BLOCK(TB, W, DX, a, nb, b, acc)                                                   \
    do {                                                                                      \
        __m256i s_[MM_TB];                                                                       \
        _Pragma("GCC unroll 8") for (int g = 0; g < 8; g++) {                                 \
            const __m256i w_ = (W(g));                                                        \
            _Pragma("GCC unroll 8") for (int t = 0; t < TB; t++) {                            \
                __m256i p_ = _mm256_maddubs_epi16(w_, mm_bcast32((a)[t] + 32 * (b) + 4 * g)); \
                s_[t] = g ? _mm256_add_epi16(s_[t], p_) : p_;                                 \
                MM_KEEP(s_[t]);                                                               \
            }                                                                                 \
        }                                                                                     \
        const __m256 dx_ = (DX);                                                              \
        _Pragma("GCC unroll 8") for (int t = 0; t < TB; t++) {                                \
            const float *dy_ = (const float *)((a)[t] + 32 * (nb));                           \
            const int32_t *sy_ = (const int32_t *)(dy_ + (nb));                               \
            __m256i i_ = _mm256_sub_epi32(_mm256_madd_epi16(s_[t], _mm256_set1_epi16(1)),    \
                                          _mm256_set1_epi32(sy_[b]));                         \
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i_),                                  \
                                     _mm256_mul_ps(dx_, _mm256_set1_ps(dy_[b])), acc[t]);     \
        }                                                                                     \
    } while (0)

/* All blocks, transposed in registers, for TB tokens starting at a[0]. */
MM_INLINE void q40_direct(int packed, int TB, const uint8_t *const rp[8], __m256i offs,
                          int64_t nb, const int8_t *const *a,
                          float *y, int64_t ldy, int64_t rows, __m256i mask) {
    __m256 acc[MM_TB];
    for (int t = 0; t < TB; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i w[8];
        __m256 dx;
#ifndef MM_PF_EVERY
#define MM_PF_EVERY 2
#endif
        if (!packed && b % MM_PF_EVERY == 0) mm_prefetch8(rp, (size_t)b * sizeof(inf_block_q4_0));
        q40_unpack(packed, rp, offs, b, w, &dx);
#define W_(g) w[g]
        Q40_BLOCK(TB, W_, dx, a, nb, b, acc);
#undef W_
    }
    for (int t = 0; t < TB; t++) mm_acc_store(y + t * ldy, rows, mask, acc[t]);
}

/* Blocks [b0, b0 + kbn) from the transposed chunk buf, TB tokens. */
MM_INLINE void q40_tile(int TB, const __m256i *buf, int64_t b0, int64_t kbn, int64_t nb,
                        const int8_t *const *a, float *y, int64_t ldy, int64_t rows,
                        __m256i mask) {
    __m256 acc[MM_TB];
    for (int t = 0; t < TB; t++)
        acc[t] = b0 == 0 ? _mm256_setzero_ps() : mm_acc_load(y + t * ldy, rows, mask);
    for (int64_t k = 0; k < kbn; k++) {
        const __m256i *wb = buf + k * Q40_NV;
        const int64_t b = b0 + k;
#define W_(g) _mm256_load_si256(wb + (g))
        Q40_BLOCK(TB, W_, _mm256_castsi256_ps(_mm256_load_si256(wb + 8)), a, nb, b, acc);
#undef W_
    }
    for (int t = 0; t < TB; t++) mm_acc_store(y + t * ldy, rows, mask, acc[t]);
}

MM_INLINE void q40_run_impl(int packed, int64_t n_in, const void *w, size_t wstride,
                            int64_t n_rows, const void *act, int64_t n_tok, float *y, int64_t ldy) {
    const int64_t nb = n_in / 32;
    const size_t as = q40_act_row(n_in);
    const uint8_t *ab = act;
    _Alignas(32) __m256i buf[MM_KB * Q40_NV];
    for (int64_t o0 = 0; o0 < n_rows; o0 += 8) {
        const int64_t rows = INF_MIN(8, n_rows - o0);
        const __m256i mask = mm_row_mask(rows);
        const uint8_t *rp[8];
        const __m256i offs = mm_row_group(packed, w, wstride, o0, rows, rp);
        float *yo = y + o0;
        if (n_tok == 1) {
            const int8_t *a[1] = {(const int8_t *)ab};
            q40_direct(packed, 1, rp, offs, nb, a, yo, ldy, rows, mask);
            continue;
        }
        for (int64_t b0 = 0; b0 < nb; b0 += MM_KB) {
            const int64_t kbn = INF_MIN(MM_KB, nb - b0);
            for (int64_t k = 0; k < kbn; k++) {
                __m256i wv[8];
                __m256 dx;
                q40_unpack(packed, rp, offs, b0 + k, wv, &dx);
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++) _mm256_store_si256(buf + k * Q40_NV + j, wv[j]);
                _mm256_store_si256(buf + k * Q40_NV + 8, _mm256_castps_si256(dx));
            }
            for (int64_t t0 = 0; t0 < n_tok; t0 += MM_TB) {
                const int8_t *a[MM_TB];
                const int64_t tn = INF_MIN(MM_TB, n_tok - t0);
                for (int t = 0; t < MM_TB; t++)
                    a[t] = (const int8_t *)(ab + (size_t)(t0 + INF_MIN(t, tn - 1)) * as);
                float *yt = yo + t0 * ldy;
                switch (tn) {
#if MM_TB >= 6
                case 6: q40_tile(6, buf, b0, kbn, nb, a, yt, ldy, rows, mask); break;
                case 5: q40_tile(5, buf, b0, kbn, nb, a, yt, ldy, rows, mask); break;
#endif
                case 4: q40_tile(4, buf, b0, kbn, nb, a, yt, ldy, rows, mask); break;
                case 3: q40_tile(3, buf, b0, kbn, nb, a, yt, ldy, rows, mask); break;
                case 2: q40_tile(2, buf, b0, kbn, nb, a, yt, ldy, rows, mask); break;
                default: q40_tile(1, buf, b0, kbn, nb, a, yt, ldy, rows, mask); break;
                }
            }
        }
    }
}

/* ---- q8_0 ---- */

#define Q80_NV 17 /* per block in the transposed chunk: 16 weight vectors, then dx */

static size_t q80_act_row(int64_t n_in) { return mm_round64((size_t)(n_in / 32) * 100); }

static size_t q80_act_size(int64_t n_in, int64_t n_tok) { return mm_act_size(n_in, n_tok, 100); }

static void q80_act_prep(const float *restrict x, void *restrict act, int64_t n_in, int64_t t) {
    const int64_t nb = n_in / 32;
    uint8_t *row = (uint8_t *)act + (size_t)t * q80_act_row(n_in);
    float *dy = (float *)(row + (size_t)nb * 96);
    for (int64_t b = 0; b < nb; b++, x += 32) {
        const float d = t_absmax32(x) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const __m256i q = t_quant32(x, id);
        /* int16 lane i: even = q[2i], odd = q[2i+1]; dword g of even = (q[4g], q[4g+2]). */
        const __m256i ev = _mm256_srai_epi16(_mm256_slli_epi16(q, 8), 8);
        const __m256i od = _mm256_srai_epi16(q, 8);
        _mm256_storeu_si256((__m256i *)(row + 96 * b), ev);
        _mm256_storeu_si256((__m256i *)(row + 96 * b + 32), od);
        _mm256_storeu_si256((__m256i *)(row + 96 * b + 64), q);
        dy[b] = t_fp16(t_to_fp16(d));
    }
}

/* Block b of the 8 rows: w[2g] / w[2g + 1] lane r = int16 pairs (x[4g], x[4g+2]) /
 * (x[4g+1], x[4g+3]) of row r. */
/* Block b of the 8 rows as int8: n[g] lane r = dword g of row r's quants. */
MM_INLINE void q80_load(int packed, const uint8_t *const rp[8], __m256i offs, int64_t b,
                        __m256i n[8], __m256 *dx) {
    const size_t off = (size_t)b * sizeof(inf_block_q8_0);
    if (packed) {
        const uint8_t *rec = rp[0] + 8 * off;
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) n[j] = _mm256_loadu_si256((const __m256i *)(rec + 16 + 32 * j));
        *dx = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)rec));
    } else {
        mm_transpose16(rp, off + 2, n);
        mm_transpose16(rp, off + 18, n + 4);
        *dx = mm_load_d8(rp, offs, off);
    }
}

MM_INLINE void q80_unpack(int packed, const uint8_t *const rp[8], __m256i offs, int64_t b,
                          __m256i w[16], __m256 *dx) {
    __m256i n[8];
    q80_load(packed, rp, offs, b, n, dx);
#pragma GCC unroll 8
    for (int g = 0; g < 8; g++) {
        w[2 * g] = _mm256_srai_epi16(_mm256_slli_epi16(n[g], 8), 8);
        w[2 * g + 1] = _mm256_srai_epi16(n[g], 8);
    }
}

#define Q80_BLOCK(TB, W, DX, a, nb, b, acc)                                                   \
    do {                                                                                      \
        __m256i s_[MM_TB];                                                                       \
        _Pragma("GCC unroll 16") for (int g = 0; g < 16; g++) {                               \
            const __m256i w_ = (W(g));                                                        \
            const int gg_ = (g & 1) * 8 + (g >> 1);                                           \
            _Pragma("GCC unroll 8") for (int t = 0; t < TB; t++) {                            \
                __m256i p_ = _mm256_madd_epi16(w_, mm_bcast32((a)[t] + 96 * (b) + 4 * gg_));  \
                s_[t] = g ? _mm256_add_epi32(s_[t], p_) : p_;                                 \
                MM_KEEP(s_[t]);                                                               \
            }                                                                                 \
        }                                                                                     \
        const __m256 dx_ = (DX);                                                              \
        _Pragma("GCC unroll 8") for (int t = 0; t < TB; t++) {                                \
            const float *dy_ = (const float *)((a)[t] + 96 * (nb));                           \
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s_[t]),                               \
                                     _mm256_mul_ps(dx_, _mm256_set1_ps(dy_[b])), acc[t]);     \
        }                                                                                     \
    } while (0)

/* One token (decode), transposed in registers. The block's integer sum comes from the int8
 * quants with the sign trick (|w| * (a with w's sign), pairs <= 2 * 128 * 127): fewer operations
 * than the int16 form the tiles use, and the same exact integer, so the float sequence per
 * output is the tiles' one. */
MM_INLINE void q80_direct(int packed, const uint8_t *const rp[8], __m256i offs, int64_t nb,
                          const int8_t *a, float *y, int64_t rows, __m256i mask) {
    __m256 acc = _mm256_setzero_ps();
    const float *dy = (const float *)(a + 96 * nb);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; b++) {
        __m256i n[8];
        __m256 dx;
        if (!packed) mm_prefetch8(rp, (size_t)b * sizeof(inf_block_q8_0));
        q80_load(packed, rp, offs, b, n, &dx);
        const int8_t *qa = a + 96 * b + 64;
        __m256i s;
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(n[g]),
                                             _mm256_sign_epi8(mm_bcast32(qa + 4 * g), n[g]));
            p = _mm256_madd_epi16(p, ones);
            s = g ? _mm256_add_epi32(s, p) : p;
            MM_KEEP(s);
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dx, _mm256_set1_ps(dy[b])), acc);
    }
    mm_acc_store(y, rows, mask, acc);
}

MM_INLINE void q80_tile(int TB, const __m256i *buf, int64_t b0, int64_t kbn, int64_t nb,
                        const int8_t *const *a, float *y, int64_t ldy, int64_t rows,
                        __m256i mask) {
    __m256 acc[MM_TB];
    for (int t = 0; t < TB; t++)
        acc[t] = b0 == 0 ? _mm256_setzero_ps() : mm_acc_load(y + t * ldy, rows, mask);
    for (int64_t k = 0; k < kbn; k++) {
        const __m256i *wb = buf + k * Q80_NV;
        const int64_t b = b0 + k;
#define W_(g) _mm256_load_si256(wb + (g))
        Q80_BLOCK(TB, W_, _mm256_castsi256_ps(_mm256_load_si256(wb + 16)), a, nb, b, acc);
#undef W_
    }
    for (int t = 0; t < TB; t++) mm_acc_store(y + t * ldy, rows, mask, acc[t]);
}

MM_INLINE void q80_run_impl(int packed, int64_t n_in, const void *w, size_t wstride,
                            int64_t n_rows, const void *act, int64_t n_tok, float *y, int64_t ldy) {
    const int64_t nb = n_in / 32;
    const size_t as = q80_act_row(n_in);
    const uint8_t *ab = act;
    _Alignas(32) __m256i buf[MM_KB * Q80_NV];
    for (int64_t o0 = 0; o0 < n_rows; o0 += 8) {
        const int64_t rows = INF_MIN(8, n_rows - o0);
        const __m256i mask = mm_row_mask(rows);
        const uint8_t *rp[8];
        const __m256i offs = mm_row_group(packed, w, wstride, o0, rows, rp);
        float *yo = y + o0;
        if (n_tok == 1) {
            q80_direct(packed, rp, offs, nb, (const int8_t *)ab, yo, rows, mask);
            continue;
        }
        for (int64_t b0 = 0; b0 < nb; b0 += MM_KB) {
            const int64_t kbn = INF_MIN(MM_KB, nb - b0);
            for (int64_t k = 0; k < kbn; k++) {
                __m256i wv[16];
                __m256 dx;
                q80_unpack(packed, rp, offs, b0 + k, wv, &dx);
#pragma GCC unroll 16
                for (int j = 0; j < 16; j++) _mm256_store_si256(buf + k * Q80_NV + j, wv[j]);
                _mm256_store_si256(buf + k * Q80_NV + 16, _mm256_castps_si256(dx));
            }
            for (int64_t t0 = 0; t0 < n_tok; t0 += MM_TB) {
                const int8_t *a[MM_TB];
                const int64_t tn = INF_MIN(MM_TB, n_tok - t0);
                for (int t = 0; t < MM_TB; t++)
                    a[t] = (const int8_t *)(ab + (size_t)(t0 + INF_MIN(t, tn - 1)) * as);
                float *yt = yo + t0 * ldy;
                switch (tn) {
#if MM_TB >= 6
                case 6: q80_tile(6, buf, b0, kbn, nb, a, yt, ldy, rows, mask); break;
                case 5: q80_tile(5, buf, b0, kbn, nb, a, yt, ldy, rows, mask); break;
#endif
                case 4: q80_tile(4, buf, b0, kbn, nb, a, yt, ldy, rows, mask); break;
                case 3: q80_tile(3, buf, b0, kbn, nb, a, yt, ldy, rows, mask); break;
                case 2: q80_tile(2, buf, b0, kbn, nb, a, yt, ldy, rows, mask); break;
                default: q80_tile(1, buf, b0, kbn, nb, a, yt, ldy, rows, mask); break;
                }
            }
        }
    }
}

/* The scale gather takes 32-bit row offsets up to 7 strides. */
#define MM_MAX_WSTRIDE (MM_GATHER_D ? (size_t)INT32_MAX / 8 : 0)
static void q40_run(int64_t n_in, const void *w, size_t wstride, int64_t n_rows, const void *act,
                    int64_t n_tok, float *y, int64_t ldy) {
    q40_run_impl(0, n_in, w, wstride, n_rows, act, n_tok, y, ldy);
}
static void q40r_run(int64_t n_in, const void *w, size_t wstride, int64_t n_rows, const void *act,
                     int64_t n_tok, float *y, int64_t ldy) {
    q40_run_impl(1, n_in, w, wstride, n_rows, act, n_tok, y, ldy);
}
static void q80_run(int64_t n_in, const void *w, size_t wstride, int64_t n_rows, const void *act,
                    int64_t n_tok, float *y, int64_t ldy) {
    q80_run_impl(0, n_in, w, wstride, n_rows, act, n_tok, y, ldy);
}
static void q80r_run(int64_t n_in, const void *w, size_t wstride, int64_t n_rows, const void *act,
                     int64_t n_tok, float *y, int64_t ldy) {
    q80_run_impl(1, n_in, w, wstride, n_rows, act, n_tok, y, ldy);
}

static const inf__mm_kernel mm_q4_0 = {q40_act_size, q40_act_prep, q40_run, MM_MAX_WSTRIDE};
static const inf__mm_kernel mm_q8_0 = {q80_act_size, q80_act_prep, q80_run, MM_MAX_WSTRIDE};
static const inf__mm_kernel mm_q4_0_r8 = {q40_act_size, q40_act_prep, q40r_run, 0};
static const inf__mm_kernel mm_q8_0_r8 = {q80_act_size, q80_act_prep, q80r_run, 0};

/* ---- q4_K / q6_K ----
 * The same row lanes on 256-element superblocks. Per superblock the 8 rows' quants are
 * transposed and unpacked to bytes (q4_K 0..15, q6_K 0..63) so that weight vector v faces
 * activation dword v (elements 4v..4v+3, natural order), and the per-row integer scales become
 * int16 pairs for madd. A chunk of KQ_KB superblocks is unpacked once into a stack buffer and
 * reused by tiles of up to KQ_TB tokens; between chunks the accumulators live in y. One token
 * (decode) transposes each superblock in registers and uses it at once (kq_direct).
 *
 * Activations: the reference q8_K quantization (same int8 values and scale), one 64-byte
 * aligned row per token of nsb records { int8 q[256]; float dy; int32 bp[NP] }: bp packs int16
 * pairs for madd, q4_K the sub-block sums (B_2k, B_2k+1) (NP = 4; B_j = bsums[2j] +
 * bsums[2j+1]), q6_K the group sums (b_2k, b_2k+1) (NP = 8).
 *
 * Per (row, token), superblock by superblock in order from acc = +0, with exact integer sums
 * over the unsigned quants (dot_j: sub-block / group j):
 *   q4_K: isum = sum_j sc_j * dot_j, msum = sum_j m_j * B_j;
 *         acc = fma((float)isum, d * dy, acc); acc = fnmadd((float)msum, dmin * dy, acc)
 *   q6_K: isum = sum_g sc_g * dot_g - 32 * sum_g sc_g * b_g;  acc = fma((float)isum, d * dy, acc)
 * whatever n_tok, n_rows, the tile or the lane. int16 ranges: q4_K sums a sub-block's 8
 * maddubs in int16 (16 products <= 15 * 127: 30480), q6_K two maddubs per madd (4 products
 * <= 63 * 127: 32004); activations are within -127..127 (q8_K). */

#define KQ_TB 4 /* tokens per tile (1..4: the switch below) */
#ifndef KQ_KB
#define KQ_KB 4 /* superblocks per unpacked chunk */
#endif
#define KQ_NP(q6) ((q6) ? 8 : 4)
#define KQ_REC(q6) ((size_t)(256 + 4 + 4 * KQ_NP(q6)))

static size_t kq_act_row(int q6, int64_t n_in) {
    return mm_round64((size_t)(n_in / 256) * KQ_REC(q6));
}

static size_t kq_act_size(int q6, int64_t n_in, int64_t n_tok) {
    if (n_in <= 0 || n_tok <= 0 || n_in % 256 != 0) return 0;
    size_t rs, total;
    if (inf__mul_overflow((size_t)(n_in / 256), KQ_REC(q6), &rs)) return 0;
    rs = mm_round64(rs);
    if (inf__mul_overflow(rs, (size_t)n_tok, &total)) return 0;
    return total;
}
static size_t kq4_act_size(int64_t n_in, int64_t n_tok) { return kq_act_size(0, n_in, n_tok); }
static size_t kq6_act_size(int64_t n_in, int64_t n_tok) { return kq_act_size(1, n_in, n_tok); }

MM_INLINE void kq_act_prep(int q6, const float *restrict x, void *restrict act, int64_t n_in,
                           int64_t t) {
    const int64_t nsb = n_in / 256;
    const int np = KQ_NP(q6);
    uint8_t *rec = (uint8_t *)act + (size_t)t * kq_act_row(q6, n_in);
    for (int64_t i = 0; i < nsb; i++, x += 256, rec += KQ_REC(q6)) {
        inf_block_q8_k blk;
        avx2_from_float_q8_k(x, &blk, 256);
        memcpy(rec, blk.qs, 256);
        memcpy(rec + 256, &blk.d, 4);
        int32_t bp[8];
        for (int k = 0; k < np; k++) {
            int lo, hi;
            if (q6) {
                lo = blk.bsums[2 * k];
                hi = blk.bsums[2 * k + 1];
            } else {
                lo = blk.bsums[4 * k] + blk.bsums[4 * k + 1];
                hi = blk.bsums[4 * k + 2] + blk.bsums[4 * k + 3];
            }
            bp[k] = (int32_t)((uint32_t)(uint16_t)lo | ((uint32_t)(uint16_t)hi << 16));
        }
        memcpy(rec + 260, bp, 4 * (size_t)np);
    }
}
static void kq4_act_prep(const float *restrict x, void *restrict act, int64_t n_in, int64_t t) {
    kq_act_prep(0, x, act, n_in, t);
}
static void kq6_act_prep(const float *restrict x, void *restrict act, int64_t n_in, int64_t t) {
    kq_act_prep(1, x, act, n_in, t);
}

/* One superblock of 8 rows, unpacked. sc: int16 pairs (s, s) of the scale of weight vectors
 * [8j, 8j + 8) (q4_K) / [4g, 4g + 4) (q6_K); mp: int16 pairs facing bp (q4_K mins, q6_K
 * scales). */
typedef struct {
    __m256i w[64]; /* q4_K: 32 */
    __m256i sc[16]; /* q4_K: 8 */
    __m256i mp[8]; /* q4_K: 4 */
    __m256 d, dmin;
} kq_sb;

/* Each dword -> the int16 pair (byte a, byte b) of it, zero-extended. */
MM_INLINE __m256i kq_u16x2(__m256i v, int a, int b) {
    const __m128i m = _mm_setr_epi8((char)a, -1, (char)b, -1, (char)(a + 4), -1, (char)(b + 4), -1,
                                    (char)(a + 8), -1, (char)(b + 8), -1, (char)(a + 12), -1,
                                    (char)(b + 12), -1);
    return _mm256_shuffle_epi8(v, _mm256_broadcastsi128_si256(m));
}

/* Each dword -> the int16 pair (byte a, byte b) of it, sign-extended. */
MM_INLINE __m256i kq_s16x2(__m256i v, int a, int b) {
    const __m128i m = _mm_setr_epi8(-1, (char)a, -1, (char)b, -1, (char)(a + 4), -1, (char)(b + 4),
                                    -1, (char)(a + 8), -1, (char)(b + 8), -1, (char)(a + 12), -1,
                                    (char)(b + 12));
    return _mm256_srai_epi16(_mm256_shuffle_epi8(v, _mm256_broadcastsi128_si256(m)), 8);
}

/* The fp16 in the low half of each dword -> 8 floats. */
MM_INLINE __m256 kq_half_lo(__m256i v) {
    v = _mm256_shuffle_epi8(v, _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1,
                                                -1, -1, 0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1,
                                                -1, -1, -1, -1));
    v = _mm256_permute4x64_epi64(v, 0x08);
    return _mm256_cvtph_ps(_mm256_castsi256_si128(v));
}

/* q6_K quants 0..63 of quarter q (0..3) from the transposed ql / qh dwords: the low nibble
 * (q >= 2: high) of ql, and bits 2q..2q+1 of qh as bits 4..5. */
MM_INLINE __m256i kq6_quant(__m256i ql, __m256i qh, int q) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    const __m256i lo = _mm256_and_si256(q >= 2 ? _mm256_srli_epi16(ql, 4) : ql, m4);
    __m256i hi;
    switch (q) {
    case 0: hi = _mm256_slli_epi16(qh, 4); break;
    case 1: hi = _mm256_slli_epi16(qh, 2); break;
    case 2: hi = qh; break;
    default: hi = _mm256_srli_epi16(qh, 2); break;
    }
    return _mm256_or_si256(lo, _mm256_and_si256(hi, m30));
}

#ifndef KQ_PF
#define KQ_PF 0 /* software prefetch distance in each row (bytes; 0: none, fastest here) */
#endif

MM_INLINE void kq_unpack(int q6, const uint8_t *const rp[8], int64_t s, kq_sb *o) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(0x03);
    const size_t bsz = q6 ? sizeof(inf_block_q6_k) : sizeof(inf_block_q4_k);
    const size_t off = (size_t)s * bsz;
    if (KQ_PF) {
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++)
            for (size_t l = 0; l < bsz; l += 64)
                _mm_prefetch((const char *)rp[r] + off + KQ_PF + l, _MM_HINT_T0);
    }
    __m256i x[4];
    if (!q6) {
        mm_transpose16(rp, off, x); /* [d | dmin], scale bytes 0..3, 4..7, 8..11 */
        o->d = kq_half_lo(x[0]);
        o->dmin = kq_half_lo(_mm256_srli_epi32(x[0], 16));
        const __m256i k3f = _mm256_set1_epi8(0x3f);
        const __m256i sc_lo = _mm256_and_si256(x[1], k3f);
        const __m256i sc_hi = _mm256_or_si256(
            _mm256_and_si256(x[3], m4),
            _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(x[1], 6), m3), 4));
        const __m256i m_lo = _mm256_and_si256(x[2], k3f);
        const __m256i m_hi = _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi32(x[3], 4), m4),
            _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(x[2], 6), m3), 4));
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            o->sc[j] = kq_u16x2(sc_lo, j, j);
            o->sc[4 + j] = kq_u16x2(sc_hi, j, j);
        }
        o->mp[0] = kq_u16x2(m_lo, 0, 1);
        o->mp[1] = kq_u16x2(m_lo, 2, 3);
        o->mp[2] = kq_u16x2(m_hi, 0, 1);
        o->mp[3] = kq_u16x2(m_hi, 2, 3);
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            __m256i n[8];
            mm_transpose16(rp, off + 16 + 32 * (size_t)k, n);
            mm_transpose16(rp, off + 32 + 32 * (size_t)k, n + 4);
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                o->w[16 * k + j] = _mm256_and_si256(n[j], m4);
                o->w[16 * k + 8 + j] = _mm256_and_si256(_mm256_srli_epi16(n[j], 4), m4);
            }
        }
    } else {
        mm_transpose16(rp, off + 192, x); /* 16 int8 scales */
        o->d = _mm256_cvtph_ps(_mm_setr_epi16(
            (short)mm_ld16(rp[0] + off + 208), (short)mm_ld16(rp[1] + off + 208),
            (short)mm_ld16(rp[2] + off + 208), (short)mm_ld16(rp[3] + off + 208),
            (short)mm_ld16(rp[4] + off + 208), (short)mm_ld16(rp[5] + off + 208),
            (short)mm_ld16(rp[6] + off + 208), (short)mm_ld16(rp[7] + off + 208)));
        o->dmin = _mm256_setzero_ps();
#pragma GCC unroll 16
        for (int g = 0; g < 16; g++) o->sc[g] = kq_s16x2(x[g / 4], g % 4, g % 4);
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) o->mp[k] = kq_s16x2(x[k / 2], 2 * (k % 2), 2 * (k % 2) + 1);
        for (int h = 0; h < 2; h++) {
            __m256i ql[16], qh[8];
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++)
                mm_transpose16(rp, off + 64 * (size_t)h + 16 * c, ql + 4 * c);
#pragma GCC unroll 2
            for (int c = 0; c < 2; c++)
                mm_transpose16(rp, off + 128 + 32 * (size_t)h + 16 * c, qh + 4 * c);
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) {
#pragma GCC unroll 8
                for (int m = 0; m < 8; m++) {
                    o->w[32 * h + 8 * q + m] = kq6_quant(ql[8 * (q & 1) + m], qh[m], q);
                }
            }
        }
    }
}

/* One superblock o for TB tokens; a[t] = token t's record of this superblock. */
MM_INLINE void kq_block(int q6, int TB, const kq_sb *o, const uint8_t *const *a, __m256 *acc) {
    __m256i isum[KQ_TB];
    if (!q6) {
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m256i s[KQ_TB];
#pragma GCC unroll 8
            for (int m = 0; m < 8; m++) {
                const __m256i w = _mm256_load_si256(&o->w[8 * j + m]);
#pragma GCC unroll 4
                for (int t = 0; t < TB; t++) {
                    const __m256i p = _mm256_maddubs_epi16(w, mm_bcast32(a[t] + 32 * j + 4 * m));
                    s[t] = m ? _mm256_add_epi16(s[t], p) : p;
                    MM_KEEP(s[t]);
                }
            }
            const __m256i sc = _mm256_load_si256(&o->sc[j]);
#pragma GCC unroll 4
            for (int t = 0; t < TB; t++) {
                const __m256i v = _mm256_madd_epi16(s[t], sc);
                isum[t] = j ? _mm256_add_epi32(isum[t], v) : v;
            }
        }
    } else {
#pragma GCC unroll 16
        for (int g = 0; g < 16; g++) {
            const __m256i sc = _mm256_load_si256(&o->sc[g]);
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                const __m256i w0 = _mm256_load_si256(&o->w[4 * g + 2 * h]);
                const __m256i w1 = _mm256_load_si256(&o->w[4 * g + 2 * h + 1]);
#pragma GCC unroll 4
                for (int t = 0; t < TB; t++) {
                    const uint8_t *ap = a[t] + 16 * g + 8 * h;
                    const __m256i p0 = _mm256_maddubs_epi16(w0, mm_bcast32(ap));
                    const __m256i p1 = _mm256_maddubs_epi16(w1, mm_bcast32(ap + 4));
                    const __m256i s = _mm256_add_epi16(p0, p1);
                    const __m256i v = _mm256_madd_epi16(s, sc);
                    isum[t] = (g | h) ? _mm256_add_epi32(isum[t], v) : v;
                    MM_KEEP(isum[t]);
                }
            }
        }
    }
    const int np = KQ_NP(q6);
#pragma GCC unroll 4
    for (int t = 0; t < TB; t++) {
        __m256i osum = _mm256_madd_epi16(_mm256_load_si256(&o->mp[0]), mm_bcast32(a[t] + 260));
#pragma GCC unroll 8
        for (int k = 1; k < np; k++)
            osum = _mm256_add_epi32(osum, _mm256_madd_epi16(_mm256_load_si256(&o->mp[k]),
                                                            mm_bcast32(a[t] + 260 + 4 * k)));
        float dyf;
        memcpy(&dyf, a[t] + 256, 4);
        const __m256 dy = _mm256_set1_ps(dyf);
        if (q6) {
            const __m256i tot = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(osum, 5));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tot), _mm256_mul_ps(o->d, dy), acc[t]);
        } else {
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_mul_ps(o->d, dy), acc[t]);
            acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(osum), _mm256_mul_ps(o->dmin, dy), acc[t]);
        }
    }
}

/* One token: each superblock is transposed in registers and used at once (no buffer), with the
 * same integer sums and the same float sequence as kq_block. */
MM_INLINE void kq_direct(int q6, const uint8_t *const rp[8], int64_t nsb, const uint8_t *a,
                         float *y, int64_t rows, __m256i mask) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(0x03);
    const size_t bsz = q6 ? sizeof(inf_block_q6_k) : sizeof(inf_block_q4_k);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t s = 0; s < nsb; s++, a += KQ_REC(q6)) {
        const size_t off = (size_t)s * bsz;
        if (KQ_PF) {
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++)
                for (size_t l = 0; l < bsz; l += 64)
                    _mm_prefetch((const char *)rp[r] + off + KQ_PF + l, _MM_HINT_T0);
        }
        __m256i x[4], isum, osum, mp[8];
        __m256 d, dmin = _mm256_setzero_ps();
        if (!q6) {
            mm_transpose16(rp, off, x);
            d = kq_half_lo(x[0]);
            dmin = kq_half_lo(_mm256_srli_epi32(x[0], 16));
            const __m256i k3f = _mm256_set1_epi8(0x3f);
            const __m256i sc_lo = _mm256_and_si256(x[1], k3f);
            const __m256i sc_hi = _mm256_or_si256(
                _mm256_and_si256(x[3], m4),
                _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(x[1], 6), m3), 4));
            const __m256i m_lo = _mm256_and_si256(x[2], k3f);
            const __m256i m_hi = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi32(x[3], 4), m4),
                _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(x[2], 6), m3), 4));
            mp[0] = kq_u16x2(m_lo, 0, 1);
            mp[1] = kq_u16x2(m_lo, 2, 3);
            mp[2] = kq_u16x2(m_hi, 0, 1);
            mp[3] = kq_u16x2(m_hi, 2, 3);
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                __m256i n[8];
                mm_transpose16(rp, off + 16 + 32 * (size_t)k, n);
                mm_transpose16(rp, off + 32 + 32 * (size_t)k, n + 4);
                const __m256i scv = k < 2 ? sc_lo : sc_hi;
#pragma GCC unroll 2
                for (int hi = 0; hi < 2; hi++) {
                    const int j = 2 * k + hi; /* sub-block */
                    __m256i s16;
#pragma GCC unroll 8
                    for (int m = 0; m < 8; m++) {
                        const __m256i wv = hi ? _mm256_and_si256(_mm256_srli_epi16(n[m], 4), m4)
                                              : _mm256_and_si256(n[m], m4);
                        const __m256i p = _mm256_maddubs_epi16(wv, mm_bcast32(a + 32 * j + 4 * m));
                        s16 = m ? _mm256_add_epi16(s16, p) : p;
                        MM_KEEP(s16);
                    }
                    const __m256i v = _mm256_madd_epi16(s16, kq_u16x2(scv, j % 4, j % 4));
                    isum = j ? _mm256_add_epi32(isum, v) : v;
                }
            }
        } else {
            mm_transpose16(rp, off + 192, x);
            d = _mm256_cvtph_ps(_mm_setr_epi16(
                (short)mm_ld16(rp[0] + off + 208), (short)mm_ld16(rp[1] + off + 208),
                (short)mm_ld16(rp[2] + off + 208), (short)mm_ld16(rp[3] + off + 208),
                (short)mm_ld16(rp[4] + off + 208), (short)mm_ld16(rp[5] + off + 208),
                (short)mm_ld16(rp[6] + off + 208), (short)mm_ld16(rp[7] + off + 208)));
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) mp[k] = kq_s16x2(x[k / 2], 2 * (k % 2), 2 * (k % 2) + 1);
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
#pragma GCC unroll 2
                for (int q1 = 0; q1 < 2; q1++) {
                    /* ql dwords 16h + 8 q1 + m (m < 8) serve quarters q1 (low) and q1 + 2 (high) */
                    __m256i ql[8], qh[8];
                    mm_transpose16(rp, off + 64 * (size_t)h + 32 * q1, ql);
                    mm_transpose16(rp, off + 64 * (size_t)h + 32 * q1 + 16, ql + 4);
                    mm_transpose16(rp, off + 128 + 32 * (size_t)h, qh);
                    mm_transpose16(rp, off + 128 + 32 * (size_t)h + 16, qh + 4);
#pragma GCC unroll 2
                    for (int q2 = 0; q2 < 2; q2++) {
                        const int q = q1 + 2 * q2;
#pragma GCC unroll 2
                        for (int gi = 0; gi < 2; gi++) {
                            const int g = 8 * h + 2 * q + gi; /* vectors 4g .. 4g + 3 */
                            __m256i s2[2];
#pragma GCC unroll 2
                            for (int pr = 0; pr < 2; pr++) {
                                __m256i p2[2];
#pragma GCC unroll 2
                                for (int e = 0; e < 2; e++) {
                                    const int m = 4 * gi + 2 * pr + e;
                                    const __m256i wv = kq6_quant(ql[m], qh[m], q);
                                    p2[e] = _mm256_maddubs_epi16(
                                        wv, mm_bcast32(a + 4 * (32 * h + 8 * q + m)));
                                }
                                s2[pr] = _mm256_add_epi16(p2[0], p2[1]);
                            }
                            const __m256i sc = kq_s16x2(x[g / 4], g % 4, g % 4);
                            const __m256i v = _mm256_add_epi32(_mm256_madd_epi16(s2[0], sc),
                                                               _mm256_madd_epi16(s2[1], sc));
                            isum = (h | q | gi) ? _mm256_add_epi32(isum, v) : v;
                            MM_KEEP(isum);
                        }
                    }
                }
            }
        }
        const int np = KQ_NP(q6);
        osum = _mm256_madd_epi16(mp[0], mm_bcast32(a + 260));
#pragma GCC unroll 8
        for (int k = 1; k < np; k++)
            osum = _mm256_add_epi32(osum, _mm256_madd_epi16(mp[k], mm_bcast32(a + 260 + 4 * k)));
        float dyf;
        memcpy(&dyf, a + 256, 4);
        const __m256 dy = _mm256_set1_ps(dyf);
        if (q6) {
            const __m256i tot = _mm256_sub_epi32(isum, _mm256_slli_epi32(osum, 5));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tot), _mm256_mul_ps(d, dy), acc);
        } else {
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(d, dy), acc);
            acc = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(osum), _mm256_mul_ps(dmin, dy), acc);
        }
    }
    mm_acc_store(y, rows, mask, acc);
}

/* Superblocks [s0, s0 + kbn) from the unpacked chunk buf, TB tokens (a[t]: record s0). */
MM_INLINE void kq_tile(int q6, int TB, const kq_sb *buf, int64_t s0, int64_t kbn,
                       const uint8_t *const *a, float *y, int64_t ldy, int64_t rows,
                       __m256i mask) {
    __m256 acc[KQ_TB];
    for (int t = 0; t < TB; t++)
        acc[t] = s0 == 0 ? _mm256_setzero_ps() : mm_acc_load(y + t * ldy, rows, mask);
    for (int64_t k = 0; k < kbn; k++) {
        const uint8_t *ak[KQ_TB];
        for (int t = 0; t < TB; t++) ak[t] = a[t] + (size_t)k * KQ_REC(q6);
        kq_block(q6, TB, buf + k, ak, acc);
    }
    for (int t = 0; t < TB; t++) mm_acc_store(y + t * ldy, rows, mask, acc[t]);
}

MM_INLINE void kq_run_impl(int q6, int64_t n_in, const void *w, size_t wstride, int64_t n_rows,
                           const void *act, int64_t n_tok, float *y, int64_t ldy) {
    const int64_t nsb = n_in / 256;
    const size_t as = kq_act_row(q6, n_in);
    const uint8_t *ab = act;
    _Alignas(32) kq_sb buf[KQ_KB];
    for (int64_t o0 = 0; o0 < n_rows; o0 += 8) {
        const int64_t rows = INF_MIN(8, n_rows - o0);
        const __m256i mask = mm_row_mask(rows);
        const uint8_t *rp[8];
        (void)mm_row_group(0, w, wstride, o0, rows, rp);
        float *yo = y + o0;
        if (n_tok == 1) {
            kq_direct(q6, rp, nsb, ab, yo, rows, mask);
            continue;
        }
        for (int64_t s0 = 0; s0 < nsb; s0 += KQ_KB) {
            const int64_t kbn = INF_MIN(KQ_KB, nsb - s0);
            for (int64_t k = 0; k < kbn; k++) kq_unpack(q6, rp, s0 + k, &buf[k]);
            for (int64_t t0 = 0; t0 < n_tok; t0 += KQ_TB) {
                const uint8_t *a[KQ_TB];
                const int64_t tn = INF_MIN(KQ_TB, n_tok - t0);
                for (int t = 0; t < KQ_TB; t++)
                    a[t] = ab + (size_t)(t0 + INF_MIN(t, tn - 1)) * as + (size_t)s0 * KQ_REC(q6);
                float *yt = yo + t0 * ldy;
                switch (tn) {
                case 4: kq_tile(q6, 4, buf, s0, kbn, a, yt, ldy, rows, mask); break;
                case 3: kq_tile(q6, 3, buf, s0, kbn, a, yt, ldy, rows, mask); break;
                case 2: kq_tile(q6, 2, buf, s0, kbn, a, yt, ldy, rows, mask); break;
                default: kq_tile(q6, 1, buf, s0, kbn, a, yt, ldy, rows, mask); break;
                }
            }
        }
    }
}

static void kq4_run(int64_t n_in, const void *w, size_t wstride, int64_t n_rows, const void *act,
                    int64_t n_tok, float *y, int64_t ldy) {
    kq_run_impl(0, n_in, w, wstride, n_rows, act, n_tok, y, ldy);
}
static void kq6_run(int64_t n_in, const void *w, size_t wstride, int64_t n_rows, const void *act,
                    int64_t n_tok, float *y, int64_t ldy) {
    kq_run_impl(1, n_in, w, wstride, n_rows, act, n_tok, y, ldy);
}

static const inf__mm_kernel mm_q4_k = {kq4_act_size, kq4_act_prep, kq4_run, 0};
static const inf__mm_kernel mm_q6_k = {kq6_act_size, kq6_act_prep, kq6_run, 0};

/* ---- R8 repacked layout ----
 * Rows in groups of 8 (the last padded with zero rows); per block b, one record of 8 * block
 * bytes at 8 * b * block bytes into the group: the 8 fp16 scales, then the quants as 32-byte
 * vectors whose lane r holds dword j of row r (q4_0: 4 vectors, q8_0: 8). Exactly what the
 * kernels above transpose to per call, so results are bitwise identical. nb[1] stays the row
 * size: row o0 (a multiple of 8) starts its group at o0 * nb[1]. */
size_t inf__avx2_repack_size(int type, int64_t n_in, int64_t n_rows) {
    if ((type != INF_TYPE_Q4_0 && type != INF_TYPE_Q8_0) || n_in <= 0 || n_in % 32 || n_rows <= 0)
        return 0;
    size_t rs = inf_type_row_size(type, n_in), groups = (size_t)((n_rows + 7) / 8), total;
    if (rs == 0 || rs > SIZE_MAX / 8 || inf__mul_overflow(rs * 8, groups, &total)) return 0;
    return total;
}

void inf__avx2_repack(int type, const void *src, size_t src_stride, int64_t n_in, int64_t n_rows,
                      int64_t g0, int64_t g1, void *dst, size_t *row_bytes) {
    const int q8 = type == INF_TYPE_Q8_0;
    const int64_t nb = n_in / 32;
    const size_t bsz = q8 ? sizeof(inf_block_q8_0) : sizeof(inf_block_q4_0);
    const int nv = q8 ? 8 : 4;
    const size_t rs = inf_type_row_size(type, n_in);
    *row_bytes = rs;
    for (int64_t g = g0; g < g1; g++) {
        uint8_t *out = (uint8_t *)dst + (size_t)g * 8 * rs;
        memset(out, 0, 8 * rs);
        for (int r = 0; r < 8; r++) {
            const int64_t row = g * 8 + r;
            if (row >= n_rows) break;
            const uint8_t *in = (const uint8_t *)src + (size_t)row * src_stride;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *blk = in + (size_t)b * bsz;
                uint8_t *rec = out + (size_t)b * 8 * bsz;
                memcpy(rec + 2 * r, blk, 2);
                for (int j = 0; j < nv; j++) memcpy(rec + 16 + 32 * j + 4 * r, blk + 2 + 4 * j, 4);
            }
        }
    }
}

void inf__avx2_override(inf_type_traits *tab) { avx2_install(tab); }

const inf__mm_kernel *inf__avx2_mm_kernel(int wtype) {
    switch (wtype) {
    case INF_TYPE_Q4_0: return &mm_q4_0;
    case INF_TYPE_Q8_0: return &mm_q8_0;
    case INF__TYPE_Q4_0_R8: return &mm_q4_0_r8;
    case INF__TYPE_Q8_0_R8: return &mm_q8_0_r8;
    case INF_TYPE_Q4_K: return &mm_q4_k;
    case INF_TYPE_Q6_K: return &mm_q6_k;
    default: return NULL;
    }
}
