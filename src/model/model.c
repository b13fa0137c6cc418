/*
 * model.c — hyperparameters from GGUF metadata and weight tensors bound to the GGUF mapping.
 *
 * Every value read from the file is validated before use: hyperparameters against sane bounds
 * (so later size arithmetic cannot overflow), every tensor's type (must have traits, vec_dot for
 * matmul weights, to_float for the embedding) and shape against the hyperparameters. Failures are
 * one-line details through inf__err naming the key or tensor.
 * Threads: load-time only, single-threaded.
 */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Upper bounds that keep every derived size comfortably inside int64/size_t arithmetic. */
#define MAX_DIM (1 << 20)
#define MAX_LAYERS 4096
#define MAX_CTX (1 << 24)

/* The architecture table: one row per GGUF general.architecture. Options are INF_AF_* flags
 * that the forward pass interprets; hyperparameter keys are "{name}.{suffix}" (see
 * inf__model_load_hparams) and tensor bindings follow the flags (inf__model_bind_tensors).
 * A new family is a new row, at most a new flag. */
#define AF_GEMMA (INF_AF_POST_NORM | INF_AF_EMBD_SCALE | INF_AF_GELU | INF_AF_SWA | INF_AF_Q_PRESCALE)
static const struct {
    const char *name;
    int arch;
    int rope_neox;
    uint32_t flags;
    int64_t swa_pattern; /* default layer pattern of the sliding window */
} arch_table[] = {
    {"llama", INF_ARCH_LLAMA, 0, INF_AF_MOE_OPT, 0},
    {"qwen2", INF_ARCH_QWEN2, 1, INF_AF_QKV_BIAS, 0},
    {"qwen3", INF_ARCH_QWEN3, 1, INF_AF_QK_NORM, 0},
    {"qwen3moe", INF_ARCH_QWEN3MOE, 1, INF_AF_QK_NORM | INF_AF_MOE, 0},
    /* gemma2: every other layer slides (pattern 2, not stored in the files) */
    {"gemma2", INF_ARCH_GEMMA2, 1, AF_GEMMA | INF_AF_SOFTCAP, 2},
    {"gemma3", INF_ARCH_GEMMA3, 1,
     AF_GEMMA | INF_AF_QK_NORM | INF_AF_SWA_PATTERN | INF_AF_SWA_ROPE, 6},
    /* phi3: its attention.sliding_window is ignored, as llama.cpp does (fully causal) */
    {"phi3", INF_ARCH_PHI3, 1,
     INF_AF_FUSED_QKV | INF_AF_FUSED_UP | INF_AF_ROPE_FACTORS | INF_AF_Q_PRESCALE, 0},
};

static void supported_list(char *buf, size_t n) {
    size_t off = 0;
    buf[0] = 0;
    for (size_t i = 0; i < INF_ARRAY_LEN(arch_table) && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, "%s%s", i ? ", " : "", arch_table[i].name);
}

/* Reads "{arch}.{suffix}" as an integer; absent -> def (or error when def < 0). */
static int get_int(const inf_gguf *g, const char *arch, const char *suffix, int64_t def, int64_t lo,
                   int64_t hi, int64_t *out) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v;
    int rc = inf_gguf_get_i64(g, key, &v);
    if (rc == INF_ENOTFOUND) {
        if (def < 0) return inf__err(INF_EFORMAT, "missing metadata key '%s'", key);
        v = def;
    } else if (rc < 0) {
        return rc;
    }
    if (v < lo || v > hi)
        return inf__err(INF_EFORMAT, "metadata '%s' = %lld out of range [%lld, %lld]", key,
                        (long long)v, (long long)lo, (long long)hi);
    *out = v;
    return 0;
}

static int get_float(const inf_gguf *g, const char *arch, const char *suffix, float def,
                     bool required, float *out) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    float v;
    int rc = inf_gguf_get_f32(g, key, &v);
    if (rc == INF_ENOTFOUND) {
        if (required) return inf__err(INF_EFORMAT, "missing metadata key '%s'", key);
        v = def;
    } else if (rc < 0) {
        return rc;
    }
    if (!isfinite(v)) return inf__err(INF_EFORMAT, "metadata '%s' is not finite", key);
    *out = v;
    return 0;
}

