/*
 * forward.c — the batched transformer forward pass (llama, qwen2) over a slot-addressed KV store
 * of binary16 K/V rows (llama.cpp's f16 cache: values are rounded once, when stored).
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
    float *gate;   /* [max_tokens][n_ff] */
    float *up;     /* [max_tokens][n_ff] */
    float *rope;   /* [max_tokens][n_rot] cos/sin pairs at each entry's position */
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
    s->gate = alloc_floats(max_tokens, hp->n_ff, &ok);
    s->up = alloc_floats(max_tokens, hp->n_ff, &ok);
    s->rope = alloc_floats(max_tokens, hp->n_rot, &ok);
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
        const inf_tensor *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < INF_ARRAY_LEN(ws); i++)
            mm = INF_MAX(mm, mm_need(ws[i], max_tokens));
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
    float *bufs[] = {s->x,    s->xn, s->q,    s->k,      s->v,         s->att,
                     s->gate, s->up, s->rope, s->scores, s->sp_scores, s->sp_part};
    for (size_t i = 0; i < INF_ARRAY_LEN(bufs); i++)
        free(bufs[i]);
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
    ST_SILU,       /* gate = silu(gate) * up */
    ST_FINAL,      /* x += xn on every row; output rows: xn[r] = rmsnorm(x[e]) * output_norm */
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
    atomic_llong next;             /* ST_ATTN work counter */
} fwd;

static void row_stage(fwd *f, int64_t i) {
    const inf_hparams *hp = &f->m->hp;
    inf_forward_scratch *s = f->s;
    const inf_batch *b = f->b;
    int64_t E = hp->n_embd, Q = hp->n_head * hp->head_dim, KV = hp->n_head_kv * hp->head_dim;
    float *x = s->x + i * E, *xn = s->xn + i * E;
    switch (f->stage) {
    case ST_EMBED: {
        const inf_tensor *t = &f->m->tok_embd;
        const uint8_t *row = (const uint8_t *)t->data + (size_t)b->tokens[i] * t->nb[1];
        inf_type_traits_get(t->type)->to_float(row, x, E);
        inf_op_rope_cache(s->rope + i * hp->n_rot, hp->n_rot, b->pos[i], hp->rope_base,
                          hp->rope_scale);
        break;
    }
    case ST_NORM_ATTN:
        if (f->add) inf_op_add(x, xn, E);
        inf_op_rmsnorm(x, f->m->layers[f->l].attn_norm.data, xn, E, hp->rms_eps);
        break;
    case ST_NORM_FFN:
        inf_op_add(x, xn, E);
        inf_op_rmsnorm(x, f->m->layers[f->l].ffn_norm.data, xn, E, hp->rms_eps);
        break;
    case ST_QKV_POST: {
        const inf_layer *L = &f->m->layers[f->l];
        float *q = s->q + i * Q, *k = s->k + i * KV, *v = s->v + i * KV;
        if (L->bq.data) inf_op_add(q, L->bq.data, Q);
        if (L->bk.data) inf_op_add(k, L->bk.data, KV);
        if (L->bv.data) inf_op_add(v, L->bv.data, KV);
        const float *cs = s->rope + i * hp->n_rot;
        inf_op_rope(q, hp->n_head, hp->head_dim, hp->n_rot, cs, hp->rope_neox);
        inf_op_rope(k, hp->n_head_kv, hp->head_dim, hp->n_rot, cs, hp->rope_neox);
        /* llama.cpp keeps K and V in an f16 cache and multiplies Q with K in f16; matching that
         * precision matters for quantized models, whose activation quantization amplifies tiny
         * differences (a different rounding of V flips q8 roundings downstream). K and V are
         * rounded to nearest even by the conversion into the binary16 store. */
        inf_op_round_f16(q, Q);
        size_t off = (size_t)b->slot[i] * (size_t)KV;
        inf_op_f32_to_f16(k, f->kv->k[f->l] + off, KV);
        inf_op_f32_to_f16(v, f->kv->v[f->l] + off, KV);
        break;
    }
    case ST_SILU: inf_op_silu_mul(s->gate + i * hp->n_ff, s->up + i * hp->n_ff, hp->n_ff); break;
    case ST_FINAL: inf_op_add(x, xn, E); break;
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
    if (f->stage == ST_SP_SOFTMAX || f->stage == ST_SP_SUM) {
        int64_t i = u / H, h = u % H, n_pos = (int64_t)b->pos[i] + 1;
        if (f->stage == ST_SP_SOFTMAX) {
            inf_op_attn_softmax(s->sp_scores + (i * H + h) * ctx, n_pos);
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
    int64_t n_pos = (int64_t)b->pos[i] + 1, j0 = c * INF_ATTN_CHUNK;
    if (j0 >= n_pos) return;
    int64_t n = INF_MIN(INF_ATTN_CHUNK, n_pos - j0);
    const int32_t *slots = b->seq_slots[b->seq[i]] + j0;
    float *rows = s->sp_scores + (i * H + kvh * g) * ctx + j0;
    if (f->stage == ST_SP_SCORES)
        inf_op_attn_scores_f16(s->q + i * H * hd + kvh * g * hd, g, f->kv->k[f->l] + kvh * hd,
                               stride, slots, n, hd, 1.0f / sqrtf((float)hd), rows, ctx, conv);
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
    inf_op_attention_group_f16(f->s->q + i * Q + h0 * hd, nh, f->kv->k[f->l] + kvh * hd,
                               f->kv->v[f->l] + kvh * hd, stride, b->seq_slots[b->seq[i]],
                               (int64_t)b->pos[i] + 1, hd, 1.0f / sqrtf((float)hd), scores,
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
        inf_matmul(pool, &L->w_gate, s->xn, T, s->gate, F, s->mm);
        inf_matmul(pool, &L->w_up, s->xn, T, s->up, F, s->mm);
        run_stage(&f, ST_SILU, T, F * 8);
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
    if (logits) inf_matmul(pool, &m->output, s->xn, n_out, logits, hp->n_vocab, s->mm);
    return 0;
}
