/*
 * test_quants.c — tensor type traits and the scalar reference kernels.
 *
 * Checks: half/bfloat conversion edge cases (and, where the compiler has _Float16, every
 * half value and many random floats against the hardware/libgcc conversion); block geometry and
 * row sizes; hand-derived blocks (q8_0 ramp, q4_0, q5_0, q4_K, q5_K, q6_K with known scales);
 * quantize -> dequantize error bounds on random rows of ragged block counts; vec_dot against a
 * double dot of the dequantized operands; and, when the fixtures are present, the quantized
 * tiny-llama files against the f16 one (same weights, different quantizations).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/gguf.h"
#include "kernels/kernels.h"

static uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bitsf(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static double gauss(inf_rng *r) {
    double u1 = inf__rng_uniform(r), u2 = inf__rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ---- half / bfloat ------------------------------------------------------------------------ */

static void test_fp16_edges(void **state) {
    (void)state;
    assert_int_equal(inf_fp32_to_fp16(0.0f), 0x0000);
    assert_int_equal(inf_fp32_to_fp16(-0.0f), 0x8000);
    assert_int_equal(inf_fp32_to_fp16(1.0f), 0x3c00);
    assert_int_equal(inf_fp32_to_fp16(-2.0f), 0xc000);
    assert_int_equal(inf_fp32_to_fp16(65504.0f), 0x7bff);
    assert_int_equal(inf_fp32_to_fp16(65519.99f), 0x7bff); /* below the halfway point */
    assert_int_equal(inf_fp32_to_fp16(65520.0f), 0x7c00);  /* halfway, odd mantissa: inf */
    assert_int_equal(inf_fp32_to_fp16(1e10f), 0x7c00);
    assert_int_equal(inf_fp32_to_fp16(-INFINITY), 0xfc00);
    uint16_t hn = inf_fp32_to_fp16(NAN);
    assert_true((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0);
    /* 1 + 2^-11 is halfway between 1 and 1 + 2^-10: even -> 1; 1 + 3*2^-11 -> 1 + 2^-9. */
    assert_int_equal(inf_fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00);
    assert_int_equal(inf_fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02);
    assert_int_equal(inf_fp32_to_fp16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
    /* Subnormals: 2^-24 is the smallest; 2^-25 is halfway to 0 (even -> 0). */
    assert_int_equal(inf_fp32_to_fp16(0x1p-24f), 0x0001);
    assert_int_equal(inf_fp32_to_fp16(0x1p-25f), 0x0000);
    assert_int_equal(inf_fp32_to_fp16(0x1.000002p-25f), 0x0001);
    assert_int_equal(inf_fp32_to_fp16(3 * 0x1p-25f), 0x0002); /* 1.5 units -> 2 */
    assert_int_equal(inf_fp32_to_fp16(5 * 0x1p-25f), 0x0002); /* 2.5 units -> 2 */
    assert_int_equal(inf_fp32_to_fp16(-0x1p-24f), 0x8001);
    assert_int_equal(inf_fp32_to_fp16(0x1p-14f), 0x0400);            /* smallest normal */
    assert_int_equal(inf_fp32_to_fp16(0x1p-14f - 0x1p-26f), 0x0400); /* rounds up into normal */
    assert_int_equal(inf_fp32_to_fp16(0x1p-14f - 0x1p-24f), 0x03ff);
    assert_int_equal(inf_fp32_to_fp16(1e-30f), 0x0000);
    assert_int_equal(inf_fp32_to_fp16(bitsf(1)), 0x0000); /* float subnormal */

    assert_true(inf_fp16_to_fp32(0x3c00) == 1.0f);
    assert_true(inf_fp16_to_fp32(0x7bff) == 65504.0f);
    assert_true(inf_fp16_to_fp32(0x0001) == 0x1p-24f);
    assert_true(inf_fp16_to_fp32(0x03ff) == 1023 * 0x1p-24f);
    assert_true(inf_fp16_to_fp32(0x0400) == 0x1p-14f);
    assert_int_equal(fbits(inf_fp16_to_fp32(0x8000)), 0x80000000u);
    assert_true(isinf(inf_fp16_to_fp32(0x7c00)) && inf_fp16_to_fp32(0x7c00) > 0);
    assert_true(isinf(inf_fp16_to_fp32(0xfc00)) && inf_fp16_to_fp32(0xfc00) < 0);
    assert_true(isnan(inf_fp16_to_fp32(0x7e00)));
    assert_true(isnan(inf_fp16_to_fp32(0x7c01)));

    /* Every non-nan half survives the round trip bit for bit. */
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = inf_fp16_to_fp32((uint16_t)h);
        if (isnan(f)) {
            assert_true((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0);
            assert_true(isnan(inf_fp16_to_fp32(inf_fp32_to_fp16(f))));
            continue;
        }
        assert_int_equal(inf_fp32_to_fp16(f), h);
    }
}

static void test_fp16_vs_compiler(void **state) {
    (void)state;
#ifdef __FLT16_MAX__
    for (uint32_t h = 0; h < 0x10000; h++) {
        _Float16 v;
        uint16_t hh = (uint16_t)h;
        memcpy(&v, &hh, 2);
        float want = (float)v, got = inf_fp16_to_fp32(hh);
        if (isnan(want)) {
            assert_true(isnan(got));
        } else {
            assert_int_equal(fbits(got), fbits(want));
        }
    }
    inf_rng r;
    inf__rng_seed(&r, 7);
    for (int i = 0; i < 2000000; i++) {
        /* Random bit patterns across the half range and beyond (exponents 90..150). */
        uint32_t u = (uint32_t)inf__rng_next(&r);
        u = (u & 0x807fffffu) | ((90 + (uint32_t)(inf__rng_next(&r) % 61)) << 23);
        float f = bitsf(u);
        _Float16 want = (_Float16)f;
        uint16_t wb;
        memcpy(&wb, &want, 2);
        uint16_t got = inf_fp32_to_fp16(f);
        if (got != wb) fail_msg("fp32 0x%08x -> half 0x%04x, want 0x%04x", u, got, wb);
    }
#else
    skip();
#endif
}

static void test_bf16(void **state) {
    (void)state;
    assert_int_equal(inf_fp32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(inf_fp32_to_bf16(-2.0f), 0xc000);
    assert_int_equal(inf_fp32_to_bf16(bitsf(0x3f808000u)), 0x3f80); /* tie, even stays */
    assert_int_equal(inf_fp32_to_bf16(bitsf(0x3f818000u)), 0x3f82); /* tie, odd rounds up */
    assert_int_equal(inf_fp32_to_bf16(bitsf(0x3f808001u)), 0x3f81);
    assert_int_equal(inf_fp32_to_bf16(bitsf(0x3f807fffu)), 0x3f80);
    assert_int_equal(inf_fp32_to_bf16(INFINITY), 0x7f80);
    assert_int_equal(inf_fp32_to_bf16(-INFINITY), 0xff80);
    assert_int_equal(inf_fp32_to_bf16(bitsf(0x7f7fffffu)), 0x7f80); /* FLT_MAX rounds to inf */
    uint16_t n = inf_fp32_to_bf16(bitsf(0x7f800001u));              /* signalling nan */
    assert_true((n & 0x7f80) == 0x7f80 && (n & 0x7f) != 0);
    assert_true(isnan(inf_bf16_to_fp32(n)));
    assert_true(inf_bf16_to_fp32(0x3f80) == 1.0f);
    assert_int_equal(fbits(inf_bf16_to_fp32(0x8001)), 0x80010000u);
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = inf_bf16_to_fp32((uint16_t)h);
        if (!isnan(f)) assert_int_equal(inf_fp32_to_bf16(f), h);
    }
}

/* ---- geometry ----------------------------------------------------------------------------- */

static void test_traits_table(void **state) {
    (void)state;
    static const struct {
        int type;
        const char *name;
        int64_t blck;
        size_t size;
        int vdt;
    } want[] = {
        {INF_TYPE_F32, "f32", 1, 4, INF_TYPE_F32},
        {INF_TYPE_F16, "f16", 1, 2, INF_TYPE_F16},
        {INF_TYPE_BF16, "bf16", 1, 2, INF_TYPE_BF16},
        {INF_TYPE_Q4_0, "q4_0", 32, 18, INF_TYPE_Q8_0},
        {INF_TYPE_Q4_1, "q4_1", 32, 20, INF_TYPE_Q8_1},
        {INF_TYPE_Q5_0, "q5_0", 32, 22, INF_TYPE_Q8_0},
        {INF_TYPE_Q5_1, "q5_1", 32, 24, INF_TYPE_Q8_1},
        {INF_TYPE_Q8_0, "q8_0", 32, 34, INF_TYPE_Q8_0},
        {INF_TYPE_Q8_1, "q8_1", 32, 36, INF_TYPE_Q8_1},
        {INF_TYPE_Q4_K, "q4_K", 256, 144, INF_TYPE_Q8_K},
        {INF_TYPE_Q5_K, "q5_K", 256, 176, INF_TYPE_Q8_K},
        {INF_TYPE_Q6_K, "q6_K", 256, 210, INF_TYPE_Q8_K},
        {INF_TYPE_Q8_K, "q8_K", 256, 292, INF_TYPE_Q8_K},
        {INF_TYPE_Q2_K, "q2_K", 256, 84, INF_TYPE_Q8_K},
        {INF_TYPE_Q3_K, "q3_K", 256, 110, INF_TYPE_Q8_K},
        {INF_TYPE_IQ4_NL, "iq4_nl", 32, 18, INF_TYPE_Q8_0},
        {INF_TYPE_IQ4_XS, "iq4_xs", 256, 136, INF_TYPE_Q8_K},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const inf_type_traits *t = inf_type_traits_ref(want[i].type);
        assert_non_null(t);
        assert_string_equal(t->name, want[i].name);
        assert_string_equal(inf_type_name(want[i].type), want[i].name);
        assert_int_equal(t->blck_size, want[i].blck);
        assert_int_equal(t->type_size, want[i].size);
        assert_int_equal(t->vec_dot_type, want[i].vdt);
        assert_true(t->supported);
        assert_non_null(t->to_float);
        assert_non_null(t->from_float);
        assert_non_null(t->vec_dot);
    }
    const inf_type_traits *i8 = inf_type_traits_ref(INF_TYPE_I8);
    assert_non_null(i8);
    assert_false(i8->supported);
    assert_int_equal(inf_type_row_size(INF_TYPE_Q2_K, 512), 168);
    assert_int_equal(inf_type_row_size(INF_TYPE_Q3_K, 256), 110);
    assert_null(inf_type_traits_ref(-1));
    assert_null(inf_type_traits_ref(4)); /* removed q4_2 */
    assert_null(inf_type_traits_ref(INF_TYPE_COUNT));
    assert_null(inf_type_traits_ref(1000));
    assert_null(inf_type_name(5));

    assert_int_equal(inf_type_row_size(INF_TYPE_F32, 7), 28);
    assert_int_equal(inf_type_row_size(INF_TYPE_F16, 0), 0);
    assert_int_equal(inf_type_row_size(INF_TYPE_Q4_0, 64), 36);
    assert_int_equal(inf_type_row_size(INF_TYPE_Q4_0, 33), 0);
    assert_int_equal(inf_type_row_size(INF_TYPE_Q6_K, 4096), 16 * 210);
    assert_int_equal(inf_type_row_size(INF_TYPE_Q4_K, 255), 0);
    assert_int_equal(inf_type_row_size(INF_TYPE_Q4_K, -256), 0);
    assert_int_equal(inf_type_row_size(99, 256), 0);
    assert_int_equal(inf_type_row_size(INF_TYPE_I64, (int64_t)1 << 62), 0); /* overflows */
}

/* ---- hand-derived blocks ------------------------------------------------------------------ */

static void test_q8_0_known(void **state) {
    (void)state;
    float x[32];
    /* amax = 127 -> d = 1 exactly; x = 127 - 8j except two ties that roundf sends away from 0. */
    for (int j = 0; j < 32; j++)
        x[j] = 127.0f - 8.0f * j;
    x[1] = 2.5f;
    x[2] = -2.5f;
    inf_block_q8_0 b;
    inf_type_traits_ref(INF_TYPE_Q8_0)->from_float(x, &b, 32);
    assert_int_equal(b.d, 0x3c00);
    assert_int_equal(b.qs[0], 127);
    assert_int_equal(b.qs[1], 3);
    assert_int_equal(b.qs[2], -3);
    for (int j = 3; j < 32; j++)
        assert_int_equal(b.qs[j], 127 - 8 * j);
    /* Scaled ramp: amax 0.5 -> d = fp16(0.5/127), q = round(x * 254). */
    for (int j = 0; j < 32; j++)
        x[j] = (j - 16) / 32.0f;
    inf_type_traits_ref(INF_TYPE_Q8_0)->from_float(x, &b, 32);
    assert_int_equal(b.d, inf_fp32_to_fp16(0.5f / 127.0f));
    for (int j = 0; j < 32; j++)
        assert_int_equal(b.qs[j], (int)lroundf((j - 16) * 254.0f / 32));
    float y[32];
    inf_type_traits_ref(INF_TYPE_Q8_0)->to_float(&b, y, 32);
    for (int j = 0; j < 32; j++) {
        assert_true(y[j] == b.qs[j] * inf_fp16_to_fp32(b.d));
    }
    /* All zero: d = 0, q = 0. */
    memset(x, 0, sizeof(x));
    inf_type_traits_ref(INF_TYPE_Q8_0)->from_float(x, &b, 32);
    assert_int_equal(b.d, 0);
    for (int j = 0; j < 32; j++)
        assert_int_equal(b.qs[j], 0);
}

static void test_q4_0_q5_0_known(void **state) {
    (void)state;
    float x[32], y[32];
    /* Largest magnitude -8 -> d = 1, levels q = x + 8. */
    for (int j = 0; j < 16; j++) {
        x[j] = (float)(j - 8);
        x[16 + j] = (float)(7 - j);
    }
    inf_block_q4_0 b;
    inf_type_traits_ref(INF_TYPE_Q4_0)->from_float(x, &b, 32);
    assert_int_equal(b.d, 0x3c00);
    for (int j = 0; j < 16; j++)
        assert_int_equal(b.qs[j], j | ((15 - j) << 4));
    inf_type_traits_ref(INF_TYPE_Q4_0)->to_float(&b, y, 32);
    assert_memory_equal(x, y, sizeof(x));
    /* Largest magnitude +8 -> d = -1: 8 maps to level 0, -7 to 15. */
    for (int j = 0; j < 32; j++)
        x[j] = (j == 5) ? 8.0f : (float)((j % 15) - 7);
    inf_type_traits_ref(INF_TYPE_Q4_0)->from_float(x, &b, 32);
    assert_int_equal(b.d, 0xbc00);
    inf_type_traits_ref(INF_TYPE_Q4_0)->to_float(&b, y, 32);
    for (int j = 0; j < 32; j++)
        assert_true(x[j] == y[j]); /* 0 comes back as -0 here */

    /* q5_0: largest magnitude -16 -> d = 1, level = x + 16, bit 4 of element j in qh bit j. */
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 16);
    inf_block_q5_0 c;
    inf_type_traits_ref(INF_TYPE_Q5_0)->from_float(x, &c, 32);
    assert_int_equal(c.d, 0x3c00);
    for (int j = 0; j < 16; j++)
        assert_int_equal(c.qs[j], (j & 15) | (((j + 16) & 15) << 4));
    assert_int_equal(c.qh[0], 0x00);
    assert_int_equal(c.qh[1], 0x00);
    assert_int_equal(c.qh[2], 0xff);
    assert_int_equal(c.qh[3], 0xff);
    inf_type_traits_ref(INF_TYPE_Q5_0)->to_float(&c, y, 32);
    assert_memory_equal(x, y, sizeof(x));
}

/* Packs 8 (scale, min) pairs of 6 bits the way GGUF documents it. */
static void pack_k_scales(uint8_t q[12], const int sc[8], const int m[8]) {
    for (int j = 0; j < 4; j++) {
        q[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        q[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        q[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
    }
}

static void test_q4_k_q5_k_known(void **state) {
    (void)state;
    static const int sc[8] = {1, 2, 3, 4, 17, 33, 50, 63};
    static const int mn[8] = {0, 1, 2, 3, 20, 40, 61, 5};
    inf_block_q4_k b;
    b.d = 0x3c00;    /* 1.0 */
    b.dmin = 0x3800; /* 0.5 */
    pack_k_scales(b.scales, sc, mn);
    int lev[256];
    for (int e = 0; e < 256; e++)
        lev[e] = (e * 7 + e / 32) & 15;
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            b.qs[32 * c + l] = (uint8_t)(lev[64 * c + l] | (lev[64 * c + 32 + l] << 4));
        }
    }
    float y[256];
    inf_type_traits_ref(INF_TYPE_Q4_K)->to_float(&b, y, 256);
    for (int e = 0; e < 256; e++) {
        float want = (float)(sc[e / 32] * lev[e]) - 0.5f * mn[e / 32];
        if (y[e] != want) fail_msg("q4_K element %d: %g want %g", e, y[e], want);
    }

    /* q5_K: same scales, 5-bit levels; bit 4 of element e sits in qh[e % 32], bit e / 32. */
    inf_block_q5_k c5;
    c5.d = 0x3c00;
    c5.dmin = 0x3800;
    pack_k_scales(c5.scales, sc, mn);
    memset(c5.qh, 0, sizeof(c5.qh));
    for (int e = 0; e < 256; e++)
        lev[e] = (e * 11 + e / 64) & 31;
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            c5.qs[32 * c + l] =
                (uint8_t)((lev[64 * c + l] & 15) | ((lev[64 * c + 32 + l] & 15) << 4));
        }
    }
    for (int e = 0; e < 256; e++) {
        if (lev[e] & 16) c5.qh[e % 32] |= (uint8_t)(1u << (e / 32));
    }
    inf_type_traits_ref(INF_TYPE_Q5_K)->to_float(&c5, y, 256);
    for (int e = 0; e < 256; e++) {
        float want = (float)(sc[e / 32] * lev[e]) - 0.5f * mn[e / 32];
        if (y[e] != want) fail_msg("q5_K element %d: %g want %g", e, y[e], want);
    }
}

