/*
 * quants_avx512.c — AVX-512 (F/BW/VL/DQ/VNNI) kernels: the 256-bit vec_dot set of dot256_tmpl.h
 * with vpdpbusd, plus the tiled matmul kernels (inf__mm_kernel) that inf_matmul uses.
 *
 * q4_0 / q8_0 weights ("row-lane" kernels): 16 weight rows sit in the 16 int32 lanes of a zmm;
 * 4 weight bytes per row and lane, unsigned (q4_0 nibbles 0..15; q8_0 bytes + 128), so one
 * vpdpbusd against 4 activation bytes broadcast from memory adds 4 products for 16 rows. The
 * activations are the reference q8_0 quantization of X, with each block's scale and the offset
 * that undoes the unsigned shift (-8 or -128 times the block's sum of q). Per (row, token):
 *     acc = 0; for each block b in order: acc = fma((float)isum_b, d_w[b] * d_x[b], acc)
 * with isum_b the exact integer block dot: a fixed scalar recurrence evaluated lane-wise, so the
 * result depends on neither tiling, n_tok, threads, nor the weight layout. Two layouts:
 *   - GGUF rows as they are: each pair of blocks of 16 rows is transposed on the fly ("raw"
 *     dwords, see below), into registers for a few tokens or into a stack slab reused by every
 *     token tile for many (accumulators parked in Y between slabs: a float store/load is exact);
 *   - "r16", repacked once at load time (inf_matmul_repack): already interleaved, one stream.
 * Tokens go 8 at a time with all 8 accumulators and 16 dpbusd chains in registers.
 * q4_K / q6_K weights: the same row-lane scheme per 256-element superblock, with integer
 * sub-block scales (vpmulld) and the min / -32 terms through vpdpwssd (see kq_*); q4_K also has
 * a layout repacked at load ("k16", k16_*), transposed once instead of on every call.
 *
 * f16 / f32 weights ("pair" kernel): each (row, token) pair owns a 16-lane accumulator over k,
 * fma per 16 elements in k order, reduced by one fixed tree at the end; a tile of rows x tokens
 * shares the loads.
 *
 * Only called after kernels.c has checked cpuid. Threads: pure functions; stack buffers are per
 * call.
 */
#include "kernels/x86/x86.h"

#include <immintrin.h>
#include <limits.h>
#include <string.h>

#define DOT_U8S8(u, s) _mm256_dpbusd_epi32(_mm256_setzero_si256(), (u), (s))
/* Scaled dots (K quants, small unsigned quants): maddubs pairs cannot saturate there and
 * madd applies the scale for free, cheaper than vpdpbusd + vpmulld. */
#define DOT_U8S8_SC(u, s, sc) _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), (sc))
#define SC1(a) _mm256_set1_epi16((short)(a))
#define SC2(a, b) _mm256_setr_m128i(_mm_set1_epi16((short)(a)), _mm_set1_epi16((short)(b)))
#define TMPL_FN(name) avx512_##name

#include "kernels/x86/dot256_tmpl.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* An int32 read from any address (broadcast operands straight from the activation row). */
typedef int32_t i32u __attribute__((aligned(1), may_alias));

/* ==== row-lane kernel for q4_0 / q8_0 weights ============================================== */

/* Blocks are taken in pairs: a q4_0 pair is 36 bytes = 9 dwords, a q8_0 pair 68 bytes = 17
 * dwords, so a pair's "raw" dwords transpose straight from memory (16-byte loads of 16 rows and
 * unpacks) without realigning the 2-byte scales. The scale bytes sit inside raw dwords 0 and 4
 * (q4_0) or 0 and 8 (q8_0); the activation bytes facing them are zero, so they add nothing.
 * Weight vectors of a pair, in order (block A first, then B):
 *   q4_0: lo nibbles of raw 0..4, hi nibbles of raw 0..4 | lo of raw 5..8, hi of raw 5..8 (18)
 *   q8_0: raw 0..8 | raw 9..16, each byte + 128 (17)
 * A lone last block (odd block count) reads only its own bytes. */
#define RL_ROWS 16 /* weight rows per zmm */
#define RL_SLAB 16 /* pairs repacked at a time */
#define RL_T 8     /* tokens per activation tile = per register tile */
#define RL_NW(q8) ((q8) ? 17 : 18)
#define RL_NA(q8) ((q8) ? 9 : 10) /* vectors of block A */


/* Prepared activations, in tiles of RL_T tokens so one pointer walks a whole token tile:
 *   tile [ceil(n_tok / 8)] { pair [np] { int8 x[8][NW][4]; float d[2][8]; int32 off[2][8]; } }
 * x: each token's reference q8_0 quantization laid out to face the weight vectors; d: block
 * scales (f16-rounded); off = -8 * sum(q) (q4_0) or -128 * sum(q) (q8_0) per block. */
static size_t rl_pair_bytes(int q8) { return (size_t)RL_T * RL_NW(q8) * 4 + 128; }

static size_t rl_act_size_q(int q8, int64_t n_in, int64_t n_tok) {
    size_t tiles = (size_t)((n_tok + RL_T - 1) / RL_T), np = (size_t)(n_in / 32 + 1) / 2;
    size_t per, total;
    if (inf__mul_overflow(np, rl_pair_bytes(q8), &per) || inf__mul_overflow(per, tiles, &total))
        return 0;
    return total;
}
static size_t rl_act_size_q4_0(int64_t n_in, int64_t n_tok) { return rl_act_size_q(0, n_in, n_tok); }
static size_t rl_act_size_q8_0(int64_t n_in, int64_t n_tok) { return rl_act_size_q(1, n_in, n_tok); }

/* Source of each activation byte of a pair's vectors: element index within the pair (0..63,
 * block B from 32) or -1 for a byte facing a scale. */
static int8_t rl_src_q4[18 * 4], rl_src_q8[17 * 4];
static pthread_once_t rl_src_once = PTHREAD_ONCE_INIT;

static void rl_src_init(void) {
    for (int v = 0; v < 18; v++) {
        /* vector v: raw dword j, low (0) or high (1) nibble */
        int j = v < 10 ? v % 5 : 5 + (v - 10) % 4;
        int hi = v < 10 ? v / 5 : (v - 10) / 4;
        for (int i = 0; i < 4; i++) {
            int p = 4 * j + i; /* raw byte in the 36-byte pair */
            int src = -1;
            if (p >= 2 && p < 18) src = (p - 2) + 16 * hi;
            else if (p >= 20) src = 32 + (p - 20) + 16 * hi;
            rl_src_q4[4 * v + i] = (int8_t)src;
        }
    }
    for (int p = 0; p < 68; p++) {
        int src = -1;
        if (p >= 2 && p < 34) src = p - 2;
        else if (p >= 36) src = 32 + (p - 36);
        rl_src_q8[p] = (int8_t)src;
    }
}

