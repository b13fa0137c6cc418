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

static const struct {
    const char *name;
    int arch;
    int rope_neox;
} arch_table[] = {
    {"llama", INF_ARCH_LLAMA, 0},
    {"qwen2", INF_ARCH_QWEN2, 1},
};

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
        char pr[96];
        return inf__err(INF_EUNSUPPORTED, "architecture '%s' (supported: llama, qwen2)",
                        inf__gguf_printable(arch, len, pr, sizeof pr));
    }
    hp->arch = arch_table[found].arch;
    hp->rope_neox = arch_table[found].rope_neox;

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
    return 0;
}

/* ---- tensors ---- */

enum { USE_NORM, USE_MATMUL, USE_EMBD, USE_BIAS };

static int bind(inf_model *m, const char *name, int use, int64_t ne0, int64_t ne1, bool required,
                inf_tensor *out) {
    memset(out, 0, sizeof *out);
    const inf_gguf_tensor *t = inf_gguf_find_tensor(m->gguf, name);
    if (!t) {
        if (!required) return 0;
        return inf__err(INF_EFORMAT, "missing tensor '%s'", name);
    }
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1)
        return inf__err(INF_EFORMAT,
                        "tensor '%s': shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]", name,
                        (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                        (long long)t->ne[3], (long long)ne0, (long long)ne1);
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
    size_t need;
    if (!row || inf__mul_overflow(row, (size_t)ne1, &need) || need > t->nbytes)
        return inf__err(INF_EFORMAT, "tensor '%s': data size %zu too small", name, t->nbytes);
    out->type = t->type;
    out->ne[0] = ne0;
    out->ne[1] = ne1;
    out->ne[2] = out->ne[3] = 1;
    out->nb[0] = tr->type_size;
    out->nb[1] = row;
    out->nb[2] = out->nb[3] = need;
    out->data = t->data;
    out->name = t->name;
    return 0;
}

int inf__model_bind_tensors(inf_model *m) {
    const inf_hparams *hp = &m->hp;
    int64_t E = hp->n_embd, Q = hp->n_head * hp->head_dim, KV = hp->n_head_kv * hp->head_dim;
    int64_t F = hp->n_ff;
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
    m->layers = inf__calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return inf__err(INF_ENOMEM, "layers");
    bool bias = hp->arch == INF_ARCH_QWEN2;
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
            {"attn_q.weight", USE_MATMUL, E, Q, true, &L->wq},
            {"attn_k.weight", USE_MATMUL, E, KV, true, &L->wk},
            {"attn_v.weight", USE_MATMUL, E, KV, true, &L->wv},
            {"attn_output.weight", USE_MATMUL, Q, E, true, &L->wo},
            {"ffn_norm.weight", USE_NORM, E, 1, true, &L->ffn_norm},
            {"ffn_gate.weight", USE_MATMUL, E, F, true, &L->w_gate},
            {"ffn_up.weight", USE_MATMUL, E, F, true, &L->w_up},
            {"ffn_down.weight", USE_MATMUL, F, E, true, &L->w_down},
            {"attn_q.bias", USE_BIAS, Q, 1, bias, &L->bq},
            {"attn_k.bias", USE_BIAS, KV, 1, bias, &L->bk},
            {"attn_v.bias", USE_BIAS, KV, 1, bias, &L->bv},
        };
        for (size_t i = 0; i < INF_ARRAY_LEN(specs); i++) {
            char name[96];
            snprintf(name, sizeof name, "blk.%lld.%s", (long long)l, specs[i].suffix);
            /* llama files may carry biases too; qwen2 requires them. */
            if ((rc = bind(m, name, specs[i].use, specs[i].ne0, specs[i].ne1, specs[i].required,
                           specs[i].dst)) < 0)
                return rc;
        }
    }
    return 0;
}
