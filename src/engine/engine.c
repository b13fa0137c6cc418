/*
 * engine.c — the serving engine: engine thread, request lifecycle, public inf_engine_* API.
 *
 * Threads and locks:
 * - Any thread: inf_engine_submit / cancel / poll / wait / get_stats. Submit validates and
 *   tokenizes in the caller's thread, then appends to the incoming list under `mu`; cancel
 *   appends an id under `mu`; both signal `work_cv`.
 * - The engine thread owns the model's forward pass, the KV pool, the scheduler, every request
 *   after submit and the per-step scratch; it takes `mu` only to drain the incoming/cancel lists
 *   and to publish the stats snapshot, and `ev_mu` only to append the step's events.
 * - Lock order: `mu` and `ev_mu` are never held together.
 *
 * A step (engine_step): drop cancelled requests, plan (sched.c), run the forward pass for the
 * planned tokens (generation entries and embedding entries in separate calls: the first needs
 * logits, the second hidden states), commit, sample/emit for every item that completed its
 * pending tokens, publish stats, then the step's events. Stats are published before the events
 * so that a client that saw a FINISH event reads stats that already include it.
 *
 * Memory: pool, KV store, forward scratch and batch arrays are allocated at create; per request
 * at submit (token/page tables, sampler, detokenizer, stop matcher, the FINISH event node, so a
 * request can always be finished even when memory runs out). Per token only the DELTA event and
 * its arrays are allocated.
 */
#include "engine/sched.h"
#include "engine/stop.h"
#include "model/model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define INF_MAX_LOGPROBS 20
#define INF_DEFAULT_KV_CAP ((size_t)1 << 30)
#define INF_DEFAULT_KV_CTX 2048

typedef struct ev_node {
    inf_event ev;
    struct ev_node *next;
} ev_node;

typedef struct inf_req {
    inf_seq seq; /* first member: a seq pointer from the scheduler is the request */
    uint64_t user_tag;
    bool ignore_eos, cancel;
    int32_t n_logprobs;
    int64_t n_generated;
    inf_sampler *sampler;
    inf_detok *detok;
    inf_stop stop;
    ev_node *finish_node; /* preallocated FINISH event */
    double *embd_sum;     /* [n_embd] embed requests */
    double t_submit, t_first;
    struct inf_req *in_next;
} inf_req;

struct inf_engine {
    inf_model *model;
    inf_engine_params params;
    int64_t n_ctx, n_vocab, n_embd;
    int64_t n_ctx_model; /* the context asked for, before the pool bounds it: the model's view
                          * (e.g. LongRoPE picks its factors by it, as llama.cpp does by n_ctx) */

    /* engine thread */
    inf_kvpool pool;
    inf_sched sched;
    inf_kv_store kv;
    bool kv_init;
    inf_forward_scratch *scratch;
    int32_t *b_tok, *b_pos, *b_seq, *b_slot; /* [max_batch_tokens] */
    uint8_t *b_out;                          /* [max_batch_tokens] */
    const int32_t **b_seq_slots;             /* [max_seqs] */
    int32_t *item_row;                       /* [max_seqs] first output row of each item */
    float *logits;                           /* [max_seqs][n_vocab] */
    float *hidden;                           /* [max_batch_tokens][n_embd] */
    float *lp_raw;                           /* [n_vocab] raw logits for logprobs */
    uint64_t *cancel_local;
    size_t n_cancel_local, cap_cancel_local;
    inf_sb text;                    /* per-token text assembly */
    ev_node *step_head, *step_tail; /* events of the current step */
    int64_t prompt_tokens, generated_tokens, steps;

    /* shared under mu */
    pthread_mutex_t mu;
    pthread_cond_t work_cv;
    inf_req *in_head, *in_tail;
    int64_t n_incoming;
    uint64_t *cancels;
    size_t n_cancels, cap_cancels;
    bool shutdown;
    uint64_t next_id;
    inf_engine_stats snap;

    /* shared under ev_mu */
    pthread_mutex_t ev_mu;
    pthread_cond_t ev_cv;
    ev_node *ev_head, *ev_tail;

    pthread_t thread;
    bool thread_started, mu_init, ev_init;
};

/* ---- defaults, names ---- */

inf_engine_params inf_engine_params_default(void) {
    inf_engine_params p;
    memset(&p, 0, sizeof p);
    p.kv_mem_bytes = 0;
    p.page_tokens = 16;
    p.max_seqs = 64;
    p.max_batch_tokens = 512;
    p.max_queue = 1024;
    p.n_ctx = 0;
    p.prefix_cache = true;
    return p;
}

inf_request_params inf_request_params_default(void) {
    inf_request_params r;
    memset(&r, 0, sizeof r);
    r.sampling = inf_sampling_params_default();
    return r;
}

const char *inf_finish_reason_str(int reason) {
    switch (reason) {
    case INF_FINISH_STOP: return "stop";
    case INF_FINISH_LENGTH: return "length";
    case INF_FINISH_CANCELLED: return "cancelled";
    case INF_FINISH_ERROR: return "error";
    default: return "none";
    }
}