static ALWAYS_INLINE void rl_prep(int q8, const float *restrict x, void *restrict act, int64_t n_in,
                                  int64_t t) {
    const int64_t nb = n_in / 32, np = (nb + 1) / 2;
    const int nw = RL_NW(q8), lane = (int)(t % RL_T);
    const int shift_mul = q8 ? 128 : 8;
    const int8_t *src = q8 ? rl_src_q8 : rl_src_q4;
    uint8_t *pair = (uint8_t *)act + (size_t)(t / RL_T) * (size_t)np * rl_pair_bytes(q8);
    for (int64_t p = 0; p < np; p++, pair += rl_pair_bytes(q8)) {
        int8_t q[64];
        float dd[2] = {0.0f, 0.0f};
        int32_t off[2] = {0, 0};
        for (int h = 0; h < 2; h++) {
            const int64_t b = 2 * p + h;
            if (b >= nb) {
                memset(q + 32 * h, 0, 32);
                continue;
            }
            const float *xb = x + b * 32;
            const float db = t_absmax32(xb) / 127.0f;
            const float id = db != 0.0f ? 1.0f / db : 0.0f;
            __m256i qv = t_quant32(xb, id);
            _mm256_storeu_si256((__m256i *)(q + 32 * h), qv);
            dd[h] = t_fp16(t_to_fp16(db));
            off[h] = -shift_mul * t_sum_i8(qv);
        }
        int8_t *xo = (int8_t *)pair + (size_t)lane * nw * 4;
        for (int i = 0; i < nw * 4; i++) xo[i] = src[i] < 0 ? 0 : q[src[i]];
        float *dp = (float *)(pair + (size_t)RL_T * nw * 4);
        int32_t *op = (int32_t *)(dp + 16);
        dp[lane] = dd[0];
        dp[RL_T + lane] = dd[1];
        op[lane] = off[0];
        op[RL_T + lane] = off[1];
    }
}

static void rl_prep_q4_0(const float *restrict x, void *restrict act, int64_t n_in, int64_t t) {
    rl_prep(0, x, act, n_in, t);
}
static void rl_prep_q8_0(const float *restrict x, void *restrict act, int64_t n_in, int64_t t) {
    rl_prep(1, x, act, n_in, t);
}

/* Repacked pair of 16 rows: weight vectors then the two blocks' row scales. */
typedef struct {
    __m512i w[18];
    __m512 d[2];
} rl_pair;

/* Dwords o..o+3 (byte offset o) of 16 rows -> 4 vectors, lane r = row r's dword. */
static ALWAYS_INLINE void rl_t4(const uint8_t *const rp[RL_ROWS], size_t o, __m512i out[4]) {
#define RL_L(r) _mm_loadu_si128((const __m128i *)(rp[r] + o))
    /* Masked broadcasts merge on p0/p5 instead of the shuffle port (inserts). */
#define RL_Z(a, b, c, d)                                                                          \
    _mm512_mask_broadcast_i32x4(                                                                  \
        _mm512_mask_broadcast_i32x4(                                                              \
            _mm512_mask_broadcast_i32x4(_mm512_castsi128_si512(RL_L(a)), 0x00f0, RL_L(b)),        \
            0x0f00, RL_L(c)),                                                                     \
        0xf000, RL_L(d))
    __m512i z0 = RL_Z(0, 4, 8, 12), z1 = RL_Z(1, 5, 9, 13);
    __m512i z2 = RL_Z(2, 6, 10, 14), z3 = RL_Z(3, 7, 11, 15);
#undef RL_Z
#undef RL_L
    __m512i t0 = _mm512_unpacklo_epi32(z0, z1), t1 = _mm512_unpackhi_epi32(z0, z1);
    __m512i t2 = _mm512_unpacklo_epi32(z2, z3), t3 = _mm512_unpackhi_epi32(z2, z3);
    out[0] = _mm512_unpacklo_epi64(t0, t2);
    out[1] = _mm512_unpackhi_epi64(t0, t2);
    out[2] = _mm512_unpacklo_epi64(t1, t3);
    out[3] = _mm512_unpackhi_epi64(t1, t3);
}

static ALWAYS_INLINE __m512 rl_half_to_ps(__m512i lo16) {
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(lo16));
}

/* Repacks pairs [p0, p0 + n) of 16 rows. */
static ALWAYS_INLINE void rl_repack(int q8, const uint8_t *const rp[RL_ROWS], __m512i vidx,
                                    int64_t p0, int n, int64_t nb, rl_pair *out) {
    const size_t psz = q8 ? 68 : 36;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512i x80 = _mm512_set1_epi8((char)0x80);
    for (int i = 0; i < n; i++) {
        const int64_t p = p0 + i;
        const size_t o = (size_t)p * psz;
        const int full = 2 * p + 1 < nb;
        __m512i raw[17];
        if (q8) {
            rl_t4(rp, o, raw);
            rl_t4(rp, o + 16, raw + 4);
            if (full) {
                rl_t4(rp, o + 32, raw + 8);
                rl_t4(rp, o + 48, raw + 12);
                raw[16] = _mm512_i32gather_epi32(vidx, rp[0] + o + 64, 1);
            } else {
                /* Lone block: bytes 32, 33 of its quants, nothing past them. */
                raw[8] = _mm512_srli_epi32(_mm512_i32gather_epi32(vidx, rp[0] + o + 30, 1), 16);
            }
            out[i].d[0] = rl_half_to_ps(raw[0]);
            out[i].d[1] = full ? rl_half_to_ps(_mm512_srli_epi32(raw[8], 16)) : _mm512_setzero_ps();
            for (int j = 0; j < (full ? 17 : 9); j++) out[i].w[j] = _mm512_xor_si512(raw[j], x80);
        } else {
            rl_t4(rp, o, raw);
            if (full) {
                rl_t4(rp, o + 16, raw + 4);
                raw[8] = _mm512_i32gather_epi32(vidx, rp[0] + o + 32, 1);
            } else {
                raw[4] = _mm512_srli_epi32(_mm512_i32gather_epi32(vidx, rp[0] + o + 14, 1), 16);
            }
            out[i].d[0] = rl_half_to_ps(raw[0]);
            out[i].d[1] = full ? rl_half_to_ps(_mm512_srli_epi32(raw[4], 16)) : _mm512_setzero_ps();
            for (int j = 0; j < 5; j++) {
                out[i].w[j] = _mm512_and_si512(raw[j], m4);
                out[i].w[5 + j] = _mm512_and_si512(_mm512_srli_epi16(raw[j], 4), m4);
            }
            if (full) {
                for (int j = 0; j < 4; j++) {
                    out[i].w[10 + j] = _mm512_and_si512(raw[5 + j], m4);
                    out[i].w[14 + j] = _mm512_and_si512(_mm512_srli_epi16(raw[5 + j], 4), m4);
                }
            }
        }
    }
}

/* One block for T tokens: vectors [v0, v1) of the pair against the tokens' bytes. */
static ALWAYS_INLINE void rl_block(int q8, int T, const rl_pair *pw, int v0, int v1, int h,
                                   const uint8_t *pa, __m512 acc[RL_T]) {
    const int nw = RL_NW(q8);
    const float *dp = (const float *)(pa + (size_t)RL_T * nw * 4) + RL_T * h;
    const i32u *op = (const i32u *)(dp + 16);
    /* Vectors outer, tokens inner: 2T independent dpbusd chains in flight (integer sums are
     * exact, so the split does not change the result). */
    __m512i s0[RL_T], s1[RL_T];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        s0[t] = _mm512_set1_epi32(op[t]);
        s1[t] = _mm512_setzero_si512();
    }
