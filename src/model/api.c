/*
 * api.c — the public model and single-sequence context API of inferneo.h: load/free/info, and
 * inf_context (a contiguous KV store where slot = position, one sequence) for the CLI and tests.
 *
 * Ownership: the model owns the GGUF mapping, tokenizer, layers, pool and string copies; info
 * returns borrowed views. A context borrows its model (which must outlive it).
 * Threads: a model may be shared read-only; its pool is driven by one caller at a time, so two
 * contexts of one model must not eval concurrently.
 */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

inf_model_params inf_model_params_default(void) {
    inf_model_params p = {.n_threads = 0, .vocab_only = false};
    return p;
}

static char *meta_strdup(const inf_gguf *g, const char *key) {
    char *s = NULL;
    if (inf_gguf_get_strdup(g, key, &s) < 0) return NULL;
    return s;
}

static void count_tensors(inf_model *m) {
    int64_t n = inf_gguf_n_tensors(m->gguf);
    m->n_tensors = n;
    for (int64_t i = 0; i < n; i++) {
        const inf_gguf_tensor *t = inf_gguf_tensor_at(m->gguf, i);
        if (t->type >= 0 && t->type < 64) m->n_tensors_by_type[t->type]++;
        uint64_t ne = 1;
        for (int d = 0; d < INF_GGUF_MAX_DIMS; d++)
            ne *= (uint64_t)t->ne[d];
        m->n_params += ne;
        m->weight_bytes += t->nbytes;
    }
}

/* Copies every matmul weight the kernels have a faster layout for into that layout, once at
 * load (results stay bitwise identical; see inf_matmul_repack). The embedding lookup keeps
 * reading the mapped GGUF rows, so a tied output projection gets its own copy. */
static int repack_one(inf_model *m, inf_tensor *w) {
    if (!w->data) return 0;
    inf_tensor packed;
    void *mem = NULL;
    int rc = inf_matmul_repack(m->pool, w, &packed, &mem);
    if (rc < 0) return inf__err_prefix(rc, "tensor '%s'", w->name);
    if (!mem) return 0;
    *w = packed;
    m->repacked[m->n_repacked++] = mem;
    return 0;
}

static int repack_weights(inf_model *m, const inf_model_params *p) {
    int64_t per_layer = 7 + 3 * m->hp.n_expert;
    m->repacked = inf__calloc((size_t)(m->hp.n_layer * per_layer + 1), sizeof *m->repacked);
    if (!m->repacked) return inf__err(INF_ENOMEM, "repack list");
    int rc = repack_one(m, &m->output);
    for (int64_t l = 0; l < m->hp.n_layer && rc == 0; l++) {
        inf_layer *L = &m->layers[l];
        inf_tensor *ws[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int i = 0; i < 7 && rc == 0; i++)
            rc = repack_one(m, ws[i]);
        /* Each expert's view separately: an expert's rows stay one stream in the new layout. */
        for (int64_t e = 0; L->exps[0] && e < 3 * m->hp.n_expert && rc == 0; e++)
            rc = repack_one(m, &L->exps[0][e]);
        if (p->progress) p->progress(0.99f * (float)(l + 1) / (float)m->hp.n_layer, p->progress_user);
    }
    return rc;
}

int inf_model_load(const char *path, const inf_model_params *params, inf_model **out) {
    if (!path || !out) return inf__err(INF_EINVAL, "model load: NULL argument");
    *out = NULL;
    inf_model_params p = params ? *params : inf_model_params_default();
    int rc = inf_kernels_init();
    if (rc < 0) return rc;
    inf_model *m = inf__calloc(1, sizeof *m);
    if (!m) return inf__err(INF_ENOMEM, "model");
    m->vocab_only = p.vocab_only;
    if ((rc = inf_gguf_open(path, &m->gguf)) < 0) goto fail;
    m->name = meta_strdup(m->gguf, "general.name");
    m->arch_name = meta_strdup(m->gguf, "general.architecture");
    m->chat_template = meta_strdup(m->gguf, "tokenizer.chat_template");
    m->tok_model = meta_strdup(m->gguf, "tokenizer.ggml.model");
    count_tensors(m);

    rc = inf__model_load_hparams(m->gguf, &m->hp);
    if (rc < 0 && !m->vocab_only) goto fail;
    m->has_hparams = rc == 0;
    if ((rc = inf_tokenizer_load(m->gguf, &m->tok)) < 0) {
        inf__err_prefix(rc, "tokenizer");
        goto fail;
    }
    if (m->vocab_only) {
        if (!m->has_hparams) memset(&m->hp, 0, sizeof m->hp);
        m->hp.n_vocab = inf_tokenizer_n_vocab(m->tok);
        *out = m;
        return 0;
    }
    if ((rc = inf__model_bind_tensors(m)) < 0) goto fail;
    if (inf_tokenizer_n_vocab(m->tok) != m->hp.n_vocab) {
        rc = inf__err(INF_EFORMAT, "tokenizer has %lld tokens, token_embd.weight has %lld rows",
                      (long long)inf_tokenizer_n_vocab(m->tok), (long long)m->hp.n_vocab);
        goto fail;
    }
    int n_threads = p.n_threads > 0 ? p.n_threads : inf__n_cores();
    if (n_threads > 1024) n_threads = 1024;
    if ((rc = inf_pool_create(n_threads, &m->pool)) < 0) goto fail;
    m->n_threads = inf_pool_size(m->pool);
    if ((rc = repack_weights(m, &p)) < 0) goto fail;
    if (p.progress) p.progress(1.0f, p.progress_user);
    *out = m;
    return 0;
fail:
    inf_model_free(m);
    return rc;
}