void inf_event_clear(inf_event *ev) {
    if (!ev) return;
    free(ev->text);
    free(ev->tokens);
    free(ev->chosen);
    free(ev->top);
    free(ev->error_msg);
    free(ev->embedding);
    memset(ev, 0, sizeof *ev);
}

/* ---- requests ---- */

static void req_free(inf_req *r) {
    if (!r) return;
    inf__seq_free(&r->seq);
    inf_sampler_free(r->sampler);
    inf_detok_free(r->detok);
    inf__stop_free(&r->stop);
    if (r->finish_node) {
        inf_event_clear(&r->finish_node->ev);
        free(r->finish_node);
    }
    free(r->embd_sum);
    free(r);
}

/* ---- events (engine thread) ---- */

static void step_push(inf_engine *e, ev_node *n) {
    n->next = NULL;
    if (e->step_tail)
        e->step_tail->next = n;
    else
        e->step_head = n;
    e->step_tail = n;
}

static void publish_stats(inf_engine *e) {
    inf_engine_stats st;
    memset(&st, 0, sizeof st);
    st.running = e->sched.n_running;
    st.queued = e->sched.n_queued;
    st.pages_total = e->pool.n_pages;
    st.pages_cached = e->pool.n_cached;
    st.pages_free = e->pool.n_free;
    st.pages_used = inf__kvpool_n_used(&e->pool);
    st.prefix_hit_tokens = e->sched.prefix_hit_tokens;
    st.prompt_tokens = e->prompt_tokens;
    st.generated_tokens = e->generated_tokens;
    st.steps = e->steps;
    st.preemptions = e->sched.n_preemptions;
    pthread_mutex_lock(&e->mu);
    e->snap = st;
    pthread_mutex_unlock(&e->mu);
}

/* Stats first, then the events (see the file comment). */
static void flush_step(inf_engine *e) {
    publish_stats(e);
    if (!e->step_head) return;
    pthread_mutex_lock(&e->ev_mu);
    if (e->ev_tail)
        e->ev_tail->next = e->step_head;
    else
        e->ev_head = e->step_head;
    e->ev_tail = e->step_tail;
    pthread_cond_broadcast(&e->ev_cv);
    pthread_mutex_unlock(&e->ev_mu);
    e->step_head = e->step_tail = NULL;
    if (e->params.on_event) e->params.on_event(e->params.on_event_user);
}

/* The one place a request reaches FINISHED: releases its pages, emits its FINISH event (the
 * preallocated node) and frees it. */
static void finish_req(inf_engine *e, inf_req *r, int reason, int err, const char *msg) {
    inf__sched_remove(&e->sched, &r->seq);
    inf__seq_transition(&r->seq, INF_SEQ_FINISHED);
    ev_node *n = r->finish_node;
    r->finish_node = NULL;
    inf_event *ev = &n->ev;
    ev->type = INF_EVENT_FINISH;
    ev->id = r->seq.id;
    ev->user_tag = r->user_tag;
    ev->finish_reason = reason;
    ev->error = reason == INF_FINISH_ERROR ? (err ? err : INF_EINTERNAL) : 0;
    if (reason == INF_FINISH_ERROR) ev->error_msg = inf__strdup(msg ? msg : inf_strerror(err));
    ev->usage.prompt_tokens = r->seq.n_prompt;
    ev->usage.completion_tokens = r->n_generated;
    ev->usage.cached_tokens = r->seq.cached_tokens;
    double now = inf__time_s();
    ev->t_first_token_s = r->t_first > 0 ? r->t_first - r->t_submit : 0;
    ev->t_total_s = now - r->t_submit;
    if (reason == INF_FINISH_STOP && r->seq.embed && r->embd_sum) {
        ev->embedding = malloc((size_t)e->n_embd * sizeof(float));
        if (ev->embedding) {
            double norm = 0;
            for (int64_t i = 0; i < e->n_embd; i++)
                norm += r->embd_sum[i] * r->embd_sum[i];
            norm = sqrt(norm);
            double scale = norm > 0 ? 1.0 / norm : 0.0;
            for (int64_t i = 0; i < e->n_embd; i++)
                ev->embedding[i] = (float)(r->embd_sum[i] * scale);
            ev->n_embd = e->n_embd;
        } else {
            ev->finish_reason = INF_FINISH_ERROR;
            ev->error = INF_ENOMEM;
            ev->error_msg = inf__strdup("out of memory for the embedding");
        }
    }
    step_push(e, n);
    req_free(r);
}

/* ---- per-token processing ---- */

static void logprob_top(const float *raw, int64_t n_vocab, int32_t n_top, float lse,
                        inf_token_logprob *top) {
    int32_t k = 0;
    for (int64_t t = 0; t < n_vocab; t++) {
        float v = raw[t];
        if (k == n_top && v <= top[k - 1].logprob) continue;
        int32_t i = k < n_top ? k++ : n_top - 1;
        /* insertion keeps (logit desc, id asc): equal logits keep the lower id first */
        while (i > 0 && top[i - 1].logprob < v) {
            top[i] = top[i - 1];
            i--;
        }
        top[i].token = (int32_t)t;
        top[i].logprob = v;
    }
    for (int32_t i = 0; i < k; i++)
        top[i].logprob -= lse;
    for (int32_t i = k; i < n_top; i++)
        top[i] = (inf_token_logprob){-1, -INFINITY};
}