#pragma GCC unroll 10
    for (int v = v0; v < v1; v += 2) {
        const __m512i w0 = pw->w[v];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const i32u *xw = (const i32u *)(pa + (size_t)t * nw * 4);
            s0[t] = _mm512_dpbusd_epi32(s0[t], w0, _mm512_set1_epi32(xw[v]));
        }
        if (v + 1 < v1) {
            const __m512i w1 = pw->w[v + 1];
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                const i32u *xw = (const i32u *)(pa + (size_t)t * nw * 4);
                s1[t] = _mm512_dpbusd_epi32(s1[t], w1, _mm512_set1_epi32(xw[v + 1]));
            }
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        __m512 sc = _mm512_mul_ps(pw->d[h], _mm512_set1_ps(dp[t]));
        __m512 f = _mm512_cvtepi32_ps(_mm512_add_epi32(s0[t], s1[t]));
        acc[t] = _mm512_fmadd_ps(f, sc, acc[t]);
    }
}

/* T tokens (of one activation tile) x 16 rows over pairs [p0, p0 + n) of the slab. The
 * accumulators are parked in y between slabs (first slab: start from zero). */
static ALWAYS_INLINE void rl_tile(int q8, int T, const rl_pair *slab, int64_t p0, int n,
                                  int64_t nb, const uint8_t *tile, float *y, int64_t ldy,
                                  __mmask16 mask, int first) {
    const size_t pbytes = rl_pair_bytes(q8);
    __m512 acc[RL_T];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
        acc[t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, y + t * ldy);
    const uint8_t *pa = tile + (size_t)p0 * pbytes;
    for (int i = 0; i < n; i++, pa += pbytes) {
        rl_block(q8, T, &slab[i], 0, RL_NA(q8), 0, pa, acc);
        if (2 * (p0 + i) + 1 < nb) rl_block(q8, T, &slab[i], RL_NA(q8), RL_NW(q8), 1, pa, acc);
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ldy, mask, acc[t]);
}

static ALWAYS_INLINE void rl_run(int q8, int64_t n_in, const void *w, size_t wstride,
                                 int64_t n_rows, const void *act, int64_t n_tok, float *y,
                                 int64_t ldy) {
    const int64_t nb = n_in / 32, np = (nb + 1) / 2;
    const size_t tile_bytes = (size_t)np * rl_pair_bytes(q8);
    _Alignas(64) rl_pair slab[RL_SLAB];
    for (int64_t r0 = 0; r0 < n_rows; r0 += RL_ROWS) {
        const int nr = (int)INF_MIN(RL_ROWS, n_rows - r0);
        const __mmask16 mask = (__mmask16)((1u << nr) - 1);
        /* Rows past the end repeat the last row: valid memory, results never stored. */
        const uint8_t *rp[RL_ROWS];
        int32_t idx[RL_ROWS];
        for (int r = 0; r < RL_ROWS; r++) {
            idx[r] = (int32_t)((size_t)INF_MIN(r, nr - 1) * wstride);
            rp[r] = (const uint8_t *)w + (size_t)(r0 * (int64_t)wstride) + (size_t)idx[r];
        }
        const __m512i vidx = _mm512_loadu_si512(idx);
        if (n_tok <= RL_T) {
            /* One token tile: repack each pair into registers and use it at once. The
             * per-output operations are the same as below. */
            float *yt = y + r0;
#define RL_FUSED(TT)                                                                              \
    do {                                                                                          \
        __m512 acc[RL_T];                                                                         \
        for (int t = 0; t < TT; t++) acc[t] = _mm512_setzero_ps();                                \
        const uint8_t *pa = (const uint8_t *)act;                                                 \
        for (int64_t p = 0; p < np; p++, pa += rl_pair_bytes(q8)) {                               \
            rl_pair pw;                                                                           \
            rl_repack(q8, rp, vidx, p, 1, nb, &pw);                                               \
            rl_block(q8, TT, &pw, 0, RL_NA(q8), 0, pa, acc);                                      \
            if (2 * p + 1 < nb) rl_block(q8, TT, &pw, RL_NA(q8), RL_NW(q8), 1, pa, acc);          \
        }                                                                                         \
        for (int t = 0; t < TT; t++) _mm512_mask_storeu_ps(yt + t * ldy, mask, acc[t]);           \
    } while (0)
            switch (n_tok) {
            case 1: RL_FUSED(1); break;
            case 2: RL_FUSED(2); break;
            case 3: RL_FUSED(3); break;
            case 4: RL_FUSED(4); break;
            default: goto slabbed;
            }
#undef RL_FUSED
            continue;
        }
    slabbed:
        for (int64_t p0 = 0; p0 < np; p0 += RL_SLAB) {
            const int n = (int)INF_MIN(RL_SLAB, np - p0);
            rl_repack(q8, rp, vidx, p0, n, nb, slab);
            const int first = p0 == 0;
            for (int64_t t = 0; t < n_tok; t += RL_T) {
                const uint8_t *tile = (const uint8_t *)act + (size_t)(t / RL_T) * tile_bytes;
                float *yt = y + t * ldy + r0;
#define RL_TILE(TT) rl_tile(q8, TT, slab, p0, n, nb, tile, yt, ldy, mask, first)
                switch (INF_MIN(RL_T, n_tok - t)) {
                case 1: RL_TILE(1); break;
                case 2: RL_TILE(2); break;
                case 3: RL_TILE(3); break;
                case 4: RL_TILE(4); break;
                case 5: RL_TILE(5); break;
                case 6: RL_TILE(6); break;
                case 7: RL_TILE(7); break;
                default: RL_TILE(8); break;
                }
#undef RL_TILE
            }
        }
    }
}

static void rl_run_q4_0(int64_t n_in, const void *w, size_t wstride, int64_t n_rows,
                        const void *act, int64_t n_tok, float *y, int64_t ldy) {
    rl_run(0, n_in, w, wstride, n_rows, act, n_tok, y, ldy);
}
static void rl_run_q8_0(int64_t n_in, const void *w, size_t wstride, int64_t n_rows,
                        const void *act, int64_t n_tok, float *y, int64_t ldy) {
    rl_run(1, n_in, w, wstride, n_rows, act, n_tok, y, ldy);
}

static const inf__mm_kernel mm_q4_0 = {rl_act_size_q4_0, rl_prep_q4_0, rl_run_q4_0,
                                       INT32_MAX / RL_ROWS};
static const inf__mm_kernel mm_q8_0 = {rl_act_size_q8_0, rl_prep_q8_0, rl_run_q8_0,
                                       INT32_MAX / RL_ROWS};

/* ==== repacked q4_0 / q8_0 weights ("r16") ================================================= */

/* Layout made once at load time by inf__avx512_repack (inf_matmul_repack): rows in groups of 16
 * (the last group zero-padded), blocks in pairs (an odd last block padded with a zero block):
 *   group { pair { f16 dA[16]; f16 dB[16]; uint8 A[NV][16][4]; uint8 B[NV][16][4]; } }
 * Vector j of a block holds, in lane r, row r's quant dword j: for q4_0 the packed nibbles
 * (NV = 4; low nibbles are elements 4j..4j+3, high ones 16+4j..), for q8_0 the int8 quants
 * plus 128 (NV = 8). Same bytes per row as the GGUF rows, 64-byte aligned vectors, one stream
 * per 16 rows. Activations use the natural order:
 *   tile [ceil(n_tok / 8)] { block [nb] { int8 q[8][32]; float d[8]; int32 off[8]; } }
 * The per-output recurrence is the one of the row-lane kernel above, so results are bitwise
 * identical to matmuls on the unpacked weights. */
