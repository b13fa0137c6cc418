/*
 * test_model.c — the model layer: per-token ops, hyperparameter/tensor validation, the batched
 * forward pass against a double-precision reference written here (llama and qwen2 shapes:
 * GQA, biases, tied embeddings, NeoX RoPE), batch and thread invariance over the slot-addressed
 * KV store, and the public model/context API (vocab-only loads, context limits).
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/ops.h"
#include "model/model.h"

/* ---- helpers ---- */

static uint64_t rng_state = 0x1234567;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

static float *rand_vec(int64_t n, float scale) {
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++)
        v[i] = frand() * scale;
    return v;
}

static float f16r(float x) {
    return inf_fp16_to_fp32(inf_fp32_to_fp16(x));
}

/* INFERNEO_FIXTURES, else INFERNEO_ROOT/../shared/fixtures, else relative to a build dir. */
static const char *fixtures(void) {
    static char buf[512];
    const char *f = getenv("INFERNEO_FIXTURES"), *root = getenv("INFERNEO_ROOT");
    if (f) return f;
    if (root) {
        snprintf(buf, sizeof buf, "%s/../shared/fixtures", root);
        return buf;
    }
    return "../../shared/fixtures";
}

/* ---- ops ---- */

static void test_round_f16(void **state) {
    (void)state;
    float special[] = {0.0f,           -0.0f,        1.0f,    65504.0f,       65519.0f,
                       65520.0f,       1e6f,         -1e6f,   6.1035156e-05f, 5.9604645e-08f,
                       2.9802322e-08f, 2.98024e-08f, 1e-9f,   1.0009765625f,  1.00048828125f,
                       1.00146484375f, 3.0e-5f,      -7.5e-6f};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
        float x = special[i];
        inf_op_round_f16(&x, 1);
        float want = f16r(special[i]);
        assert_true(memcmp(&x, &want, 4) == 0 || (isinf(x) && isinf(want) && x == want));
    }
    for (int i = 0; i < 200000; i++) {
        float v = frand() * powf(2.0f, (float)(i % 60 - 40));
        float x = v;
        inf_op_round_f16(&x, 1);
        float want = f16r(v);
        if (memcmp(&x, &want, 4) != 0) fail_msg("round_f16(%a) = %a, want %a", v, x, want);
    }
    float nan = NAN;
    inf_op_round_f16(&nan, 1);
    assert_true(isnan(nan));
}

static void test_rope(void **state) {
    (void)state;
    float cs[8], x[16], y[16];
    /* Position 0 is the identity. */
    inf_op_rope_cache(cs, 8, 0, 10000.0f, 1.0f);
    for (int i = 0; i < 16; i++)
        x[i] = y[i] = frand();
    inf_op_rope(y, 2, 8, 8, cs, 0);
    assert_memory_equal(x, y, sizeof x);
    /* Adjacent pairs vs halves: the first pair rotates by theta = pos (base^0 = 1). */
    inf_op_rope_cache(cs, 8, 3, 10000.0f, 1.0f);
    assert_float_equal(cs[0], cosf(3.0f), 1e-6);
    assert_float_equal(cs[1], sinf(3.0f), 1e-6);
    assert_float_equal(cs[2], cosf(3.0f * powf(10000.0f, -2.0f / 8)), 1e-5);
    memcpy(y, x, sizeof x);
    inf_op_rope(y, 1, 8, 8, cs, 0);
    assert_float_equal(y[0], x[0] * cs[0] - x[1] * cs[1], 1e-6);
    assert_float_equal(y[1], x[0] * cs[1] + x[1] * cs[0], 1e-6);
    memcpy(y, x, sizeof x);
    inf_op_rope(y, 1, 8, 8, cs, 1);
    assert_float_equal(y[0], x[0] * cs[0] - x[4] * cs[1], 1e-6);
    assert_float_equal(y[4], x[0] * cs[1] + x[4] * cs[0], 1e-6);
    /* Partial rotation leaves the tail alone; linear scaling halves the angle. */
    memcpy(y, x, sizeof x);
    inf_op_rope_cache(cs, 4, 5, 10000.0f, 0.5f);
    assert_float_equal(cs[0], cosf(2.5f), 1e-6);
    inf_op_rope(y, 2, 8, 4, cs, 0);
    assert_memory_equal(y + 4, x + 4, 4 * sizeof(float));
    assert_memory_equal(y + 12, x + 12, 4 * sizeof(float));
}

/* The ops the other architectures add: LongRoPE's cache, GELU with ggml's binary16 rounding,
 * soft-capping, and soft-capped attention against scalar double loops. */