static float log_sum_exp(const float *x, int64_t n) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += exp((double)(x[i] - mx));
    return mx + (float)log(s);
}

/* Feeds text through the stop matcher into e->text. Returns the matched index or -1. */
static int feed_text(inf_engine *e, inf_req *r, const char *text, size_t len) {
    const char *out;
    size_t out_len;
    int matched = -1;
    if (inf__stop_feed(&r->stop, text, len, &out, &out_len, &matched) < 0) {
        e->text.oom = true;
        return -1;
    }
    inf__sb_append(&e->text, out, out_len);
    return matched;
}

/* Samples the next token of r from its logits row, emits a DELTA, finishes when done. */
static void process_token(inf_engine *e, inf_req *r, float *row) {
    int64_t V = e->n_vocab;
    float lse = 0;
    if (r->n_logprobs > 0) {
        memcpy(e->lp_raw, row, (size_t)V * sizeof *row);
        lse = log_sum_exp(e->lp_raw, V);
    }
    int32_t tok = inf_sampler_sample(r->sampler, row);
    if (tok < 0 || tok >= V) {
        finish_req(e, r, INF_FINISH_ERROR, INF_EINTERNAL, "sampler returned an invalid token");
        return;
    }
    inf_sampler_accept(r->sampler, tok);
    inf__sched_append(&e->sched, &r->seq, tok);
    r->n_generated++;
    e->generated_tokens++;
    if (r->t_first == 0) r->t_first = inf__time_s();

    e->text.len = 0;
    e->text.oom = false;
    int reason = INF_FINISH_NONE, matched = -1;
    bool eog = inf_token_is_eog(e->model, tok);
    if (eog && !r->ignore_eos) {
        reason = INF_FINISH_STOP;
    } else {
        const char *piece;
        size_t plen;
        if (inf_detok_push(r->detok, tok, &piece, &plen) < 0) {
            finish_req(e, r, INF_FINISH_ERROR, INF_EINTERNAL, inf_last_error());
            return;
        }
        matched = feed_text(e, r, piece, plen);
        if (matched >= 0) reason = INF_FINISH_STOP;
    }
    if (reason == INF_FINISH_NONE && r->seq.n_tokens >= r->seq.cap) reason = INF_FINISH_LENGTH;
    if (reason != INF_FINISH_NONE && matched < 0) {
        /* End without a stop-string match: release what the detokenizer and matcher hold
         * (a trailing stop string may still complete here). */
        const char *piece, *out;
        size_t plen, olen;
        if (inf_detok_flush(r->detok, &piece, &plen) == 0) matched = feed_text(e, r, piece, plen);
        if (matched >= 0) {
            reason = INF_FINISH_STOP;
        } else {
            inf__stop_flush(&r->stop, &out, &olen);
            inf__sb_append(&e->text, out, olen);
        }
    }

    ev_node *n = calloc(1, sizeof *n);
    if (n) {
        inf_event *ev = &n->ev;
        ev->type = INF_EVENT_DELTA;
        ev->id = r->seq.id;
        ev->user_tag = r->user_tag;
        ev->text = inf__strndup(e->text.data ? e->text.data : "", e->text.len);
        ev->text_len = e->text.len;
        ev->tokens = malloc(sizeof *ev->tokens);
        ev->n_tokens = 1;
        bool ok = ev->text && ev->tokens && !e->text.oom;
        if (ok) ev->tokens[0] = tok;
        if (ok && r->n_logprobs > 0) {
            ev->n_top = r->n_logprobs;
            ev->chosen = malloc(sizeof *ev->chosen);
            ev->top = malloc((size_t)r->n_logprobs * sizeof *ev->top);
            ok = ev->chosen && ev->top;
            if (ok) {
                ev->chosen[0].token = tok;
                ev->chosen[0].logprob = e->lp_raw[tok] - lse;
                logprob_top(e->lp_raw, V, r->n_logprobs, lse, ev->top);
            }
        }
        if (!ok) {
            inf_event_clear(ev);
            free(n);
            n = NULL;
        }
    }
    if (!n) {
        finish_req(e, r, INF_FINISH_ERROR, INF_ENOMEM, "out of memory for an event");
        return;
    }
    step_push(e, n);
    if (reason != INF_FINISH_NONE) finish_req(e, r, reason, 0, NULL);
}

/* ---- the step ---- */

static inf_req *find_req(inf_engine *e, uint64_t id) {
    for (int32_t i = 0; i < e->sched.n_running; i++)
        if (e->sched.running[i]->id == id) return (inf_req *)e->sched.running[i];
    for (inf_seq *s = e->sched.q_head; s; s = s->q_next)
        if (s->id == id) return (inf_req *)s;
    return NULL;
}