void inf_model_free(inf_model *m) {
    if (!m) return;
    if (m->pool) inf_pool_destroy(m->pool);
    for (int64_t i = 0; i < m->n_repacked; i++) free(m->repacked[i]);
    free(m->repacked);
    if (m->tok) inf_tokenizer_free(m->tok);
    for (int64_t l = 0; m->layers && l < m->hp.n_layer; l++)
        free(m->layers[l].exps[0]);
    free(m->layers);
    free(m->name);
    free(m->arch_name);
    free(m->chat_template);
    free(m->tok_model);
    if (m->gguf) inf_gguf_close(m->gguf);
    free(m);
}

void inf_model_get_info(const inf_model *m, inf_model_info *info) {
    memset(info, 0, sizeof *info);
    if (!m) return;
    const inf_hparams *hp = &m->hp;
    info->arch = m->arch_name;
    info->name = m->name;
    info->chat_template = m->chat_template;
    info->tokenizer = m->tok_model;
    info->pre = m->tok ? inf_tokenizer_pre(m->tok) : NULL;
    info->n_vocab = hp->n_vocab;
    if (m->has_hparams) {
        info->n_ctx_train = hp->n_ctx_train;
        info->n_embd = hp->n_embd;
        info->n_layer = hp->n_layer;
        info->n_head = hp->n_head;
        info->n_head_kv = hp->n_head_kv;
        info->head_dim = hp->head_dim;
        info->n_ff = hp->n_ff;
        info->rope_freq_base = hp->rope_base;
        info->rope_freq_scale = hp->rope_scale;
        info->rms_eps = hp->rms_eps;
        info->rope_neox = hp->rope_neox;
        info->n_rot = hp->n_rot;
        info->n_expert = hp->n_expert;
        info->n_expert_used = hp->n_expert_used;
        info->n_ff_exp = hp->n_ff_exp;
        info->n_swa = hp->n_swa;
        info->swa_pattern = hp->n_swa ? hp->swa_pattern : 0;
        info->rope_freq_base_swa = hp->rope_base_swa;
        info->rope_freq_scale_swa = hp->rope_scale_swa;
        info->attn_softcap = hp->attn_softcap;
        info->final_softcap = hp->final_softcap;
        info->rope_attn_factor = hp->rope_attn_factor;
        info->n_ctx_orig = hp->n_ctx_orig;
    }
    if (m->tok) {
        info->bos = inf_tokenizer_bos(m->tok);
        info->eos = inf_tokenizer_eos(m->tok);
        info->eot = inf_tokenizer_eot(m->tok);
        info->add_bos = inf_tokenizer_add_bos(m->tok);
        info->add_eos = inf_tokenizer_add_eos(m->tok);
    } else {
        info->bos = info->eos = info->eot = -1;
    }
    info->n_tensors = m->n_tensors;
    memcpy(info->n_tensors_by_type, m->n_tensors_by_type, sizeof info->n_tensors_by_type);
    info->n_params = m->n_params;
    info->weight_bytes = m->weight_bytes;
    info->weight_bytes_per_token = m->weight_bytes;
    if (m->layers && m->hp.n_expert > 0) {
        uint64_t exp_bytes = m->expert_bytes;
        uint64_t used = exp_bytes / (uint64_t)m->hp.n_expert * (uint64_t)m->hp.n_expert_used;
        info->weight_bytes_per_token = m->weight_bytes - exp_bytes + used;
    }
}

double inf_model_measure_read_bw(inf_model *m) {
    if (!m || !m->pool) return 0.0;
    return inf_kernels_measure_read_bw(m->pool);
}

/* ---- single-sequence context ---- */

#define CTX_MAX_BATCH 512

struct inf_context {
    inf_model *m;
    inf_kv_store kv;
    inf_forward_scratch *s;
    int64_t n_ctx, pos, max_batch;
    int32_t *slots;                  /* [n_ctx] slot of each position (= position) */
    int32_t *b_pos, *b_seq, *b_slot; /* [max_batch] */
    uint8_t *b_out;                  /* [max_batch] */
};