#define R16_NV(q8) ((q8) ? 8 : 4)
#define R16_PAIR(q8) (64 + 2 * R16_NV(q8) * 64)
#define R16_BLK_ACT (RL_T * 40)

static size_t r16_act_size(int64_t n_in, int64_t n_tok) {
    size_t tiles = (size_t)((n_tok + RL_T - 1) / RL_T), per, total;
    if (inf__mul_overflow((size_t)(n_in / 32), R16_BLK_ACT, &per) ||
        inf__mul_overflow(per, tiles, &total))
        return 0;
    return total;
}

static ALWAYS_INLINE void r16_prep(int q8, const float *restrict x, void *restrict act,
                                   int64_t n_in, int64_t t) {
    const int64_t nb = n_in / 32;
    const int shift_mul = q8 ? 128 : 8;
    uint8_t *tile = (uint8_t *)act + (size_t)(t / RL_T) * (size_t)nb * R16_BLK_ACT;
    const int lane = (int)(t % RL_T);
    for (int64_t b = 0; b < nb; b++, x += 32) {
        uint8_t *blk = tile + (size_t)b * R16_BLK_ACT;
        const float db = t_absmax32(x) / 127.0f;
        const float id = db != 0.0f ? 1.0f / db : 0.0f;
        __m256i qv = t_quant32(x, id);
        _mm256_storeu_si256((__m256i *)(blk + 32 * lane), qv);
        const float dr = t_fp16(t_to_fp16(db));
        const int32_t off = -shift_mul * t_sum_i8(qv);
        memcpy(blk + 256 + 4 * lane, &dr, 4);
        memcpy(blk + 288 + 4 * lane, &off, 4);
    }
}

static void r16_prep_q4_0(const float *restrict x, void *restrict act, int64_t n_in, int64_t t) {
    r16_prep(0, x, act, n_in, t);
}
static void r16_prep_q8_0(const float *restrict x, void *restrict act, int64_t n_in, int64_t t) {
    r16_prep(1, x, act, n_in, t);
}

/* One block (8 weight vectors w) for T tokens of the activation block a. */
static ALWAYS_INLINE void r16_block(int T, const __m512i w[8], __m512 dw, const uint8_t *a,
                                    __m512 acc[RL_T]) {
    __m512i s0[RL_T], s1[RL_T];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        s0[t] = _mm512_set1_epi32(*(const i32u *)(a + 288 + 4 * t));
        s1[t] = _mm512_setzero_si512();
    }
#pragma GCC unroll 8
    for (int j = 0; j < 8; j += 2) {
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const i32u *xw = (const i32u *)(a + 32 * t);
            s0[t] = _mm512_dpbusd_epi32(s0[t], w[j], _mm512_set1_epi32(xw[j]));
            s1[t] = _mm512_dpbusd_epi32(s1[t], w[j + 1], _mm512_set1_epi32(xw[j + 1]));
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        float dx;
        memcpy(&dx, a + 256 + 4 * t, 4);
        __m512 sc = _mm512_mul_ps(dw, _mm512_set1_ps(dx));
        __m512 f = _mm512_cvtepi32_ps(_mm512_add_epi32(s0[t], s1[t]));
        acc[t] = _mm512_fmadd_ps(f, sc, acc[t]);
    }
}

static ALWAYS_INLINE void r16_load(int q8, const uint8_t *v, __m512i w[8]) {
    if (q8) {
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) w[j] = _mm512_load_si512(v + 64 * j);
    } else {
        const __m512i m4 = _mm512_set1_epi8(0x0f);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            __m512i g = _mm512_load_si512(v + 64 * j);
            w[j] = _mm512_and_si512(g, m4);
            w[j + 4] = _mm512_and_si512(_mm512_srli_epi16(g, 4), m4);
        }
    }
}

static ALWAYS_INLINE void r16_tile(int q8, int T, const uint8_t *g, int64_t nb,
                                   const uint8_t *tile, float *y, int64_t ldy, __mmask16 mask,
                                   int pf) {
    __m512 acc[RL_T];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    const int64_t np = (nb + 1) / 2;
    const uint8_t *a = tile;
    for (int64_t p = 0; p < np; p++, g += R16_PAIR(q8)) {
        if (pf) {
            /* Decode: the weights stream from DRAM once; prefetching 4 KiB ahead keeps more
             * misses in flight than the hardware streamer alone (measured under contention). */
            for (int l = 0; l < R16_PAIR(q8); l += 64)
                _mm_prefetch((const char *)g + 4096 + l, _MM_HINT_T0);
        }
        __m512i w[8];
        const __m512 dA = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)g));
        r16_load(q8, g + 64, w);
        r16_block(T, w, dA, a, acc);
        a += R16_BLK_ACT;
        if (2 * p + 1 < nb) {
            const __m512 dB = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(g + 32)));
            r16_load(q8, g + 64 + 64 * R16_NV(q8), w);
            r16_block(T, w, dB, a, acc);
            a += R16_BLK_ACT;
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ldy, mask, acc[t]);
}

static ALWAYS_INLINE void r16_run(int q8, int64_t n_in, const void *w, size_t wstride,
                                  int64_t n_rows, const void *act, int64_t n_tok, float *y,
                                  int64_t ldy) {
    const int64_t nb = n_in / 32;
    const size_t tile_bytes = (size_t)nb * R16_BLK_ACT;
    const size_t gstride = wstride * RL_ROWS;
    for (int64_t r0 = 0; r0 < n_rows; r0 += RL_ROWS) {
        const int nr = (int)INF_MIN(RL_ROWS, n_rows - r0);
        const __mmask16 mask = (__mmask16)((1u << nr) - 1);
        const uint8_t *g = (const uint8_t *)w + (size_t)(r0 / RL_ROWS) * gstride;
        for (int64_t t = 0; t < n_tok; t += RL_T) {
            const uint8_t *tile = (const uint8_t *)act + (size_t)(t / RL_T) * tile_bytes;
            float *yt = y + t * ldy + r0;
#define R16_TILE(TT) r16_tile(q8, TT, g, nb, tile, yt, ldy, mask, n_tok <= RL_T)
            switch (INF_MIN(RL_T, n_tok - t)) {
            case 1: R16_TILE(1); break;
            case 2: R16_TILE(2); break;
            case 3: R16_TILE(3); break;
            case 4: R16_TILE(4); break;
            case 5: R16_TILE(5); break;
            case 6: R16_TILE(6); break;
            case 7: R16_TILE(7); break;
            default: R16_TILE(8); break;
            }
#undef R16_TILE
        }
    }
}

static void r16_run_q4_0(int64_t n_in, const void *w, size_t wstride, int64_t n_rows,
                         const void *act, int64_t n_tok, float *y, int64_t ldy) {
    r16_run(0, n_in, w, wstride, n_rows, act, n_tok, y, ldy);
}
static void r16_run_q8_0(int64_t n_in, const void *w, size_t wstride, int64_t n_rows,
                         const void *act, int64_t n_tok, float *y, int64_t ldy) {
    r16_run(1, n_in, w, wstride, n_rows, act, n_tok, y, ldy);
}

