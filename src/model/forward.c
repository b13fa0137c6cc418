/*
 * forward.c — the batched transformer forward pass over a slot-addressed KV store of binary16
 * K/V rows (llama.cpp's f16 cache: values are rounded once, when stored).
 *
 * One pass for every architecture: the options of the architecture table (hp->flags and the
 * hyperparameters behind them: QK-norm, post-norms, embedding scale, GELU, soft-caps, sliding
 * window and its layer pattern, per-layer RoPE, LongRoPE factors, fused projections as row views,
 * mixture of experts) are branches inside the stages below, never a copy of the pass.
 * Mixture of experts: every token is routed (softmax, top k, renormalized), the batch's rows are
 * grouped by expert, and each routed expert's matmuls run once over its rows; experts nobody
 * routed to are not read. A token's rows are computed as the dense path computes rows
 * (independent of the others), so the result stays batch-invariant.
 *
 * One call runs every layer for all batch entries at once: weight matmuls see the whole batch
 * (so each weight row is read once per step), per-token ops run row by row, attention runs per
 * (entry, head). Batch invariance: matmul rows are independent (kernels.h contract), row ops and
 * attention read only their own entry's data and the KV slots of its sequence, so an entry's
 * result never depends on the other entries or on the thread count.
 * Memory: all buffers live in inf_forward_scratch, sized once from the hyperparameters, max
 * batch and max context; nothing is allocated per call.
 * Threads: called from one thread (the engine's or the context owner's); fans out to the model's
 * compute pool. A scratch and a KV store must not be used by two calls at once.
 */
#include "model/model.h"

#include "kernels/ops.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Query heads of one KV head evaluated together by one attention work unit (at most). */
#define ATTN_MAX_GROUP 8
/* Split attention pays off from about this position on (measured on 16 cores, TinyLlama shape:
 * the extra pool runs cost more than they gain on shorter contexts). */
#define SPLIT_MIN_POS 768
/* Floats of score rows kept for split attention ([entries][n_head][max_ctx]). */
#define SPLIT_BUDGET (4 << 20)

struct inf_forward_scratch {
    int64_t max_tokens, max_ctx;
    int n_threads;
    float *x;      /* [max_tokens][n_embd] residual stream */
    float *xn;     /* [max_tokens][n_embd] normed sublayer input / sublayer output */
    float *q;      /* [max_tokens][n_head * head_dim] */
    float *k, *v;  /* [max_tokens][n_head_kv * head_dim] */
    float *att;    /* [max_tokens][n_head * head_dim] attention output */
    float *gate;   /* [max_tokens][n_ff] (MoE: [max_tokens * n_expert_used][n_ff_exp]) */
    float *up;     /* likewise */
    float *rope;   /* [max_tokens][n_rot] cos/sin pairs at each entry's position */
    float *rope_swa; /* [max_tokens][n_rot] the same for sliding layers (NULL: same as rope) */
    const float *rope_ff; /* LongRoPE factors chosen for this context length, or NULL */
    /* Mixture of experts (NULL when dense): */
    float *router;       /* [max_tokens][n_expert] router logits, then probabilities */
    float *moe_x;        /* [max_tokens * n_expert_used][n_embd] inputs grouped by expert */
    float *moe_y;        /* [max_tokens * n_expert_used][n_embd] expert outputs, same order */
    int32_t *moe_sel;    /* [max_tokens][n_expert_used] chosen experts, best first */
    float *moe_w;        /* [max_tokens][n_expert_used] their normalized weights */
    int32_t *moe_row;    /* [max_tokens][n_expert_used] row of each choice in moe_x / moe_y */
    int64_t *moe_count;  /* [n_expert + 1] rows per expert, then offsets */
    /* [n_threads][unit_floats] per-thread attention scratch: ATTN_MAX_GROUP * (max_ctx +
     * head_dim) floats of scores and partials, then the f16 row conversion block. */
    float *scores;
    int64_t unit_floats;
    /* Split attention (few entries, long contexts): scores and chunk partials in memory. */
    int64_t split_tokens; /* entries it can hold (0: never split) */
    int64_t n_chunks;     /* ceil(max_ctx / INF_ATTN_CHUNK) */
    float *sp_scores;     /* [split_tokens][n_head][max_ctx] */
    float *sp_part;       /* [split_tokens][n_kv_head][n_chunks][g * head_dim] */
    int32_t *out_rows;    /* [max_tokens] entry index of each output row */
    void *mm;             /* matmul activation scratch */
    size_t mm_size;
};

/* ---- scratch and KV store ---- */

static void *alloc_floats(int64_t a, int64_t b, bool *ok) {
    size_t n, bytes;
    if (inf__mul_overflow((size_t)a, (size_t)b, &n) ||
        inf__mul_overflow(n, sizeof(float), &bytes)) {
        *ok = false;
        return NULL;
    }
    void *p = inf__aligned_alloc(64, bytes ? bytes : 64);
    if (!p) *ok = false;
    return p;
}