static void drop_cancelled(inf_engine *e) {
    for (int32_t i = 0; i < e->sched.n_running;) {
        inf_req *r = (inf_req *)e->sched.running[i];
        if (r->cancel)
            finish_req(e, r, INF_FINISH_CANCELLED, 0, NULL);
        else
            i++;
    }
    for (inf_seq *s = e->sched.q_head; s;) {
        inf_seq *next = s->q_next;
        if (((inf_req *)s)->cancel) finish_req(e, (inf_req *)s, INF_FINISH_CANCELLED, 0, NULL);
        s = next;
    }
}

/* Fills the batch arrays with the items whose seq->embed == embed. Returns the entry count. */
static int64_t build_batch(inf_engine *e, bool embed, inf_batch *b) {
    inf_sched *S = &e->sched;
    int64_t n = 0, n_seqs = 0, n_out = 0;
    for (int32_t i = 0; i < S->n_items; i++) {
        const inf_sched_item *it = &S->items[i];
        inf_seq *seq = it->seq;
        if (seq->embed != embed) continue;
        int32_t bs = (int32_t)n_seqs++;
        e->b_seq_slots[bs] = seq->slots;
        e->item_row[i] = (int32_t)n_out;
        for (int64_t j = 0; j < it->count; j++) {
            int64_t pos = it->start + j;
            e->b_tok[n] = seq->tokens[pos];
            e->b_pos[n] = (int32_t)pos;
            e->b_seq[n] = bs;
            e->b_slot[n] = seq->slots[pos];
            e->b_out[n] = embed || (it->output && j == it->count - 1);
            n_out += e->b_out[n];
            n++;
        }
    }
    memset(b, 0, sizeof *b);
    b->n_tokens = n;
    b->tokens = e->b_tok;
    b->pos = e->b_pos;
    b->seq = e->b_seq;
    b->slot = e->b_slot;
    b->seq_slots = e->b_seq_slots;
    b->n_seqs = n_seqs;
    b->output = e->b_out;
    return n;
}

static void fail_items(inf_engine *e, bool embed, int err) {
    char msg[256];
    snprintf(msg, sizeof msg, "forward pass failed: %s: %s", inf_strerror(err), inf_last_error());
    inf_sched *S = &e->sched;
    /* Finishing removes from the running list, not from items: collect first. */
    for (int32_t i = 0; i < S->n_items; i++) {
        inf_seq *seq = S->items[i].seq;
        if (!seq || seq->embed != embed) continue;
        S->items[i].seq = NULL; /* one item per sequence: no other item points to it */
        finish_req(e, (inf_req *)seq, INF_FINISH_ERROR, err, msg);
    }
}

static void engine_step(inf_engine *e) {
    inf_sched *S = &e->sched;
    drop_cancelled(e);
    if (S->n_running == 0 && S->n_queued == 0) {
        flush_step(e);
        return;
    }
    inf__sched_plan(S);
    for (int32_t i = 0; i < S->n_failed; i++) {
        inf_req *r = (inf_req *)S->failed[i];
        /* submit bounds every request by the effective context (<= the pool), so this is an
         * invariant breach, reported as an error — never as a finish of "length" */
        char msg[160];
        snprintf(msg, sizeof msg, "the request needs %lld KV pages, the pool has %d",
                 (long long)inf__sched_pages_needed(S, &r->seq), (int)e->pool.n_pages);
        finish_req(e, r, INF_FINISH_ERROR, INF_ECONTEXT, msg);
    }
    if (S->n_items == 0) {
        flush_step(e);
        return;
    }

    inf_batch b;
    bool have_gen = false, have_embed = false;
    for (int32_t i = 0; i < S->n_items; i++) {
        if (S->items[i].seq->embed)
            have_embed = true;
        else
            have_gen = true;
    }
    int err_gen = 0, err_embed = 0;
    if (have_gen && build_batch(e, false, &b) > 0)
        err_gen = inf_model_forward(e->model, e->scratch, &b, &e->kv, e->logits, NULL);
    /* Hidden rows of the embedding entries stay in e->hidden until processed below. */
    if (have_embed && build_batch(e, true, &b) > 0)
        err_embed = inf_model_forward(e->model, e->scratch, &b, &e->kv, NULL, e->hidden);
    if (err_gen < 0) fail_items(e, false, err_gen);
    if (err_embed < 0) fail_items(e, true, err_embed);
    /* Failed items have seq == NULL; commit the rest. */
    int32_t k = 0;
    for (int32_t i = 0; i < S->n_items; i++) {
        if (!S->items[i].seq) continue;
        S->items[k] = S->items[i];
        e->item_row[k] = e->item_row[i];
        k++;
    }
    S->n_items = k;
    inf__sched_commit(S);
    e->steps++;

    for (int32_t i = 0; i < S->n_items; i++) {
        const inf_sched_item *it = &S->items[i];
        inf_req *r = (inf_req *)it->seq;
        if (r->seq.embed) {
            const float *h = e->hidden + (size_t)e->item_row[i] * (size_t)e->n_embd;
            for (int64_t j = 0; j < it->count; j++, h += e->n_embd)
                for (int64_t d = 0; d < e->n_embd; d++)
                    r->embd_sum[d] += h[d];
            if (r->seq.n_computed == r->seq.n_prompt) {
                for (int64_t d = 0; d < e->n_embd; d++)
                    r->embd_sum[d] /= (double)r->seq.n_prompt;
                finish_req(e, r, INF_FINISH_STOP, 0, NULL);
            }
        } else if (it->output) {
            process_token(e, r, e->logits + (size_t)e->item_row[i] * (size_t)e->n_vocab);
        }
    }
    flush_step(e);
}