static const inf__mm_kernel mm_q4_0_r16 = {r16_act_size, r16_prep_q4_0, r16_run_q4_0, 0};
static const inf__mm_kernel mm_q8_0_r16 = {r16_act_size, r16_prep_q8_0, r16_run_q8_0, 0};

/* Bytes per row of the repacked layout (the tensor's nb[1]; a group is 16 of them). */
static size_t r16_row_bytes(int q8, int64_t n_in) {
    return (size_t)((n_in / 32 + 1) / 2) * (size_t)R16_PAIR(q8) / RL_ROWS;
}

static size_t k16_repack_size(int64_t n_in, int64_t n_rows);
static void k16_repack(const void *src, size_t src_stride, int64_t n_in, int64_t n_rows,
                       int64_t g0, int64_t g1, void *dst, size_t *row_bytes);

size_t inf__avx512_repack_size(int type, int64_t n_in, int64_t n_rows) {
    if (type == INF_TYPE_Q4_K) return k16_repack_size(n_in, n_rows);
    if ((type != INF_TYPE_Q4_0 && type != INF_TYPE_Q8_0) || n_in <= 0 || n_in % 32 || n_rows <= 0)
        return 0;
    size_t groups = (size_t)((n_rows + RL_ROWS - 1) / RL_ROWS), total;
    size_t row = r16_row_bytes(type == INF_TYPE_Q8_0, n_in);
    if (inf__mul_overflow(row * RL_ROWS, groups, &total)) return 0;
    return total;
}

void inf__avx512_repack(int type, const void *src, size_t src_stride, int64_t n_in,
                        int64_t n_rows, int64_t g0, int64_t g1, void *dst, size_t *row_bytes) {
    if (type == INF_TYPE_Q4_K) {
        k16_repack(src, src_stride, n_in, n_rows, g0, g1, dst, row_bytes);
        return;
    }
    const int q8 = type == INF_TYPE_Q8_0;
    const int64_t nb = n_in / 32;
    const size_t bsz = q8 ? sizeof(inf_block_q8_0) : sizeof(inf_block_q4_0);
    const size_t gbytes = r16_row_bytes(q8, n_in) * RL_ROWS;
    *row_bytes = r16_row_bytes(q8, n_in);
    for (int64_t g = g0; g < g1; g++) {
        uint8_t *out = (uint8_t *)dst + (size_t)g * gbytes;
        memset(out, 0, gbytes);
        for (int r = 0; r < RL_ROWS; r++) {
            const int64_t row = g * RL_ROWS + r;
            if (row >= n_rows) break;
            const uint8_t *in = (const uint8_t *)src + (size_t)row * src_stride;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *blk = in + (size_t)b * bsz;
                uint8_t *pair = out + (size_t)(b / 2) * R16_PAIR(q8);
                const int h = (int)(b & 1);
                memcpy(pair + 32 * h + 2 * r, blk, 2); /* f16 scale */
                uint8_t *vec = pair + 64 + (size_t)h * R16_NV(q8) * 64;
                for (int j = 0; j < R16_NV(q8); j++) {
                    uint8_t *d4 = vec + 64 * j + 4 * r;
                    memcpy(d4, blk + 2 + 4 * j, 4);
                    if (q8)
                        for (int k = 0; k < 4; k++) d4[k] ^= 0x80;
                }
            }
        }
    }
}

/* ==== row-lane kernel for q4_K / q6_K weights ============================================== */

/* Same scheme as q4_0/q8_0 (16 rows in lanes, 4 weight bytes per lane, activation dwords
 * broadcast), on 256-element superblocks, GGUF rows transposed on the fly into a stack slab.
 * Activations: the reference q8_K quantization, in tiles of 8 tokens:
 *   tile { superblock [nsb] { int8 q[8][256]; float d[8]; int32 bp[8][NP]; } }
 * bp packs int16 pairs for vpdpwssd: q4_K: sums of the 8 sub-blocks of 32 (NP = 4),
 * q6_K: the 16 group-of-16 sums (NP = 8).
 * Per (row, token), superblock by superblock, with exact integer sums:
 *   q4_K: isum = sum_j sc_j * dot_j, msum = sum_j m_j * B_j;
 *         acc = fma((float)isum, d * dy, acc); acc = fnmadd((float)msum, dmin * dy, acc)
 *   q6_K: isum = sum_g sc_g * dot_g - 32 * sum_g sc_g * bsum_g;  acc = fma((float)isum, d * dy, acc)
 * (dot over the unsigned quants 0..15 / 0..63). */
#define KQ_SLAB 4  /* superblocks repacked at a time */
#define KQ_T 4     /* tokens per register tile (of the 8-token activation tile) */
#define KQ_NP(q6) ((q6) ? 8 : 4)
#define KQ_SB_ACT(q6) ((size_t)RL_T * (256 + 4 + 4 * KQ_NP(q6)))

static size_t kq_act_size_q(int q6, int64_t n_in, int64_t n_tok) {
    size_t tiles = (size_t)((n_tok + RL_T - 1) / RL_T), per, total;
    if (inf__mul_overflow((size_t)(n_in / 256), KQ_SB_ACT(q6), &per) ||
        inf__mul_overflow(per, tiles, &total))
        return 0;
    return total;
}
static size_t kq_act_size_q4_k(int64_t n_in, int64_t n_tok) { return kq_act_size_q(0, n_in, n_tok); }
static size_t kq_act_size_q6_k(int64_t n_in, int64_t n_tok) { return kq_act_size_q(1, n_in, n_tok); }

static ALWAYS_INLINE void kq_prep(int q6, const float *restrict x, void *restrict act,
                                  int64_t n_in, int64_t t) {
    const int64_t nsb = n_in / 256;
    const int lane = (int)(t % RL_T), np = KQ_NP(q6);
    uint8_t *sb = (uint8_t *)act + (size_t)(t / RL_T) * (size_t)nsb * KQ_SB_ACT(q6);
    for (int64_t i = 0; i < nsb; i++, x += 256, sb += KQ_SB_ACT(q6)) {
        inf_block_q8_k blk;
        avx512_from_float_q8_k(x, &blk, 256);
        memcpy(sb + 256 * lane, blk.qs, 256);
        memcpy(sb + 2048 + 4 * lane, &blk.d, 4);
        int32_t *bp = (int32_t *)(sb + 2048 + 32) + np * lane;
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
    }
}

static void kq_prep_q4_k(const float *restrict x, void *restrict act, int64_t n_in, int64_t t) {
    kq_prep(0, x, act, n_in, t);
}
static void kq_prep_q6_k(const float *restrict x, void *restrict act, int64_t n_in, int64_t t) {
    kq_prep(1, x, act, n_in, t);
}

/* Repacked superblock of 16 rows. q4_K: sc[0..7] scales, mp[0..3] min pairs, d, dmin.
 * q6_K: sc[0..15] group scales, mp[0..7] scale pairs, d. */
typedef struct {
    __m512i w[64];
    __m512i sc[16];
    __m512i mp[8];
    __m512 d, dmin;
} kq_sb;