static size_t mm_need(const inf_tensor *w, int64_t n_tok) {
    return w->data ? inf_matmul_scratch_size(w->type, w->ne[0], n_tok) : 0;
}

int inf_forward_scratch_new(const inf_model *m, int64_t max_tokens, int64_t max_ctx,
                            inf_forward_scratch **out) {
    *out = NULL;
    if (!m || m->vocab_only || !m->layers)
        return inf__err(INF_EINVAL, "forward scratch: model has no weights");
    if (max_tokens < 1 || max_tokens > (1 << 20) || max_ctx < 1 || max_ctx > (1 << 24))
        return inf__err(INF_EINVAL, "forward scratch: max_tokens %lld / max_ctx %lld out of range",
                        (long long)max_tokens, (long long)max_ctx);
    const inf_hparams *hp = &m->hp;
    inf_forward_scratch *s = inf__calloc(1, sizeof *s);
    if (!s) return inf__err(INF_ENOMEM, "forward scratch");
    s->max_tokens = max_tokens;
    s->max_ctx = max_ctx;
    s->n_threads = m->pool ? inf_pool_size(m->pool) : 1;
    int64_t Q = hp->n_head * hp->head_dim, KV = hp->n_head_kv * hp->head_dim;
    bool ok = true;
    s->x = alloc_floats(max_tokens, hp->n_embd, &ok);
    s->xn = alloc_floats(max_tokens, hp->n_embd, &ok);
    s->q = alloc_floats(max_tokens, Q, &ok);
    s->k = alloc_floats(max_tokens, KV, &ok);
    s->v = alloc_floats(max_tokens, KV, &ok);
    s->att = alloc_floats(max_tokens, Q, &ok);
    int64_t ff_rows = max_tokens, ff = hp->n_ff;
    if (hp->n_expert > 0) {
        ff_rows = max_tokens * hp->n_expert_used;
        ff = hp->n_ff_exp;
        int64_t K = hp->n_expert_used;
        s->router = alloc_floats(max_tokens, hp->n_expert, &ok);
        s->moe_x = alloc_floats(ff_rows, hp->n_embd, &ok);
        s->moe_y = alloc_floats(ff_rows, hp->n_embd, &ok);
        s->moe_w = alloc_floats(max_tokens, K, &ok);
        s->moe_sel = inf__calloc((size_t)(max_tokens * K), sizeof *s->moe_sel);
        s->moe_row = inf__calloc((size_t)(max_tokens * K), sizeof *s->moe_row);
        s->moe_count = inf__calloc((size_t)hp->n_expert + 1, sizeof *s->moe_count);
        if (!s->moe_sel || !s->moe_row || !s->moe_count) ok = false;
    }
    s->gate = alloc_floats(ff_rows, ff, &ok);
    s->up = alloc_floats(ff_rows, ff, &ok);
    s->rope = alloc_floats(max_tokens, hp->n_rot, &ok);
    if (hp->flags & INF_AF_SWA_ROPE) s->rope_swa = alloc_floats(max_tokens, hp->n_rot, &ok);
    /* LongRoPE: llama.cpp picks the long factors when the context exceeds the original one. */
    if (m->rope_long.data)
        s->rope_ff = max_ctx > hp->n_ctx_orig ? m->rope_long.data : m->rope_short.data;
    s->unit_floats = ATTN_MAX_GROUP * (max_ctx + hp->head_dim) +
                     (int64_t)INF_ATTN_CONV_FLOATS(hp->head_dim);
    s->scores = alloc_floats(s->n_threads, s->unit_floats, &ok);
    s->n_chunks = (max_ctx + INF_ATTN_CHUNK - 1) / INF_ATTN_CHUNK;
    if (max_ctx > SPLIT_MIN_POS && hp->n_head * max_ctx <= SPLIT_BUDGET) {
        s->split_tokens = INF_MIN(max_tokens, SPLIT_BUDGET / (hp->n_head * max_ctx));
        s->sp_scores = alloc_floats(s->split_tokens * hp->n_head, max_ctx, &ok);
        s->sp_part = alloc_floats(s->split_tokens * hp->n_head * s->n_chunks, hp->head_dim, &ok);
    }
    s->out_rows = inf__calloc((size_t)max_tokens, sizeof *s->out_rows);
    if (!s->out_rows) ok = false;
    size_t mm = mm_need(&m->output, max_tokens);
    for (int64_t l = 0; l < hp->n_layer; l++) {
        const inf_layer *L = &m->layers[l];
        const inf_tensor *ws[] = {&L->wq,   &L->wk,     &L->wv,     &L->wo,
                                  &L->w_gate, &L->w_up, &L->w_down, &L->gate_inp};
        for (size_t i = 0; i < INF_ARRAY_LEN(ws); i++)
            mm = INF_MAX(mm, mm_need(ws[i], max_tokens));
        /* An expert sees each token at most once: at most max_tokens rows. */
        for (int k = 0; k < 3 && L->exps[0]; k++)
            mm = INF_MAX(mm, mm_need(&L->exps[k][0], max_tokens));
    }
    s->mm_size = mm;
    s->mm = inf__aligned_alloc(64, mm ? mm : 64);
    if (!s->mm) ok = false;
    if (!ok) {
        inf_forward_scratch_free(s);
        return inf__err(INF_ENOMEM, "forward scratch for %lld tokens, context %lld",
                        (long long)max_tokens, (long long)max_ctx);
    }
    *out = s;
    return 0;
}