/* The hyperparameters behind the architecture's options (hp->flags and the basic ones set). */
static int load_arch_options(const inf_gguf *g, const char *arch, int64_t swa_pattern,
                             inf_hparams *hp) {
    int rc;
    hp->embd_scale = (hp->flags & INF_AF_EMBD_SCALE) ? sqrtf((float)hp->n_embd) : 1.0f;
    hp->rope_attn_factor = 1.0f;
    hp->rope_base_swa = hp->rope_base;
    hp->rope_scale_swa = hp->rope_scale;
    /* Experts: required for INF_AF_MOE, optional (0 = dense) for INF_AF_MOE_OPT. */
    if (hp->flags & (INF_AF_MOE | INF_AF_MOE_OPT)) {
        bool req = hp->flags & INF_AF_MOE;
        if ((rc = get_int(g, arch, "expert_count", req ? -1 : 0, req ? 1 : 0, 4096,
                          &hp->n_expert)) < 0)
            return rc;
    }
    if (hp->n_expert > 0) {
        if ((rc = get_int(g, arch, "expert_used_count", -1, 1, hp->n_expert,
                          &hp->n_expert_used)) < 0 ||
            (rc = get_int(g, arch, "expert_feed_forward_length", hp->n_ff, 1, MAX_DIM,
                          &hp->n_ff_exp)) < 0)
            return rc;
        if (hp->n_expert * hp->n_ff_exp > (int64_t)1 << 28)
            return inf__err(INF_EFORMAT, "%s: expert_count * expert size too large", arch);
    }
    if (hp->flags & INF_AF_SWA) {
        if ((rc = get_int(g, arch, "attention.sliding_window", 0, 0, MAX_CTX, &hp->n_swa)) < 0)
            return rc;
        hp->swa_pattern = swa_pattern;
        if ((hp->flags & INF_AF_SWA_PATTERN) &&
            (rc = get_int(g, arch, "attention.sliding_window_pattern", swa_pattern, 1,
                          MAX_LAYERS, &hp->swa_pattern)) < 0)
            return rc;
    }
    if (hp->flags & INF_AF_SWA_ROPE) {
        if ((rc = get_float(g, arch, "rope.freq_base_swa", hp->rope_base, false,
                            &hp->rope_base_swa)) < 0)
            return rc;
        if (!(hp->rope_base_swa > 1.0f))
            return inf__err(INF_EFORMAT, "%s.rope.freq_base_swa = %g out of range", arch,
                            hp->rope_base_swa);
        hp->rope_scale_swa = 1.0f;
    }
    if (hp->flags & INF_AF_SOFTCAP) {
        if ((rc = get_float(g, arch, "attn_logit_softcapping", 0.0f, false,
                            &hp->attn_softcap)) < 0 ||
            (rc = get_float(g, arch, "final_logit_softcapping", 0.0f, false,
                            &hp->final_softcap)) < 0)
            return rc;
        if (hp->attn_softcap < 0 || hp->final_softcap < 0)
            return inf__err(INF_EFORMAT, "%s: negative logit soft-capping", arch);
    }
    if (hp->flags & INF_AF_ROPE_FACTORS) {
        if ((rc = get_float(g, arch, "rope.scaling.attn_factor", 1.0f, false,
                            &hp->rope_attn_factor)) < 0 ||
            (rc = get_int(g, arch, "rope.scaling.original_context_length", hp->n_ctx_train, 1,
                          MAX_CTX, &hp->n_ctx_orig)) < 0)
            return rc;
        if (!(hp->rope_attn_factor > 0.0f && hp->rope_attn_factor < 1e3f))
            return inf__err(INF_EFORMAT, "%s.rope.scaling.attn_factor = %g out of range", arch,
                            hp->rope_attn_factor);
    }
    return 0;
}