int inf_context_new(inf_model *m, int64_t n_ctx, inf_context **out) {
    if (!m || !out) return inf__err(INF_EINVAL, "context: NULL argument");
    *out = NULL;
    if (m->vocab_only) return inf__err(INF_EINVAL, "context: model loaded vocab-only");
    if (n_ctx <= 0) n_ctx = m->hp.n_ctx_train;
    if (n_ctx > INT32_MAX) return inf__err(INF_ERANGE, "context: n_ctx %lld", (long long)n_ctx);
    inf_context *c = inf__calloc(1, sizeof *c);
    if (!c) return inf__err(INF_ENOMEM, "context");
    c->m = m;
    c->n_ctx = n_ctx;
    c->max_batch = INF_MIN(n_ctx, CTX_MAX_BATCH);
    int rc;
    if ((rc = inf_kv_store_init(&c->kv, &m->hp, n_ctx)) < 0) goto fail;
    if ((rc = inf_forward_scratch_new(m, c->max_batch, n_ctx, &c->s)) < 0) goto fail;
    c->slots = inf__calloc((size_t)n_ctx, sizeof *c->slots);
    c->b_pos = inf__calloc((size_t)c->max_batch, sizeof *c->b_pos);
    c->b_seq = inf__calloc((size_t)c->max_batch, sizeof *c->b_seq);
    c->b_slot = inf__calloc((size_t)c->max_batch, sizeof *c->b_slot);
    c->b_out = inf__calloc((size_t)c->max_batch, sizeof *c->b_out);
    if (!c->slots || !c->b_pos || !c->b_seq || !c->b_slot || !c->b_out) {
        rc = inf__err(INF_ENOMEM, "context of %lld tokens", (long long)n_ctx);
        goto fail;
    }
    for (int64_t i = 0; i < n_ctx; i++)
        c->slots[i] = (int32_t)i;
    *out = c;
    return 0;
fail:
    inf_context_free(c);
    return rc;
}

void inf_context_free(inf_context *c) {
    if (!c) return;
    inf_kv_store_free(&c->kv, &c->m->hp);
    inf_forward_scratch_free(c->s);
    free(c->slots);
    free(c->b_pos);
    free(c->b_seq);
    free(c->b_slot);
    free(c->b_out);
    free(c);
}

int inf_context_eval(inf_context *c, const int32_t *tokens, int64_t n, bool all, float *logits) {
    if (!c || (n > 0 && !tokens) || n < 0) return inf__err(INF_EINVAL, "eval: bad arguments");
    if (n == 0) return 0;
    if (n > c->n_ctx - c->pos)
        return inf__err(INF_ECONTEXT, "eval: %lld + %lld tokens exceed the context of %lld",
                        (long long)c->pos, (long long)n, (long long)c->n_ctx);
    int64_t V = c->m->hp.n_vocab;
    const int32_t *seq_slots[1] = {c->slots};
    for (int64_t done = 0; done < n;) {
        int64_t cnt = INF_MIN(c->max_batch, n - done);
        bool last_chunk = done + cnt == n;
        for (int64_t i = 0; i < cnt; i++) {
            c->b_pos[i] = (int32_t)(c->pos + done + i);
            c->b_seq[i] = 0;
            c->b_slot[i] = c->b_pos[i];
            c->b_out[i] = logits && (all || (last_chunk && i == cnt - 1));
        }
        inf_batch b = {.n_tokens = cnt,
                       .tokens = tokens + done,
                       .pos = c->b_pos,
                       .seq = c->b_seq,
                       .slot = c->b_slot,
                       .seq_slots = seq_slots,
                       .n_seqs = 1,
                       .output = c->b_out};
        float *dst = NULL;
        if (logits && all)
            dst = logits + (size_t)done * (size_t)V;
        else if (logits && last_chunk)
            dst = logits;
        int rc = inf_model_forward(c->m, c->s, &b, &c->kv, dst, NULL);
        if (rc < 0) return rc;
        done += cnt;
    }
    c->pos += n;
    return 0;
}

void inf_context_reset(inf_context *c) {
    if (c) c->pos = 0;
}

int inf_context_truncate(inf_context *c, int64_t n_keep) {
    if (!c || n_keep < 0 || n_keep > c->pos)
        return inf__err(INF_EINVAL, "truncate: keep %lld of %lld positions", (long long)n_keep,
                        c ? (long long)c->pos : 0LL);
    c->pos = n_keep; /* slot = position: later evals overwrite the dropped cells */
    return 0;
}

int64_t inf_context_pos(const inf_context *c) {
    return c ? c->pos : 0;
}

void inf_model_format_name(const inf_model_info *info, char *buf, size_t cap) {
    bool used[64] = {false};
    size_t len = 0;
    if (!cap) return;
    buf[0] = 0;
    for (;;) {
        int best = -1;
        for (int t = 1; t < 64; t++) /* type 0 (f32: norms) only when nothing else is there */
            if (!used[t] && info->n_tensors_by_type[t] > 0 &&
                (best < 0 || info->n_tensors_by_type[t] > info->n_tensors_by_type[best]))
                best = t;
        if (best < 0) break;
        used[best] = true;
        const char *nm = inf_type_name(best);
        int k = snprintf(buf + len, cap - len, "%s%s", len ? "+" : "", nm ? nm : "?");
        if (k < 0 || (size_t)k >= cap - len) break;
        len += (size_t)k;
    }
    if (!len) snprintf(buf, cap, "f32");
}