void inf_forward_scratch_free(inf_forward_scratch *s) {
    if (!s) return;
    float *bufs[] = {s->x,     s->xn,     s->q,        s->k,       s->v,      s->att,
                     s->gate,  s->up,     s->rope,     s->rope_swa, s->scores, s->sp_scores,
                     s->sp_part, s->router, s->moe_x,  s->moe_y,   s->moe_w};
    for (size_t i = 0; i < INF_ARRAY_LEN(bufs); i++)
        free(bufs[i]);
    free(s->moe_sel);
    free(s->moe_row);
    free(s->moe_count);
    free(s->out_rows);
    free(s->mm);
    free(s);
}

size_t inf_kv_store_token_bytes(const inf_hparams *hp) {
    size_t row = (size_t)(hp->n_head_kv * hp->head_dim), n, bytes;
    if (inf__mul_overflow(row, (size_t)hp->n_layer, &n) ||
        inf__mul_overflow(n, 2 * sizeof(inf_half), &bytes))
        return 0;
    return bytes;
}

int inf_kv_store_init(inf_kv_store *kv, const inf_hparams *hp, int64_t n_slots) {
    memset(kv, 0, sizeof *kv);
    if (n_slots < 1) return inf__err(INF_EINVAL, "kv store: %lld slots", (long long)n_slots);
    size_t row = (size_t)(hp->n_head_kv * hp->head_dim), n, bytes;
    if (inf__mul_overflow(row, (size_t)n_slots, &n) ||
        inf__mul_overflow(n, sizeof(inf_half), &bytes))
        return inf__err(INF_ENOMEM, "kv store: %lld slots overflow", (long long)n_slots);
    kv->k = inf__calloc((size_t)hp->n_layer, sizeof *kv->k);
    kv->v = inf__calloc((size_t)hp->n_layer, sizeof *kv->v);
    if (!kv->k || !kv->v) goto fail;
    for (int64_t l = 0; l < hp->n_layer; l++) {
        /* calloc: pages are touched only as slots are used. */
        kv->k[l] = inf__calloc(n, sizeof(inf_half));
        kv->v[l] = inf__calloc(n, sizeof(inf_half));
        if (!kv->k[l] || !kv->v[l]) goto fail;
    }
    kv->n_slots = n_slots;
    return 0;
fail:
    inf_kv_store_free(kv, hp);
    return inf__err(INF_ENOMEM, "kv store: %lld slots x %lld layers (%zu bytes per layer)",
                    (long long)n_slots, (long long)hp->n_layer, bytes * 2);
}

void inf_kv_store_free(inf_kv_store *kv, const inf_hparams *hp) {
    if (!kv) return;
    for (int64_t l = 0; l < hp->n_layer; l++) {
        if (kv->k) free(kv->k[l]);
        if (kv->v) free(kv->v[l]);
    }
    free(kv->k);
    free(kv->v);
    memset(kv, 0, sizeof *kv);
}

/* ---- per-row stages, run on the pool ---- */

enum stage {
    ST_EMBED,      /* x = embedding rows */
    ST_NORM_ATTN,  /* (x += xn if add) ; xn = rmsnorm(x) * attn_norm */
    ST_QKV_POST,   /* biases, RoPE on q and k, store k and v into the KV slots */
    ST_ATTN,       /* att = attention(q, KV) per (entry, KV head, group of heads) */
    ST_SP_SCORES,  /* split attention: scores per (entry, KV head, chunk) */
    ST_SP_SOFTMAX, /* split attention: probabilities per (entry, head) */
    ST_SP_PV,      /* split attention: value partials per (entry, KV head, chunk) */
    ST_SP_SUM,     /* split attention: att = in-order sum of the partials per (entry, head) */
    ST_NORM_FFN,   /* x += xn ; xn = rmsnorm(x) * ffn_norm */
    ST_ACT,        /* gate = act(gate) * up (SiLU or GELU) over n_rows rows of f->ff floats */
    ST_MOE_ROUTE,  /* router row -> chosen experts and their weights */
    ST_MOE_SUM,    /* xn = sum over the chosen experts, best first, of w * expert output */
    ST_FINAL,      /* x += xn on every row; output rows: xn[r] = rmsnorm(x[e]) * output_norm */
    ST_SOFTCAP,    /* final logit soft-capping of output row r */
};