int inf__model_load_hparams(const inf_gguf *g, inf_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    const char *s;
    size_t len;
    int rc = inf_gguf_get_str(g, "general.architecture", &s, &len);
    if (rc == INF_ENOTFOUND) return inf__err(INF_EFORMAT, "missing 'general.architecture'");
    if (rc < 0) return rc;
    char arch[64];
    if (len >= sizeof arch || memchr(s, 0, len))
        return inf__err(INF_EUNSUPPORTED, "unsupported architecture (name of %zu bytes)", len);
    memcpy(arch, s, len);
    arch[len] = 0;
    int found = -1;
    for (size_t i = 0; i < INF_ARRAY_LEN(arch_table); i++)
        if (!strcmp(arch, arch_table[i].name)) found = (int)i;
    if (found < 0) {
        char pr[96], list[256];
        supported_list(list, sizeof list);
        return inf__err(INF_EUNSUPPORTED, "architecture '%s' (supported: %s)",
                        inf__gguf_printable(arch, len, pr, sizeof pr), list);
    }
    hp->arch = arch_table[found].arch;
    hp->rope_neox = arch_table[found].rope_neox;
    hp->flags = arch_table[found].flags;

    int64_t v;
    if ((rc = get_int(g, arch, "context_length", -1, 1, MAX_CTX, &hp->n_ctx_train)) < 0 ||
        (rc = get_int(g, arch, "embedding_length", -1, 1, MAX_DIM, &hp->n_embd)) < 0 ||
        (rc = get_int(g, arch, "block_count", -1, 1, MAX_LAYERS, &hp->n_layer)) < 0 ||
        (rc = get_int(g, arch, "feed_forward_length", -1, 1, MAX_DIM, &hp->n_ff)) < 0 ||
        (rc = get_int(g, arch, "attention.head_count", -1, 1, 4096, &hp->n_head)) < 0 ||
        (rc = get_int(g, arch, "attention.head_count_kv", hp->n_head, 1, hp->n_head,
                      &hp->n_head_kv)) < 0)
        return rc;
    if (hp->n_head % hp->n_head_kv)
        return inf__err(INF_EFORMAT, "head_count %lld is not a multiple of head_count_kv %lld",
                        (long long)hp->n_head, (long long)hp->n_head_kv);
    int64_t def_hd = hp->n_embd % hp->n_head ? -1 : hp->n_embd / hp->n_head;
    if ((rc = get_int(g, arch, "attention.key_length", def_hd, 1, 65536, &hp->head_dim)) < 0)
        return rc;
    if ((rc = get_int(g, arch, "attention.value_length", hp->head_dim, 1, 65536, &v)) < 0)
        return rc;
    if (v != hp->head_dim)
        return inf__err(INF_EUNSUPPORTED, "value_length %lld differs from key_length %lld",
                        (long long)v, (long long)hp->head_dim);
    if (hp->n_head * hp->head_dim > MAX_DIM)
        return inf__err(INF_EFORMAT, "head_count * key_length too large");
    int64_t n_rot;
    if ((rc = get_int(g, arch, "rope.dimension_count", hp->head_dim, 2, hp->head_dim, &n_rot)) < 0)
        return rc;
    if (n_rot % 2)
        return inf__err(INF_EFORMAT, "rope.dimension_count %lld is odd", (long long)n_rot);
    hp->n_rot = n_rot;

    if ((rc = get_float(g, arch, "attention.layer_norm_rms_epsilon", 1e-5f, true, &hp->rms_eps)) <
        0)
        return rc;
    if (!(hp->rms_eps > 0 && hp->rms_eps < 1))
        return inf__err(INF_EFORMAT, "%s.attention.layer_norm_rms_epsilon = %g out of range", arch,
                        hp->rms_eps);
    if ((rc = get_float(g, arch, "rope.freq_base", 10000.0f, false, &hp->rope_base)) < 0) return rc;
    if (!(hp->rope_base > 1.0f))
        return inf__err(INF_EFORMAT, "%s.rope.freq_base = %g out of range", arch, hp->rope_base);

    /* RoPE scaling: only linear (positions divided by factor). */
    hp->rope_scale = 1.0f;
    char key[256];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    rc = inf_gguf_get_str(g, key, &s, &len);
    if (rc < 0 && rc != INF_ENOTFOUND) return rc;
    bool typed = rc == 0;
    float factor = 0.0f;
    if ((rc = get_float(g, arch, "rope.scaling.factor", 0.0f, false, &factor)) < 0) return rc;
    if (factor == 0.0f && (rc = get_float(g, arch, "rope.scale_linear", 0.0f, false, &factor)) < 0)
        return rc;
    bool linear = typed && len == 6 && !memcmp(s, "linear", 6);
    bool none = typed && len == 4 && !memcmp(s, "none", 4);
    /* LongRoPE's scaling lives in its factor tensors and attention factor (read below). */
    bool longrope = typed && len == 8 && !memcmp(s, "longrope", 8) &&
                    (hp->flags & INF_AF_ROPE_FACTORS);
    if (longrope) none = true;
    if (typed && !linear && !none) {
        char pr[96];
        return inf__err(INF_EUNSUPPORTED, "rope scaling type '%s' (only linear)",
                        inf__gguf_printable(s, len, pr, sizeof pr));
    }
    if (!none && factor != 0.0f && factor != 1.0f) {
        if (!(factor > 0.0f && factor < 1e6f))
            return inf__err(INF_EFORMAT, "rope scaling factor %g out of range", factor);
        hp->rope_scale = 1.0f / factor;
    }
    return load_arch_options(g, arch, arch_table[found].swa_pattern, hp);
}

