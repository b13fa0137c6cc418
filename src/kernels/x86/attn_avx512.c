/*
 * attn_avx512.c — the f16 KV row gather of attn_avx2.c with 512-bit conversions (half the
 * instructions). Compiled with the avx512 flags; ops.c calls in only when the dispatched ISA is
 * avx512. Exact conversions only (no float arithmetic), so results equal the scalar gather.
 * Threads: pure function of its arguments.
 */
#include "kernels/ops.h"

#if defined(__x86_64__)
#include <immintrin.h>

void inf__f16_gather_avx512(const inf_half *src, size_t stride, const int32_t *slots, int64_t n,
                            int64_t head_dim, float *dst) {
    for (int64_t j = 0; j < n; j++) {
        const inf_half *row = src + (size_t)slots[j] * stride;
        float *o = dst + j * head_dim;
        int64_t d = 0;
        for (; d + 32 <= head_dim; d += 32) {
            __m512i h = _mm512_loadu_si512((const void *)(row + d));
            _mm512_storeu_ps(o + d, _mm512_cvtph_ps(_mm512_castsi512_si256(h)));
            _mm512_storeu_ps(o + d + 16, _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1)));
        }
        for (; d + 16 <= head_dim; d += 16)
            _mm512_storeu_ps(o + d,
                             _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + d))));
        for (; d < head_dim; d++)
            o[d] = _cvtsh_ss(row[d]);
    }
}

#endif