typedef struct fwd {
    inf_model *m;
    inf_forward_scratch *s;
    const inf_batch *b;
    inf_kv_store *kv;
    int64_t l;
    int stage;
    bool add;
    int64_t n_rows; /* work units of this stage */
    int64_t n_out;
    int64_t attn_group, attn_subs; /* heads per attention unit, units per KV head */
    int64_t sp_chunks;             /* split attention: chunks of the longest entry */
    int64_t ff;                    /* ST_ACT: floats per row */
    float *logits;                 /* ST_SOFTCAP: [n_out][n_vocab] */
    atomic_llong next;             /* ST_ATTN work counter */
} fwd;

/* The positions entry i attends to in layer f->l: [first, pos] (sliding layers: the last n_swa
 * positions). Returns the count. */
static int64_t attn_span(const fwd *f, int64_t i, int64_t *first) {
    const inf_hparams *hp = &f->m->hp;
    int64_t n = (int64_t)f->b->pos[i] + 1;
    *first = 0;
    if (inf_hparams_swa_layer(hp, f->l) && n > hp->n_swa) {
        *first = n - hp->n_swa;
        n = hp->n_swa;
    }
    return n;
}

/* Scale of the attention scores (1 when Q was scaled instead). */
static float attn_scale(const inf_hparams *hp) {
    return (hp->flags & INF_AF_Q_PRESCALE) ? 1.0f : 1.0f / sqrtf((float)hp->head_dim);
}

/* x += post_norm(xn) (xn normed in place first when the architecture has post-norms). */
static void residual(const fwd *f, float *x, float *xn, const inf_tensor *post_norm) {
    const inf_hparams *hp = &f->m->hp;
    if (post_norm->data) inf_op_rmsnorm(xn, post_norm->data, xn, hp->n_embd, hp->rms_eps);
    inf_op_add(x, xn, hp->n_embd);
}

/* Router of token i: softmax over the experts, the top n_expert_used (ties: lower index first),
 * weights renormalized to sum 1. */
static void moe_route(const fwd *f, int64_t i) {
    const inf_hparams *hp = &f->m->hp;
    inf_forward_scratch *s = f->s;
    int64_t X = hp->n_expert, K = hp->n_expert_used;
    float *p = s->router + i * X;
    inf_op_softmax(p, X);
    int32_t *sel = s->moe_sel + i * K;
    float *w = s->moe_w + i * K;
    float sum = 0.0f;
    for (int64_t k = 0; k < K; k++) {
        int32_t best = -1;
        for (int64_t e = 0; e < X; e++) {
            bool taken = false;
            for (int64_t j = 0; j < k; j++)
                taken |= sel[j] == e;
            if (!taken && (best < 0 || p[e] > p[best])) best = (int32_t)e;
        }
        sel[k] = best;
        w[k] = p[best];
        sum += w[k];
    }
    for (int64_t k = 0; k < K; k++)
        w[k] /= sum;
}