/* ---- tensors ---- */

enum { USE_NORM, USE_MATMUL, USE_EMBD, USE_BIAS };

/* Binds tensor `name` of shape [ne0, ne1, ne2] (ne2 = 1: 2-D). */
static int bind3(inf_model *m, const char *name, int use, int64_t ne0, int64_t ne1, int64_t ne2,
                 bool required, inf_tensor *out) {
    memset(out, 0, sizeof *out);
    const inf_gguf_tensor *t = inf_gguf_find_tensor(m->gguf, name);
    if (!t) {
        if (!required) return 0;
        return inf__err(INF_EFORMAT, "missing tensor '%s'", name);
    }
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != ne2 || t->ne[3] != 1)
        return inf__err(INF_EFORMAT,
                        "tensor '%s': shape [%lld, %lld, %lld, %lld], expected [%lld, %lld, %lld]",
                        name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                        (long long)t->ne[3], (long long)ne0, (long long)ne1, (long long)ne2);
    const inf_type_traits *tr = inf_type_traits_get(t->type);
    const char *tname = inf_type_name(t->type);
    if (!tname) tname = "?";
    if (!tr || !tr->supported)
        return inf__err(INF_EUNSUPPORTED, "tensor '%s': type %s (%d) not supported", name, tname,
                        t->type);
    if ((use == USE_NORM || use == USE_BIAS) && t->type != INF_TYPE_F32)
        return inf__err(INF_EUNSUPPORTED, "tensor '%s': type %s, expected f32", name, tname);
    if (use == USE_MATMUL && !tr->vec_dot)
        return inf__err(INF_EUNSUPPORTED, "tensor '%s': type %s has no dot product", name, tname);
    if (use == USE_MATMUL) {
        const inf_type_traits *vt = inf_type_traits_get(tr->vec_dot_type);
        if (!vt || (!vt->from_float && tr->vec_dot_type != INF_TYPE_F32))
            return inf__err(INF_EUNSUPPORTED, "tensor '%s': type %s: activation type missing", name,
                            tname);
    }
    if (use == USE_EMBD && !tr->to_float)
        return inf__err(INF_EUNSUPPORTED, "tensor '%s': type %s cannot be dequantized", name,
                        tname);
    size_t row = inf_type_row_size(t->type, ne0);
    size_t mat, need;
    if (!row || inf__mul_overflow(row, (size_t)ne1, &mat) ||
        inf__mul_overflow(mat, (size_t)ne2, &need) || need > t->nbytes)
        return inf__err(INF_EFORMAT, "tensor '%s': data size %zu too small", name, t->nbytes);
    out->type = t->type;
    out->ne[0] = ne0;
    out->ne[1] = ne1;
    out->ne[2] = ne2;
    out->ne[3] = 1;
    out->nb[0] = tr->type_size;
    out->nb[1] = row;
    out->nb[2] = mat;
    out->nb[3] = need;
    out->data = t->data;
    out->name = t->name;
    return 0;
}