static bool engine_idle(const inf_engine *e) {
    return e->sched.n_running == 0 && e->sched.n_queued == 0;
}

static void *engine_main(void *arg) {
    inf_engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->shutdown && !e->in_head && e->n_cancels == 0 && engine_idle(e))
            pthread_cond_wait(&e->work_cv, &e->mu);
        if (e->shutdown) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        inf_req *in = e->in_head;
        e->in_head = e->in_tail = NULL;
        e->n_incoming = 0;
        /* swap the cancel buffers: no allocation under the lock on this side */
        uint64_t *c = e->cancels;
        size_t nc = e->n_cancels, cc = e->cap_cancels;
        e->cancels = e->cancel_local;
        e->cap_cancels = e->cap_cancel_local;
        e->n_cancels = 0;
        e->cancel_local = c;
        e->cap_cancel_local = cc;
        e->n_cancel_local = nc;
        pthread_mutex_unlock(&e->mu);

        while (in) {
            inf_req *next = in->in_next;
            in->in_next = NULL;
            e->prompt_tokens += in->seq.n_prompt;
            inf__sched_enqueue(&e->sched, &in->seq);
            in = next;
        }
        for (size_t i = 0; i < e->n_cancel_local; i++) {
            inf_req *r = find_req(e, e->cancel_local[i]);
            if (r) r->cancel = true;
        }
        e->n_cancel_local = 0;
        engine_step(e);
    }
    return NULL;
}

/* ---- create / destroy ---- */

static int resolve_params(inf_engine *e, const inf_engine_params *in, size_t *page_bytes,
                          int64_t *n_pages) {
    const inf_hparams *hp = &e->model->hp;
    inf_engine_params p = in ? *in : inf_engine_params_default();
    if (p.page_tokens <= 0) p.page_tokens = 16;
    if (p.max_seqs <= 0) p.max_seqs = 64;
    if (p.max_batch_tokens <= 0) p.max_batch_tokens = 512;
    if (p.max_queue <= 0) p.max_queue = 1024;
    if (p.page_tokens > 4096)
        return inf__err(INF_EINVAL, "engine: page_tokens %d out of range [1, 4096]",
                        (int)p.page_tokens);
    if (p.max_seqs > 4096)
        return inf__err(INF_EINVAL, "engine: max_seqs %d out of range [1, 4096]", (int)p.max_seqs);
    if (p.max_batch_tokens > 65536)
        return inf__err(INF_EINVAL, "engine: max_batch_tokens %d out of range [1, 65536]",
                        (int)p.max_batch_tokens);
    if (p.max_batch_tokens < p.max_seqs) p.max_batch_tokens = p.max_seqs;
    int64_t n_ctx = p.n_ctx > 0 ? p.n_ctx : hp->n_ctx_train;
    if (n_ctx <= 1) n_ctx = 2048;
    if (n_ctx > (1 << 24))
        return inf__err(INF_EINVAL, "engine: n_ctx %lld out of range", (long long)n_ctx);
    p.n_ctx = n_ctx;

    size_t tok_bytes = inf_kv_store_token_bytes(hp); /* binary16 K and V, every layer */
    if (tok_bytes == 0) return inf__err(INF_EINVAL, "engine: model has no KV heads");
    if (inf__mul_overflow(tok_bytes, (size_t)p.page_tokens, page_bytes))
        return inf__err(INF_EINVAL, "engine: page size overflows");
    size_t budget = p.kv_mem_bytes;
    if (budget == 0) {
        /* Enough for max_seqs sequences of min(n_ctx, 2048) tokens, capped at 1 GiB, but at
         * least one page more than one such sequence needs. */
        size_t per_seq = (size_t)INF_MIN(n_ctx, INF_DEFAULT_KV_CTX) + (size_t)p.page_tokens;
        size_t want;
        if (inf__mul_overflow(per_seq * (size_t)p.max_seqs, tok_bytes, &want)) want = SIZE_MAX;
        budget = INF_MIN(want, INF_DEFAULT_KV_CAP);
        budget = INF_MAX(budget, per_seq * tok_bytes);
    }
    int64_t pages = (int64_t)(budget / *page_bytes);
    int64_t max_pages = INT32_MAX / p.page_tokens - 1;
    if (pages > max_pages) pages = max_pages;
    if (pages < 1)
        return inf__err(INF_EINVAL, "engine: KV budget of %zu bytes is below one page (%zu bytes)",
                        budget, *page_bytes);
    *n_pages = pages;
    /* A sequence can never hold more tokens than the whole pool: that is the context the engine
     * really offers (a request is refused at submit rather than cut short later). */
    e->n_ctx_model = n_ctx;
    if (n_ctx > pages * p.page_tokens) n_ctx = pages * p.page_tokens;
    e->params = p;
    e->n_ctx = n_ctx;
    return 0;
}