static void test_arch_ops(void **state) {
    (void)state;
    /* rope cache with factors and a magnitude: theta_i / ff_i, cos/sin times mscale */
    float cs[12], ff[6] = {1.0f, 2.0f, 4.0f, 8.0f, 1.5f, 3.0f};
    inf_op_rope_cache_ext(cs, 12, 7, 10000.0f, 0.5f, ff, 1.25f);
    for (int i = 0; i < 6; i++) {
        double th = 0.5 * 7.0 * pow(10000.0, -2.0 * i / 12) / ff[i];
        assert_float_equal(cs[2 * i], 1.25 * cos(th), 1e-5);
        assert_float_equal(cs[2 * i + 1], 1.25 * sin(th), 1e-5);
    }
    /* GELU (tanh form) on binary16-rounded inputs, result rounded to binary16; the clamps */
    enum { N = 37 };
    float g[N], u[N], g0[N];
    for (int i = 0; i < N; i++) {
        g0[i] = g[i] = frand() * 6.0f;
        u[i] = frand();
    }
    g0[0] = g[0] = -12.0f;
    g0[1] = g[1] = 11.0f;
    inf_op_gelu_mul(g, u, N);
    for (int i = 0; i < N; i++) {
        double x = f16r(g0[i]);
        double y = 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
        if (g0[i] <= -10) y = 0;
        else if (g0[i] >= 10) y = g0[i];
        else y = f16r((float)y);
        assert_float_equal(g[i], y * u[i], 1e-3 * fabs(y * u[i]) + 1e-6);
    }
    assert_float_equal(g[0], 0.0f, 0.0);
    /* soft-cap: c * tanh(x / c) */
    float x[N];
    for (int i = 0; i < N; i++)
        x[i] = g0[i] * 10.0f;
    inf_op_softcap(x, N, 4.0f);
    for (int i = 0; i < N; i++)
        assert_float_equal(x[i], 4.0 * tanh(g0[i] * 10.0 / 4.0), 1e-5);
    /* soft-capped attention == softmax(c tanh(scale q.k / c)) v in double */
    enum { HD = 32, NP = 21 };
    inf_half kh[NP * HD], vh[NP * HD];
    float q[HD], out[HD];
    int32_t slots[NP];
    for (int j = 0; j < NP; j++)
        slots[j] = (j * 5 + 2) % NP;
    for (int i = 0; i < NP * HD; i++) {
        kh[i] = inf_fp32_to_fp16(frand() * 3.0f);
        vh[i] = inf_fp32_to_fp16(frand());
    }
    for (int i = 0; i < HD; i++)
        q[i] = f16r(frand() * 3.0f);
    float *scratch = malloc(sizeof(float) * ((NP + HD) + INF_ATTN_CONV_FLOATS(HD)));
    float scale = 1.0f / sqrtf((float)HD), cap = 4.0f;
    inf_op_attention_group_f16(q, 1, kh, vh, HD, slots, NP, HD, scale, cap, scratch, out);
    double p[NP], mx = -INFINITY, tot = 0;
    for (int j = 0; j < NP; j++) {
        double t = 0;
        for (int d = 0; d < HD; d++)
            t += (double)q[d] * inf_fp16_to_fp32(kh[slots[j] * HD + d]);
        p[j] = cap * tanh(t * scale / cap);
        mx = fmax(mx, p[j]);
    }
    for (int j = 0; j < NP; j++)
        tot += p[j] = exp(p[j] - mx);
    for (int d = 0; d < HD; d++) {
        double o = 0;
        for (int j = 0; j < NP; j++)
            o += p[j] / tot * inf_fp16_to_fp32(vh[slots[j] * HD + d]);
        assert_float_equal(out[d], o, 2e-3);
    }
    free(scratch);
}

static void test_norm_softmax_attention(void **state) {
    (void)state;
    float x[37], w[37], y[37];
    double ss = 0;
    for (int i = 0; i < 37; i++) {
        x[i] = frand() * 3;
        w[i] = frand();
        ss += (double)x[i] * x[i];
    }
    inf_op_rmsnorm(x, w, y, 37, 1e-5f);
    double sc = 1.0 / sqrt(ss / 37 + 1e-5);
    for (int i = 0; i < 37; i++)
        assert_float_equal(y[i], x[i] * sc * w[i], 1e-5);

    float s[5] = {1, 2, 3, 4, 1000};
    inf_op_softmax(s, 5);
    assert_float_equal(s[4], 1.0f, 1e-6);
    assert_float_equal(s[0], 0.0f, 1e-6);

    /* Softmax and SiLU (vectorized exp) against double precision, every tail length. */
    for (int n = 1; n <= 70; n++) {
        float xs[70], g[70], u[70];
        double ref[70], mx = -INFINITY, sum = 0;
        for (int i = 0; i < n; i++) {
            xs[i] = frand() * 40.0f;
            mx = fmax(mx, xs[i]);
            g[i] = frand() * 100.0f;
            u[i] = frand();
        }
        double arg[70];
        for (int i = 0; i < n; i++)
            sum += (ref[i] = exp(arg[i] = (double)xs[i] - mx));
        inf_op_softmax(xs, n);
        /* x - max is rounded to float first: its relative error scales with |x - max|. */
        for (int i = 0; i < n; i++)
            if (fabs(xs[i] - ref[i] / sum) >
                (2e-6 + 1.2e-7 * fabs(arg[i])) * (ref[i] / sum) + 1e-37)
                fail_msg("softmax n=%d [%d]: %g vs %g", n, i, xs[i], ref[i] / sum);
        float g0[70];
        memcpy(g0, g, sizeof g);
        inf_op_silu_mul(g, u, n);
        for (int i = 0; i < n; i++) {
            double want = g0[i] / (1.0 + exp(-(double)g0[i])) * u[i];
            if (fabs(g[i] - want) > 1e-6 * fabs(want) + 1e-30)
                fail_msg("silu n=%d [%d] g=%g: %g vs %g", n, i, g0[i], g[i], want);
        }
    }

    /* One position: the output is that position's value. Equal keys: the mean of values. */
    float q[8], k[3 * 8], v[3 * 8], out[8], scores[3 + 8]; /* n_pos + head_dim */
    for (int i = 0; i < 8; i++)
        q[i] = frand();
    for (int i = 0; i < 24; i++)
        v[i] = f16r(frand());
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 8; i++)
            k[j * 8 + i] = 0.5f;
    int32_t slots[3] = {2, 0, 1};
    inf_op_attention(q, k, v, 8, slots, 1, 8, 0.35f, scores, out);
    assert_memory_equal(out, v + 16, sizeof out);
    inf_op_attention(q, k, v, 8, slots, 3, 8, 0.35f, scores, out);
    for (int i = 0; i < 8; i++)
        assert_float_equal(out[i], (v[i] + v[8 + i] + v[16 + i]) / 3, 2e-3);
}

/* Grouped attention (GQA) equals per-head attention bit for bit, and both match a double
 * reference, for head sizes hitting every vector path (64-wide blocks, 16-wide blocks, scalar
 * tails) and position counts around the block and chunk sizes. */
