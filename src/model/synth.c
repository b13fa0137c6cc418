/*
 * synth.c — writes random-weight llama GGUF files of a given shape (inf_synth_write), for
 * benchmarks and tests at real model sizes without shipping real weights.
 *
 * The vocabulary is a synthetic SentencePiece one (<unk>, <s>, </s>, the 256 byte-fallback tokens
 * <0x00>..<0xFF>, then "▁", single characters and letter strings with and without the "▁" word
 * prefix), so any text tokenizes. Weights are normal-ish (Irwin–Hall sum of four uniforms,
 * std 0.02), norms 1.0, quantized row by row with the kernels' from_float. Each tensor draws from
 * its own generator seeded by (seed, tensor name), so the file does not depend on write order.
 * Tensor data is produced by the writer's fill callback one tensor at a time: memory stays
 * bounded by the largest tensor (token_embd), never the whole model.
 *
 * Threads: single-threaded; uses only its own state.
 */
#include "format/gguf.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYNTH_STD 0.02f
#define SYNTH_PIECE "\xe2\x96\x81" /* U+2581, SentencePiece's word-start marker */

inf_synth_params inf_synth_params_default(void) {
    return (inf_synth_params){.n_embd = 256,
                              .n_layer = 2,
                              .n_head = 4,
                              .n_head_kv = 2,
                              .n_ff = 768,
                              .n_vocab = 1024,
                              .n_ctx = 2048,
                              .type = INF_TYPE_F16,
                              .seed = 42,
                              .name = NULL};
}

/* ---- vocabulary ---- */

typedef struct vocab {
    inf_sb text; /* all token strings, NUL-separated */
    size_t *off; /* [n] offset of each token in text */
    int64_t n, cap;
} vocab;

static bool vocab_add(vocab *v, const char *s) {
    if (v->n == v->cap) return false;
    v->off[v->n++] = v->text.len;
    inf__sb_append(&v->text, s, strlen(s) + 1);
    return !v->text.oom;
}

