/*
 * types.c — tensor type traits: half/bfloat conversions, the reference trait table, row sizes
 * and type names.
 *
 * The table maps every GGUF type id we know to its block geometry; compute types carry the
 * scalar kernels from ref/. inf_kernels_init() (kernels.c) copies this table and overrides
 * entries with SIMD versions. Known-but-unsupported ids (integer types) keep their geometry so
 * row sizes still work, with supported = false and no functions.
 *
 * Threads: everything here is pure or reads constant data; safe from any thread.
 */
#include "kernels/kernels.h"
#include "kernels/ref/ref.h"

#include <string.h>

/* ---- half and bfloat ---------------------------------------------------------------------- */

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

float inf_fp16_to_fp32(inf_half h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (mant << 13)); /* inf / nan */
    if (exp != 0) return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
    if (mant == 0) return bits_f32(sign);
    /* Subnormal half: normalize into a float32 normal. value = mant * 2^-24. */
    int e = -14;
    while (!(mant & 0x400)) {
        mant <<= 1;
        e--;
    }
    mant &= 0x3ff;
    return bits_f32(sign | ((uint32_t)(e + 127) << 23) | (mant << 13));
}

inf_half inf_fp32_to_fp16(float f) {
    uint32_t u = f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) { /* nan: keep the top payload bits, force quiet */
        return (inf_half)(sign | 0x7e00 | ((a >> 13) & 0x3ff));
    }
    if (a >= 0x477ff000u) return (inf_half)(sign | 0x7c00); /* >= 65520 rounds to inf */
    if (a >= 0x38800000u) {                                 /* normal half */
        uint32_t odd = (a >> 13) & 1;
        a += 0xc8000000u + 0xfffu + odd; /* rebias exponent (-112 << 23) and round to even */
        return (inf_half)(sign | (a >> 13));
    }
    /* Subnormal half (or zero): value / 2^-24 rounded to nearest even. */
    uint32_t e = a >> 23;
    if (e < 102) return (inf_half)sign; /* below 2^-25: rounds to zero */
    uint32_t m = (a & 0x7fffffu) | 0x800000u;
    uint32_t s = 126 - e; /* 14..24 */
    uint32_t r = m >> s;
    uint32_t rem = m & ((1u << s) - 1);
    uint32_t half = 1u << (s - 1);
    if (rem > half || (rem == half && (r & 1))) r++;
    return (inf_half)(sign | r);
}

float inf_bf16_to_fp32(uint16_t h) {
    return bits_f32((uint32_t)h << 16);
}

uint16_t inf_fp32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64); /* quiet nan */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

/* ---- trait table -------------------------------------------------------------------------- */

#define INF__COMPUTE(id, nm, bs, ts, fn, vdt)                                                      \
    [id] = {.name = nm,                                                                            \
            .blck_size = bs,                                                                       \
            .type_size = ts,                                                                       \
            .supported = true,                                                                     \
            .to_float = inf__ref_to_float_##fn,                                                    \
            .from_float = inf__ref_from_float_##fn,                                                \
            .vec_dot = inf__ref_vec_dot_##fn,                                                      \
            .vec_dot_type = vdt}

#define INF__STORAGE(id, nm, bs, ts)                                                               \
    [id] = {.name = nm, .blck_size = bs, .type_size = ts, .supported = false, .vec_dot_type = id}

static const inf_type_traits ref_traits[INF_TYPE_COUNT] = {
    INF__COMPUTE(INF_TYPE_F32, "f32", 1, 4, f32, INF_TYPE_F32),
    INF__COMPUTE(INF_TYPE_F16, "f16", 1, 2, f16, INF_TYPE_F16),
    INF__COMPUTE(INF_TYPE_BF16, "bf16", 1, 2, bf16, INF_TYPE_BF16),
    INF__COMPUTE(INF_TYPE_Q4_0, "q4_0", INF_QK4_0, sizeof(inf_block_q4_0), q4_0, INF_TYPE_Q8_0),
    INF__COMPUTE(INF_TYPE_Q4_1, "q4_1", INF_QK4_1, sizeof(inf_block_q4_1), q4_1, INF_TYPE_Q8_1),
    INF__COMPUTE(INF_TYPE_Q5_0, "q5_0", INF_QK5_0, sizeof(inf_block_q5_0), q5_0, INF_TYPE_Q8_0),
    INF__COMPUTE(INF_TYPE_Q5_1, "q5_1", INF_QK5_1, sizeof(inf_block_q5_1), q5_1, INF_TYPE_Q8_1),
    INF__COMPUTE(INF_TYPE_Q8_0, "q8_0", INF_QK8_0, sizeof(inf_block_q8_0), q8_0, INF_TYPE_Q8_0),
    INF__COMPUTE(INF_TYPE_Q8_1, "q8_1", INF_QK8_1, sizeof(inf_block_q8_1), q8_1, INF_TYPE_Q8_1),
    INF__COMPUTE(INF_TYPE_Q4_K, "q4_K", INF_QK_K, sizeof(inf_block_q4_k), q4_k, INF_TYPE_Q8_K),
    INF__COMPUTE(INF_TYPE_Q5_K, "q5_K", INF_QK_K, sizeof(inf_block_q5_k), q5_k, INF_TYPE_Q8_K),
    INF__COMPUTE(INF_TYPE_Q6_K, "q6_K", INF_QK_K, sizeof(inf_block_q6_k), q6_k, INF_TYPE_Q8_K),
    INF__COMPUTE(INF_TYPE_Q8_K, "q8_K", INF_QK_K, sizeof(inf_block_q8_k), q8_k, INF_TYPE_Q8_K),
    INF__COMPUTE(INF_TYPE_Q2_K, "q2_K", INF_QK_K, sizeof(inf_block_q2_k), q2_k, INF_TYPE_Q8_K),
    INF__COMPUTE(INF_TYPE_Q3_K, "q3_K", INF_QK_K, sizeof(inf_block_q3_k), q3_k, INF_TYPE_Q8_K),
    INF__COMPUTE(INF_TYPE_IQ4_NL, "iq4_nl", INF_QK4_NL, sizeof(inf_block_iq4_nl), iq4_nl,
                 INF_TYPE_Q8_0),
    INF__COMPUTE(INF_TYPE_IQ4_XS, "iq4_xs", INF_QK_K, sizeof(inf_block_iq4_xs), iq4_xs,
                 INF_TYPE_Q8_K),
    /* Known geometry, no kernels. */
    INF__STORAGE(INF_TYPE_I8, "i8", 1, 1),
    INF__STORAGE(INF_TYPE_I16, "i16", 1, 2),
    INF__STORAGE(INF_TYPE_I32, "i32", 1, 4),
    INF__STORAGE(INF_TYPE_I64, "i64", 1, 8),
    INF__STORAGE(INF_TYPE_F64, "f64", 1, 8),
};

const inf_type_traits *inf_type_traits_ref(int type) {
    if (type < 0 || type >= INF_TYPE_COUNT || ref_traits[type].name == NULL) return NULL;
    return &ref_traits[type];
}

size_t inf_type_row_size(int type, int64_t ne0) {
    const inf_type_traits *t = inf_type_traits_ref(type);
    if (t == NULL || ne0 < 0 || ne0 % t->blck_size != 0) return 0;
    size_t bytes;
    if (inf__mul_overflow((size_t)(ne0 / t->blck_size), t->type_size, &bytes)) return 0;
    return bytes;
}

const char *inf_type_name(int type) {
    const inf_type_traits *t = inf_type_traits_ref(type);
    return t ? t->name : NULL;
}