static void row_stage(fwd *f, int64_t i) {
    const inf_hparams *hp = &f->m->hp;
    inf_forward_scratch *s = f->s;
    const inf_batch *b = f->b;
    if (f->stage == ST_ACT) { /* rows of the FFN buffers (MoE: more than max_tokens) */
        if (hp->flags & INF_AF_GELU)
            inf_op_gelu_mul(s->gate + i * f->ff, s->up + i * f->ff, f->ff);
        else
            inf_op_silu_mul(s->gate + i * f->ff, s->up + i * f->ff, f->ff);
        return;
    }
    int64_t E = hp->n_embd, Q = hp->n_head * hp->head_dim, KV = hp->n_head_kv * hp->head_dim;
    float *x = s->x + i * E, *xn = s->xn + i * E;
    switch (f->stage) {
    case ST_EMBED: {
        const inf_tensor *t = &f->m->tok_embd;
        const uint8_t *row = (const uint8_t *)t->data + (size_t)b->tokens[i] * t->nb[1];
        inf_type_traits_get(t->type)->to_float(row, x, E);
        if (hp->embd_scale != 1.0f)
            for (int64_t d = 0; d < E; d++)
                x[d] *= hp->embd_scale;
        inf_op_rope_cache_ext(s->rope + i * hp->n_rot, hp->n_rot, b->pos[i], hp->rope_base,
                              hp->rope_scale, s->rope_ff, hp->rope_attn_factor);
        if (s->rope_swa)
            inf_op_rope_cache_ext(s->rope_swa + i * hp->n_rot, hp->n_rot, b->pos[i],
                                  hp->rope_base_swa, hp->rope_scale_swa, s->rope_ff,
                                  hp->rope_attn_factor);
        break;
    }
    case ST_NORM_ATTN:
        if (f->add) residual(f, x, xn, &f->m->layers[f->l - 1].post_ffn_norm);
        inf_op_rmsnorm(x, f->m->layers[f->l].attn_norm.data, xn, E, hp->rms_eps);
        break;
    case ST_NORM_FFN:
        residual(f, x, xn, &f->m->layers[f->l].post_attn_norm);
        inf_op_rmsnorm(x, f->m->layers[f->l].ffn_norm.data, xn, E, hp->rms_eps);
        break;
    case ST_QKV_POST: {
        const inf_layer *L = &f->m->layers[f->l];
        float *q = s->q + i * Q, *k = s->k + i * KV, *v = s->v + i * KV;
        if (L->bq.data) inf_op_add(q, L->bq.data, Q);
        if (L->bk.data) inf_op_add(k, L->bk.data, KV);
        if (L->bv.data) inf_op_add(v, L->bv.data, KV);
        if (L->q_norm.data) {
            int64_t hd = hp->head_dim;
            for (int64_t h = 0; h < hp->n_head; h++)
                inf_op_rmsnorm(q + h * hd, L->q_norm.data, q + h * hd, hd, hp->rms_eps);
            for (int64_t h = 0; h < hp->n_head_kv; h++)
                inf_op_rmsnorm(k + h * hd, L->k_norm.data, k + h * hd, hd, hp->rms_eps);
        }
        bool swa_rope = s->rope_swa && inf_hparams_swa_layer(hp, f->l);
        const float *cs = (swa_rope ? s->rope_swa : s->rope) + i * hp->n_rot;
        inf_op_rope(q, hp->n_head, hp->head_dim, hp->n_rot, cs, hp->rope_neox);
        inf_op_rope(k, hp->n_head_kv, hp->head_dim, hp->n_rot, cs, hp->rope_neox);
        /* llama.cpp keeps K and V in an f16 cache and multiplies Q with K in f16; matching that
         * precision matters for quantized models, whose activation quantization amplifies tiny
         * differences (a different rounding of V flips q8 roundings downstream). K and V are
         * rounded to nearest even by the conversion into the binary16 store. */
        if (hp->flags & INF_AF_Q_PRESCALE) {
            float sc = 1.0f / sqrtf((float)hp->head_dim);
            for (int64_t d = 0; d < Q; d++)
                q[d] *= sc;
        }
        inf_op_round_f16(q, Q);
        size_t off = (size_t)b->slot[i] * (size_t)KV;
        inf_op_f32_to_f16(k, f->kv->k[f->l] + off, KV);
        inf_op_f32_to_f16(v, f->kv->v[f->l] + off, KV);
        break;
    }
    case ST_MOE_ROUTE: moe_route(f, i); break;
    case ST_MOE_SUM: {
        int64_t K = hp->n_expert_used;
        for (int64_t d = 0; d < E; d++)
            xn[d] = 0.0f;
        for (int64_t k = 0; k < K; k++) {
            const float *y = s->moe_y + (size_t)s->moe_row[i * K + k] * (size_t)E;
            float w = s->moe_w[i * K + k];
            for (int64_t d = 0; d < E; d++)
                xn[d] += w * y[d];
        }
        break;
    }
    case ST_FINAL: residual(f, x, xn, &f->m->layers[hp->n_layer - 1].post_ffn_norm); break;
    case ST_SOFTCAP:
        inf_op_softcap(f->logits + i * hp->n_vocab, hp->n_vocab, hp->final_softcap);
        break;
    }
}

/* Split attention: the phases of inf_op_attention_group spread over (entry, KV head, chunk)
 * units, so a few long sequences keep every thread busy. Same values as the unsplit path. */
