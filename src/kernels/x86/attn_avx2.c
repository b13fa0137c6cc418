/*
 * attn_avx2.c — F16C conversions for the f16 KV cache (see ops.h: inf_op_f32_to_f16,
 * inf_op_f16_gather). Compiled with -mavx2 -mfma -mf16c; ops.c calls in only when the dispatched
 * ISA is avx2 or better (kernels.c requires F16C for that).
 *
 * Invariant: results equal the scalar conversions exactly — binary16 -> float is exact, and
 * float -> binary16 rounds to nearest even (as inf_fp32_to_fp16 and inf_op_round_f16 do). No
 * floating-point arithmetic happens here, so FMA contraction cannot change anything.
 * Threads: pure functions of their arguments.
 */
#include "kernels/ops.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define RNE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

void inf__f32_to_f16_avx2(const float *x, inf_half *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), RNE));
    for (; i < n; i++)
        y[i] = (inf_half)_cvtss_sh(x[i], RNE);
}

void inf__f16_gather_avx2(const inf_half *src, size_t stride, const int32_t *slots, int64_t n,
                          int64_t head_dim, float *dst) {
    for (int64_t j = 0; j < n; j++) {
        const inf_half *row = src + (size_t)slots[j] * stride;
        float *o = dst + j * head_dim;
        int64_t d = 0;
        for (; d + 32 <= head_dim; d += 32) {
            __m256i h0 = _mm256_loadu_si256((const __m256i *)(row + d));
            __m256i h1 = _mm256_loadu_si256((const __m256i *)(row + d + 16));
            _mm256_storeu_ps(o + d, _mm256_cvtph_ps(_mm256_castsi256_si128(h0)));
            _mm256_storeu_ps(o + d + 8, _mm256_cvtph_ps(_mm256_extracti128_si256(h0, 1)));
            _mm256_storeu_ps(o + d + 16, _mm256_cvtph_ps(_mm256_castsi256_si128(h1)));
            _mm256_storeu_ps(o + d + 24, _mm256_cvtph_ps(_mm256_extracti128_si256(h1, 1)));
        }
        for (; d + 8 <= head_dim; d += 8)
            _mm256_storeu_ps(o + d, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + d))));
        for (; d < head_dim; d++)
            o[d] = _cvtsh_ss(row[d]);
    }
}

#endif