/* int16 pair (byte 2i, byte 2i+1) of each lane's 4 bytes, zero-extended; i = 0 or 1. */
static ALWAYS_INLINE __m512i kq_pair_u8(__m512i v, int i) {
    __m512i x = _mm512_srli_epi32(v, 16 * i);
    return _mm512_or_si512(_mm512_and_si512(x, _mm512_set1_epi32(0xff)),
                           _mm512_slli_epi32(_mm512_and_si512(x, _mm512_set1_epi32(0xff00)), 8));
}

/* Decodes a q4_K superblock's header from its row-lane dwords x[0] = d | dmin << 16, x[1..3] =
 * the 12 packed scale/min bytes: sc[j] = 6-bit scale j per lane (int32), mp[k] = the int16 pair
 * (min 2k, min 2k + 1) per lane, d and dmin as floats. */
static ALWAYS_INLINE void kq4_scales(const __m512i x[4], __m512i sc[8], __m512i mp[4], __m512 *d,
                                     __m512 *dmin) {
    *d = rl_half_to_ps(x[0]);
    *dmin = rl_half_to_ps(_mm512_srli_epi32(x[0], 16));
    const __m512i k3f = _mm512_set1_epi8(0x3f), k0f = _mm512_set1_epi8(0x0f);
    const __m512i k03 = _mm512_set1_epi8(0x03), kff = _mm512_set1_epi32(0xff);
    const __m512i sc_lo = _mm512_and_si512(x[1], k3f);
    const __m512i sc_hi =
        _mm512_or_si512(_mm512_and_si512(x[3], k0f),
                        _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(x[1], 6), k03), 4));
    const __m512i m_lo = _mm512_and_si512(x[2], k3f);
    const __m512i m_hi =
        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(x[3], 4), k0f),
                        _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(x[2], 6), k03), 4));
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        sc[j] = _mm512_and_si512(_mm512_srli_epi32(sc_lo, 8 * j), kff);
        sc[4 + j] = _mm512_and_si512(_mm512_srli_epi32(sc_hi, 8 * j), kff);
    }
    mp[0] = kq_pair_u8(m_lo, 0);
    mp[1] = kq_pair_u8(m_lo, 1);
    mp[2] = kq_pair_u8(m_hi, 0);
    mp[3] = kq_pair_u8(m_hi, 1);
}

static ALWAYS_INLINE void kq_repack(int q6, const uint8_t *const rp[RL_ROWS], __m512i vidx,
                                    int64_t s0, int n, kq_sb *out) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), m3 = _mm512_set1_epi8(0x03);
    for (int i = 0; i < n; i++) {
        kq_sb *o = &out[i];
        __m512i raw[32], x[4];
        if (!q6) {
            const size_t off = (size_t)(s0 + i) * sizeof(inf_block_q4_k);
            rl_t4(rp, off, x); /* [d | dmin], scales 0..3, 4..7, 8..11 */
            kq4_scales(x, o->sc, o->mp, &o->d, &o->dmin);
            for (int c = 0; c < 8; c++) rl_t4(rp, off + 16 + 16 * c, raw + 4 * c);
            for (int r = 0; r < 32; r++) {
                const int k = r / 8, m = r % 8;
                o->w[16 * k + m] = _mm512_and_si512(raw[r], m4);
                o->w[16 * k + 8 + m] = _mm512_and_si512(_mm512_srli_epi16(raw[r], 4), m4);
            }
        } else {
            const size_t off = (size_t)(s0 + i) * sizeof(inf_block_q6_k);
            __m512i qh[16];
            for (int c = 0; c < 8; c++) rl_t4(rp, off + 16 * c, raw + 4 * c);
            for (int c = 0; c < 4; c++) rl_t4(rp, off + 128 + 16 * c, qh + 4 * c);
            rl_t4(rp, off + 192, x); /* 16 int8 scales */
            o->d = rl_half_to_ps(
                _mm512_srli_epi32(_mm512_i32gather_epi32(vidx, rp[0] + off + 206, 1), 16));
            for (int g = 0; g < 16; g++) {
                /* sign-extend byte g % 4 of scale dword g / 4 */
                o->sc[g] = _mm512_srai_epi32(_mm512_slli_epi32(x[g / 4], 24 - 8 * (g % 4)), 24);
            }
            for (int k = 0; k < 8; k++) {
                o->mp[k] = _mm512_or_si512(_mm512_and_si512(o->sc[2 * k], _mm512_set1_epi32(0xffff)),
                                           _mm512_slli_epi32(o->sc[2 * k + 1], 16));
            }
            for (int h = 0; h < 2; h++) {
                for (int q = 0; q < 4; q++) {
                    for (int m = 0; m < 8; m++) {
                        __m512i l = raw[16 * h + 8 * (q & 1) + m];
                        if (q >= 2) l = _mm512_srli_epi16(l, 4);
                        __m512i hb = qh[8 * h + m];
                        if (q) hb = _mm512_srli_epi16(hb, 2 * q);
                        o->w[32 * h + 8 * q + m] = _mm512_or_si512(
                            _mm512_and_si512(l, m4), _mm512_slli_epi16(_mm512_and_si512(hb, m3), 4));
                    }
                }
            }
        }
    }
}

/* T tokens (lanes lo..lo+T of an activation tile) x 16 rows over slab superblocks [s0, s0+n). */
static ALWAYS_INLINE void kq_tile(int q6, int T, const kq_sb *slab, int64_t s0, int n,
                                  const uint8_t *tile, int lo, float *y, int64_t ldy,
                                  __mmask16 mask, int first) {
    const int np = KQ_NP(q6);
    __m512 acc[KQ_T];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
        acc[t] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, y + t * ldy);
    const uint8_t *sa = tile + (size_t)s0 * KQ_SB_ACT(q6);
    for (int i = 0; i < n; i++, sa += KQ_SB_ACT(q6)) {
        const kq_sb *o = &slab[i];
        __m512i isum[KQ_T], osum[KQ_T];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) isum[t] = osum[t] = _mm512_setzero_si512();
        const int ng = q6 ? 16 : 8, per = 64 / ng; /* weight vectors per scale group */
        for (int g = 0; g < ng; g++) {
            __m512i a0[KQ_T], a1[KQ_T];
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) a0[t] = a1[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int m = 0; m < per; m += 2) {
                const __m512i w0 = o->w[per * g + m], w1 = o->w[per * g + m + 1];
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) {
                    const i32u *xw = (const i32u *)(sa + 256 * (lo + t) + 4 * per * g);
                    a0[t] = _mm512_dpbusd_epi32(a0[t], w0, _mm512_set1_epi32(xw[m]));
                    a1[t] = _mm512_dpbusd_epi32(a1[t], w1, _mm512_set1_epi32(xw[m + 1]));
                }
            }
#pragma GCC unroll 4
            for (int t = 0; t < T; t++)
                isum[t] = _mm512_add_epi32(
                    isum[t], _mm512_mullo_epi32(_mm512_add_epi32(a0[t], a1[t]), o->sc[g]));
        }
        const i32u *bp = (const i32u *)(sa + 2048 + 32);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