static void test_attention_paths(void **state) {
    (void)state;
    static const int64_t hds[] = {64, 128, 80, 20};
    static const int64_t nps[] = {1, 15, 16, 17, 64, 65, 300, 513};
    enum { G = 5, KVH = 2 };
    for (size_t a = 0; a < sizeof hds / sizeof hds[0]; a++)
        for (size_t b = 0; b < sizeof nps / sizeof nps[0]; b++) {
            int64_t hd = hds[a], np = nps[b];
            size_t stride = (size_t)(KVH * hd);
            float *k = rand_vec(np * (int64_t)stride, 1.0f),
                  *v = rand_vec(np * (int64_t)stride, 1.0f);
            float *q = rand_vec(G * hd, 1.0f);
            float *scratch = malloc(sizeof(float) * (size_t)(G * (np + hd)));
            float *out = malloc(sizeof(float) * (size_t)(G * hd)),
                  *one = malloc(sizeof(float) * (size_t)hd);
            int32_t *slots = malloc(sizeof(int32_t) * (size_t)np);
            for (int64_t j = 0; j < np; j++)
                slots[j] = (int32_t)((j * 7 + 3) % np);
            const float *kk = k + hd, *vv = v + hd; /* second KV head */
            float scale = 1.0f / sqrtf((float)hd);
            inf_op_attention_group(q, G, kk, vv, stride, slots, np, hd, scale, scratch, out);
            double *sc = malloc(sizeof(double) * (size_t)np);
            for (int h = 0; h < G; h++) {
                inf_op_attention(q + h * hd, kk, vv, stride, slots, np, hd, scale, scratch, one);
                if (memcmp(one, out + h * hd, sizeof(float) * (size_t)hd))
                    fail_msg("hd %lld n_pos %lld head %d: group != single", (long long)hd,
                             (long long)np, h);
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < np; j++) {
                    double t = 0;
                    for (int64_t d = 0; d < hd; d++)
                        t += (double)q[h * hd + d] * kk[(size_t)slots[j] * stride + (size_t)d];
                    sc[j] = t * scale;
                    mx = fmax(mx, sc[j]);
                }
                for (int64_t j = 0; j < np; j++)
                    sum += (sc[j] = exp(sc[j] - mx));
                for (int64_t d = 0; d < hd; d++) {
                    double o = 0;
                    for (int64_t j = 0; j < np; j++)
                        o += sc[j] / sum * vv[(size_t)slots[j] * stride + (size_t)d];
                    /* probabilities carry binary16 precision (relative 2^-11) */
                    if (fabs(o - one[d]) > 1e-3)
                        fail_msg("hd %lld n_pos %lld: %g vs %g", (long long)hd, (long long)np,
                                 one[d], o);
                }
            }
            free(k), free(v), free(q), free(scratch), free(out), free(one), free(slots), free(sc);
        }
}

/* ---- a small model written here, with a reference forward in double ---- */

typedef struct tlayer {
    float *an, *wq, *wk, *wv, *wo, *fn, *wg, *wu, *wd, *bq, *bk, *bv;
} tlayer;

typedef struct tmodel {
    const char *arch;
    int64_t V, E, L, H, HKV, HD, F, ctx;
    float base, eps;
    bool qwen; /* biases, tied output, NeoX RoPE */
    float *embd, *out, *onorm;
    tlayer l[3];
} tmodel;

static void tmodel_init(tmodel *t, bool qwen) {
    memset(t, 0, sizeof *t);
    t->qwen = qwen;
    t->arch = qwen ? "qwen2" : "llama";
    t->V = 300;
    t->E = 64;
    t->L = qwen ? 2 : 3;
    t->H = 4;
    t->HKV = qwen ? 1 : 2;
    t->HD = 16;
    t->F = 96;
    t->ctx = 256;
    t->base = qwen ? 1e6f : 10000.0f;
    t->eps = 1e-5f;
    int64_t E = t->E, Q = t->H * t->HD, KV = t->HKV * t->HD;
    t->embd = rand_vec(t->V * E, 1.0f);
    t->onorm = rand_vec(E, 1.0f);
    t->out = qwen ? t->embd : rand_vec(t->V * E, 0.3f);
    for (int64_t l = 0; l < t->L; l++) {
        tlayer *L = &t->l[l];
        L->an = rand_vec(E, 1.0f);
        L->fn = rand_vec(E, 1.0f);
        L->wq = rand_vec(Q * E, 0.3f);
        L->wk = rand_vec(KV * E, 0.3f);
        L->wv = rand_vec(KV * E, 0.3f);
        L->wo = rand_vec(E * Q, 0.3f);
        L->wg = rand_vec(t->F * E, 0.3f);
        L->wu = rand_vec(t->F * E, 0.3f);
        L->wd = rand_vec(E * t->F, 0.3f);
        if (qwen) {
            L->bq = rand_vec(Q, 0.5f);
            L->bk = rand_vec(KV, 0.5f);
            L->bv = rand_vec(KV, 0.5f);
        }
    }
}

static void tmodel_free(tmodel *t) {
    free(t->embd);
    free(t->onorm);
    if (!t->qwen) free(t->out);
    for (int64_t l = 0; l < t->L; l++) {
        tlayer *L = &t->l[l];
        float *p[] = {L->an, L->fn, L->wq, L->wk, L->wv, L->wo,
                      L->wg, L->wu, L->wd, L->bq, L->bk, L->bv};
        for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
            free(p[i]);
    }
}

enum { BREAK_NONE, BREAK_MISSING, BREAK_SHAPE, BREAK_ARCH, BREAK_VOCAB, BREAK_ROPE, BREAK_TYPE };

static void add(inf_gguf_writer *w, const char *name, const float *data, int64_t ne0, int64_t ne1) {
    int64_t ne[2] = {ne0, ne1};
    assert_int_equal(inf_gguf_writer_add_tensor(w, name, INF_TYPE_F32, ne1 > 1 ? 2 : 1, ne, data),
                     0);
}

static void kv_u32(inf_gguf_writer *w, const char *arch, const char *k, uint32_t v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, k);
    assert_int_equal(inf_gguf_writer_set_u32(w, key, v), 0);
}