static void split_unit(fwd *f, int64_t u, float *conv) {
    const inf_hparams *hp = &f->m->hp;
    inf_forward_scratch *s = f->s;
    const inf_batch *b = f->b;
    int64_t hd = hp->head_dim, H = hp->n_head, g = H / hp->n_head_kv, C = s->n_chunks;
    int64_t ctx = s->max_ctx;
    size_t stride = (size_t)(hp->n_head_kv * hd);
    int64_t first;
    if (f->stage == ST_SP_SOFTMAX || f->stage == ST_SP_SUM) {
        int64_t i = u / H, h = u % H, n_pos = attn_span(f, i, &first);
        if (f->stage == ST_SP_SOFTMAX) {
            inf_op_attn_softmax(s->sp_scores + (i * H + h) * ctx, n_pos, hp->attn_softcap);
        } else {
            int64_t kvh = h / g, hg = h % g;
            float *out = s->att + i * H * hd + h * hd;
            for (int64_t d = 0; d < hd; d++)
                out[d] = 0.0f;
            for (int64_t c = 0; c * INF_ATTN_CHUNK < n_pos; c++)
                inf_op_add(out, s->sp_part + (((i * hp->n_head_kv + kvh) * C + c) * g + hg) * hd,
                           hd);
        }
        return;
    }
    int64_t c = u % f->sp_chunks, r = u / f->sp_chunks;
    int64_t kvh = r % hp->n_head_kv, i = r / hp->n_head_kv;
    int64_t n_pos = attn_span(f, i, &first), j0 = c * INF_ATTN_CHUNK;
    if (j0 >= n_pos) return;
    int64_t n = INF_MIN(INF_ATTN_CHUNK, n_pos - j0);
    const int32_t *slots = b->seq_slots[b->seq[i]] + first + j0;
    float *rows = s->sp_scores + (i * H + kvh * g) * ctx + j0;
    if (f->stage == ST_SP_SCORES)
        inf_op_attn_scores_f16(s->q + i * H * hd + kvh * g * hd, g, f->kv->k[f->l] + kvh * hd,
                               stride, slots, n, hd, attn_scale(hp), rows, ctx, conv);
    else
        inf_op_attn_pv_f16(rows, g, ctx, f->kv->v[f->l] + kvh * hd, stride, slots, n, hd,
                           s->sp_part + ((i * hp->n_head_kv + kvh) * C + c) * g * hd, conv);
}

/* Unit u = (entry, KV head, subgroup of up to attn_group query heads of that KV head). */
static void attn_unit(fwd *f, int64_t u, float *scores) {
    const inf_hparams *hp = &f->m->hp;
    int64_t hd = hp->head_dim, g = hp->n_head / hp->n_head_kv;
    int64_t per_entry = hp->n_head_kv * f->attn_subs;
    int64_t i = u / per_entry, r = u % per_entry;
    int64_t kvh = r / f->attn_subs, sub = r % f->attn_subs;
    int64_t h0 = kvh * g + sub * f->attn_group;
    int64_t nh = INF_MIN(f->attn_group, g - sub * f->attn_group);
    int64_t Q = hp->n_head * hd;
    size_t stride = (size_t)(hp->n_head_kv * hd);
    const inf_batch *b = f->b;
    int64_t first, n_pos = attn_span(f, i, &first);
    inf_op_attention_group_f16(f->s->q + i * Q + h0 * hd, nh, f->kv->k[f->l] + kvh * hd,
                               f->kv->v[f->l] + kvh * hd, stride,
                               b->seq_slots[b->seq[i]] + first, n_pos, hd,
                               attn_scale(hp), hp->attn_softcap, scores,
                               f->s->att + i * Q + h0 * hd);
}

static void stage_worker(void *ctx, int ith, int nth) {
    fwd *f = ctx;
    /* This thread's attention scratch (the split path uses only its conversion block). */
    float *scores = f->s->scores + (size_t)ith * (size_t)f->s->unit_floats;
    if (f->stage >= ST_SP_SCORES && f->stage <= ST_SP_SUM) {
        float *conv = scores + ATTN_MAX_GROUP * (f->s->max_ctx + f->m->hp.head_dim);
        for (;;) {
            int64_t u = atomic_fetch_add_explicit(&f->next, 1, memory_order_relaxed);
            if (u >= f->n_rows) break;
            split_unit(f, u, conv);
        }
        return;
    }
    if (f->stage == ST_ATTN) {
        for (;;) {
            int64_t u = atomic_fetch_add_explicit(&f->next, 1, memory_order_relaxed);
            if (u >= f->n_rows) break;
            attn_unit(f, u, scores);
        }
        return;
    }
    int64_t per = (f->n_rows + nth - 1) / nth;
    int64_t r0 = (int64_t)ith * per, r1 = INF_MIN(f->n_rows, r0 + per);
    for (int64_t r = r0; r < r1; r++)
        row_stage(f, r);
}

/* Runs a stage over n_rows units: inline when tiny (pool wake-up would cost more than the work),
 * else on the pool. The result is the same either way (rows are independent). */
static void run_stage(fwd *f, int stage, int64_t n_rows, int64_t work_per_row) {
    f->stage = stage;
    f->n_rows = n_rows;
    atomic_store_explicit(&f->next, 0, memory_order_relaxed);
    if (!f->m->pool || n_rows <= 1 || n_rows * work_per_row < 16384)
        stage_worker(f, 0, 1);
    else
        inf_pool_run(f->m->pool, stage_worker, f);
}

