/*
 * types.h — tensor types, quant block layouts bit-identical to GGUF, and the type-trait table.
 *
 * Type ids are GGUF's (ggml's). Each block struct has a _Static_assert on its size. Half floats
 * are stored as uint16_t (IEEE binary16); bf16 as uint16_t (upper half of a float32).
 */
#ifndef INF_TYPES_H
#define INF_TYPES_H

#include "base/base.h"

enum inf_type {
    INF_TYPE_F32 = 0,
    INF_TYPE_F16 = 1,
    INF_TYPE_Q4_0 = 2,
    INF_TYPE_Q4_1 = 3,
    INF_TYPE_Q5_0 = 6,
    INF_TYPE_Q5_1 = 7,
    INF_TYPE_Q8_0 = 8,
    INF_TYPE_Q8_1 = 9,
    INF_TYPE_Q2_K = 10,
    INF_TYPE_Q3_K = 11,
    INF_TYPE_Q4_K = 12,
    INF_TYPE_Q5_K = 13,
    INF_TYPE_Q6_K = 14,
    INF_TYPE_Q8_K = 15,
    INF_TYPE_IQ4_NL = 20,
    INF_TYPE_IQ4_XS = 23,
    INF_TYPE_I8 = 24,
    INF_TYPE_I16 = 25,
    INF_TYPE_I32 = 26,
    INF_TYPE_I64 = 27,
    INF_TYPE_F64 = 28,
    INF_TYPE_BF16 = 30,
    INF_TYPE_COUNT = 40 /* upper bound of ids we know of (table size) */
};

#define INF_QK4_0 32
#define INF_QK4_1 32
#define INF_QK5_0 32
#define INF_QK5_1 32
#define INF_QK8_0 32
#define INF_QK8_1 32
#define INF_QK4_NL 32
#define INF_QK_K 256
#define INF_K_SCALE_SIZE 12

typedef uint16_t inf_half;

typedef struct { inf_half d; uint8_t qs[INF_QK4_0 / 2]; } inf_block_q4_0;
_Static_assert(sizeof(inf_block_q4_0) == 18, "q4_0 block");
typedef struct { inf_half d, m; uint8_t qs[INF_QK4_1 / 2]; } inf_block_q4_1;
_Static_assert(sizeof(inf_block_q4_1) == 20, "q4_1 block");
typedef struct { inf_half d; uint8_t qh[4]; uint8_t qs[INF_QK5_0 / 2]; } inf_block_q5_0;
_Static_assert(sizeof(inf_block_q5_0) == 22, "q5_0 block");
typedef struct { inf_half d, m; uint8_t qh[4]; uint8_t qs[INF_QK5_1 / 2]; } inf_block_q5_1;
_Static_assert(sizeof(inf_block_q5_1) == 24, "q5_1 block");
typedef struct { inf_half d; int8_t qs[INF_QK8_0]; } inf_block_q8_0;
_Static_assert(sizeof(inf_block_q8_0) == 34, "q8_0 block");
typedef struct { inf_half d, s; int8_t qs[INF_QK8_1]; } inf_block_q8_1; /* s = d * sum(qs) */
_Static_assert(sizeof(inf_block_q8_1) == 36, "q8_1 block");
typedef struct {
    inf_half d, dmin;
    uint8_t scales[INF_K_SCALE_SIZE]; /* 8 x (6-bit scale, 6-bit min) packed */
    uint8_t qs[INF_QK_K / 2];
} inf_block_q4_k;
_Static_assert(sizeof(inf_block_q4_k) == 144, "q4_k block");
typedef struct {
    inf_half d, dmin;
    uint8_t scales[INF_K_SCALE_SIZE];
    uint8_t qh[INF_QK_K / 8];
    uint8_t qs[INF_QK_K / 2];
} inf_block_q5_k;
_Static_assert(sizeof(inf_block_q5_k) == 176, "q5_k block");
typedef struct {
    uint8_t ql[INF_QK_K / 2];
    uint8_t qh[INF_QK_K / 4];
    int8_t scales[INF_QK_K / 16];
    inf_half d;
} inf_block_q6_k;
_Static_assert(sizeof(inf_block_q6_k) == 210, "q6_k block");
/* q2_K: 16 sub-blocks of 16; scales[j] = 4-bit scale (low) | 4-bit min (high); value =
 * d * sc * q - dmin * m, q in 0..3. Per 128 elements, 32 qs bytes: element 32k + l (k < 4) sits
 * in bits 2k..2k+1 of qs[l]. */