static void tmodel_write(const tmodel *t, const char *path, int brk) {
    inf_gguf_writer *w = inf_gguf_writer_new();
    assert_non_null(w);
    const char *arch = t->arch;
    assert_int_equal(
        inf_gguf_writer_set_str(w, "general.architecture", brk == BREAK_ARCH ? "gpt-j" : arch), 0);
    assert_int_equal(inf_gguf_writer_set_str(w, "general.name", "unit"), 0);
    kv_u32(w, arch, "context_length", (uint32_t)t->ctx);
    kv_u32(w, arch, "embedding_length", (uint32_t)t->E);
    kv_u32(w, arch, "block_count", (uint32_t)t->L);
    kv_u32(w, arch, "feed_forward_length", (uint32_t)t->F);
    kv_u32(w, arch, "attention.head_count", (uint32_t)t->H);
    kv_u32(w, arch, "attention.head_count_kv", (uint32_t)t->HKV);
    char key[128];
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    assert_int_equal(inf_gguf_writer_set_f32(w, key, t->eps), 0);
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    assert_int_equal(inf_gguf_writer_set_f32(w, key, t->base), 0);
    if (brk == BREAK_ROPE) {
        snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
        assert_int_equal(inf_gguf_writer_set_str(w, key, "yarn"), 0);
    }
    /* Vocabulary: control tokens then plain pieces. */
    int64_t nv = brk == BREAK_VOCAB ? t->V + 1 : t->V;
    char **toks = calloc((size_t)nv, sizeof *toks);
    for (int64_t i = 0; i < nv; i++) {
        toks[i] = malloc(32);
        if (i == 0)
            snprintf(toks[i], 32, "<unk>");
        else if (i == 1)
            snprintf(toks[i], 32, "<s>");
        else if (i == 2)
            snprintf(toks[i], 32, "</s>");
        else
            snprintf(toks[i], 32, "t%lld", (long long)i);
    }
    assert_int_equal(inf_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama"), 0);
    assert_int_equal(
        inf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, nv), 0);
    for (int64_t i = 0; i < nv; i++)
        free(toks[i]);
    free(toks);
    assert_int_equal(inf_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1), 0);
    assert_int_equal(inf_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2), 0);

    int64_t E = t->E, Q = t->H * t->HD, KV = t->HKV * t->HD;
    add(w, "token_embd.weight", t->embd, E, t->V);
    add(w, "output_norm.weight", t->onorm, E, 1);
    if (!t->qwen) add(w, "output.weight", t->out, E, brk == BREAK_SHAPE ? t->V - 1 : t->V);
    for (int64_t l = 0; l < t->L; l++) {
        const tlayer *L = &t->l[l];
        char n[64];
#define ADD(suffix, data, a, b)                                                                    \
    snprintf(n, sizeof n, "blk.%lld." suffix, (long long)l);                                       \
    add(w, n, data, a, b)
        ADD("attn_norm.weight", L->an, E, 1);
        ADD("attn_q.weight", L->wq, E, Q);
        ADD("attn_k.weight", L->wk, E, KV);
        if (!(brk == BREAK_MISSING && l == 1)) {
            ADD("attn_v.weight", L->wv, E, KV);
        }
        ADD("attn_output.weight", L->wo, Q, E);
        ADD("ffn_norm.weight", L->fn, E, 1);
        ADD("ffn_gate.weight", L->wg, E, t->F);
        ADD("ffn_up.weight", L->wu, E, t->F);
        if (brk == BREAK_TYPE && l == 0) {
            /* An i32 tensor where a matmul weight belongs. */
            int64_t ne[2] = {t->F, E};
            snprintf(n, sizeof n, "blk.%lld.ffn_down.weight", (long long)l);
            assert_int_equal(inf_gguf_writer_add_tensor(w, n, INF_TYPE_I32, 2, ne, L->wd), 0);
        } else {
            ADD("ffn_down.weight", L->wd, t->F, E);
        }
        if (t->qwen) {
            ADD("attn_q.bias", L->bq, Q, 1);
            ADD("attn_k.bias", L->bk, KV, 1);
            ADD("attn_v.bias", L->bv, KV, 1);
        }
#undef ADD
    }
    int rc = inf_gguf_writer_write(w, path);
    if (rc) fail_msg("write: %s", inf_last_error());
    inf_gguf_writer_free(w);
}

static void matvec(const float *W, const double *x, int64_t n_out, int64_t n_in, double *y) {
    for (int64_t o = 0; o < n_out; o++) {
        double s = 0;
        for (int64_t i = 0; i < n_in; i++)
            s += (double)W[o * n_in + i] * x[i];
        y[o] = s;
    }
}

static void rmsnorm_d(const double *x, const float *w, int64_t n, float eps, double *y) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    double sc = 1.0 / sqrt(ss / (double)n + eps);
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] * sc * w[i];
}

static void rope_d(double *x, int64_t n_head, int64_t hd, int64_t pos, double base, bool neox) {
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t i = 0; i < hd / 2; i++) {
            double th = (double)pos * pow(base, -2.0 * (double)i / (double)hd);
            int64_t a = neox ? i : 2 * i, b = neox ? i + hd / 2 : 2 * i + 1;
            double x0 = x[h * hd + a], x1 = x[h * hd + b];
            x[h * hd + a] = x0 * cos(th) - x1 * sin(th);
            x[h * hd + b] = x0 * sin(th) + x1 * cos(th);
        }
}

/* Reference logits [n][V] for tokens at positions 0..n-1 (one sequence). Q, K, V and the
 * attention probabilities are rounded to f16 like the implementation (llama.cpp's numerics). */