void inf_engine_destroy(inf_engine *e) {
    if (!e) return;
    if (e->thread_started) {
        pthread_mutex_lock(&e->mu);
        e->shutdown = true;
        pthread_cond_broadcast(&e->work_cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
    }
    /* Everything is ours now: requests (running, queued, incoming), events. */
    while (e->sched.n_running > 0) {
        inf_req *r = (inf_req *)e->sched.running[e->sched.n_running - 1];
        inf__sched_remove(&e->sched, &r->seq);
        req_free(r);
    }
    while (e->sched.q_head) {
        inf_req *r = (inf_req *)e->sched.q_head;
        inf__sched_remove(&e->sched, &r->seq);
        req_free(r);
    }
    for (inf_req *r = e->in_head; r;) {
        inf_req *next = r->in_next;
        req_free(r);
        r = next;
    }
    for (ev_node *lists[2] = {e->ev_head, e->step_head}, **l = lists; l < lists + 2; l++) {
        for (ev_node *n = *l; n;) {
            ev_node *next = n->next;
            inf_event_clear(&n->ev);
            free(n);
            n = next;
        }
    }
    if (e->kv_init) inf_kv_store_free(&e->kv, &e->model->hp);
    inf_forward_scratch_free(e->scratch);
    inf__sched_free(&e->sched);
    inf__kvpool_free(&e->pool);
    free(e->b_tok);
    free(e->b_pos);
    free(e->b_seq);
    free(e->b_slot);
    free(e->b_out);
    free(e->b_seq_slots);
    free(e->item_row);
    free(e->logits);
    free(e->hidden);
    free(e->lp_raw);
    free(e->cancels);
    free(e->cancel_local);
    inf__sb_free(&e->text);
    if (e->mu_init) {
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->work_cv);
    }
    if (e->ev_init) {
        pthread_mutex_destroy(&e->ev_mu);
        pthread_cond_destroy(&e->ev_cv);
    }
    free(e);
}

int inf_engine_create(inf_model *model, const inf_engine_params *params, inf_engine **out) {
    if (!model || !out) return inf__err(INF_EINVAL, "engine: NULL argument");
    *out = NULL;
    if (model->vocab_only || !model->layers)
        return inf__err(INF_EINVAL, "engine: the model was loaded without weights");
    inf_engine *e = inf__calloc(1, sizeof *e);
    if (!e) return inf__err(INF_ENOMEM, "engine: out of memory");
    e->model = model;
    e->n_vocab = model->hp.n_vocab;
    e->n_embd = model->hp.n_embd;
    e->next_id = 1;
    size_t page_bytes = 0;
    int64_t n_pages = 0;
    int rc = resolve_params(e, params, &page_bytes, &n_pages);
    if (rc < 0) goto fail;
    const inf_engine_params *p = &e->params;

    if ((rc = inf__kvpool_init(&e->pool, (int32_t)n_pages, p->page_tokens)) < 0) goto fail;
    if ((rc = inf__sched_init(&e->sched, &e->pool, p->max_seqs, p->max_batch_tokens,
                              p->prefix_cache)) < 0)
        goto fail;
    if ((rc = inf_kv_store_init(&e->kv, &model->hp, n_pages * p->page_tokens)) < 0) {
        rc = inf__err_prefix(rc, "engine: KV pool of %lld pages x %zu bytes", (long long)n_pages,
                             page_bytes);
        goto fail;
    }
    e->kv_init = true;
    if ((rc = inf_forward_scratch_new(model, p->max_batch_tokens, e->n_ctx_model, &e->scratch)) < 0)
        goto fail;
    size_t T = (size_t)p->max_batch_tokens, M = (size_t)p->max_seqs;
    e->b_tok = inf__calloc(T, sizeof *e->b_tok);
    e->b_pos = inf__calloc(T, sizeof *e->b_pos);
    e->b_seq = inf__calloc(T, sizeof *e->b_seq);
    e->b_slot = inf__calloc(T, sizeof *e->b_slot);
    e->b_out = inf__calloc(T, sizeof *e->b_out);
    e->b_seq_slots = inf__calloc(M, sizeof *e->b_seq_slots);
    e->item_row = inf__calloc(M, sizeof *e->item_row);
    e->logits = inf__calloc(M * (size_t)e->n_vocab, sizeof *e->logits);
    e->hidden = inf__calloc(T * (size_t)e->n_embd, sizeof *e->hidden);
    e->lp_raw = inf__calloc((size_t)e->n_vocab, sizeof *e->lp_raw);
    if (!e->b_tok || !e->b_pos || !e->b_seq || !e->b_slot || !e->b_out || !e->b_seq_slots ||
        !e->item_row || !e->logits || !e->hidden || !e->lp_raw) {
        rc = inf__err(INF_ENOMEM, "engine: out of memory for the batch buffers");
        goto fail;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_mutex_init(&e->mu, NULL) == 0) {
        if (pthread_cond_init(&e->work_cv, NULL) == 0)
            e->mu_init = true;
        else
            pthread_mutex_destroy(&e->mu);
    }
    if (pthread_mutex_init(&e->ev_mu, NULL) == 0) {
        if (pthread_cond_init(&e->ev_cv, &ca) == 0)
            e->ev_init = true;
        else
            pthread_mutex_destroy(&e->ev_mu);
    }
    pthread_condattr_destroy(&ca);
    if (!e->mu_init || !e->ev_init) {
        rc = inf__err(INF_ENOMEM, "engine: cannot create locks");
        goto fail;
    }
    publish_stats(e);
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        rc = inf__err(INF_ENOMEM, "engine: cannot start the engine thread");
        goto fail;
    }
    e->thread_started = true;
    inf__log(INF_LOG_INFO,
             "engine: %lld KV pages x %d tokens (%.1f MiB), max_seqs %d, max_batch_tokens %d, "
             "n_ctx %lld, prefix cache %s",
             (long long)n_pages, (int)p->page_tokens,
             (double)n_pages * (double)page_bytes / (1024.0 * 1024.0), (int)p->max_seqs,
             (int)p->max_batch_tokens, (long long)e->n_ctx, p->prefix_cache ? "on" : "off");
    *out = e;
    return 0;