static void test_q6_k_known(void **state) {
    (void)state;
    inf_block_q6_k b;
    int lev[256];
    for (int e = 0; e < 256; e++)
        lev[e] = (e * 37 + 5) & 63;
    memset(&b, 0, sizeof(b));
    /* Per 128: ql[l] = lev[l] | lev[l+64] << 4, ql[l+32] = lev[l+32] | lev[l+96] << 4,
     * qh[l] = 2 high bits of lev[l], lev[l+32], lev[l+64], lev[l+96] at shifts 0, 2, 4, 6. */
    for (int h = 0; h < 2; h++) {
        const int *L = lev + 128 * h;
        for (int l = 0; l < 32; l++) {
            b.ql[64 * h + l] = (uint8_t)((L[l] & 15) | ((L[l + 64] & 15) << 4));
            b.ql[64 * h + l + 32] = (uint8_t)((L[l + 32] & 15) | ((L[l + 96] & 15) << 4));
            b.qh[32 * h + l] = (uint8_t)((L[l] >> 4) | ((L[l + 32] >> 4) << 2) |
                                         ((L[l + 64] >> 4) << 4) | ((L[l + 96] >> 4) << 6));
        }
    }
    for (int g = 0; g < 16; g++)
        b.scales[g] = (int8_t)(g * 9 - 70);
    b.d = 0x3800; /* 0.5 */
    float y[256];
    inf_type_traits_ref(INF_TYPE_Q6_K)->to_float(&b, y, 256);
    for (int e = 0; e < 256; e++) {
        float want = 0.5f * (float)(b.scales[e / 16] * (lev[e] - 32));
        if (y[e] != want) fail_msg("q6_K element %d: %g want %g", e, y[e], want);
    }
    /* The quantizer reproduces exactly representable data: the block itself. */
    inf_block_q6_k b2;
    inf_type_traits_ref(INF_TYPE_Q6_K)->from_float(y, &b2, 256);
    float y2[256];
    inf_type_traits_ref(INF_TYPE_Q6_K)->to_float(&b2, y2, 256);
    double err = 0, ref = 0;
    for (int e = 0; e < 256; e++) {
        err += (y2[e] - y[e]) * (y2[e] - y[e]);
        ref += y[e] * y[e];
    }
    assert_true(err <= 1e-4 * ref);
}