/* Fills v with exactly v->cap tokens. Returns false on allocation failure. */
static bool vocab_build(vocab *v) {
    static const char singles[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789.,!?'\"-:;()";
    char buf[64];
    if (!vocab_add(v, "<unk>") || !vocab_add(v, "<s>") || !vocab_add(v, "</s>")) return false;
    for (int b = 0; b < 256; b++) {
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        if (!vocab_add(v, buf)) return false;
    }
    if (v->n < v->cap && !vocab_add(v, SYNTH_PIECE)) return false;
    for (size_t i = 0; singles[i] && v->n < v->cap; i++) {
        buf[0] = singles[i];
        buf[1] = 0;
        if (!vocab_add(v, buf)) return false;
    }
    for (size_t i = 0; singles[i] && v->n < v->cap; i++) {
        snprintf(buf, sizeof buf, SYNTH_PIECE "%c", singles[i]);
        if (!vocab_add(v, buf)) return false;
    }
    /* Lower-case letter strings of growing length, each bare and with the word prefix. */
    for (int len = 2; v->n < v->cap && len < 16; len++) {
        int digits[16] = {0};
        for (;;) {
            char w[16];
            for (int k = 0; k < len; k++)
                w[k] = (char)('a' + digits[k]);
            w[len] = 0;
            if (v->n < v->cap && !vocab_add(v, w)) return false;
            snprintf(buf, sizeof buf, SYNTH_PIECE "%s", w);
            if (v->n < v->cap && !vocab_add(v, buf)) return false;
            if (v->n >= v->cap) break;
            int k = len - 1;
            while (k >= 0 && ++digits[k] == 26)
                digits[k--] = 0;
            if (k < 0) break;
        }
    }
    return v->n == v->cap;
}

/* ---- weights ---- */

typedef struct synth_ctx {
    const inf_synth_params *p;
    float *row; /* [max ne0] */
} synth_ctx;

/* Approximately N(0, std^2): sum of four 16-bit uniforms, centred and scaled (var 4/12). */
static inline float normalish(inf_rng *r, float scale) {
    uint64_t x = inf__rng_next(r);
    uint32_t s = (uint32_t)(x & 0xffff) + (uint32_t)((x >> 16) & 0xffff) +
                 (uint32_t)((x >> 32) & 0xffff) + (uint32_t)(x >> 48);
    return ((float)s - 2.0f * 65535.0f) * scale;
}

static int fill_tensor(void *user, int64_t index, const char *name, int type, const int64_t *ne,
                       void *buf, size_t nbytes) {
    (void)index;
    synth_ctx *c = user;
    int64_t ne0 = ne[0], rows = ne[1] * ne[2] * ne[3];
    size_t row_bytes = nbytes / (size_t)rows;
    if (strstr(name, "norm")) { /* F32 norm weights: 1.0 */
        float *f = buf;
        for (int64_t i = 0; i < ne0 * rows; i++)
            f[i] = 1.0f;
        return 0;
    }
    inf_rng r;
    inf__rng_seed(&r, c->p->seed ^ inf__hash64(name, strlen(name), 0x5eed));
    const float scale = SYNTH_STD * 1.7320508f / 65536.0f; /* sqrt(3) * std / unit */
    const inf_type_traits *tr = type == INF_TYPE_F32 ? NULL : inf_type_traits_get(type);
    if (type != INF_TYPE_F32 && (!tr || !tr->from_float))
        return inf__err(INF_EUNSUPPORTED, "synth: no quantizer for type %d", type);
    for (int64_t i = 0; i < rows; i++) {
        float *dst =
            type == INF_TYPE_F32 ? (float *)((uint8_t *)buf + (size_t)i * row_bytes) : c->row;
        for (int64_t j = 0; j < ne0; j++)
            dst[j] = normalish(&r, scale);
        if (tr) tr->from_float(c->row, (uint8_t *)buf + (size_t)i * row_bytes, ne0);
    }
    return 0;
}

/* ---- file ---- */

/* llama.cpp's general.file_type for the type / mixture, -1 when unsupported. */
static int file_type(const inf_synth_params *p) {
    if (p->mix == INF_SYNTH_MIX_M) {
        switch (p->type) {
        case INF_TYPE_Q3_K: return 12;
        case INF_TYPE_Q4_K: return 15;
        case INF_TYPE_Q5_K: return 17;
        }
        return -1;
    }
    if (p->mix != INF_SYNTH_PURE) return -1;
    switch (p->type) {
    case INF_TYPE_F32: return 0;
    case INF_TYPE_F16: return 1;
    case INF_TYPE_Q4_0: return 2;
    case INF_TYPE_Q4_1: return 3;
    case INF_TYPE_Q8_0: return 7;
    case INF_TYPE_Q5_0: return 8;
    case INF_TYPE_Q5_1: return 9;
    case INF_TYPE_Q2_K: return 10;
    case INF_TYPE_Q3_K: return 11; /* Q3_K_S */
    case INF_TYPE_Q4_K: return 14; /* Q4_K_S */
    case INF_TYPE_Q5_K: return 16; /* Q5_K_S */
    case INF_TYPE_Q6_K: return 18;
    case INF_TYPE_IQ4_NL: return 25;
    case INF_TYPE_IQ4_XS: return 30;
    case INF_TYPE_BF16: return 32;
    }
    return -1;
}

/* Type of matrix `kind` of layer l (-1: not in a layer). The _M mixture follows llama-quantize
 * (llama layout, no MoE): output Q6_K; Q4_K_M / Q5_K_M give attn_v and ffn_down Q6_K on the first
 * and last eighth of the layers and every third layer between; Q3_K_M gives attn_v Q5_K on layers
 * 0-1 (else Q4_K), ffn_down Q5_K on the first sixteenth (else Q4_K) and attn_output Q4_K. */
static int tensor_type(const inf_synth_params *p, const char *kind, int64_t l) {
    if (p->mix != INF_SYNTH_MIX_M) return p->type;
    const int64_t n = p->n_layer;
    const bool more = l >= 0 && (l < n / 8 || l >= 7 * n / 8 || (l - n / 8) % 3 == 2);
    const bool q3 = p->type == INF_TYPE_Q3_K;
    if (!strcmp(kind, "output")) return INF_TYPE_Q6_K;
    if (!strcmp(kind, "attn_v"))
        return q3 ? (l < 2 ? INF_TYPE_Q5_K : INF_TYPE_Q4_K) : more ? INF_TYPE_Q6_K : p->type;
    if (!strcmp(kind, "ffn_down"))
        return q3 ? (l < n / 16 ? INF_TYPE_Q5_K : INF_TYPE_Q4_K) : more ? INF_TYPE_Q6_K : p->type;
    if (!strcmp(kind, "attn_output") && q3) return INF_TYPE_Q4_K;
    return p->type;
}

static int check_params(const inf_synth_params *p) {
    if (p->n_embd <= 0 || p->n_layer <= 0 || p->n_head <= 0 || p->n_head_kv <= 0 || p->n_ff <= 0 ||
        p->n_vocab <= 0 || p->n_ctx <= 0)
        return inf__err(INF_EINVAL, "synth: every dimension must be positive");
    if (p->n_embd > 65536 || p->n_layer > 1024 || p->n_ff > 262144 || p->n_vocab > (1 << 22) ||
        p->n_ctx > (1 << 24) || p->n_head > p->n_embd)
        return inf__err(INF_EINVAL, "synth: shape too large (n_embd <= 65536, n_layer <= 1024, "
                                    "n_ff <= 262144, n_vocab <= 4194304, n_ctx <= 16777216)");
    if (p->n_embd % p->n_head)
        return inf__err(INF_EINVAL, "synth: n_embd %lld is not a multiple of n_head %lld",
                        (long long)p->n_embd, (long long)p->n_head);
    if (p->n_head % p->n_head_kv)
        return inf__err(INF_EINVAL, "synth: n_head %lld is not a multiple of n_head_kv %lld",
                        (long long)p->n_head, (long long)p->n_head_kv);
    if ((p->n_embd / p->n_head) % 2)
        return inf__err(INF_EINVAL, "synth: head_dim %lld must be even (RoPE)",
                        (long long)(p->n_embd / p->n_head));
    if (p->n_expert < 0 || p->n_expert > 256 ||
        (p->n_expert > 0 && (p->n_expert_used < 1 || p->n_expert_used > p->n_expert)))
        return inf__err(INF_EINVAL, "synth: %lld experts, %lld used (1 <= used <= experts <= 256)",
                        (long long)p->n_expert, (long long)p->n_expert_used);
    if (p->n_vocab < 260)
        return inf__err(INF_EINVAL,
                        "synth: n_vocab %lld too small (>= 260: specials, 256 byte "
                        "tokens, pieces)",
                        (long long)p->n_vocab);
    if (file_type(p) < 0)
        return inf__err(INF_EINVAL,
                        "synth: weight type %d%s not supported (f32, f16, bf16, q4_0, q4_1, q5_0, "
                        "q5_1, q8_0, q2_K, q3_K, q4_K, q5_K, q6_K, iq4_nl, iq4_xs; the _M mixture: "
                        "q3_K, q4_K, q5_K)",
                        p->type, p->mix ? " (mixture)" : "");
    int64_t blck = 1;
    inf_gguf_type_size(p->type, &blck, NULL);
    if (p->n_embd % blck || p->n_ff % blck)
        return inf__err(INF_EINVAL,
                        "synth: n_embd %lld and n_ff %lld must be multiples of the "
                        "%s block size %lld",
                        (long long)p->n_embd, (long long)p->n_ff, inf_gguf_type_name(p->type),
                        (long long)blck);
    return 0;
}

static int add_metadata(inf_gguf_writer *w, const inf_synth_params *p) {
    int64_t hd = p->n_embd / p->n_head;
    int err = 0;
    err = err ? err : inf_gguf_writer_set_str(w, "general.architecture", "llama");
    err = err ? err : inf_gguf_writer_set_str(w, "general.name", p->name ? p->name : "synth");
    err = err ? err : inf_gguf_writer_set_u32(w, "general.file_type", (uint32_t)file_type(p));
    if (file_type(p) > 1 && p->type != INF_TYPE_BF16)
        err = err ? err : inf_gguf_writer_set_u32(w, "general.quantization_version", 2);
    err = err ? err : inf_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)p->n_ctx);
    err = err ? err : inf_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)p->n_embd);
    err = err ? err : inf_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)p->n_layer);
    err = err ? err : inf_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)p->n_ff);
    err = err ? err : inf_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)p->n_head);
    err = err ? err
              : inf_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)p->n_head_kv);
    err = err ? err : inf_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)hd);
    err = err ? err : inf_gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
    err = err ? err : inf_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    err = err ? err : inf_gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)p->n_vocab);
    if (p->n_expert > 0) {
        err = err ? err : inf_gguf_writer_set_u32(w, "llama.expert_count", (uint32_t)p->n_expert);
        err = err ? err
                  : inf_gguf_writer_set_u32(w, "llama.expert_used_count",
                                            (uint32_t)p->n_expert_used);
    }
    err = err ? err : inf_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    if (err) return err;

    vocab v = {.cap = p->n_vocab};
    const char **tok = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    v.off = inf__calloc((size_t)v.cap, sizeof *v.off);
    tok = inf__calloc((size_t)v.cap, sizeof *tok);
    scores = inf__calloc((size_t)v.cap, sizeof *scores);
    types = inf__calloc((size_t)v.cap, sizeof *types);
    if (!v.off || !tok || !scores || !types || !vocab_build(&v)) {
        err = inf__err(INF_ENOMEM, "synth: out of memory building the vocabulary");
        goto done;
    }
    for (int64_t i = 0; i < v.n; i++) {
        tok[i] = v.text.data + v.off[i];
        if (i == 0)
            types[i] = 2; /* unknown */
        else if (i < 3)
            types[i] = 3; /* control */
        else if (i < 3 + 256)
            types[i] = 6; /* byte */
        else
            types[i] = 1; /* normal */
        /* Earlier (shorter) pieces score higher, as in a trained SPM model. */
        scores[i] = i < 3 + 256 ? 0.0f : -(float)(i - (3 + 256));
    }
    err = err ? err : inf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tok, v.n);
    err = err ? err
              : inf_gguf_writer_set_arr(w, "tokenizer.ggml.scores", INF_GGUF_FLOAT32, scores, v.n);
    err = err ? err
              : inf_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", INF_GGUF_INT32, types, v.n);
    err = err ? err : inf_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    err = err ? err : inf_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    err = err ? err : inf_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    err = err ? err : inf_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    err = err ? err : inf_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
