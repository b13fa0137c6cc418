/*
 * ops.h — the small per-token transformer ops: RMSNorm, RoPE, softmax, SiLU, attention over KV
 * slots. Scalar C written so the compiler can vectorize it; every result depends only on the
 * token's own inputs (fixed summation order), never on the batch or the thread count.
 */
#ifndef INF_OPS_H
#define INF_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/types.h"

/* y[i] = x[i] / rms(x) * w[i] (w may be NULL: no gain). x and y may alias. */
void inf_op_rmsnorm(const float *x, const float *w, float *y, int64_t n, float eps);

/* RoPE angles for one position: cs[2*i] = cos(theta_i), cs[2*i+1] = sin(theta_i) for
 * i < n_rot/2, theta_i = freq_scale * pos * base^(-2i/n_rot) (ggml's recurrence). */
void inf_op_rope_cache(float *cs, int64_t n_rot, int64_t pos, float base, float freq_scale);
/* The same with per-pair frequency divisors ff[n_rot/2] (LongRoPE factors; NULL: none) and a
 * magnitude mscale multiplying cos and sin: theta_i = freq_scale * (pos * base^(-2i/n_rot) /
 * ff[i]), cs = (cos theta_i * mscale, sin theta_i * mscale), as ggml computes them. */
void inf_op_rope_cache_ext(float *cs, int64_t n_rot, int64_t pos, float base, float freq_scale,
                           const float *ff, float mscale);
/* Rotates the first n_rot dims of each of n_head heads of head_dim floats in x, in place.
 * neox = 0: adjacent pairs (x[2i], x[2i+1]); neox = 1: halves (x[i], x[i + n_rot/2]). */
void inf_op_rope(float *x, int64_t n_head, int64_t head_dim, int64_t n_rot, const float *cs,
                 int neox);

/* In place: x = softmax(x). */
void inf_op_softmax(float *x, int64_t n);
/* In place: g[i] = silu(g[i]) * u[i]. */
void inf_op_silu_mul(float *g, const float *u, int64_t n);
/* In place: g[i] = gelu(g[i]) * u[i], GELU's tanh form 0.5 x (1 + tanh(sqrt(2/pi) (x +
 * 0.044715 x^3))) with ggml's binary16 rounding of its input and result (its table). */
void inf_op_gelu_mul(float *g, const float *u, int64_t n);
/* In place soft-capping: x[i] = cap * tanh(x[i] / cap) (cap > 0). */
void inf_op_softcap(float *x, int64_t n, float cap);
/* x[i] = x[i] rounded to the nearest binary16 value (round-to-nearest-even; kept as float).
 * Used so K, V and Q carry the precision of llama.cpp's default f16 KV cache. */
void inf_op_round_f16(float *x, int64_t n);
/* y[i] += x[i]. */
void inf_op_add(float *y, const float *x, int64_t n);

/* Attention numerics (fixed, so results never depend on batching or threads):
 * scores_j = scale * q.k_j (16-lane dot, fixed tree); p = round_f16(softmax(scores)) as
 * llama.cpp's f16 KV path does (callers round q, k and v with inf_op_round_f16 for the same
 * reason); out = sum over chunks of INF_ATTN_CHUNK positions, in order, of the chunk's
 * sum_j p_j v_j (each summed over j in order). The phase functions below compute exactly the same
 * values as inf_op_attention_group, so a caller may split a long attention across threads. */
#define INF_ATTN_CHUNK 256

/* Attention of n_heads query heads sharing one KV head (GQA) over n_pos cached positions.
 * q, out: [n_heads][head_dim]. Position j's key is k + slots[j] * stride (head_dim floats), its
 * value likewise in v. scratch: n_heads * (n_pos + head_dim) floats. */
void inf_op_attention_group(const float *q, int64_t n_heads, const float *k, const float *v,
                            size_t stride, const int32_t *slots, int64_t n_pos, int64_t head_dim,
                            float scale, float *scratch, float *out);
/* The same for one head. */
void inf_op_attention(const float *q, const float *k, const float *v, size_t stride,
                      const int32_t *slots, int64_t n_pos, int64_t head_dim, float scale,
                      float *scratch, float *out);

/* Phases of the f16 attention below (same values as inf_op_attention_group_f16): scores of a
 * block of keys (inf_op_attn_scores_f16); a head's whole score row -> its probabilities, in
 * place (softcap > 0: scores soft-capped first, as inf_op_softcap); */
void inf_op_attn_softmax(float *row, int64_t n, float softcap);
/* then one chunk's part[h][d] = sum_{j < n} p[h * ld + j] * v_{slots[j]}[d] (n <= INF_ATTN_CHUNK,
 * p and slots pointing at the chunk's first position, inf_op_attn_pv_f16); out is the in-order
 * sum of the parts. */

/* ---- f16 KV cache ----
 * The same attention over K and V rows stored as IEEE binary16 (the KV cache's format; stride
 * still counts elements). Rows are converted exactly to float, INF_ATTN_BLOCK positions at a
 * time, into the conv scratch, and the block is then evaluated by the float code above: every
 * result is bit-identical to the float function given the rows' float values. */
/* Positions per block: the block's K and V rows stay in L1 across heads. */
#define INF_ATTN_BLOCK 64
/* Floats of conversion scratch (conv) the f16 functions need. */
#define INF_ATTN_CONV_FLOATS(head_dim) ((size_t)INF_ATTN_BLOCK * (size_t)(head_dim))

/* scratch: n_heads * (n_pos + head_dim) + INF_ATTN_CONV_FLOATS(head_dim) floats. softcap > 0:
 * each score s becomes softcap * tanh(s / softcap) before the softmax (gemma2); 0: none. */
void inf_op_attention_group_f16(const float *q, int64_t n_heads, const inf_half *k,
                                const inf_half *v, size_t stride, const int32_t *slots,
                                int64_t n_pos, int64_t head_dim, float scale, float softcap,
                                float *scratch, float *out);
void inf_op_attn_scores_f16(const float *q, int64_t n_heads, const inf_half *k, size_t stride,
                            const int32_t *slots, int64_t n, int64_t head_dim, float scale,
                            float *scores, int64_t ld, float *conv);
void inf_op_attn_pv_f16(const float *p, int64_t n_heads, int64_t ld, const inf_half *v,
                        size_t stride, const int32_t *slots, int64_t n, int64_t head_dim,
                        float *part, float *conv);

/* y[i] = x[i] rounded to binary16 (round-to-nearest-even, the values of inf_op_round_f16). */
void inf_op_f32_to_f16(const float *x, inf_half *y, int64_t n);
/* dst[j * head_dim + d] = src[slots[j] * stride + d] as float (exact), j < n, d < head_dim. */
void inf_op_f16_gather(const inf_half *src, size_t stride, const int32_t *slots, int64_t n,
                       int64_t head_dim, float *dst);

/* Internal: the F16C versions of the two conversions (src/kernels/x86/attn_avx2.c), used by
 * ops.c when the dispatched ISA (inf_kernels_isa) is avx2 or better. Same results. */
void inf__f32_to_f16_avx2(const float *x, inf_half *y, int64_t n);
void inf__f16_gather_avx2(const inf_half *src, size_t stride, const int32_t *slots, int64_t n,
                          int64_t head_dim, float *dst);
/* The gather with 512-bit conversions (src/kernels/x86/attn_avx512.c), dispatched ISA avx512. */
void inf__f16_gather_avx512(const inf_half *src, size_t stride, const int32_t *slots, int64_t n,
                            int64_t head_dim, float *dst);

#endif