static void test_q8_k_known(void **state) {
    (void)state;
    float x[256];
    for (int e = 0; e < 256; e++)
        x[e] = (float)((e % 64) - 32);
    x[77] = -127.0f; /* largest magnitude, negative: d = -127 / -127 ... scale = 1 */
    inf_block_q8_k b;
    inf_type_traits_ref(INF_TYPE_Q8_K)->from_float(x, &b, 256);
    assert_true(b.d == 1.0f);
    for (int e = 0; e < 256; e++)
        assert_int_equal(b.qs[e], (int)x[e]);
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int l = 0; l < 16; l++)
            s += (int)x[16 * g + l];
        assert_int_equal(b.bsums[g], s);
    }
    /* Positive max: d = -max/127 is negative and levels flip sign; -x maps to +127. */
    for (int e = 0; e < 256; e++)
        x[e] = e == 3 ? 2.0f : 0.25f;
    inf_type_traits_ref(INF_TYPE_Q8_K)->from_float(x, &b, 256);
    assert_true(b.d == -2.0f / 127.0f);
    assert_int_equal(b.qs[3], -127);
    assert_int_equal(b.qs[0], -16); /* nearest_int(-127/8 = -15.875) */
    memset(x, 0, sizeof(x));
    inf_type_traits_ref(INF_TYPE_Q8_K)->from_float(x, &b, 256);
    assert_true(b.d == 0.0f);
    assert_int_equal(b.bsums[0], 0);
}