done:
    inf__sb_free(&v.text);
    free(v.off);
    free(tok);
    free(scores);
    free(types);
    return err;
}

static int add_tensors(inf_gguf_writer *w, const inf_synth_params *p) {
    int64_t kv_dim = p->n_head_kv * (p->n_embd / p->n_head);
    int t = p->type, err = 0;
    char name[64];
#define ADD3(nm, type, nd, a, b, c)                                                                \
    do {                                                                                           \
        int64_t ne_[3] = {(a), (b), (c)};                                                          \
        if (!err) err = inf_gguf_writer_add_tensor(w, nm, type, nd, ne_, NULL);                    \
    } while (0)
#define ADD(nm, type, nd, a, b) ADD3(nm, type, nd, a, b, 1)
    ADD("token_embd.weight", t, 2, p->n_embd, p->n_vocab);
    ADD("output_norm.weight", INF_TYPE_F32, 1, p->n_embd, 1);
    ADD("output.weight", tensor_type(p, "output", -1), 2, p->n_embd, p->n_vocab);
    for (int64_t l = 0; l < p->n_layer && !err; l++) {
#define BLK3(suffix, type, nd, a, b, c)                                                            \
    do {                                                                                           \
        snprintf(name, sizeof name, "blk.%lld." suffix ".weight", (long long)l);                   \
        ADD3(name, type, nd, a, b, c);                                                             \
    } while (0)
#define BLK(suffix, type, nd, a, b) BLK3(suffix, type, nd, a, b, 1)
        BLK("attn_norm", INF_TYPE_F32, 1, p->n_embd, 1);
        BLK("attn_q", t, 2, p->n_embd, p->n_embd);
        BLK("attn_k", t, 2, p->n_embd, kv_dim);
        BLK("attn_v", tensor_type(p, "attn_v", l), 2, p->n_embd, kv_dim);
        BLK("attn_output", tensor_type(p, "attn_output", l), 2, p->n_embd, p->n_embd);
        BLK("ffn_norm", INF_TYPE_F32, 1, p->n_embd, 1);
        if (p->n_expert > 0) {
            int64_t x = p->n_expert;
            BLK("ffn_gate_inp", INF_TYPE_F32, 2, p->n_embd, x);
            BLK3("ffn_gate_exps", t, 3, p->n_embd, p->n_ff, x);
            BLK3("ffn_up_exps", t, 3, p->n_embd, p->n_ff, x);
            BLK3("ffn_down_exps", tensor_type(p, "ffn_down", l), 3, p->n_ff, p->n_embd, x);
        } else {
            BLK("ffn_gate", t, 2, p->n_embd, p->n_ff);
            BLK("ffn_up", t, 2, p->n_embd, p->n_ff);
            BLK("ffn_down", tensor_type(p, "ffn_down", l), 2, p->n_ff, p->n_embd);
        }
#undef BLK
#undef BLK3
    }
#undef ADD
#undef ADD3
    return err;
}

int inf_synth_write(const char *path, const inf_synth_params *params) {
    if (!path || !params) return inf__err(INF_EINVAL, "synth: no path or parameters");
    int err = check_params(params);
    if (err) return err;
    if ((err = inf_kernels_init())) return err;
    inf_gguf_writer *w = inf_gguf_writer_new();
    synth_ctx c = {.p = params};
    c.row = inf__aligned_alloc(64, (size_t)INF_MAX(params->n_embd, params->n_ff) * sizeof(float));
    if (!w || !c.row) {
        err = inf__err(INF_ENOMEM, "synth: out of memory");
        goto done;
    }
    if ((err = add_metadata(w, params)) || (err = add_tensors(w, params))) goto done;
    err = inf_gguf_writer_write_cb(w, path, fill_tensor, &c);
done:
    free(c.row);
    inf_gguf_writer_free(w);
    return err;
}
