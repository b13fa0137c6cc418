/*
 * quants_avx2.c — AVX2/FMA/F16C kernels: the 256-bit vec_dot set and activation quantizers from
 * dot256_tmpl.h with maddubs/madd integer dots. No tiled matmul kernel: inf_matmul falls back to
 * one vec_dot per output, which is deterministic by construction.
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

void inf__avx2_override(inf_type_traits *tab) { avx2_install(tab); }

const inf__mm_kernel *inf__avx2_mm_kernel(int wtype) {
    (void)wtype;
    return NULL;
}