/* ---- random rows -------------------------------------------------------------------------- */

/* Normalized RMS error bounds of quantize -> dequantize on gaussian data (about 1.4x the
 * measured values; rows with outliers get 3x). */
static const struct {
    int type;
    double max_nrmse;
} rt_bounds[] = {
    {INF_TYPE_F32, 0.0},    {INF_TYPE_F16, 4e-4},   {INF_TYPE_BF16, 3e-3}, {INF_TYPE_Q8_0, 0.01},
    {INF_TYPE_Q8_1, 0.01},  {INF_TYPE_Q8_K, 0.012}, {INF_TYPE_Q4_0, 0.12}, {INF_TYPE_Q4_1, 0.13},
    {INF_TYPE_Q5_0, 0.06},  {INF_TYPE_Q5_1, 0.06},  {INF_TYPE_Q4_K, 0.10}, {INF_TYPE_Q5_K, 0.05},
    {INF_TYPE_Q6_K, 0.025}, {INF_TYPE_Q2_K, 0.40},  {INF_TYPE_Q3_K, 0.20}, {INF_TYPE_IQ4_NL, 0.10},
    {INF_TYPE_IQ4_XS, 0.10},
};

static void fill_row(inf_rng *r, float *x, int64_t n, int kind) {
    for (int64_t i = 0; i < n; i++) {
        double v = gauss(r);
        if (kind == 1) v = fabs(v) + 0.5;             /* all positive, offset */
        if (kind == 2) v *= (i % 97 == 0) ? 20.0 : 1; /* outliers */
        x[i] = (float)v;
    }
}