/* The mixture-of-experts FFN of layer L on xn (T rows), result in xn. Rows are grouped by expert
 * (in token order within an expert) so each routed expert's matmuls run once per step. */
static void moe_ffn(fwd *f, const inf_layer *L, int64_t T) {
    const inf_hparams *hp = &f->m->hp;
    inf_forward_scratch *s = f->s;
    inf_pool *pool = f->m->pool;
    int64_t X = hp->n_expert, K = hp->n_expert_used, E = hp->n_embd, F = hp->n_ff_exp;
    inf_matmul(pool, &L->gate_inp, s->xn, T, s->router, X, s->mm);
    run_stage(f, ST_MOE_ROUTE, T, X * K * 4);
    int64_t *off = s->moe_count;
    memset(off, 0, (size_t)(X + 1) * sizeof *off);
    for (int64_t r = 0; r < T * K; r++)
        off[s->moe_sel[r] + 1]++;
    for (int64_t e = 0; e < X; e++)
        off[e + 1] += off[e];
    /* off[e]: first row of expert e; fill advances a copy per expert. */
    for (int64_t i = 0; i < T; i++)
        for (int64_t k = 0; k < K; k++) {
            int32_t e = s->moe_sel[i * K + k];
            int64_t row = off[e]++;
            s->moe_row[i * K + k] = (int32_t)row;
            memcpy(s->moe_x + row * E, s->xn + i * E, (size_t)E * sizeof(float));
        }
    for (int64_t e = X; e > 0; e--) /* back to first rows */
        off[e] = off[e - 1];
    off[0] = 0;
    for (int64_t e = 0; e < X; e++) {
        int64_t r0 = off[e], n = off[e + 1] - r0;
        if (n == 0) continue;
        inf_matmul(pool, &L->exps[0][e], s->moe_x + r0 * E, n, s->gate + r0 * F, F, s->mm);
        inf_matmul(pool, &L->exps[1][e], s->moe_x + r0 * E, n, s->up + r0 * F, F, s->mm);
    }
    f->ff = F;
    run_stage(f, ST_ACT, T * K, F * 8);
    for (int64_t e = 0; e < X; e++) {
        int64_t r0 = off[e], n = off[e + 1] - r0;
        if (n == 0) continue;
        inf_matmul(pool, &L->exps[2][e], s->gate + r0 * F, n, s->moe_y + r0 * E, E, s->mm);
    }
    run_stage(f, ST_MOE_SUM, T, E * K);
}

static int check_batch(const inf_model *m, const inf_forward_scratch *s, const inf_batch *b,
                       const inf_kv_store *kv) {
    if (b->n_tokens < 0 || b->n_tokens > s->max_tokens)
        return inf__err(INF_EINVAL, "batch of %lld tokens (scratch holds %lld)",
                        (long long)b->n_tokens, (long long)s->max_tokens);
    if (!kv || !kv->k || kv->n_slots < 1) return inf__err(INF_EINVAL, "batch: no KV store");
    for (int64_t i = 0; i < b->n_tokens; i++) {
        int32_t tok = b->tokens[i], pos = b->pos[i], seq = b->seq[i], slot = b->slot[i];
        if (tok < 0 || tok >= m->hp.n_vocab)
            return inf__err(INF_EINVAL, "batch entry %lld: token %d out of range [0, %lld)",
                            (long long)i, tok, (long long)m->hp.n_vocab);
        if (seq < 0 || seq >= b->n_seqs || !b->seq_slots || !b->seq_slots[seq])
            return inf__err(INF_EINVAL, "batch entry %lld: sequence %d out of range", (long long)i,
                            seq);
        if (pos < 0 || pos >= s->max_ctx)
            return inf__err(INF_ERANGE, "batch entry %lld: position %d beyond context %lld",
                            (long long)i, pos, (long long)s->max_ctx);
        if (slot < 0 || slot >= kv->n_slots)
            return inf__err(INF_EINVAL, "batch entry %lld: slot %d out of range", (long long)i,
                            slot);
        const int32_t *ss = b->seq_slots[seq];
        if (ss[pos] != slot)
            return inf__err(INF_EINVAL, "batch entry %lld: seq_slots[%d][%d] = %d != slot %d",
                            (long long)i, seq, pos, ss[pos], slot);
        for (int32_t j = 0; j < pos; j++)
            if (ss[j] < 0 || ss[j] >= kv->n_slots)
                return inf__err(INF_EINVAL, "sequence %d: position %d has invalid slot %d", seq, j,
                                ss[j]);
    }
    return 0;
}

