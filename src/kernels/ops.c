/*
 * ops.c — per-token transformer ops (see ops.h).
 *
 * Invariant: every function is a pure function of its arguments with a fixed summation order, so
 * results are bit-identical whatever the batch composition or thread split. Reductions use eight
 * independent float lanes (which the compiler maps onto SIMD registers without -ffast-math)
 * or double accumulation where llama.cpp accumulates in double (RMSNorm, softmax sums).
 * The f16 KV variants convert a block of K or V rows exactly into float scratch and run the very
 * same float code on it, so they equal the float functions bit for bit on every clone and ISA.
 * Threads: all functions are reentrant; callers parallelize over tokens/heads.
 */
#include "kernels/ops.h"

#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

/* The 64-byte vector helpers below are always inlined: no vector crosses a call boundary, so
 * GCC's note that such a return "changes the ABI" without AVX-512 does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"

void inf_op_rmsnorm(const float *x, const float *w, float *y, int64_t n, float eps) {
    double acc[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++)
            acc[j] += (double)(x[i + j] * x[i + j]);
    for (; i < n; i++)
        acc[0] += (double)(x[i] * x[i]);
    double sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    float mean = (float)(sum / (double)(n > 0 ? n : 1));
    float scale = 1.0f / sqrtf(mean + eps);
    if (w)
        for (i = 0; i < n; i++)
            y[i] = (x[i] * scale) * w[i];
    else
        for (i = 0; i < n; i++)
            y[i] = x[i] * scale;
}

void inf_op_rope_cache(float *cs, int64_t n_rot, int64_t pos, float base, float freq_scale) {
    inf_op_rope_cache_ext(cs, n_rot, pos, base, freq_scale, NULL, 1.0f);
}

void inf_op_rope_cache_ext(float *cs, int64_t n_rot, int64_t pos, float base, float freq_scale,
                           const float *ff, float mscale) {
    float theta_scale = powf(base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int64_t i = 0; i < n_rot / 2; i++) {
        float t = freq_scale * (ff ? theta / ff[i] : theta);
        cs[2 * i] = cosf(t) * mscale;
        cs[2 * i + 1] = sinf(t) * mscale;
        theta *= theta_scale;
    }
}

void inf_op_rope(float *x, int64_t n_head, int64_t head_dim, int64_t n_rot, const float *cs,
                 int neox) {
    int64_t half = n_rot / 2;
    for (int64_t h = 0; h < n_head; h++) {
        float *xh = x + h * head_dim;
        if (neox) {
            for (int64_t i = 0; i < half; i++) {
                float c = cs[2 * i], s = cs[2 * i + 1];
                float x0 = xh[i], x1 = xh[i + half];
                xh[i] = x0 * c - x1 * s;
                xh[i + half] = x0 * s + x1 * c;
            }
        } else {
            for (int64_t i = 0; i < half; i++) {
                float c = cs[2 * i], s = cs[2 * i + 1];
                float x0 = xh[2 * i], x1 = xh[2 * i + 1];
                xh[2 * i] = x0 * c - x1 * s;
                xh[2 * i + 1] = x0 * s + x1 * c;
            }
        }
    }
}

/* The hot loops are plain C compiled three times (AVX-512F, AVX2, baseline) and picked at
 * load time by the CPU (GCC function multiversioning). Within one machine the choice is fixed,
 * so results stay deterministic; the lane structure below is identical in every clone. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(INF_NO_CLONES)
#define INF_OPS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define INF_OPS_CLONES
#endif

/* Dot products use sixteen independent lanes — a GCC vector of 16 floats, which each clone
 * lowers to one zmm, two ymm or four xmm registers — and a fixed reduction tree, so a value
 * does not depend on the clone's register width or on how many dots run together. */
#define DOT_LANES 16
typedef float v16 __attribute__((vector_size(64)));

#define INF_INLINE static inline __attribute__((always_inline))
#define INF_OPS_MIN(a, b) ((a) < (b) ? (a) : (b))