typedef struct {
    uint8_t scales[INF_QK_K / 16];
    uint8_t qs[INF_QK_K / 4];
    inf_half d, dmin;
} inf_block_q2_k;
_Static_assert(sizeof(inf_block_q2_k) == 84, "q2_k block");
/* q3_K: 16 sub-blocks of 16, 6-bit scales biased by 32 (12 bytes: low nibbles in bytes 0..7,
 * 2-bit tops in bytes 8..11); value = d * (sc - 32) * (q - 4), q = 2 low bits (as q2_K) | the
 * hmask bit (element e: bit e / 32 of hmask[e % 32]) << 2. */
typedef struct {
    uint8_t hmask[INF_QK_K / 8];
    uint8_t qs[INF_QK_K / 4];
    uint8_t scales[12];
    inf_half d;
} inf_block_q3_k;
_Static_assert(sizeof(inf_block_q3_k) == 110, "q3_k block");
/* iq4_nl: 32 elements, value = d * inf__iq4nl_values[nibble] (a fixed non-linear table); nibbles
 * as q4_0 (element l low nibble of qs[l], element l + 16 the high one). */
typedef struct { inf_half d; uint8_t qs[INF_QK4_NL / 2]; } inf_block_iq4_nl;
_Static_assert(sizeof(inf_block_iq4_nl) == 18, "iq4_nl block");
/* iq4_xs: 8 sub-blocks of 32 laid out like iq4_nl blocks, each with a 6-bit scale biased by 32
 * (low nibble in scales_l[j / 2] at 4 * (j % 2), top 2 bits at 2j of scales_h). */
typedef struct {
    inf_half d;
    uint16_t scales_h;
    uint8_t scales_l[INF_QK_K / 64];
    uint8_t qs[INF_QK_K / 2];
} inf_block_iq4_xs;
_Static_assert(sizeof(inf_block_iq4_xs) == 136, "iq4_xs block");
typedef struct {
    float d;
    int8_t qs[INF_QK_K];
    int16_t bsums[INF_QK_K / 16]; /* sum of each group of 16 qs */
} inf_block_q8_k;
_Static_assert(sizeof(inf_block_q8_k) == 292, "q8_k block");

/* Row conversion and dot product signatures. n is the element count (multiple of blck_size). */
typedef void (*inf_to_float_fn)(const void *restrict x, float *restrict y, int64_t n);
typedef void (*inf_from_float_fn)(const float *restrict x, void *restrict y, int64_t n);
/* *s = dot(x, y): x is a row of this type, y a row of vec_dot_type. */
typedef void (*inf_vec_dot_fn)(int64_t n, float *restrict s, const void *restrict x,
                               const void *restrict y);

typedef struct inf_type_traits {
    const char *name;     /* "q4_0" */
    int64_t blck_size;    /* elements per block */
    size_t type_size;     /* bytes per block */
    bool supported;       /* we can load and compute with it */
    inf_to_float_fn to_float;
    inf_from_float_fn from_float; /* only for types used as activations / by synth */
    inf_vec_dot_fn vec_dot;       /* dispatched (SIMD when available) */
    int vec_dot_type;             /* type the activations are quantized to for vec_dot */
} inf_type_traits;

/* Traits for a type id, or NULL when unknown/unsupported. Valid after inf_kernels_init(). */
const inf_type_traits *inf_type_traits_get(int type);
/* Bytes of a row of ne0 elements; 0 when ne0 is not a multiple of the block size or unknown. */
size_t inf_type_row_size(int type, int64_t ne0);

/* Half/bfloat conversions (scalar, exact IEEE round-to-nearest-even). */
float inf_fp16_to_fp32(inf_half h);
inf_half inf_fp32_to_fp16(float f);
float inf_bf16_to_fp32(uint16_t h);
uint16_t inf_fp32_to_bf16(float f);

/* A tensor view: weights in the mapping, or scratch. ne[0] innermost, nb[] byte strides. */
typedef struct inf_tensor {
    int type;
    int64_t ne[4]; /* elements per dim */
    size_t nb[4];  /* byte stride per dim; nb[1] = row size */
    const void *data;
    const char *name;
} inf_tensor;

#endif