fail:
    inf_engine_destroy(e);
    return rc;
}

/* ---- submit / cancel ---- */

static int build_request(inf_engine *e, const inf_request_params *rp, inf_req **out) {
    int32_t *owned = NULL;
    const int32_t *prompt = rp->prompt;
    int64_t n_prompt = rp->n_prompt;
    int rc;
    inf_req *r = NULL;
    if (!prompt) {
        if (!rp->prompt_text) return inf__err(INF_EINVAL, "request: no prompt");
        rc = inf_tokenize(e->model, rp->prompt_text, strlen(rp->prompt_text), true, true, &owned,
                          &n_prompt);
        if (rc < 0) return rc;
        if (n_prompt == 0) {
            /* like llama.cpp: an empty text starts from BOS when the model has one */
            int32_t bos = inf_tokenizer_bos(e->model->tok);
            if (bos >= 0) {
                free(owned);
                owned = malloc(sizeof *owned);
                if (!owned) return inf__err(INF_ENOMEM, "request: out of memory");
                owned[0] = bos;
                n_prompt = 1;
            }
        }
        prompt = owned;
    }
    if (n_prompt <= 0) {
        rc = inf__err(INF_EINVAL, "request: empty prompt");
        goto fail;
    }
    for (int64_t i = 0; i < n_prompt; i++) {
        if (prompt[i] < 0 || prompt[i] >= e->n_vocab) {
            rc = inf__err(INF_EINVAL, "request: prompt token %lld is %d, outside [0, %lld)",
                          (long long)i, (int)prompt[i], (long long)e->n_vocab);
            goto fail;
        }
    }
    if (rp->n_logprobs < 0 || rp->n_logprobs > INF_MAX_LOGPROBS) {
        rc = inf__err(INF_EINVAL, "request: n_logprobs %d out of range [0, %d]",
                      (int)rp->n_logprobs, INF_MAX_LOGPROBS);
        goto fail;
    }
    int64_t P = e->params.page_tokens, cap;
    if (rp->embed) {
        if (n_prompt > e->n_ctx) {
            rc = inf__err(INF_ECONTEXT, "request: %lld prompt tokens exceed the context (%lld)",
                          (long long)n_prompt, (long long)e->n_ctx);
            goto fail;
        }
        cap = n_prompt;
    } else {
        if (n_prompt >= e->n_ctx) {
            rc = inf__err(INF_ECONTEXT,
                          "request: %lld prompt tokens leave no room to generate in the context "
                          "(%lld)",
                          (long long)n_prompt, (long long)e->n_ctx);
            goto fail;
        }
        cap = e->n_ctx;
        if (rp->max_tokens > 0 && rp->max_tokens < e->n_ctx - n_prompt)
            cap = n_prompt + rp->max_tokens;
    }
    int64_t need = (INF_MIN(n_prompt + 1, cap) + P - 1) / P;
    if (need > e->pool.n_pages) {
        rc = inf__err(INF_ECONTEXT,
                      "request: %lld prompt tokens need %lld KV pages, the pool has %d",
                      (long long)n_prompt, (long long)need, (int)e->pool.n_pages);
        goto fail;
    }

    r = inf__calloc(1, sizeof *r);
    if (!r) {
        rc = inf__err(INF_ENOMEM, "request: out of memory");
        goto fail;
    }
    if ((rc = inf__seq_init(&r->seq, prompt, n_prompt, cap, (int32_t)P)) < 0) goto fail;
    r->seq.embed = rp->embed;
    r->user_tag = rp->user_tag;
    r->ignore_eos = rp->ignore_eos;
    r->n_logprobs = rp->embed ? 0 : rp->n_logprobs;
    r->finish_node = calloc(1, sizeof *r->finish_node);
    if (!r->finish_node) {
        rc = inf__err(INF_ENOMEM, "request: out of memory");
        goto fail;
    }
    if (rp->embed) {
        r->embd_sum = inf__calloc((size_t)e->n_embd, sizeof *r->embd_sum);
        if (!r->embd_sum) {
            rc = inf__err(INF_ENOMEM, "request: out of memory");
            goto fail;
        }
    } else {
        int n_stop = 0;
        while (n_stop < INF_MAX_STOP && rp->stop[n_stop])
            n_stop++;
        if ((rc = inf__stop_init(&r->stop, rp->stop, n_stop)) < 0) goto fail;
        if ((rc = inf_sampler_new(&rp->sampling, e->n_vocab, &r->sampler)) < 0) goto fail;
        if ((rc = inf_detok_new(e->model, &r->detok)) < 0) goto fail;
        /* As `generate` does: the prompt feeds the penalties and sets the detokenizer's state
         * (its text is not part of the output). */
        for (int64_t i = 0; i < n_prompt; i++) {
            const char *t;
            size_t l;
            inf_sampler_accept(r->sampler, prompt[i]);
            if ((rc = inf_detok_push(r->detok, prompt[i], &t, &l)) < 0) goto fail;
        }
    }
    free(owned);
    *out = r;
    return 0;
fail:
    free(owned);
    req_free(r);
    return rc;
}