#pragma GCC unroll 8
            for (int k = 0; k < np; k++)
                osum[t] = _mm512_dpwssd_epi32(osum[t], o->mp[k],
                                              _mm512_set1_epi32(bp[np * (lo + t) + k]));
            float dy;
            memcpy(&dy, sa + 2048 + 4 * (lo + t), 4);
            const __m512 vdy = _mm512_set1_ps(dy);
            if (q6) {
                __m512i tot = _mm512_sub_epi32(isum[t], _mm512_slli_epi32(osum[t], 5));
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(tot), _mm512_mul_ps(o->d, vdy), acc[t]);
            } else {
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(o->d, vdy),
                                         acc[t]);
                acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(osum[t]),
                                          _mm512_mul_ps(o->dmin, vdy), acc[t]);
            }
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ldy, mask, acc[t]);
}

static ALWAYS_INLINE void kq_run(int q6, int64_t n_in, const void *w, size_t wstride,
                                 int64_t n_rows, const void *act, int64_t n_tok, float *y,
                                 int64_t ldy) {
    const int64_t nsb = n_in / 256;
    const size_t tile_bytes = (size_t)nsb * KQ_SB_ACT(q6);
    _Alignas(64) kq_sb slab[KQ_SLAB];
    for (int64_t r0 = 0; r0 < n_rows; r0 += RL_ROWS) {
        const int nr = (int)INF_MIN(RL_ROWS, n_rows - r0);
        const __mmask16 mask = (__mmask16)((1u << nr) - 1);
        const uint8_t *rp[RL_ROWS];
        int32_t idx[RL_ROWS];
        for (int r = 0; r < RL_ROWS; r++) {
            idx[r] = (int32_t)((size_t)INF_MIN(r, nr - 1) * wstride);
            rp[r] = (const uint8_t *)w + (size_t)(r0 * (int64_t)wstride) + (size_t)idx[r];
        }
        const __m512i vidx = _mm512_loadu_si512(idx);
        for (int64_t s0 = 0; s0 < nsb; s0 += KQ_SLAB) {
            const int n = (int)INF_MIN(KQ_SLAB, nsb - s0);
            kq_repack(q6, rp, vidx, s0, n, slab);
            const int first = s0 == 0;
            for (int64_t t = 0; t < n_tok; t += KQ_T) {
                const uint8_t *tile = (const uint8_t *)act + (size_t)(t / RL_T) * tile_bytes;
                const int lo = (int)(t % RL_T);
                float *yt = y + t * ldy + r0;
#define KQ_TILE(TT) kq_tile(q6, TT, slab, s0, n, tile, lo, yt, ldy, mask, first)
                switch (INF_MIN(KQ_T, n_tok - t)) {
                case 1: KQ_TILE(1); break;
                case 2: KQ_TILE(2); break;
                case 3: KQ_TILE(3); break;
                default: KQ_TILE(4); break;
                }
#undef KQ_TILE
            }
        }
    }
}

static void kq_run_q4_k(int64_t n_in, const void *w, size_t wstride, int64_t n_rows,
                        const void *act, int64_t n_tok, float *y, int64_t ldy) {
    kq_run(0, n_in, w, wstride, n_rows, act, n_tok, y, ldy);
}
static void kq_run_q6_k(int64_t n_in, const void *w, size_t wstride, int64_t n_rows,
                        const void *act, int64_t n_tok, float *y, int64_t ldy) {
    kq_run(1, n_in, w, wstride, n_rows, act, n_tok, y, ldy);
}

static const inf__mm_kernel mm_q4_k = {kq_act_size_q4_k, kq_prep_q4_k, kq_run_q4_k,
                                       INT32_MAX / RL_ROWS};
static const inf__mm_kernel mm_q6_k = {kq_act_size_q6_k, kq_prep_q6_k, kq_run_q6_k,
                                       INT32_MAX / RL_ROWS};

/* ==== repacked q4_K weights ("k16") ========================================================= */

/* Layout made once at load time (inf_matmul_repack): rows in groups of 16 (the last group
 * zero-padded), then superblock by superblock, each the row-lane transposition of the 16 rows'
 * 144-byte GGUF blocks: vector j (64 bytes) holds dword j of row r's block in lane r:
 *   j = 0: d | dmin << 16; j = 1..3: the 12 packed scale/min bytes; j = 4..35: the 128 qs bytes.
 * Exactly the GGUF bytes per row, one aligned stream per 16 rows, so the kernel needs only loads
 * where the row-lane kernel above transposes on every call. Activations and the per-output
 * float recurrence are those of the row-lane kernel (kq_prep_q4_k, kq_tile), so results are
 * bitwise identical to matmuls on the unpacked weights. */
#define K16_SB 2304 /* bytes per superblock of 16 rows */
#ifndef K16_PF
#define K16_PF (2 * K16_SB) /* decode prefetch distance */
#endif

/* Scales and mins of a repacked superblock (its first four vectors). */
static ALWAYS_INLINE void k16_scales(const uint8_t *sb, __m512i sc[8], __m512i mp[4], __m512 *d,
                                     __m512 *dmin) {
    const __m512i x[4] = {_mm512_load_si512(sb), _mm512_load_si512(sb + 64),
                          _mm512_load_si512(sb + 128), _mm512_load_si512(sb + 192)};
    kq4_scales(x, sc, mp, d, dmin);
}

/* T tokens (lanes lo..lo+T of an activation tile) x 16 rows over all nsb superblocks. */
static ALWAYS_INLINE void k16_tile(int T, const uint8_t *g, int64_t nsb, const uint8_t *tile,
                                   int lo, float *y, int64_t ldy, __mmask16 mask, int pf) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512 acc[KQ_T];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    const uint8_t *sa = tile;
    for (int64_t s = 0; s < nsb; s++, g += K16_SB, sa += KQ_SB_ACT(0)) {
        if (pf) {
            /* Decode streams the weights from DRAM once: prefetch the next superblock. */
            for (int l = 0; l < K16_SB; l += 64)
                _mm_prefetch((const char *)g + K16_PF + l, _MM_HINT_T0);
        }
        __m512i sc[8], mp[4];
        __m512 d, dmin;
        k16_scales(g, sc, mp, &d, &dmin);
        __m512i isum[KQ_T];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) isum[t] = _mm512_setzero_si512();
        for (int k = 0; k < 4; k++) { /* sub-blocks 2k (low nibbles) and 2k + 1 (high) */
            __m512i lo4[8], hi4[8];
#pragma GCC unroll 8
            for (int m = 0; m < 8; m++) {
                const __m512i raw = _mm512_load_si512(g + 256 + 64 * (8 * k + m));
                lo4[m] = _mm512_and_si512(raw, m4);
                hi4[m] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
            }
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                const int gi = 2 * k + h;
                __m512i a0[KQ_T], a1[KQ_T];
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) a0[t] = a1[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
                for (int m = 0; m < 8; m += 2) {
                    const __m512i w0 = h ? hi4[m] : lo4[m], w1 = h ? hi4[m + 1] : lo4[m + 1];
#pragma GCC unroll 4
                    for (int t = 0; t < T; t++) {
                        const i32u *xw = (const i32u *)(sa + 256 * (lo + t) + 32 * gi);
                        a0[t] = _mm512_dpbusd_epi32(a0[t], w0, _mm512_set1_epi32(xw[m]));
                        a1[t] = _mm512_dpbusd_epi32(a1[t], w1, _mm512_set1_epi32(xw[m + 1]));
                    }
                }
#pragma GCC unroll 4
                for (int t = 0; t < T; t++)
                    isum[t] = _mm512_add_epi32(
                        isum[t], _mm512_mullo_epi32(_mm512_add_epi32(a0[t], a1[t]), sc[gi]));
            }
        }
        const i32u *bp = (const i32u *)(sa + 2048 + 32);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            __m512i osum = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++)
                osum = _mm512_dpwssd_epi32(osum, mp[k], _mm512_set1_epi32(bp[4 * (lo + t) + k]));
            float dy;
            memcpy(&dy, sa + 2048 + 4 * (lo + t), 4);
            const __m512 vdy = _mm512_set1_ps(dy);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(d, vdy), acc[t]);
            acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(osum), _mm512_mul_ps(dmin, vdy), acc[t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ldy, mask, acc[t]);
}