static void test_round_trip(void **state) {
    (void)state;
    inf_rng r;
    inf__rng_seed(&r, 42);
    for (size_t t = 0; t < sizeof(rt_bounds) / sizeof(rt_bounds[0]); t++) {
        const inf_type_traits *tr = inf_type_traits_ref(rt_bounds[t].type);
        const int64_t blocks[] = {1, 3, 7, 16};
        for (size_t bi = 0; bi < 4; bi++) {
            for (int kind = 0; kind < 3; kind++) {
                int64_t n = blocks[bi] * (tr->blck_size == 1 ? 32 : tr->blck_size);
                float *x = malloc((size_t)n * sizeof(float));
                float *y = malloc((size_t)n * sizeof(float));
                void *q = malloc(inf_type_row_size(rt_bounds[t].type, n));
                assert_non_null(x);
                assert_non_null(y);
                assert_non_null(q);
                fill_row(&r, x, n, kind);
                tr->from_float(x, q, n);
                tr->to_float(q, y, n);
                double err = 0, ref = 0;
                for (int64_t i = 0; i < n; i++) {
                    err += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
                    ref += (double)x[i] * x[i];
                }
                double nrmse = sqrt(err / ref);
                if (getenv("TEST_QUANTS_VERBOSE")) {
                    printf("round trip %-5s n=%-5lld kind=%d nrmse %.5f\n", tr->name, (long long)n,
                           kind, nrmse);
                }
                double bound = rt_bounds[t].max_nrmse * (kind == 2 ? 3.0 : 1.0);
                if (!(nrmse <= bound)) {
                    fail_msg("%s n=%lld kind=%d: nrmse %g > %g", tr->name, (long long)n, kind,
                             nrmse, bound);
                }
                free(x);
                free(y);
                free(q);
            }
        }
    }
}