INF_INLINE v16 load16(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

INF_INLINE float lanes_sum(v16 acc) {
    float l[16];
    memcpy(l, &acc, sizeof l);
    float s8[8], s4[4];
    for (int j = 0; j < 8; j++)
        s8[j] = l[j] + l[j + 8];
    for (int j = 0; j < 4; j++)
        s4[j] = s8[j] + s8[j + 4];
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

INF_INLINE float dot_lanes(const float *restrict a, const float *restrict b, int64_t n) {
    v16 acc = {0};
    int64_t i = 0;
    for (; i + DOT_LANES <= n; i += DOT_LANES)
        acc += load16(a + i) * load16(b + i);
    float l[16];
    memcpy(l, &acc, sizeof l);
    for (int j = 0; i < n; i++, j++)
        l[j] += a[i] * b[i];
    memcpy(&acc, l, sizeof l);
    return lanes_sum(acc);
}

typedef int32_t vi16 __attribute__((vector_size(64)));
typedef uint32_t vu16 __attribute__((vector_size(64)));

INF_INLINE void store16(float *p, v16 v) {
    memcpy(p, &v, sizeof v);
}
/* Lane-wise select: m ? a : b (m from a vector comparison: all ones or zero). */
INF_INLINE v16 sel16(vi16 m, v16 a, v16 b) {
    return (v16)((m & (vi16)a) | (~m & (vi16)b));
}

/* exp(x) lane-wise: x = n ln2 + r with |r| <= ln2/2, exp(r) by its degree-7 Taylor polynomial
 * (truncation error < 1e-8 relative), 2^n added into the exponent bits. Results below
 * exp(-86) flush to 0 (keeps 2^n normal); x is clamped at 88 (finite); NaN propagates. */
INF_INLINE v16 exp16(v16 x) {
    vi16 tiny = x < -86.0f, nan = x != x;
    v16 xc = sel16(x > 88.0f, (v16){0} + 88.0f, sel16(tiny, (v16){0}, x));
    v16 t = xc * 1.44269504088896341f + 12582912.0f; /* 1.5 * 2^23: rounds to an integer */
    v16 nf = t - 12582912.0f;
    vi16 n = (vi16)t - 0x4b400000;
    v16 r = xc - nf * 0.693145751953125f; /* ln2 split in two for an exact product */
    r = r - nf * 1.42860676533018732e-06f;
    v16 p = r * (1.0f / 5040) + (1.0f / 720);
    p = p * r + (1.0f / 120);
    p = p * r + (1.0f / 24);
    p = p * r + (1.0f / 6);
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    v16 e = (v16)((vi16)p + (n << 23));
    return sel16(nan, x, sel16(tiny, (v16){0}, e));
}

/* Applies a lane-wise body to x[0..n) in blocks of 16; the tail goes through a padded block so
 * every element sees exactly the same arithmetic wherever it sits. */
#define FOR_BLOCKS16(n, ...)                                                                       \
    do {                                                                                           \
        int64_t i_ = 0;                                                                            \
        for (; i_ + 16 <= (n); i_ += 16) {                                                         \
            int64_t off_ = i_;                                                                     \
            int64_t cnt_ = 16;                                                                     \
            (void)cnt_;                                                                            \
            __VA_ARGS__                                                                            \
        }                                                                                          \
        if (i_ < (n)) {                                                                            \
            int64_t off_ = i_;                                                                     \
            int64_t cnt_ = (n)-i_;                                                                 \
            (void)off_;                                                                            \
            __VA_ARGS__                                                                            \
        }                                                                                          \
    } while (0)

INF_INLINE v16 load_tail(const float *p, int64_t cnt, float pad) {
    float b[16];
    for (int j = 0; j < 16; j++)
        b[j] = j < cnt ? p[j] : pad;
    return load16(b);
}

INF_INLINE void store_tail(float *p, v16 v, int64_t cnt) {
    float b[16];
    store16(b, v);
    for (int64_t j = 0; j < cnt; j++)
        p[j] = b[j];
}

INF_INLINE v16 ld(const float *p, int64_t cnt, float pad) {
    return cnt == 16 ? load16(p) : load_tail(p, cnt, pad);
}

INF_INLINE void st(float *p, v16 v, int64_t cnt) {
    if (cnt == 16)
        store16(p, v);
    else
        store_tail(p, v, cnt);
}

INF_INLINE void softmax_impl(float *x, int64_t n) {
    if (n <= 0) return;
    v16 m = (v16){0} - INFINITY;
    FOR_BLOCKS16(n, {
        v16 v = ld(x + off_, cnt_, -INFINITY);
        m = sel16(v > m, v, m);
    });
    float ml[16], max = -INFINITY;
    store16(ml, m);
    for (int j = 0; j < 16; j++)
        max = ml[j] > max ? ml[j] : max;
    /* Float lanes per block, blocks summed in double: the error stays that of 16-term sums. */
    double sum = 0;
    FOR_BLOCKS16(n, {
        v16 e = exp16(ld(x + off_, cnt_, -INFINITY) - max);
        st(x + off_, e, cnt_);
        sum += (double)lanes_sum(e);
    });
    float inv = (float)(1.0 / sum);
    FOR_BLOCKS16(n, { st(x + off_, ld(x + off_, cnt_, 0.0f) * inv, cnt_); });
}

INF_OPS_CLONES
void inf_op_softmax(float *x, int64_t n) {
    softmax_impl(x, n);
}

INF_OPS_CLONES
void inf_op_silu_mul(float *g, const float *u, int64_t n) {
    FOR_BLOCKS16(n, {
        v16 gv = ld(g + off_, cnt_, 0.0f);
        st(g + off_, gv / (1.0f + exp16(-gv)) * ld(u + off_, cnt_, 0.0f), cnt_);
    });
}

/* tanh(x) lane-wise from exp16: sign(x) (1 - 2 / (exp(2|x|) + 1)); absolute error ~1e-7. */
INF_INLINE v16 tanh16(v16 x) {
    v16 a = sel16((vi16)(x < 0.0f), -x, x);
    v16 t = 1.0f - 2.0f / (exp16(2.0f * a) + 1.0f);
    return sel16((vi16)(x < 0.0f), -t, t);
}

INF_INLINE void softcap_impl(float *x, int64_t n, float cap) {
    float inv = 1.0f / cap;
    FOR_BLOCKS16(n, { st(x + off_, tanh16(ld(x + off_, cnt_, 0.0f) * inv) * cap, cnt_); });
}

INF_OPS_CLONES
void inf_op_softcap(float *x, int64_t n, float cap) {
    softcap_impl(x, n, cap);
}

/* Round-to-nearest-even to binary16 precision on the float bits: normals drop 13 mantissa bits
 * with RNE (a carry into the exponent is the correct result); below binary16's smallest normal
 * the grid is 2^-24, which adding and subtracting 0.5f rounds to exactly once; at or above
 * 65520 binary16 overflows to infinity; NaN stays NaN. */
INF_INLINE v16 round16(v16 x) {
    vu16 u = (vu16)x;
    vu16 sign = u & 0x80000000u, a = u & 0x7fffffffu;
    vu16 nrm = (a + 0x0fffu + ((a >> 13) & 1u)) & ~0x1fffu;
    vu16 sub = (vu16)(((v16)a + 0.5f) - 0.5f);
    vu16 r = (vu16)sel16((vi16)(a < 0x38800000u), (v16)sub, (v16)nrm);
    r = (vu16)sel16((vi16)(a >= 0x477ff000u), (v16)((vu16){0} + 0x7f800000u), (v16)r);
    r = (vu16)sel16((vi16)(a > 0x7f800000u), (v16)a, (v16)r);
    return (v16)(sign | r);
}

INF_INLINE void round_f16_impl(float *x, int64_t n) {
    FOR_BLOCKS16(n, { st(x + off_, round16(ld(x + off_, cnt_, 0.0f)), cnt_); });
}

INF_OPS_CLONES
void inf_op_round_f16(float *x, int64_t n) {
    round_f16_impl(x, n);
}

/* GELU as ggml evaluates it (a table over binary16 inputs): the input rounded to binary16, the
 * tanh form evaluated, the result rounded to binary16; 0 at or below -10, identity at or above
 * 10. Matching that rounding matters for quantized models (see inf_op_round_f16). */
INF_OPS_CLONES
void inf_op_gelu_mul(float *g, const float *u, int64_t n) {
    const float c = 0.7978845608028654f; /* sqrt(2 / pi) */
    FOR_BLOCKS16(n, {
        v16 x = ld(g + off_, cnt_, 0.0f);
        v16 h = round16(x);
        v16 y = round16(0.5f * h * (1.0f + tanh16(c * h * (1.0f + 0.044715f * h * h))));
        y = sel16((vi16)(x >= 10.0f), x, y);
        y = sel16((vi16)(x <= -10.0f), (v16){0}, y);
        st(g + off_, y * ld(u + off_, cnt_, 0.0f), cnt_);
    });
}

void inf_op_add(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] += x[i];
}

/* One halving step of the joint reduction of many dots. a and b hold groups of g partial sums
 * (16/g dots each); the result holds both inputs' dots as groups of g/2, lane j of a group being
 * partial j plus partial j + g/2 — exactly lanes_sum's tree, so a dot reduced jointly equals the
 * same dot reduced alone. */
INF_INLINE v16 halve(v16 a, v16 b, int g) {
    /* __builtin_shufflevector (clang, gcc >= 12) takes constant lane indices into a ++ b. */
#define SHUF(...) __builtin_shufflevector(a, b, __VA_ARGS__)
    switch (g) {
    case 16:
        return SHUF(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
               SHUF(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    case 8:
        return SHUF(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
               SHUF(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    case 4:
        return SHUF(0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
               SHUF(2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
    default:
        return SHUF(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
               SHUF(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    }
#undef SHUF
}

/* scores[j] = scale * q.k_j. Sixteen keys at a time: sixteen independent accumulator chains,
 * reduced together into one vector of sixteen scores; each key's lanes and reduction tree are
 * exactly those of dot_lanes, used for the remaining keys. */
INF_INLINE void attn_scores(const float *restrict q, const float *k, size_t stride,
                            const int32_t *slots, int64_t n_pos, int64_t hd, float scale,
                            float *restrict scores) {
    int64_t j = 0;
    if (hd % DOT_LANES == 0) {
        for (; j + 16 <= n_pos; j += 16) {
            const float *kp[16];
            v16 acc[16];
#pragma GCC unroll 16
            for (int t = 0; t < 16; t++) {
                kp[t] = k + (size_t)slots[j + t] * stride;
                acc[t] = (v16){0};
            }
            for (int64_t i = 0; i < hd; i += DOT_LANES) {
                v16 qv = load16(q + i);
#pragma GCC unroll 16
                for (int t = 0; t < 16; t++)
                    acc[t] += qv * load16(kp[t] + i);
            }
            v16 r8[8], r4[4], r2[2];
#pragma GCC unroll 8
            for (int t = 0; t < 8; t++)
                r8[t] = halve(acc[2 * t], acc[2 * t + 1], 16);
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++)
                r4[t] = halve(r8[2 * t], r8[2 * t + 1], 8);
            r2[0] = halve(r4[0], r4[1], 4);
            r2[1] = halve(r4[2], r4[3], 4);
            store16(scores + j, halve(r2[0], r2[1], 2) * scale);
        }
    }
    for (; j < n_pos; j++)
        scores[j] = dot_lanes(q, k + (size_t)slots[j] * stride, hd) * scale;
}

/* out += sum over j in [j0, j1) of p_j v_j for one head: 64 (then 16) output dims at a time,
 * accumulators in registers across the block; every output dim sums over j in order, so the
 * result does not depend on how positions are split into blocks. */
INF_INLINE void attn_pv(const float *restrict p, const float *v, size_t stride,
                        const int32_t *slots, int64_t j0, int64_t j1, int64_t hd,
                        float *restrict out) {
    int64_t d0 = 0;
    for (; d0 + 4 * DOT_LANES <= hd; d0 += 4 * DOT_LANES) {
        v16 a0 = load16(out + d0), a1 = load16(out + d0 + 16), a2 = load16(out + d0 + 32),
            a3 = load16(out + d0 + 48);
        for (int64_t j = j0; j < j1; j++) {
            const float *vj = v + (size_t)slots[j] * stride + d0;
            float pj = p[j];
            a0 += pj * load16(vj);
            a1 += pj * load16(vj + 16);
            a2 += pj * load16(vj + 32);
            a3 += pj * load16(vj + 48);
        }
        store16(out + d0, a0);
        store16(out + d0 + 16, a1);
        store16(out + d0 + 32, a2);
        store16(out + d0 + 48, a3);
    }
    for (; d0 + DOT_LANES <= hd; d0 += DOT_LANES) {
        v16 a0 = load16(out + d0);
        for (int64_t j = j0; j < j1; j++)
            a0 += p[j] * load16(v + (size_t)slots[j] * stride + d0);
        store16(out + d0, a0);
    }
    for (; d0 < hd; d0++) {
        float acc = out[d0];
        for (int64_t j = j0; j < j1; j++)
            acc += p[j] * v[(size_t)slots[j] * stride + d0];
        out[d0] = acc;
    }
}

/* attn_pv for two heads at once (eight independent FMA chains instead of four); each head's
 * arithmetic is exactly attn_pv's. hd must be a multiple of 64. */
INF_INLINE void attn_pv2(const float *restrict p, const float *restrict r, const float *v,
                         size_t stride, const int32_t *slots, int64_t j0, int64_t j1, int64_t hd,
                         float *restrict out, float *restrict out2) {
    for (int64_t d0 = 0; d0 < hd; d0 += 4 * DOT_LANES) {
        v16 a0 = load16(out + d0), a1 = load16(out + d0 + 16), a2 = load16(out + d0 + 32),
            a3 = load16(out + d0 + 48);
        v16 b0 = load16(out2 + d0), b1 = load16(out2 + d0 + 16), b2 = load16(out2 + d0 + 32),
            b3 = load16(out2 + d0 + 48);
        for (int64_t j = j0; j < j1; j++) {
            const float *vj = v + (size_t)slots[j] * stride + d0;
            v16 v0 = load16(vj), v1 = load16(vj + 16), v2 = load16(vj + 32), v3 = load16(vj + 48);
            float pj = p[j], rj = r[j];
            a0 += pj * v0;
            a1 += pj * v1;
            a2 += pj * v2;
            a3 += pj * v3;
            b0 += rj * v0;
            b1 += rj * v1;
            b2 += rj * v2;
            b3 += rj * v3;
        }
        store16(out + d0, a0);
        store16(out + d0 + 16, a1);
        store16(out + d0 + 32, a2);
        store16(out + d0 + 48, a3);
        store16(out2 + d0, b0);
        store16(out2 + d0 + 16, b1);
        store16(out2 + d0 + 32, b2);
        store16(out2 + d0 + 48, b3);
    }
}

#define ATTN_BLOCK INF_ATTN_BLOCK

INF_INLINE void scores_impl(const float *q, int64_t n_heads, const float *k, size_t stride,
                            const int32_t *slots, int64_t n, int64_t hd, float scale, float *scores,
                            int64_t ld) {
    for (int64_t j0 = 0; j0 < n; j0 += ATTN_BLOCK) {
        int64_t nb = INF_OPS_MIN(ATTN_BLOCK, n - j0);
        for (int64_t h = 0; h < n_heads; h++)
            attn_scores(q + h * hd, k, stride, slots + j0, nb, hd, scale, scores + h * ld + j0);
    }
}

INF_INLINE void pv_impl(const float *p, int64_t n_heads, int64_t ld, const float *v, size_t stride,
                        const int32_t *slots, int64_t n, int64_t hd, float *part) {
    for (int64_t i = 0; i < n_heads * hd; i++)
        part[i] = 0.0f;
    for (int64_t j0 = 0; j0 < n; j0 += ATTN_BLOCK) {
        int64_t j1 = INF_OPS_MIN(n, j0 + ATTN_BLOCK), h = 0;
        if (hd % (4 * DOT_LANES) == 0)
            for (; h + 2 <= n_heads; h += 2)
                attn_pv2(p + h * ld, p + (h + 1) * ld, v, stride, slots, j0, j1, hd, part + h * hd,
                         part + (h + 1) * hd);
        for (; h < n_heads; h++)
            attn_pv(p + h * ld, v, stride, slots, j0, j1, hd, part + h * hd);
    }
}

INF_INLINE void attn_softmax_impl(float *row, int64_t n, float softcap) {
    if (softcap > 0.0f) softcap_impl(row, n, softcap);
    softmax_impl(row, n);
    /* llama.cpp multiplies the probabilities with its f16 V cache in f16: same precision. */
    round_f16_impl(row, n);
}

INF_OPS_CLONES
void inf_op_attn_softmax(float *row, int64_t n, float softcap) {
    attn_softmax_impl(row, n, softcap);
}

INF_OPS_CLONES
void inf_op_attention_group(const float *q, int64_t n_heads, const float *k, const float *v,
                            size_t stride, const int32_t *slots, int64_t n_pos, int64_t head_dim,
                            float scale, float *scratch, float *out) {
    for (int64_t i = 0; i < n_heads * head_dim; i++)
        out[i] = 0.0f;
    if (n_pos <= 0) return;
    float *scores = scratch, *part = scratch + n_heads * n_pos;
    scores_impl(q, n_heads, k, stride, slots, n_pos, head_dim, scale, scores, n_pos);
    for (int64_t h = 0; h < n_heads; h++)
        attn_softmax_impl(scores + h * n_pos, n_pos, 0.0f);
    for (int64_t c0 = 0; c0 < n_pos; c0 += INF_ATTN_CHUNK) {
        int64_t nc = INF_OPS_MIN(INF_ATTN_CHUNK, n_pos - c0);
        pv_impl(scores + c0, n_heads, n_pos, v, stride, slots + c0, nc, head_dim, part);
        for (int64_t i = 0; i < n_heads * head_dim; i++)
            out[i] += part[i];
    }
}

void inf_op_attention(const float *q, const float *k, const float *v, size_t stride,
                      const int32_t *slots, int64_t n_pos, int64_t head_dim, float scale,
                      float *scratch, float *out) {
    inf_op_attention_group(q, 1, k, v, stride, slots, n_pos, head_dim, scale, scratch, out);
}

/* ---- f16 KV rows ---- */

/* Exact binary16 -> float without F16C, branch-free so the clones vectorize it: normals,
 * infinities and NaNs move the exponent (rebias by 112, once more for the all-ones exponent),
 * subnormals are their integer mantissa times 2^-24 (both factors exact). */
INF_INLINE float h2f(inf_half h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, a = h & 0x7fffu;
    uint32_t nrm = (a << 13) + 0x38000000u;
    if (a >= 0x7c00u) nrm += 0x38000000u;
    float sub = (float)(int32_t)a * 0x1p-24f;
    uint32_t sb, r;
    memcpy(&sb, &sub, sizeof sb);
    r = a < 0x400u ? sb : nrm;
    r |= sign;
    float f;
    memcpy(&f, &r, sizeof f);
    return f;
}

/* h2f on sixteen halves at once (explicit vectors: the loop form does not vectorize). */
typedef uint16_t vh16 __attribute__((vector_size(32)));
INF_INLINE v16 h2f16(const inf_half *p) {
    vh16 hv;
    memcpy(&hv, p, sizeof hv);
    vu16 u = __builtin_convertvector(hv, vu16);
    vu16 sign = (u & 0x8000u) << 16, a = u & 0x7fffu;
    vu16 nrm = (a << 13) + 0x38000000u;
    nrm += (vu16)(a >= 0x7c00u) & 0x38000000u;
    v16 sub = __builtin_convertvector((vi16)a, v16) * 0x1p-24f;
    vu16 r = (vu16)sel16((vi16)(a < 0x400u), sub, (v16)nrm);
    return (v16)(r | sign);
}

INF_INLINE void gather_ref(const inf_half *src, size_t stride, const int32_t *slots, int64_t n,
                           int64_t hd, float *restrict dst) {
    for (int64_t j = 0; j < n; j++) {
        const inf_half *row = src + (size_t)slots[j] * stride;
        float *o = dst + j * hd;
        int64_t d = 0;
        for (; d + 16 <= hd; d += 16)
            store16(o + d, h2f16(row + d));
        for (; d < hd; d++)
            o[d] = h2f(row[d]);
    }
}

/* F16C conversions when the dispatched ISA has them (avx2 implies F16C in kernels.c):
 * 0 portable, 1 avx2 (256-bit F16C), 2 avx512 (512-bit conversions). */
static int use_f16c(void) {
#if defined(__x86_64__)
    int isa = inf_kernels_isa();
    return isa >= INF_ISA_AVX512 ? 2 : isa >= INF_ISA_AVX2 ? 1 : 0;
#else
    return 0;
#endif
}

INF_INLINE void gather(int f16c, const inf_half *src, size_t stride, const int32_t *slots,
                       int64_t n, int64_t hd, float *dst) {
#if defined(__x86_64__)
    if (f16c == 2) {
        inf__f16_gather_avx512(src, stride, slots, n, hd, dst);
        return;
    }
    if (f16c) {
        inf__f16_gather_avx2(src, stride, slots, n, hd, dst);
        return;
    }
#endif
    (void)f16c;
    gather_ref(src, stride, slots, n, hd, dst);
}

/* Converted block rows are contiguous: row j sits at conv + iota[j] * head_dim. */
static const int32_t iota[ATTN_BLOCK] = {
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
    22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
    44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};
_Static_assert(ATTN_BLOCK == 64, "iota covers one block");

/* scores_impl over f16 keys: block by block, each block's keys converted once for all heads. */
INF_INLINE void scores_f16_impl(int f16c, const float *q, int64_t n_heads, const inf_half *k,
                                size_t stride, const int32_t *slots, int64_t n, int64_t hd,
                                float scale, float *scores, int64_t ld, float *conv) {
    for (int64_t j0 = 0; j0 < n; j0 += ATTN_BLOCK) {
        int64_t nb = INF_OPS_MIN(ATTN_BLOCK, n - j0);
        gather(f16c, k, stride, slots + j0, nb, hd, conv);
        for (int64_t h = 0; h < n_heads; h++)
            attn_scores(q + h * hd, conv, (size_t)hd, iota, nb, hd, scale, scores + h * ld + j0);
    }
}

/* pv_impl over f16 values: the same per-dim in-order sums, blocks of converted rows. */
INF_INLINE void pv_f16_impl(int f16c, const float *p, int64_t n_heads, int64_t ld,
                            const inf_half *v, size_t stride, const int32_t *slots, int64_t n,
                            int64_t hd, float *part, float *conv) {
    for (int64_t i = 0; i < n_heads * hd; i++)
        part[i] = 0.0f;
    for (int64_t j0 = 0; j0 < n; j0 += ATTN_BLOCK) {
        int64_t nb = INF_OPS_MIN(ATTN_BLOCK, n - j0), h = 0;
        gather(f16c, v, stride, slots + j0, nb, hd, conv);
        if (hd % (4 * DOT_LANES) == 0)
            for (; h + 2 <= n_heads; h += 2)
                attn_pv2(p + h * ld + j0, p + (h + 1) * ld + j0, conv, (size_t)hd, iota, 0, nb,
                         hd, part + h * hd, part + (h + 1) * hd);
        for (; h < n_heads; h++)
            attn_pv(p + h * ld + j0, conv, (size_t)hd, iota, 0, nb, hd, part + h * hd);
    }
}

INF_OPS_CLONES
void inf_op_attn_scores_f16(const float *q, int64_t n_heads, const inf_half *k, size_t stride,
                            const int32_t *slots, int64_t n, int64_t head_dim, float scale,
                            float *scores, int64_t ld, float *conv) {
    scores_f16_impl(use_f16c(), q, n_heads, k, stride, slots, n, head_dim, scale, scores, ld,
                    conv);
}

INF_OPS_CLONES
void inf_op_attn_pv_f16(const float *p, int64_t n_heads, int64_t ld, const inf_half *v,
                        size_t stride, const int32_t *slots, int64_t n, int64_t head_dim,
                        float *part, float *conv) {
    pv_f16_impl(use_f16c(), p, n_heads, ld, v, stride, slots, n, head_dim, part, conv);
}

INF_OPS_CLONES
void inf_op_attention_group_f16(const float *q, int64_t n_heads, const inf_half *k,
                                const inf_half *v, size_t stride, const int32_t *slots,
                                int64_t n_pos, int64_t head_dim, float scale, float softcap,
                                float *scratch, float *out) {
    for (int64_t i = 0; i < n_heads * head_dim; i++)
        out[i] = 0.0f;
    if (n_pos <= 0) return;
    int f16c = use_f16c();
    float *scores = scratch, *part = scratch + n_heads * n_pos;
    float *conv = part + n_heads * head_dim;
    scores_f16_impl(f16c, q, n_heads, k, stride, slots, n_pos, head_dim, scale, scores, n_pos,
                    conv);
    for (int64_t h = 0; h < n_heads; h++)
        attn_softmax_impl(scores + h * n_pos, n_pos, softcap);
    for (int64_t c0 = 0; c0 < n_pos; c0 += INF_ATTN_CHUNK) {
        int64_t nc = INF_OPS_MIN(INF_ATTN_CHUNK, n_pos - c0);
        pv_f16_impl(f16c, scores + c0, n_heads, n_pos, v, stride, slots + c0, nc, head_dim, part,
                    conv);
        for (int64_t i = 0; i < n_heads * head_dim; i++)
            out[i] += part[i];
    }
}

void inf_op_f32_to_f16(const float *x, inf_half *y, int64_t n) {
#if defined(__x86_64__)
    if (use_f16c()) {
        inf__f32_to_f16_avx2(x, y, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++)
        y[i] = inf_fp32_to_fp16(x[i]);
}

INF_OPS_CLONES
void inf_op_f16_gather(const inf_half *src, size_t stride, const int32_t *slots, int64_t n,
                       int64_t head_dim, float *dst) {
    gather(use_f16c(), src, stride, slots, n, head_dim, dst);
}