static int bind(inf_model *m, const char *name, int use, int64_t ne0, int64_t ne1, bool required,
                inf_tensor *out) {
    return bind3(m, name, use, ne0, ne1, 1, required, out);
}

/* A 2-D view of rows [r0, r0 + n) of matrix `mat` of a bound tensor (fused projections, one
 * expert of a 3-D expert tensor). A matmul on it computes exactly those rows of the whole. */
static inf_tensor view_rows(const inf_tensor *t, int64_t mat, int64_t r0, int64_t n) {
    inf_tensor v = *t;
    v.data = (const uint8_t *)t->data + (size_t)mat * t->nb[2] + (size_t)r0 * t->nb[1];
    v.ne[1] = n;
    v.ne[2] = v.ne[3] = 1;
    v.nb[2] = v.nb[3] = (size_t)n * t->nb[1];
    return v;
}

/* One layer's tensor name: "blk.{l}.{suffix}". */
static const char *lname(char *buf, size_t n, int64_t l, const char *suffix) {
    snprintf(buf, n, "blk.%lld.%s", (long long)l, suffix);
    return buf;
}

/* Mixture-of-experts tensors of layer l: the router and per-expert views of the 3-D tensors. */
static int bind_experts(inf_model *m, int64_t l, inf_layer *L) {
    const inf_hparams *hp = &m->hp;
    int64_t E = hp->n_embd, F = hp->n_ff_exp, X = hp->n_expert;
    char name[96];
    int rc;
    if ((rc = bind(m, lname(name, sizeof name, l, "ffn_gate_inp.weight"), USE_MATMUL, E, X, true,
                   &L->gate_inp)) < 0)
        return rc;
    static const char *const names[3] = {"ffn_gate_exps.weight", "ffn_up_exps.weight",
                                         "ffn_down_exps.weight"};
    L->exps[0] = inf__calloc((size_t)(3 * X), sizeof(inf_tensor));
    if (!L->exps[0]) return inf__err(INF_ENOMEM, "expert views");
    for (int k = 0; k < 3; k++) {
        inf_tensor whole;
        bool down = k == 2;
        if ((rc = bind3(m, lname(name, sizeof name, l, names[k]), USE_MATMUL, down ? F : E,
                        down ? E : F, X, true, &whole)) < 0)
            return rc;
        m->expert_bytes += whole.nb[3];
        L->exps[k] = L->exps[0] + k * X;
        for (int64_t e = 0; e < X; e++)
            L->exps[k][e] = view_rows(&whole, e, 0, whole.ne[1]);
    }
    return 0;
}