/* vec_dot(quant(x), quant_vdt(y)) must equal the dot of the dequantized operands up to float
 * rounding: the kernel is exact integer math per block except for the final scaling. */
static void test_vec_dot(void **state) {
    (void)state;
    inf_rng r;
    inf__rng_seed(&r, 1234);
    for (size_t t = 0; t < sizeof(rt_bounds) / sizeof(rt_bounds[0]); t++) {
        const int type = rt_bounds[t].type;
        const inf_type_traits *tr = inf_type_traits_ref(type);
        const inf_type_traits *vt = inf_type_traits_ref(tr->vec_dot_type);
        assert_non_null(vt);
        const int64_t blk = INF_MAX(tr->blck_size, vt->blck_size);
        const int64_t counts[] = {1, 2, 5, 12};
        for (size_t ci = 0; ci < 4; ci++) {
            const int64_t n = counts[ci] * (blk == 1 ? 64 : blk) + (blk == 1 ? 3 : 0);
            float *x = malloc((size_t)n * sizeof(float));
            float *y = malloc((size_t)n * sizeof(float));
            float *xd = malloc((size_t)n * sizeof(float));
            float *yd = malloc((size_t)n * sizeof(float));
            void *xq = malloc(inf_type_row_size(type, n));
            void *yq = malloc(inf_type_row_size(tr->vec_dot_type, n));
            assert_true(x && y && xd && yd && xq && yq);
            fill_row(&r, x, n, (int)(ci % 3));
            fill_row(&r, y, n, (int)((ci + 1) % 3));
            tr->from_float(x, xq, n);
            vt->from_float(y, yq, n);
            tr->to_float(xq, xd, n);
            vt->to_float(yq, yd, n);
            double want = 0, mag = 0, exact = 0, mag_min = 0;
            for (int64_t i = 0; i < n; i++) {
                want += (double)xd[i] * yd[i];
                mag += fabs((double)xd[i] * yd[i]);
                exact += (double)x[i] * y[i];
            }
            /* Bound of |m_x| * |sum y| per block (the q8_1 "s" term): max|x| * sum|y|. */
            for (int64_t b0 = 0; b0 < n; b0 += 32) {
                double mx = 0, sy = 0;
                for (int64_t i = b0; i < INF_MIN(n, b0 + 32); i++) {
                    mx = INF_MAX(mx, fabs(xd[i]));
                    sy += fabs(yd[i]);
                }
                mag_min += mx * sy;
            }
            float got = NAN;
            tr->vec_dot(n, &got, xq, yq);
            /* q4_1/q5_1 use the fp16-rounded s = d*sum(q) of q8_1: allow its rounding. */
            double tol = 2e-5 * mag + 1e-6;
            if (tr->vec_dot_type == INF_TYPE_Q8_1) tol += 2e-3 * mag_min;
            if (!(fabs(got - want) <= tol)) {
                fail_msg("%s n=%lld: vec_dot %.8g, dequantized dot %.8g (tol %g)", tr->name,
                         (long long)n, got, want, tol);
            }
            /* And close to the exact float dot (quantization error only). */
            double qtol = 4.0 * rt_bounds[t].max_nrmse * sqrt((double)n) * 3.0 + 1e-3 * mag;
            if (!(fabs(got - exact) <= qtol)) {
                fail_msg("%s n=%lld: vec_dot %.8g, float dot %.8g (tol %g)", tr->name, (long long)n,
                         got, exact, qtol);
            }
            free(x);
            free(y);
            free(xd);
            free(yd);
            free(xq);
            free(yq);
        }
    }
}

