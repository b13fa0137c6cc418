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
    /* Bytes of one prepared activation row of n_in floats (n_in a multiple of the block size). */
    size_t (*act_size)(int64_t n_in);
    /* Prepares (quantizes / converts) one activation row into out (64-byte aligned). */
    void (*act_prep)(const float *restrict x, void *restrict out, int64_t n_in);
    /* Y[t * ldy + o] = dot(W row o, X row t) for o < n_rows, t < n_tok.
     * w: row 0 of the weights, wstride bytes between rows; act: prepared row 0, astride bytes. */
    void (*run)(int64_t n_in, const void *w, size_t wstride, int64_t n_rows, const void *act,
                size_t astride, int64_t n_tok, float *y, int64_t ldy);
    /* Largest row stride run() supports (gathers use 32-bit offsets); 0 = any. */
    size_t max_wstride;
} inf__mm_kernel;

void inf__avx2_override(inf_type_traits *tab);
const inf__mm_kernel *inf__avx2_mm_kernel(int wtype);

void inf__avx512_override(inf_type_traits *tab);
const inf__mm_kernel *inf__avx512_mm_kernel(int wtype);

/* The dispatched matmul kernel for a weight type, or NULL (use traits->vec_dot). kernels.c. */
const inf__mm_kernel *inf__kernels_mm(int wtype);

#endif
