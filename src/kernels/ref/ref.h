/*
 * ref.h — scalar reference kernels (the oracle every SIMD kernel is tested against).
 *
 * Internal to src/kernels and the tests. Each function follows the signatures of types.h:
 *   to_float:   (const void *x, float *y, int64_t n)      dequantize a row of n elements
 *   from_float: (const float *x, void *y, int64_t n)      quantize a row of n elements
 *   vec_dot:    (int64_t n, float *s, const void *x, const void *y)
 * n must be a multiple of the type's block size (callers check; the kernels assume it).
 * Numerics follow ggml's reference implementation: the same rounding in the quantizers, integer
 * sums per block scaled by d_x * d_y in the dot products.
 */
#ifndef INF_KERNELS_REF_H
#define INF_KERNELS_REF_H

#include "kernels/types.h"

/* ggml's nearest_int: round half to even through the 1.5 * 2^23 trick (|x| < 2^22). */
static inline int inf__nearest_int(float fval) {
    float val = fval + 12582912.f;
    int32_t i;
    __builtin_memcpy(&i, &val, sizeof(i));
    return (i & 0x007fffff) - 0x00400000;
}

#define INF__REF_DECL(t)                                                                           \
    void inf__ref_to_float_##t(const void *restrict x, float *restrict y, int64_t n);              \
    void inf__ref_from_float_##t(const float *restrict x, void *restrict y, int64_t n);            \
    void inf__ref_vec_dot_##t(int64_t n, float *restrict s, const void *restrict x,                \
                              const void *restrict y);

INF__REF_DECL(f32)
INF__REF_DECL(f16)
INF__REF_DECL(bf16)
INF__REF_DECL(q4_0)
INF__REF_DECL(q4_1)
INF__REF_DECL(q5_0)
INF__REF_DECL(q5_1)
INF__REF_DECL(q8_0)
INF__REF_DECL(q8_1)
INF__REF_DECL(q4_k)
INF__REF_DECL(q5_k)
INF__REF_DECL(q6_k)
INF__REF_DECL(q8_k)
INF__REF_DECL(q2_k)
INF__REF_DECL(q3_k)
INF__REF_DECL(iq4_nl)
INF__REF_DECL(iq4_xs)

#undef INF__REF_DECL

/* The 16 levels of iq4_nl / iq4_xs (ggml's kvalues_iq4nl), ascending. */
extern const int8_t inf__iq4nl_values[16];

#endif