static double *reference(const tmodel *t, const int32_t *toks, int64_t n) {
    int64_t E = t->E, Q = t->H * t->HD, KV = t->HKV * t->HD, HD = t->HD;
    double *x = calloc((size_t)(n * E), sizeof *x), *xn = calloc((size_t)E, sizeof *xn);
    double *q = calloc((size_t)Q, sizeof *q), *att = calloc((size_t)Q, sizeof *att);
    double *K = calloc((size_t)(n * KV), sizeof *K), *Vv = calloc((size_t)(n * KV), sizeof *Vv);
    double *tmp = calloc((size_t)(t->F > E ? t->F : E), sizeof *tmp);
    double *g = calloc((size_t)t->F, sizeof *g), *u = calloc((size_t)t->F, sizeof *u);
    double *p = calloc((size_t)n, sizeof *p);
    double *logits = calloc((size_t)(n * t->V), sizeof *logits);
    for (int64_t i = 0; i < n; i++)
        for (int64_t e = 0; e < E; e++)
            x[i * E + e] = t->embd[toks[i] * E + e];
    for (int64_t l = 0; l < t->L; l++) {
        const tlayer *L = &t->l[l];
        for (int64_t i = 0; i < n; i++) { /* causal: position i only needs K/V of 0..i */
            double *xi = x + i * E;
            rmsnorm_d(xi, L->an, E, t->eps, xn);
            matvec(L->wq, xn, Q, E, q);
            matvec(L->wk, xn, KV, E, K + i * KV);
            matvec(L->wv, xn, KV, E, Vv + i * KV);
            if (t->qwen) {
                for (int64_t j = 0; j < Q; j++)
                    q[j] += L->bq[j];
                for (int64_t j = 0; j < KV; j++)
                    K[i * KV + j] += L->bk[j];
                for (int64_t j = 0; j < KV; j++)
                    Vv[i * KV + j] += L->bv[j];
            }
            rope_d(q, t->H, HD, i, t->base, t->qwen);
            rope_d(K + i * KV, t->HKV, HD, i, t->base, t->qwen);
            for (int64_t j = 0; j < Q; j++)
                q[j] = f16r((float)q[j]);
            for (int64_t j = 0; j < KV; j++) {
                K[i * KV + j] = f16r((float)K[i * KV + j]);
                Vv[i * KV + j] = f16r((float)Vv[i * KV + j]);
            }
            for (int64_t h = 0; h < t->H; h++) {
                int64_t kh = h / (t->H / t->HKV);
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j <= i; j++) {
                    double s = 0;
                    for (int64_t d = 0; d < HD; d++)
                        s += q[h * HD + d] * K[j * KV + kh * HD + d];
                    p[j] = s / sqrt((double)HD);
                    if (p[j] > mx) mx = p[j];
                }
                for (int64_t j = 0; j <= i; j++)
                    sum += (p[j] = exp(p[j] - mx));
                for (int64_t d = 0; d < HD; d++)
                    att[h * HD + d] = 0;
                for (int64_t j = 0; j <= i; j++) {
                    double pj = f16r((float)(p[j] / sum));
                    for (int64_t d = 0; d < HD; d++)
                        att[h * HD + d] += pj * Vv[j * KV + kh * HD + d];
                }
            }
            matvec(L->wo, att, E, Q, tmp);
            for (int64_t e = 0; e < E; e++)
                xi[e] += tmp[e];
            rmsnorm_d(xi, L->fn, E, t->eps, xn);
            matvec(L->wg, xn, t->F, E, g);
            matvec(L->wu, xn, t->F, E, u);
            for (int64_t f = 0; f < t->F; f++)
                g[f] = g[f] / (1 + exp(-g[f])) * u[f];
            matvec(L->wd, g, E, t->F, tmp);
            for (int64_t e = 0; e < E; e++)
                xi[e] += tmp[e];
        }
    }
    for (int64_t i = 0; i < n; i++) {
        rmsnorm_d(x + i * E, t->onorm, E, t->eps, xn);
        matvec(t->out, xn, t->V, E, logits + i * t->V);
    }
    free(x), free(xn), free(q), free(att), free(K), free(Vv), free(tmp), free(g), free(u), free(p);
    return logits;
}

static void tmp_path(char *buf, size_t cap, const char *tag) {
    snprintf(buf, cap, "/tmp/test_model_%ld_%s.gguf", (long)getpid(), tag);
}

static inf_model *load(const char *path, int n_threads) {
    inf_model_params p = inf_model_params_default();
    p.n_threads = n_threads;
    inf_model *m = NULL;
    int rc = inf_model_load(path, &p, &m);
    if (rc) fail_msg("load %s: %s", path, inf_last_error());
    return m;
}

static void check_against_reference(bool qwen) {
    tmodel t;
    tmodel_init(&t, qwen);
    char path[256];
    tmp_path(path, sizeof path, qwen ? "qwen" : "llama");
    tmodel_write(&t, path, BREAK_NONE);
    inf_model *m = load(path, 2);

    inf_model_info info;
    inf_model_get_info(m, &info);
    assert_string_equal(info.arch, t.arch);
    assert_int_equal(info.n_vocab, t.V);
    assert_int_equal(info.n_embd, t.E);
    assert_int_equal(info.n_layer, t.L);
    assert_int_equal(info.n_head_kv, t.HKV);
    assert_int_equal(info.head_dim, t.HD);
    assert_int_equal(info.rope_neox, qwen ? 1 : 0);
    assert_int_equal(info.bos, 1);
    assert_int_equal(info.n_tensors_by_type[INF_TYPE_F32], info.n_tensors);
    uint64_t want_params =
        (uint64_t)(t.V * t.E * (qwen ? 1 : 2) + t.E) +
        (uint64_t)t.L * (uint64_t)(2 * t.E + t.E * t.H * t.HD * 2 + 2 * t.E * t.HKV * t.HD +
                                   3 * t.E * t.F + (qwen ? t.H * t.HD + 2 * t.HKV * t.HD : 0));
    assert_int_equal(info.n_params, want_params);
    assert_int_equal(info.weight_bytes, want_params * 4);

    enum { N = 23 };
    int32_t toks[N];
    for (int i = 0; i < N; i++)
        toks[i] = (int32_t)((i * 37 + 5) % t.V);
    double *ref = reference(&t, toks, N);
    inf_context *c;
    assert_int_equal(inf_context_new(m, 64, &c), 0);
    float *lg = malloc(sizeof(float) * N * (size_t)t.V);
    /* In two evals (prefill then the rest) to exercise positions after a cached prefix. */
    assert_int_equal(inf_context_eval(c, toks, 15, true, lg), 0);
    assert_int_equal(inf_context_eval(c, toks + 15, N - 15, true, lg + 15 * t.V), 0);
    assert_int_equal(inf_context_pos(c), N);
    for (int i = 0; i < N; i++) {
        double mx = 0, diff = 0;
        for (int64_t v = 0; v < t.V; v++) {
            mx = fmax(mx, fabs(ref[i * t.V + v]));
            diff = fmax(diff, fabs(ref[i * t.V + v] - lg[i * t.V + v]));
        }
        if (diff > 2e-3 * (mx + 1))
            fail_msg("%s position %d: max diff %g (max |ref| %g)", t.arch, i, diff, mx);
    }
    free(ref);
    free(lg);
    inf_context_free(c);
    inf_model_free(m);
    unlink(path);
    tmodel_free(&t);
}