int inf_model_forward(inf_model *m, inf_forward_scratch *s, const inf_batch *b, inf_kv_store *kv,
                      float *logits, float *hidden) {
    if (!m || !s || !b || m->vocab_only) return inf__err(INF_EINVAL, "forward: bad arguments");
    int rc = check_batch(m, s, b, kv);
    if (rc < 0) return rc;
    int64_t T = b->n_tokens;
    if (T == 0) return 0;
    const inf_hparams *hp = &m->hp;
    int64_t E = hp->n_embd, Q = hp->n_head * hp->head_dim, KV = hp->n_head_kv * hp->head_dim;
    int64_t F = hp->n_ff;
    inf_pool *pool = m->pool;
    fwd f = {.m = m, .s = s, .b = b, .kv = kv};
    /* Attention units: group the query heads of a KV head (each K/V row read once for the
     * group) while enough units remain to keep every thread busy. Each head's result is the
     * same whatever the grouping, so this choice cannot break batch invariance. */
    int64_t g = hp->n_head / hp->n_head_kv;
    f.attn_group = INF_MIN(ATTN_MAX_GROUP, g);
    while (f.attn_group > 1 &&
           T * hp->n_head_kv * ((g + f.attn_group - 1) / f.attn_group) < 2 * s->n_threads)
        f.attn_group = (f.attn_group + 1) / 2;
    f.attn_subs = (g + f.attn_group - 1) / f.attn_group;
    /* Few entries with long contexts: split attention over chunks of positions (same values). */
    int32_t max_pos = 0;
    for (int64_t i = 0; i < T; i++)
        max_pos = INF_MAX(max_pos, b->pos[i]);
    bool split = T <= s->split_tokens && max_pos >= SPLIT_MIN_POS &&
                 T * hp->n_head < 4 * (int64_t)s->n_threads;
    f.sp_chunks = ((int64_t)max_pos + INF_ATTN_CHUNK) / INF_ATTN_CHUNK;

    run_stage(&f, ST_EMBED, T, E);
    for (int64_t l = 0; l < hp->n_layer; l++) {
        const inf_layer *L = &m->layers[l];
        f.l = l;
        f.add = l > 0;
        run_stage(&f, ST_NORM_ATTN, T, E);
        inf_matmul(pool, &L->wq, s->xn, T, s->q, Q, s->mm);
        inf_matmul(pool, &L->wk, s->xn, T, s->k, KV, s->mm);
        inf_matmul(pool, &L->wv, s->xn, T, s->v, KV, s->mm);
        run_stage(&f, ST_QKV_POST, T, Q + 2 * KV);
        if (split) {
            int64_t units = T * hp->n_head_kv * f.sp_chunks, per = g * hp->head_dim * 2;
            run_stage(&f, ST_SP_SCORES, units, per * INF_ATTN_CHUNK);
            run_stage(&f, ST_SP_SOFTMAX, T * hp->n_head, 8 * (int64_t)max_pos);
            run_stage(&f, ST_SP_PV, units, per * INF_ATTN_CHUNK);
            run_stage(&f, ST_SP_SUM, T * hp->n_head, hp->head_dim * f.sp_chunks);
        } else {
            /* Work per unit grows with the position; the largest decides inline vs pool. */
            run_stage(&f, ST_ATTN, T * hp->n_head_kv * f.attn_subs,
                      f.attn_group * hp->head_dim * 2 * ((int64_t)max_pos + 1));
        }
        inf_matmul(pool, &L->wo, s->att, T, s->xn, E, s->mm);
        run_stage(&f, ST_NORM_FFN, T, E);
        if (L->exps[0]) {
            moe_ffn(&f, L, T);
            continue;
        }
        inf_matmul(pool, &L->w_gate, s->xn, T, s->gate, F, s->mm);
        inf_matmul(pool, &L->w_up, s->xn, T, s->up, F, s->mm);
        f.ff = F;
        run_stage(&f, ST_ACT, T, F * 8);
        inf_matmul(pool, &L->w_down, s->gate, T, s->xn, E, s->mm);
    }
    run_stage(&f, ST_FINAL, T, E);

    /* Output rows: final norm into xn (compacted), then the vocabulary projection. */
    int64_t n_out = 0;
    for (int64_t i = 0; i < T; i++)
        if (!b->output || b->output[i]) s->out_rows[n_out++] = (int32_t)i;
    if (n_out == 0 || (!logits && !hidden)) return 0;
    for (int64_t r = 0; r < n_out; r++)
        inf_op_rmsnorm(s->x + (size_t)s->out_rows[r] * E, m->output_norm.data, s->xn + r * E, E,
                       hp->rms_eps);
    if (hidden) memcpy(hidden, s->xn, (size_t)(n_out * E) * sizeof(float));
    if (logits) {
        inf_matmul(pool, &m->output, s->xn, n_out, logits, hp->n_vocab, s->mm);
        if (hp->final_softcap > 0.0f) {
            f.logits = logits;
            run_stage(&f, ST_SOFTCAP, n_out, hp->n_vocab * 8);
        }
    }
    return 0;
}