int inf__model_bind_tensors(inf_model *m) {
    const inf_hparams *hp = &m->hp;
    int64_t E = hp->n_embd, Q = hp->n_head * hp->head_dim, KV = hp->n_head_kv * hp->head_dim;
    int64_t F = hp->n_ff, HD = hp->head_dim;
    uint32_t fl = hp->flags;
    int rc;
    const inf_gguf_tensor *te = inf_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!te) return inf__err(INF_EFORMAT, "missing tensor 'token_embd.weight'");
    if (te->ne[1] < 1 || te->ne[1] > INT32_MAX)
        return inf__err(INF_EFORMAT, "tensor 'token_embd.weight': bad vocab size %lld",
                        (long long)te->ne[1]);
    m->hp.n_vocab = te->ne[1];
    int64_t V = hp->n_vocab;
    if ((rc = bind(m, "token_embd.weight", USE_EMBD, E, V, true, &m->tok_embd)) < 0 ||
        (rc = bind(m, "output_norm.weight", USE_NORM, E, 1, true, &m->output_norm)) < 0 ||
        (rc = bind(m, "output.weight", USE_MATMUL, E, V, false, &m->output)) < 0)
        return rc;
    if (!m->output.data) {
        /* Tied embeddings: the embedding matrix doubles as the output projection. */
        if ((rc = bind(m, "token_embd.weight", USE_MATMUL, E, V, true, &m->output)) < 0) return rc;
    }
    if (fl & INF_AF_ROPE_FACTORS) {
        if ((rc = bind(m, "rope_factors_long.weight", USE_NORM, hp->n_rot / 2, 1, true,
                       &m->rope_long)) < 0 ||
            (rc = bind(m, "rope_factors_short.weight", USE_NORM, hp->n_rot / 2, 1, true,
                       &m->rope_short)) < 0)
            return rc;
        for (int64_t i = 0; i < hp->n_rot / 2; i++) {
            float a = ((const float *)m->rope_long.data)[i];
            float b = ((const float *)m->rope_short.data)[i];
            if (!(a > 0 && a < 1e30f) || !(b > 0 && b < 1e30f))
                return inf__err(INF_EFORMAT, "rope factor %lld is not a positive number",
                                (long long)i);
        }
    }
    m->layers = inf__calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return inf__err(INF_ENOMEM, "layers");
    bool bias = fl & INF_AF_QKV_BIAS, qkn = fl & INF_AF_QK_NORM, post = fl & INF_AF_POST_NORM;
    bool fqkv = fl & INF_AF_FUSED_QKV, fup = fl & INF_AF_FUSED_UP, moe = hp->n_expert > 0;
    inf_tensor qkv = {0}, up2 = {0};
    for (int64_t l = 0; l < hp->n_layer; l++) {
        inf_layer *L = &m->layers[l];
        const struct {
            const char *suffix;
            int use;
            int64_t ne0, ne1;
            bool required;
            inf_tensor *dst;
        } specs[] = {
            {"attn_norm.weight", USE_NORM, E, 1, true, &L->attn_norm},
            {"attn_q.weight", USE_MATMUL, E, Q, !fqkv, &L->wq},
            {"attn_k.weight", USE_MATMUL, E, KV, !fqkv, &L->wk},
            {"attn_v.weight", USE_MATMUL, E, KV, !fqkv, &L->wv},
            {"attn_qkv.weight", USE_MATMUL, E, Q + 2 * KV, fqkv, &qkv},
            {"attn_output.weight", USE_MATMUL, Q, E, true, &L->wo},
            {"ffn_norm.weight", USE_NORM, E, 1, true, &L->ffn_norm},
            {"ffn_gate.weight", USE_MATMUL, E, F, !moe && !fup, &L->w_gate},
            {"ffn_up.weight", USE_MATMUL, E, fup ? 2 * F : F, !moe, fup ? &up2 : &L->w_up},
            {"ffn_down.weight", USE_MATMUL, F, E, !moe, &L->w_down},
            {"attn_q.bias", USE_BIAS, Q, 1, bias, &L->bq},
            {"attn_k.bias", USE_BIAS, KV, 1, bias, &L->bk},
            {"attn_v.bias", USE_BIAS, KV, 1, bias, &L->bv},
            {"attn_q_norm.weight", USE_NORM, HD, 1, qkn, &L->q_norm},
            {"attn_k_norm.weight", USE_NORM, HD, 1, qkn, &L->k_norm},
            {"post_attention_norm.weight", USE_NORM, E, 1, post, &L->post_attn_norm},
            {"post_ffw_norm.weight", USE_NORM, E, 1, post, &L->post_ffn_norm},
        };
        for (size_t i = 0; i < INF_ARRAY_LEN(specs); i++) {
            char name[96];
            /* Optional tensors (llama files may carry biases) are bound when present. */
            if ((rc = bind(m, lname(name, sizeof name, l, specs[i].suffix), specs[i].use,
                           specs[i].ne0, specs[i].ne1, specs[i].required, specs[i].dst)) < 0)
                return rc;
        }
        if (fqkv) {
            L->wq = view_rows(&qkv, 0, 0, Q);
            L->wk = view_rows(&qkv, 0, Q, KV);
            L->wv = view_rows(&qkv, 0, Q + KV, KV);
        }
        if (fup && up2.data) {
            L->w_gate = view_rows(&up2, 0, 0, F);
            L->w_up = view_rows(&up2, 0, F, F);
        }
        if (moe) {
            /* Dense FFN tensors are ignored in an MoE file. */
            memset(&L->w_gate, 0, sizeof L->w_gate);
            memset(&L->w_up, 0, sizeof L->w_up);
            memset(&L->w_down, 0, sizeof L->w_down);
            if ((rc = bind_experts(m, l, L)) < 0) return rc;
        }
    }
    return 0;
}