static void test_forward_llama(void **state) {
    (void)state;
    check_against_reference(false);
}

static void test_forward_qwen2(void **state) {
    (void)state;
    check_against_reference(true);
}

/* Two sequences A (na tokens) and B (nb tokens) interleaved in two batches of forward passes of
 * m, K/V scattered over non-contiguous slots (as a paged cache does), must give bit-identical
 * logits to A evaluated alone at once by m1 (another thread count) and B alone token by token by
 * m. Returns A's lone logits ([na][V], free them) and leaves the scratch, KV store and slot
 * tables of the interleaved run in *iv for further checks. */
typedef struct interleaved {
    inf_kv_store kv;
    inf_forward_scratch *s;
    int32_t *slots_a, *slots_b;
    const int32_t *seq_slots[2];
    float *out; /* [16][V] */
} interleaved;

static float *check_interleaved(inf_model *m, inf_model *m1, int na, int nb, interleaved *iv) {
    int64_t V = m->hp.n_vocab;
    int n_slots = 2 * (na + nb) + 2, ctx = na > nb ? na : nb;
    int32_t *ta = malloc(sizeof(int32_t) * (size_t)na), *tb = malloc(sizeof(int32_t) * (size_t)nb);
    for (int i = 0; i < na; i++)
        ta[i] = (int32_t)((i * 11 + 3) % V);
    for (int i = 0; i < nb; i++)
        tb[i] = (int32_t)((i * 29 + 7) % V);

    /* Alone: A all at once (other thread count), B token by token. */
    float *la = malloc(sizeof(float) * (size_t)na * (size_t)V),
          *lb = malloc(sizeof(float) * (size_t)nb * (size_t)V);
    inf_context *c;
    assert_int_equal(inf_context_new(m1, ctx, &c), 0);
    assert_int_equal(inf_context_eval(c, ta, na, true, la), 0);
    inf_context_free(c);
    assert_int_equal(inf_context_new(m, ctx, &c), 0);
    for (int i = 0; i < nb; i++)
        assert_int_equal(inf_context_eval(c, tb + i, 1, true, lb + i * V), 0);
    inf_context_free(c);

    /* Together: step 1 = A[0..na/2) + B[0..nb/2) interleaved; step 2 = the rest. */
    assert_int_equal(inf_kv_store_init(&iv->kv, &m->hp, n_slots), 0);
    iv->slots_a = malloc(sizeof(int32_t) * (size_t)na);
    iv->slots_b = malloc(sizeof(int32_t) * (size_t)nb);
    for (int i = 0; i < na; i++)
        iv->slots_a[i] = n_slots - 1 - 2 * i;
    for (int i = 0; i < nb; i++)
        iv->slots_b[i] = 2 * i;
    iv->seq_slots[0] = iv->slots_a;
    iv->seq_slots[1] = iv->slots_b;
    int max_batch = (na + 1) / 2 + (nb + 1) / 2;
    assert_true(max_batch <= 16);
    assert_int_equal(inf_forward_scratch_new(m, 16, ctx, &iv->s), 0);
    iv->out = malloc(sizeof(float) * 16 * (size_t)V);
    int ia = 0, ib = 0;
    for (int step = 0; step < 2; step++) {
        int32_t tok[16], pos[16], seq[16], slot[16];
        uint8_t want[16];
        int n = 0, ea = step ? na : na / 2, eb = step ? nb : nb / 2;
        while (ia < ea || ib < eb) {
            if (ib < eb && (n % 2 || ia >= ea)) {
                tok[n] = tb[ib], pos[n] = ib, seq[n] = 1, slot[n] = iv->slots_b[ib], ib++;
            } else {
                tok[n] = ta[ia], pos[n] = ia, seq[n] = 0, slot[n] = iv->slots_a[ia], ia++;
            }
            want[n] = (uint8_t)(n % 3 != 1); /* skip some outputs */
            n++;
        }
        inf_batch b = {.n_tokens = n,
                       .tokens = tok,
                       .pos = pos,
                       .seq = seq,
                       .slot = slot,
                       .seq_slots = iv->seq_slots,
                       .n_seqs = 2,
                       .output = want};
        assert_int_equal(inf_model_forward(m, iv->s, &b, &iv->kv, iv->out, NULL), 0);
        int r = 0;
        for (int i = 0; i < n; i++) {
            if (!want[i]) continue;
            const float *alone = (seq[i] ? lb : la) + (size_t)pos[i] * (size_t)V;
            if (memcmp(alone, iv->out + (size_t)r * (size_t)V, sizeof(float) * (size_t)V))
                fail_msg("step %d entry %d (seq %d pos %d) differs from the lone run", step, i,
                         seq[i], pos[i]);
            r++;
        }
    }
    free(ta);
    free(tb);
    free(lb);
    return la;
}

static void interleaved_free(interleaved *iv, inf_model *m) {
    free(iv->out);
    free(iv->slots_a);
    free(iv->slots_b);
    inf_forward_scratch_free(iv->s);
    inf_kv_store_free(&iv->kv, &m->hp);
}

