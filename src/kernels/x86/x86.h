/*
 * x86.h — internal interface between the dispatcher/matmul driver and the x86 SIMD files.
 *
 * Each ISA file (*avx2*.c, *avx512*.c, compiled with its own -m flags) exports:
 *   - an override function that replaces entries of a trait table (a copy of the ref table)
 *     with that ISA's kernels;
 *   - a matmul-kernel lookup: for weight types with a tiled GEMM/GEMV kernel, a description of
 *     how activations are prepared and how a block of outputs is computed.
 * Callers only call into an ISA file after checking cpuid (kernels.c does).
 */
#ifndef INF_KERNELS_X86_H
#define INF_KERNELS_X86_H

#include "kernels/types.h"

/* A tiled matmul kernel for one weight type.
 *
 * Determinism: run() must compute each Y[t][o] with the same sequence of floating-point
 * operations whatever n_rows / n_tok / the position of (o, t) inside a tile, so the result depends
 * only on the weight row and the token's activation row. */
typedef struct inf__mm_kernel {
    /* Bytes of prepared activations for n_tok rows of n_in floats (n_in a multiple of the block
     * size); 0 when that overflows. */
    size_t (*act_size)(int64_t n_in, int64_t n_tok);
    /* Prepares (quantizes / converts) token t's row x into the activation buffer act (64-byte
     * aligned). Tokens are independent: threads may prepare different t concurrently. */
    void (*act_prep)(const float *restrict x, void *restrict act, int64_t n_in, int64_t t);
    /* Y[t * ldy + o] = dot(W row o, token t) for o < n_rows, t < n_tok.
     * w: row 0 of the weights, wstride bytes between rows. */
    void (*run)(int64_t n_in, const void *w, size_t wstride, int64_t n_rows, const void *act,
                int64_t n_tok, float *y, int64_t ldy);
    /* Largest row stride run() supports (gathers use 32-bit offsets); 0 = any. */
    size_t max_wstride;
} inf__mm_kernel;

void inf__avx2_override(inf_type_traits *tab);
const inf__mm_kernel *inf__avx2_mm_kernel(int wtype);

void inf__avx512_override(inf_type_traits *tab);
const inf__mm_kernel *inf__avx512_mm_kernel(int wtype);

/* Repacked weight layouts (see quants_avx512.c): kernel-private type ids past the GGUF range,
 * made by inf_matmul_repack. */
#define INF__TYPE_Q4_0_R16 (INF_TYPE_COUNT + 0)
#define INF__TYPE_Q8_0_R16 (INF_TYPE_COUNT + 1)
#define INF__TYPE_Q4_K_R16 (INF_TYPE_COUNT + 4) /* q4_K, 16 rows per superblock (avx512) */
/* Bytes of the repacked form of n_rows rows of type (q4_0/q8_0/q4_K), 0 when not repackable. */
size_t inf__avx512_repack_size(int type, int64_t n_in, int64_t n_rows);
/* Repacks row groups [g0, g1) (16 rows each) of src into dst; *row_bytes = the new nb[1]. */
void inf__avx512_repack(int type, const void *src, size_t src_stride, int64_t n_in,
                        int64_t n_rows, int64_t g0, int64_t g1, void *dst, size_t *row_bytes);

/* AVX2 repacked layout (see quants_avx2.c): 8 rows interleaved per block, same bytes per row.
 * Same contract as the AVX-512 pair above, with groups of 8 rows. */
#define INF__TYPE_Q4_0_R8 (INF_TYPE_COUNT + 2)
#define INF__TYPE_Q8_0_R8 (INF_TYPE_COUNT + 3)
size_t inf__avx2_repack_size(int type, int64_t n_in, int64_t n_rows);
void inf__avx2_repack(int type, const void *src, size_t src_stride, int64_t n_in, int64_t n_rows,
                      int64_t g0, int64_t g1, void *dst, size_t *row_bytes);

/* The dispatched matmul kernel for a weight type, or NULL (use traits->vec_dot). kernels.c. */
const inf__mm_kernel *inf__kernels_mm(int wtype);

#endif