static void k16_run_q4_k(int64_t n_in, const void *w, size_t wstride, int64_t n_rows,
                         const void *act, int64_t n_tok, float *y, int64_t ldy) {
    const int64_t nsb = n_in / 256;
    const size_t tile_bytes = (size_t)nsb * KQ_SB_ACT(0);
    const size_t gstride = wstride * RL_ROWS;
    for (int64_t r0 = 0; r0 < n_rows; r0 += RL_ROWS) {
        const int nr = (int)INF_MIN(RL_ROWS, n_rows - r0);
        const __mmask16 mask = (__mmask16)((1u << nr) - 1);
        const uint8_t *g = (const uint8_t *)w + (size_t)(r0 / RL_ROWS) * gstride;
        for (int64_t t = 0; t < n_tok; t += KQ_T) {
            const uint8_t *tile = (const uint8_t *)act + (size_t)(t / RL_T) * tile_bytes;
            const int lo = (int)(t % RL_T);
            float *yt = y + t * ldy + r0;
#define K16_TILE(TT) k16_tile(TT, g, nsb, tile, lo, yt, ldy, mask, n_tok <= KQ_T)
            switch (INF_MIN(KQ_T, n_tok - t)) {
            case 1: K16_TILE(1); break;
            case 2: K16_TILE(2); break;
            case 3: K16_TILE(3); break;
            default: K16_TILE(4); break;
            }
#undef K16_TILE
        }
    }
}

static const inf__mm_kernel mm_q4_k_k16 = {kq_act_size_q4_k, kq_prep_q4_k, k16_run_q4_k, 0};

static size_t k16_repack_size(int64_t n_in, int64_t n_rows) {
    if (n_in <= 0 || n_in % 256 || n_rows <= 0) return 0;
    size_t groups = (size_t)((n_rows + RL_ROWS - 1) / RL_ROWS), per, total;
    if (inf__mul_overflow((size_t)(n_in / 256), (size_t)K16_SB, &per) ||
        inf__mul_overflow(per, groups, &total))
        return 0;
    return total;
}

static void k16_repack(const void *src, size_t src_stride, int64_t n_in, int64_t n_rows,
                       int64_t g0, int64_t g1, void *dst, size_t *row_bytes) {
    const int64_t nsb = n_in / 256;
    const size_t gbytes = (size_t)nsb * K16_SB;
    *row_bytes = gbytes / RL_ROWS;
    for (int64_t g = g0; g < g1; g++) {
        uint8_t *out = (uint8_t *)dst + (size_t)g * gbytes;
        memset(out, 0, gbytes);
        for (int r = 0; r < RL_ROWS && g * RL_ROWS + r < n_rows; r++) {
            const uint8_t *in = (const uint8_t *)src + (size_t)(g * RL_ROWS + r) * src_stride;
            for (int64_t s = 0; s < nsb; s++) {
                const uint8_t *blk = in + (size_t)s * sizeof(inf_block_q4_k);
                uint8_t *o = out + (size_t)s * K16_SB + 4 * r;
                for (int j = 0; j < 36; j++) memcpy(o + 64 * j, blk + 4 * j, 4);
            }
        }
    }
}

/* ==== pair kernel for f16 / f32 weights ===================================================== */

#define PR_R 4 /* rows per tile */
#define PR_T 4 /* tokens per tile */

/* Prepared activation row: n_in floats (rounded through f16 for f16 weights, as the reference
 * vec_dot_type says), zero-padded to a multiple of 16. */
static size_t pr_row(int64_t n_in) { return (size_t)((n_in + 15) & ~(int64_t)15) * 4; }

static size_t pr_act_size(int64_t n_in, int64_t n_tok) {
    size_t total;
    return inf__mul_overflow(pr_row(n_in), (size_t)n_tok, &total) ? 0 : total;
}

static void pr_prep_f16(const float *restrict x, void *restrict act, int64_t n_in, int64_t t) {
    float *o = (float *)((uint8_t *)act + pr_row(n_in) * (size_t)t);
    int64_t i = 0;
    for (; i + 16 <= n_in; i += 16) {
        __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm512_storeu_ps(o + i, _mm512_cvtph_ps(h));
    }
    for (; i < n_in; i++) o[i] = t_fp16(t_to_fp16(x[i]));
    for (; i & 15; i++) o[i] = 0.0f;
}

static void pr_prep_f32(const float *restrict x, void *restrict act, int64_t n_in, int64_t t) {
    float *o = (float *)((uint8_t *)act + pr_row(n_in) * (size_t)t);
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
                                 int64_t n_rows, const void *act, int64_t n_tok, float *y,
                                 int64_t ldy) {
    const size_t astride = pr_row(n_in);
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
                       const void *act, int64_t n_tok, float *y, int64_t ldy) {
    pr_run(1, n_in, w, wstride, n_rows, act, n_tok, y, ldy);
}
static void pr_run_f32(int64_t n_in, const void *w, size_t wstride, int64_t n_rows,
                       const void *act, int64_t n_tok, float *y, int64_t ldy) {
    pr_run(0, n_in, w, wstride, n_rows, act, n_tok, y, ldy);
}

static const inf__mm_kernel mm_f16 = {pr_act_size, pr_prep_f16, pr_run_f16, 0};
static const inf__mm_kernel mm_f32 = {pr_act_size, pr_prep_f32, pr_run_f32, 0};

/* ==== entry points ========================================================================== */

void inf__avx512_override(inf_type_traits *tab) {
    pthread_once(&rl_src_once, rl_src_init);
    avx512_install(tab);
}

const inf__mm_kernel *inf__avx512_mm_kernel(int wtype) {
    pthread_once(&rl_src_once, rl_src_init);
    switch (wtype) {
    case INF_TYPE_Q4_0: return &mm_q4_0;
    case INF_TYPE_Q8_0: return &mm_q8_0;
    case INF_TYPE_F16: return &mm_f16;
    case INF_TYPE_F32: return &mm_f32;
    case INF_TYPE_Q4_K: return &mm_q4_k;
    case INF_TYPE_Q6_K: return &mm_q6_k;
    case INF__TYPE_Q4_0_R16: return &mm_q4_0_r16;
    case INF__TYPE_Q8_0_R16: return &mm_q8_0_r16;
    case INF__TYPE_Q4_K_R16: return &mm_q4_k_k16;
    }
    return NULL;
}