/* Two sequences interleaved in one batch must give the lone runs' bits (check_interleaved), the
 * hidden output is the final-normed state, and contract violations are errors. */
static void test_batch_invariance(void **state) {
    (void)state;
    tmodel t;
    tmodel_init(&t, false);
    char path[256];
    tmp_path(path, sizeof path, "inv");
    tmodel_write(&t, path, BREAK_NONE);
    inf_model *m = load(path, 3);
    inf_model *m1 = load(path, 1);
    int64_t V = t.V;
    interleaved iv;
    float *la = check_interleaved(m, m1, 9, 6, &iv);
    inf_forward_scratch *s = iv.s;
    inf_kv_store kv = iv.kv;
    const int32_t *const *seq_slots = iv.seq_slots;
    const int32_t *slots_a = iv.slots_a;
    float *out = iv.out;
    /* Hidden output: final-normed states, same rows. */
    {
        int32_t tok = (int32_t)(3 % V), pos = 0, seq = 0, slot = slots_a[0];
        float hidden[64];
        inf_batch b = {.n_tokens = 1,
                       .tokens = &tok,
                       .pos = &pos,
                       .seq = &seq,
                       .slot = &slot,
                       .seq_slots = seq_slots,
                       .n_seqs = 2};
        assert_int_equal(inf_model_forward(m, s, &b, &kv, out, hidden), 0);
        assert_memory_equal(out, la, sizeof(float) * (size_t)V);
        double ss = 0;
        for (int e = 0; e < 64; e++)
            ss += hidden[e] / t.onorm[e] * (hidden[e] / t.onorm[e]);
        assert_float_equal(ss / 64, 1.0, 1e-3);
    }
    /* Contract violations are errors, not crashes. */
    {
        int32_t tok = 5, pos = 8, seq = 0, slot = slots_a[7];
        inf_batch b = {.n_tokens = 1,
                       .tokens = &tok,
                       .pos = &pos,
                       .seq = &seq,
                       .slot = &slot,
                       .seq_slots = seq_slots,
                       .n_seqs = 2};
        assert_int_equal(inf_model_forward(m, s, &b, &kv, out, NULL), INF_EINVAL); /* slot */
        pos = 40;
        assert_int_equal(inf_model_forward(m, s, &b, &kv, out, NULL), INF_ERANGE);
        pos = 0, slot = slots_a[0], tok = (int32_t)V;
        assert_int_equal(inf_model_forward(m, s, &b, &kv, out, NULL), INF_EINVAL);
        tok = 0, seq = 2;
        assert_int_equal(inf_model_forward(m, s, &b, &kv, out, NULL), INF_EINVAL);
        b.n_tokens = 17;
        assert_int_equal(inf_model_forward(m, s, &b, &kv, out, NULL), INF_EINVAL);
    }
    free(la);
    interleaved_free(&iv, m);
    inf_model_free(m);
    inf_model_free(m1);
    unlink(path);
    tmodel_free(&t);
}

/* The other architectures' fixture models (MoE routing, sliding windows of 8 shorter than the
 * sequences, soft-caps, QK-norm, LongRoPE, fused projections): interleaved batches equal the
 * lone runs bit for bit. */
static void test_batch_invariance_archs(void **state) {
    (void)state;
    static const char *const names[] = {"tiny-qwen3-q8_0",  "tiny-qwen3moe-f16",
                                        "tiny-llama-moe-q8_0", "tiny-gemma2-f16",
                                        "tiny-gemma3-q8_0", "tiny-phi3-q8_0"};
    int found = 0;
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        char path[600];
        snprintf(path, sizeof path, "%s/models/%s.gguf", fixtures(), names[k]);
        if (access(path, R_OK)) continue;
        found++;
        inf_model *m = load(path, 3), *m1 = load(path, 1);
        interleaved iv;
        float *la = check_interleaved(m, m1, 16, 13, &iv);
        free(la);
        interleaved_free(&iv, m);
        inf_model_free(m);
        inf_model_free(m1);
    }
    if (!found) skip();
}

/* Decode at long positions takes the split attention path (few entries, chunks of positions on
 * the pool); a big batch at the same positions takes the per-entry path. Both must give the same
 * bits, and match the double-precision reference. */
static void test_long_context_split(void **state) {
    (void)state;
    tmodel t;
    tmodel_init(&t, false);
    t.ctx = 1024;
    char path[256];
    tmp_path(path, sizeof path, "long");
    tmodel_write(&t, path, BREAK_NONE);
    inf_model *m = load(path, 3);
    int64_t V = t.V;
    enum { N = 800, D = 3 }; /* prefill N - D tokens, then D single-token steps */
    int32_t *toks = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++)
        toks[i] = (int32_t)((i * 131 + 17) % V);
    float *all = malloc(sizeof(float) * N * (size_t)V), *step = malloc(sizeof(float) * (size_t)V);
    inf_context *c;
    assert_int_equal(inf_context_new(m, N, &c), 0);
    assert_int_equal(inf_context_eval(c, toks, N, true, all), 0); /* batches of 512 + 288 */
    inf_context_reset(c);
    assert_int_equal(inf_context_eval(c, toks, N - D, false, NULL), 0);
    for (int i = N - D; i < N; i++) {
        assert_int_equal(inf_context_eval(c, toks + i, 1, false, step), 0);
        if (memcmp(step, all + (size_t)i * (size_t)V, sizeof(float) * (size_t)V))
            fail_msg("position %d: split decode differs from the batched pass", i);
    }
    double *ref = reference(&t, toks, N);
    for (int i = N - D; i < N; i++) {
        double mx = 0, diff = 0;
        for (int64_t v = 0; v < V; v++) {
            mx = fmax(mx, fabs(ref[(size_t)i * V + v]));
            diff = fmax(diff, fabs(ref[(size_t)i * V + v] - all[(size_t)i * V + v]));
        }
        if (diff > 2e-3 * (mx + 1)) fail_msg("position %d: max diff %g (max %g)", i, diff, mx);
    }
    free(ref);
    free(toks);
    free(all);
    free(step);
    inf_context_free(c);
    inf_model_free(m);
    unlink(path);
    tmodel_free(&t);
}