/* ---- fixture cross-check ------------------------------------------------------------------ */

static const char *fixtures_dir(void) {
    const char *d = getenv("INFERNEO_FIXTURES");
    if (d && *d) return d;
    /* Run by hand from a build folder inside the repository: ROOT/../shared/fixtures. */
    FILE *f = fopen("../../shared/fixtures/README.md", "rb");
    if (f) {
        fclose(f);
        return "../../shared/fixtures";
    }
    return "../shared/fixtures";
}

static inf_gguf *open_fixture(const char *name) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/models/%s", fixtures_dir(), name);
    inf_gguf *g = NULL;
    if (inf_gguf_open(path, &g) != 0) return NULL;
    return g;
}

/* Dequantizes the first rows of tensor `name` from both files and returns the normalized RMS
 * difference; -1 when the tensor is missing or not comparable. */
static double tensor_nrmse(inf_gguf *a, inf_gguf *b, const char *name, int *type_b) {
    const inf_gguf_tensor *ta = inf_gguf_find_tensor(a, name);
    const inf_gguf_tensor *tb = inf_gguf_find_tensor(b, name);
    if (!ta || !tb || ta->ne[0] != tb->ne[0] || ta->ne[1] != tb->ne[1]) return -1;
    const inf_type_traits *tra = inf_type_traits_ref(ta->type);
    const inf_type_traits *trb = inf_type_traits_ref(tb->type);
    if (!tra || !trb || !tra->supported || !trb->supported) return -1;
    *type_b = tb->type;
    const int64_t ne0 = ta->ne[0], rows = INF_MIN(ta->ne[1], 64);
    float *ya = malloc((size_t)ne0 * sizeof(float)), *yb = malloc((size_t)ne0 * sizeof(float));
    assert_true(ya && yb);
    const size_t rsa = inf_type_row_size(ta->type, ne0), rsb = inf_type_row_size(tb->type, ne0);
    double err = 0, ref = 0;
    for (int64_t r = 0; r < rows; r++) {
        tra->to_float((const char *)ta->data + r * rsa, ya, ne0);
        trb->to_float((const char *)tb->data + r * rsb, yb, ne0);
        for (int64_t i = 0; i < ne0; i++) {
            err += ((double)ya[i] - yb[i]) * ((double)ya[i] - yb[i]);
            ref += (double)ya[i] * ya[i];
        }
    }
    free(ya);
    free(yb);
    return ref > 0 ? sqrt(err / ref) : -1;
}

/* Quantizes the f16 file's rows of `name` with our reference quantizer for the type the other
 * file stores, and returns the fraction of blocks that come out byte-identical (llama.cpp made
 * the quantized files from these weights with the same reference quantizers). */
static double requant_match(inf_gguf *f16, inf_gguf *q, const char *name, int64_t *n_blocks) {
    const inf_gguf_tensor *ta = inf_gguf_find_tensor(f16, name);
    const inf_gguf_tensor *tb = inf_gguf_find_tensor(q, name);
    if (!ta || !tb || ta->type != INF_TYPE_F16 || ta->ne[0] != tb->ne[0]) return -1;
    const inf_type_traits *tr = inf_type_traits_ref(tb->type);
    if (!tr || !tr->supported) return -1;
    const int64_t ne0 = ta->ne[0], rows = INF_MIN(ta->ne[1], 64);
    const size_t rs = inf_type_row_size(tb->type, ne0);
    float *x = malloc((size_t)ne0 * sizeof(float));
    unsigned char *buf = malloc(rs);
    assert_true(x && buf);
    int64_t same = 0, total = 0;
    for (int64_t r = 0; r < rows; r++) {
        inf_type_traits_ref(INF_TYPE_F16)->to_float((const char *)ta->data + r * ne0 * 2, x, ne0);
        tr->from_float(x, buf, ne0);
        const unsigned char *want = (const unsigned char *)tb->data + r * rs;
        for (int64_t b = 0; b < ne0 / tr->blck_size; b++) {
            same += memcmp(buf + b * tr->type_size, want + b * tr->type_size, tr->type_size) == 0;
            total++;
        }
    }
    free(x);
    free(buf);
    *n_blocks = total;
    return (double)same / (double)total;
}

