/*
 * kernels.h — kernel dispatch, compute thread pool, matmul and the transformer ops.
 *
 * Dispatch is chosen once by inf_kernels_init() from cpuid, or forced with INFERNEO_ISA=ref|avx2|
 * avx512. Every SIMD kernel has a scalar oracle in ref/ and a test against it.
 *
 * Determinism contract (the engine relies on it): the value computed for one output element of
 * inf_matmul depends only on the weight row and that token's activations — never on how many
 * tokens are in the batch, on tiling, or on the thread count. Same for the ops.
 */
#ifndef INF_KERNELS_H
#define INF_KERNELS_H

#include "kernels/types.h"

enum inf_isa { INF_ISA_REF = 0, INF_ISA_AVX2 = 1, INF_ISA_AVX512 = 2 };

/* Detects the CPU (or reads INFERNEO_ISA) and fills the trait table. Idempotent, thread-safe.
 * Returns INF_EUNSUPPORTED when INFERNEO_ISA asks for an ISA the CPU lacks / an unknown name. */
int inf_kernels_init(void);
int inf_kernels_isa(void);
const char *inf_isa_name(int isa);
/* Traits table of the scalar reference kernels only (for tests). */
const inf_type_traits *inf_type_traits_ref(int type);

/* ---- compute pool ---- */
typedef struct inf_pool inf_pool;
/* n_threads total including the caller (<= 0: cores). Workers persist, spin briefly then sleep. */
int inf_pool_create(int n_threads, inf_pool **out);
void inf_pool_destroy(inf_pool *p);
int inf_pool_size(const inf_pool *p);
/* Runs fn(ctx, ith, nth) on every thread (the caller is ith 0) and returns when all are done. */
typedef void (*inf_pool_fn)(void *ctx, int ith, int nth);
void inf_pool_run(inf_pool *p, inf_pool_fn fn, void *ctx);

/* ---- matmul ---- */
/* Y[t][o] = sum_i W[o][i] * X[t][i] for t < n_tok, o < W->ne[1]; W->ne[0] = n_in.
 * X: [n_tok][n_in] f32 contiguous; Y: [n_tok][ldy] f32 (ldy >= W->ne[1]).
 * Activations are quantized once to the weight type's vec_dot_type into scratch, which must hold
 * inf_matmul_scratch_size(W->type, n_in, n_tok) bytes (64-byte aligned). */
size_t inf_matmul_scratch_size(int wtype, int64_t n_in, int64_t n_tok);
void inf_matmul(inf_pool *pool, const inf_tensor *W, const float *X, int64_t n_tok, float *Y,
                int64_t ldy, void *scratch);

/* Optional, at load time: re-lays out a 2-D weight tensor for this CPU's matmul kernel (q4_0,
 * q8_0 and q4_K with AVX-512: 16 rows interleaved, q4_0 and q8_0 with AVX2: 8 rows; one memory
 * stream per row group, no per-call transposition — faster decode and prefill). On success *out is a view of
 * the new copy in *mem (returns new memory: free() it after the last matmul; W's data is no
 * longer needed). When no repacked layout applies, *out = *W and *mem = NULL. inf_matmul on
 * *out gives results bitwise identical to W. out->type is then a kernel-private id
 * (inf_type_traits_get: NULL); pass W->type to inf_matmul_scratch_size. Returns 0, INF_ENOMEM
 * or INF_EINVAL. */
int inf_matmul_repack(inf_pool *pool, const inf_tensor *W, inf_tensor *out, void **mem);

/* Measures the machine's memory read bandwidth in GB/s with the pool's threads (~0.3 s, allocates
 * and frees a 512 MiB buffer). Returns 0 when the buffer cannot be allocated. */
double inf_kernels_measure_read_bw(inf_pool *pool);

#endif