int inf_engine_submit(inf_engine *e, const inf_request_params *req, uint64_t *id) {
    if (!e || !req || !id) return inf__err(INF_EINVAL, "submit: NULL argument");
    *id = 0;
    inf_req *r = NULL;
    int rc = build_request(e, req, &r);
    if (rc < 0) return rc;
    pthread_mutex_lock(&e->mu);
    if (e->shutdown) {
        rc = inf__err(INF_ESHUTDOWN, "submit: the engine is shutting down");
    } else if (e->n_incoming + e->snap.queued >= e->params.max_queue) {
        rc =
            inf__err(INF_EFULL, "submit: %d requests are already queued", (int)e->params.max_queue);
    } else {
        r->seq.id = e->next_id++;
        r->t_submit = inf__time_s();
        if (e->in_tail)
            e->in_tail->in_next = r;
        else
            e->in_head = r;
        e->in_tail = r;
        e->n_incoming++;
        *id = r->seq.id;
        r = NULL;
        pthread_cond_signal(&e->work_cv);
    }
    pthread_mutex_unlock(&e->mu);
    req_free(r);
    return rc;
}

int inf_engine_cancel(inf_engine *e, uint64_t id) {
    if (!e) return inf__err(INF_EINVAL, "cancel: NULL engine");
    int rc = 0;
    pthread_mutex_lock(&e->mu);
    if (id == 0 || id >= e->next_id) {
        rc = inf__err(INF_ENOTFOUND, "cancel: no request %llu", (unsigned long long)id);
    } else {
        if (e->n_cancels == e->cap_cancels) {
            size_t cap = e->cap_cancels ? 2 * e->cap_cancels : 64;
            uint64_t *c = inf__realloc_array(e->cancels, cap, sizeof *c);
            if (!c) {
                rc = inf__err(INF_ENOMEM, "cancel: out of memory");
                goto out;
            }
            e->cancels = c;
            e->cap_cancels = cap;
        }
        e->cancels[e->n_cancels++] = id;
        pthread_cond_signal(&e->work_cv);
    }
out:
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* ---- events out ---- */

static int pop_event(inf_engine *e, inf_event *ev) {
    ev_node *n = e->ev_head;
    if (!n) return 0;
    e->ev_head = n->next;
    if (!e->ev_head) e->ev_tail = NULL;
    *ev = n->ev;
    free(n);
    return 1;
}

int inf_engine_poll(inf_engine *e, inf_event *ev) {
    if (!e || !ev) return 0;
    pthread_mutex_lock(&e->ev_mu);
    int got = pop_event(e, ev);
    pthread_mutex_unlock(&e->ev_mu);
    return got;
}

int inf_engine_wait(inf_engine *e, inf_event *ev, int timeout_ms) {
    if (!e || !ev) return 0;
    struct timespec deadline;
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&e->ev_mu);
    int got;
    while (!(got = pop_event(e, ev))) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&e->ev_cv, &e->ev_mu);
        } else if (pthread_cond_timedwait(&e->ev_cv, &e->ev_mu, &deadline) == ETIMEDOUT) {
            got = pop_event(e, ev);
            break;
        }
    }
    pthread_mutex_unlock(&e->ev_mu);
    return got;
}

int64_t inf_engine_n_ctx(const inf_engine *e) {
    return e ? e->n_ctx : 0;
}

void inf_engine_get_stats(inf_engine *e, inf_engine_stats *stats) {
    if (!stats) return;
    memset(stats, 0, sizeof *stats);
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    *stats = e->snap;
    stats->queued += e->n_incoming;
    pthread_mutex_unlock(&e->mu);
}