static void test_load_errors(void **state) {
    (void)state;
    static const struct {
        int brk, err;
        const char *needle;
    } cases[] = {
        {BREAK_MISSING, INF_EFORMAT, "blk.1.attn_v.weight"},
        {BREAK_SHAPE, INF_EFORMAT, "output.weight"},
        {BREAK_ARCH, INF_EUNSUPPORTED, "gpt-j"},
        {BREAK_VOCAB, INF_EFORMAT, "tokenizer"},
        {BREAK_ROPE, INF_EUNSUPPORTED, "yarn"},
        {BREAK_TYPE, INF_EUNSUPPORTED, "blk.0.ffn_down.weight"},
    };
    tmodel t;
    tmodel_init(&t, false);
    char path[256];
    tmp_path(path, sizeof path, "bad");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tmodel_write(&t, path, cases[i].brk);
        inf_model *m = (inf_model *)1;
        int rc = inf_model_load(path, NULL, &m);
        assert_int_equal(rc, cases[i].err);
        assert_null(m);
        if (!strstr(inf_last_error(), cases[i].needle))
            fail_msg("case %zu: '%s' does not name '%s'", i, inf_last_error(), cases[i].needle);
    }
    /* Unsupported architecture is fine for a vocab-only load. */
    tmodel_write(&t, path, BREAK_ARCH);
    inf_model_params p = inf_model_params_default();
    p.vocab_only = true;
    inf_model *m;
    assert_int_equal(inf_model_load(path, &p, &m), 0);
    inf_model_free(m);
    unlink(path);
    assert_int_equal(inf_model_load("/nonexistent/model.gguf", NULL, &m), INF_EIO);
    tmodel_free(&t);
}

static void test_vocab_only_and_context(void **state) {
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%.900s/vocab/ggml-vocab-llama-spm.gguf", fixtures());
    if (access(path, R_OK) != 0) {
        print_message("skipping vocab-only fixture: %s not found\n", path);
    } else {
        inf_model_params p = inf_model_params_default();
        p.vocab_only = true;
        inf_model *m;
        int rc = inf_model_load(path, &p, &m);
        if (rc) fail_msg("%s", inf_last_error());
        inf_model_info info;
        inf_model_get_info(m, &info);
        assert_int_equal(info.n_vocab, 32000);
        assert_string_equal(info.tokenizer, "llama");
        inf_context *c = NULL;
        assert_int_equal(inf_context_new(m, 16, &c), INF_EINVAL);
        assert_null(c);
        assert_true(inf_model_measure_read_bw(m) == 0.0);
        inf_model_free(m);
        /* Without vocab_only the missing weights are an error. */
        assert_true(inf_model_load(path, NULL, &m) < 0);
    }

    tmodel t;
    tmodel_init(&t, true);
    tmp_path(path, sizeof path, "ctx");
    tmodel_write(&t, path, BREAK_NONE);
    inf_model *m = load(path, 1);
    inf_context *c;
    assert_int_equal(inf_context_new(m, 8, &c), 0);
    int32_t toks[9] = {1, 5, 6, 7, 8, 9, 10, 11, 12};
    float *lg = malloc(sizeof(float) * (size_t)t.V);
    assert_int_equal(inf_context_eval(c, toks, 9, false, lg), INF_ECONTEXT);
    assert_int_equal(inf_context_pos(c), 0);
    assert_int_equal(inf_context_eval(c, toks, 8, false, lg), 0);
    assert_int_equal(inf_context_eval(c, toks, 1, false, lg), INF_ECONTEXT);
    float first[300];
    inf_context_reset(c);
    assert_int_equal(inf_context_pos(c), 0);
    assert_int_equal(inf_context_eval(c, toks, 3, false, first), 0);
    inf_context_reset(c);
    assert_int_equal(inf_context_eval(c, toks, 3, false, lg), 0);
    assert_memory_equal(first, lg, sizeof(float) * (size_t)t.V);
    /* Truncate: keep 2 of 6 positions, continue with token 3 of the first run: the logits equal
     * the straight 3-token run's (the dropped cells are overwritten, never attended to). */
    inf_context_reset(c);
    int32_t other[4] = {20, 21, 22, 23};
    assert_int_equal(inf_context_eval(c, toks, 2, false, lg), 0);
    assert_int_equal(inf_context_eval(c, other, 4, false, lg), 0);
    assert_int_equal(inf_context_truncate(c, 7), INF_EINVAL);
    assert_int_equal(inf_context_truncate(c, -1), INF_EINVAL);
    assert_int_equal(inf_context_truncate(c, 2), 0);
    assert_int_equal(inf_context_pos(c), 2);
    assert_int_equal(inf_context_eval(c, toks + 2, 1, false, lg), 0);
    assert_memory_equal(first, lg, sizeof(float) * (size_t)t.V);
    assert_int_equal(inf_context_truncate(c, 0), 0);
    assert_int_equal(inf_context_pos(c), 0);
    toks[0] = -1;
    inf_context_reset(c);
    assert_int_equal(inf_context_eval(c, toks, 1, false, lg), INF_EINVAL);
    free(lg);
    inf_context_free(c);
    /* Default context = trained context. */
    assert_int_equal(inf_context_new(m, 0, &c), 0);
    inf_context_free(c);
    inf_model_free(m);
    unlink(path);
    tmodel_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_f16),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_arch_ops),
        cmocka_unit_test(test_norm_softmax_attention),
        cmocka_unit_test(test_attention_paths),
        cmocka_unit_test(test_forward_llama),
        cmocka_unit_test(test_forward_qwen2),
        cmocka_unit_test(test_batch_invariance),
        cmocka_unit_test(test_batch_invariance_archs),
        cmocka_unit_test(test_long_context_split),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_vocab_only_and_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