static void test_fixture_cross_check(void **state) {
    (void)state;
    static const char *pairs[][2] = {{"tiny-llama-f16.gguf", "tiny-llama-q8_0.gguf"},
                                     {"tiny-llama-f16.gguf", "tiny-llama-q4_0.gguf"},
                                     {"tiny-llama-f16.gguf", "tiny-llama-q4_k_m.gguf"},
                                     {"tiny-qwen2-f16.gguf", "tiny-qwen2-q8_0.gguf"},
                                     {"../formats/fmt-f16.gguf", "../formats/fmt-q2_k.gguf"},
                                     {"../formats/fmt-f16.gguf", "../formats/fmt-q3_k_s.gguf"},
                                     {"../formats/fmt-f16.gguf", "../formats/fmt-iq4_nl.gguf"},
                                     {"../formats/fmt-f16.gguf", "../formats/fmt-iq4_xs.gguf"}};
    const bool verbose = getenv("TEST_QUANTS_VERBOSE") != NULL;
    int seen[INF_TYPE_COUNT] = {0};
    for (size_t f = 0; f < sizeof(pairs) / sizeof(pairs[0]); f++) {
        inf_gguf *f16 = open_fixture(pairs[f][0]);
        if (!f16) {
            skip(); /* no fixtures on this machine */
            return;
        }
        const char *qname = pairs[f][1];
        inf_gguf *q = open_fixture(qname);
        assert_non_null(q);
        for (int64_t ti = 0; ti < inf_gguf_n_tensors(q); ti++) {
            const char *name = inf_gguf_tensor_at(q, ti)->name;
            int type = -1;
            double e = tensor_nrmse(f16, q, name, &type);
            if (e < 0) fail_msg("%s %s: not comparable with the f16 file", qname, name);
            double bound = -1;
            for (size_t k = 0; k < sizeof(rt_bounds) / sizeof(rt_bounds[0]); k++) {
                if (rt_bounds[k].type == type) bound = rt_bounds[k].max_nrmse;
            }
            if (bound < 0) fail_msg("%s %s: unexpected type %d", qname, name, type);
            if (bound < 1e-3) bound = 1e-3;
            int64_t nblk = 0;
            double match = requant_match(f16, q, name, &nblk);
            if (verbose) {
                printf("%-22s %-24s %-5s nrmse vs f16 %.5f, requantized identical %.4f\n", qname,
                       name, inf_type_name(type), e, match);
            }
            if (!(e <= bound)) {
                fail_msg("%s %s (%s): nrmse vs f16 %g > %g", qname, name, inf_type_name(type), e,
                         bound);
            }
            /* Our quantizers reproduce llama.cpp's blocks byte for byte (a float-contraction
             * difference could flip a rare tie, hence not exactly 1). */
            if (match >= 0 && !(match >= 0.99)) {
                fail_msg("%s %s (%s): only %.4f of %lld requantized blocks identical", qname, name,
                         inf_type_name(type), match, (long long)nblk);
            }
            seen[type] = 1;
        }
        inf_gguf_close(q);
        inf_gguf_close(f16);
    }
    assert_true(seen[INF_TYPE_Q8_0]);
    assert_true(seen[INF_TYPE_Q4_0]);
    assert_true(seen[INF_TYPE_Q4_K]);
    assert_true(seen[INF_TYPE_Q6_K]);
    assert_true(seen[INF_TYPE_Q2_K]);
    assert_true(seen[INF_TYPE_Q3_K]);
    assert_true(seen[INF_TYPE_IQ4_NL]);
    assert_true(seen[INF_TYPE_IQ4_XS]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp16_edges),
        cmocka_unit_test(test_fp16_vs_compiler),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_traits_table),
        cmocka_unit_test(test_q8_0_known),
        cmocka_unit_test(test_q4_0_q5_0_known),
        cmocka_unit_test(test_q4_k_q5_k_known),
        cmocka_unit_test(test_q6_k_known),
        cmocka_unit_test(test_q8_k_known),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_vec_dot),
        cmocka_unit_test(test_fixture_cross_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
