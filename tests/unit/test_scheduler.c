/*
 * test_scheduler.c — scheduling decisions without a model (admission, token budget, chunked
 * prefill, decode-first, preemption of the newest, prefix-cache reuse at admission, requests
 * that can never fit), then the engine itself on the bundled model: 50 requests with half of
 * them cancelled at random points leave no running/queued request and no used page; greedy
 * output does not depend on the batch; embeddings and logprobs are well-formed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/sched.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fixture {
    inf_kvpool pool;
    inf_sched s;
    inf_seq *seqs[16];
    int n_seqs;
} fixture;

static void fx_init(fixture *f, int n_pages, int P, int max_seqs, int max_batch, bool cache) {
    memset(f, 0, sizeof *f);
    assert_int_equal(inf__kvpool_init(&f->pool, n_pages, P), 0);
    assert_int_equal(inf__sched_init(&f->s, &f->pool, max_seqs, max_batch, cache), 0);
}

static void fx_free(fixture *f) {
    for (int i = 0; i < f->n_seqs; i++) {
        if (f->seqs[i]->state != INF_SEQ_FINISHED) inf__sched_remove(&f->s, f->seqs[i]);
        inf__seq_free(f->seqs[i]);
        free(f->seqs[i]);
    }
    inf__sched_free(&f->s);
    assert_int_equal(inf__kvpool_n_used(&f->pool), 0);
    inf__kvpool_free(&f->pool);
}

/* A sequence whose prompt is base, base+1, ... (n tokens), at most cap tokens long. */
static inf_seq *fx_seq(fixture *f, uint64_t id, int base, int n, int cap) {
    int32_t toks[256];
    assert_true(n <= 256);
    for (int i = 0; i < n; i++)
        toks[i] = base + i;
    inf_seq *s = calloc(1, sizeof *s);
    assert_non_null(s);
    assert_int_equal(inf__seq_init(s, toks, n, cap, f->pool.page_tokens), 0);
    s->id = id;
    f->seqs[f->n_seqs++] = s;
    inf__sched_enqueue(&f->s, s);
    return s;
}

static const inf_sched_item *item_of(const inf_sched *s, const inf_seq *seq) {
    for (int i = 0; i < s->n_items; i++)
        if (s->items[i].seq == seq) return &s->items[i];
    return NULL;
}

/* Plan + commit, then "sample" token 1000 + position for every output item; sequences that
 * reach their capacity are finished. */
static void fx_sample(fixture *f) {
    for (int i = 0; i < f->s.n_items; i++) {
        const inf_sched_item *it = &f->s.items[i];
        if (!it->output) continue;
        inf_seq *seq = it->seq;
        inf__sched_append(&f->s, seq, (int32_t)(1000 + seq->n_tokens));
        if (seq->n_tokens >= seq->cap) {
            inf__sched_remove(&f->s, seq);
            inf__seq_transition(seq, INF_SEQ_FINISHED);
        }
    }
}

static void fx_step(fixture *f) {
    inf__sched_plan(&f->s);
    inf__sched_commit(&f->s);
    fx_sample(f);
}

static void check_slots(const inf_sched *s, const inf_seq *seq) {
    int64_t P = s->pool->page_tokens;
    for (int64_t pos = 0; pos < seq->n_pages * P; pos++)
        assert_int_equal(seq->slots[pos], seq->pages[pos / P] * P + pos % P);
}

static void test_admission_fcfs_max_seqs(void **state) {
    (void)state;
    fixture f;
    fx_init(&f, 64, 4, 2, 64, false);
    inf_seq *a = fx_seq(&f, 1, 10, 5, 32), *b = fx_seq(&f, 2, 20, 6, 32),
            *c = fx_seq(&f, 3, 30, 7, 32);
    inf__sched_plan(&f.s);
    assert_int_equal(f.s.n_running, 2);
    assert_ptr_equal(f.s.running[0], a);
    assert_ptr_equal(f.s.running[1], b);
    assert_int_equal(c->state, INF_SEQ_QUEUED);
    assert_int_equal(f.s.n_queued, 1);
    /* pages for prompt + 1: a: ceil(6/4) = 2, b: ceil(7/4) = 2 */
    assert_int_equal(a->n_pages, 2);
    assert_int_equal(b->n_pages, 2);
    check_slots(&f.s, a);
    check_slots(&f.s, b);
    assert_int_equal(f.s.n_items, 2);
    assert_int_equal(item_of(&f.s, a)->count, 5);
    assert_true(item_of(&f.s, a)->output);
    assert_int_equal(item_of(&f.s, b)->count, 6);
    inf__sched_commit(&f.s);
    fx_sample(&f);
    /* c waits until a sequence leaves */
    inf__sched_remove(&f.s, a);
    inf__seq_transition(a, INF_SEQ_FINISHED);
    fx_step(&f);
    assert_int_equal(c->state, INF_SEQ_DECODE); /* prefilled and sampled in one step */
    assert_int_equal(c->n_computed, 7);
    assert_int_equal(f.s.n_queued, 0);
    fx_free(&f);
}

static void test_budget_chunked_prefill(void **state) {
    (void)state;
    fixture f;
    fx_init(&f, 64, 4, 4, 8, false);
    inf_seq *a = fx_seq(&f, 1, 0, 20, 40), *b = fx_seq(&f, 2, 100, 5, 40);
    inf__sched_plan(&f.s);
    /* a takes the whole budget; admission stops when no budget is left */
    assert_int_equal(f.s.n_items, 1);
    assert_int_equal(item_of(&f.s, a)->count, 8);
    assert_false(item_of(&f.s, a)->output);
    assert_int_equal(b->state, INF_SEQ_QUEUED);
    inf__sched_commit(&f.s);
    fx_step(&f); /* a: 8..16 */
    assert_int_equal(a->n_computed, 16);
    inf__sched_plan(&f.s);
    /* a: last 4 prompt tokens (output), b admitted with the remaining 4 of its 5 */
    assert_int_equal(item_of(&f.s, a)->start, 16);
    assert_int_equal(item_of(&f.s, a)->count, 4);
    assert_true(item_of(&f.s, a)->output);
    assert_int_equal(item_of(&f.s, b)->count, 4);
    assert_false(item_of(&f.s, b)->output);
    assert_int_equal(f.s.n_plan_tokens, 8);
    inf__sched_commit(&f.s);
    inf__sched_append(&f.s, a, 7);
    assert_int_equal(a->state, INF_SEQ_DECODE);
    /* decode first: a's token, then b's last prompt token */
    inf__sched_plan(&f.s);
    assert_ptr_equal(f.s.items[0].seq, a);
    assert_int_equal(f.s.items[0].count, 1);
    assert_true(f.s.items[0].output);
    assert_int_equal(item_of(&f.s, b)->count, 1);
    assert_true(item_of(&f.s, b)->output);
    inf__sched_commit(&f.s);
    fx_free(&f);
}

static void test_decode_uses_budget_first(void **state) {
    (void)state;
    fixture f;
    fx_init(&f, 64, 4, 4, 4, false);
    inf_seq *a = fx_seq(&f, 1, 0, 2, 40), *b = fx_seq(&f, 2, 10, 2, 40);
    fx_step(&f); /* both prefilled and sampled */
    assert_int_equal(a->state, INF_SEQ_DECODE);
    assert_int_equal(b->state, INF_SEQ_DECODE);
    inf_seq *c = fx_seq(&f, 3, 20, 10, 40);
    inf__sched_plan(&f.s);
    /* 2 decode tokens + 2 prefill tokens of c */
    assert_int_equal(f.s.n_items, 3);
    assert_int_equal(item_of(&f.s, a)->count, 1);
    assert_int_equal(item_of(&f.s, b)->count, 1);
    assert_int_equal(item_of(&f.s, c)->count, 2);
    inf__sched_commit(&f.s);
    fx_free(&f);
}

static void test_preempt_newest(void **state) {
    (void)state;
    fixture f;
    fx_init(&f, 4, 4, 4, 64, true);
    inf_seq *a = fx_seq(&f, 1, 0, 3, 40), *b = fx_seq(&f, 2, 10, 3, 40),
            *c = fx_seq(&f, 3, 20, 3, 40);
    fx_step(&f); /* prefill 3 tokens each (1 page each), sample position 3 */
    assert_int_equal(f.pool.n_free, 1);
    fx_step(&f); /* decode position 3: same page; sample position 4 */
    assert_int_equal(a->n_tokens, 5);
    assert_int_equal(f.s.n_preemptions, 0);
    /* position 4 needs a second page each: a gets the last free one, b preempts c */
    inf__sched_plan(&f.s);
    assert_int_equal(f.s.n_preemptions, 1);
    assert_int_equal(c->state, INF_SEQ_QUEUED);
    assert_ptr_equal(f.s.q_head, c);
    assert_int_equal(c->n_pages, 0);
    assert_int_equal(c->n_computed, 0);
    assert_int_equal(c->n_tokens, 5); /* keeps prompt + generated: recomputed later */
    assert_int_equal(f.s.n_running, 2);
    assert_int_equal(f.s.n_items, 2);
    assert_non_null(item_of(&f.s, a));
    assert_non_null(item_of(&f.s, b));
    assert_null(item_of(&f.s, c));
    assert_int_equal(a->n_pages, 2);
    assert_int_equal(b->n_pages, 2);
    check_slots(&f.s, b);
    inf__sched_commit(&f.s);
    /* a finishes: c is readmitted (front of the queue), recomputing all 5 tokens */
    inf__sched_append(&f.s, b, 9);
    inf__sched_remove(&f.s, a);
    inf__seq_transition(a, INF_SEQ_FINISHED);
    inf_seq *d = fx_seq(&f, 4, 30, 2, 40);
    inf__sched_plan(&f.s);
    assert_int_equal(c->state, INF_SEQ_PREFILL);
    assert_int_equal(item_of(&f.s, c)->start, 0);
    assert_int_equal(item_of(&f.s, c)->count, 5);
    assert_true(item_of(&f.s, c)->output);
    assert_int_equal(d->state, INF_SEQ_QUEUED); /* FCFS: after c, and no pages left */
    inf__sched_commit(&f.s);
    fx_free(&f);
}

static void test_prefix_reuse_at_admission(void **state) {
    (void)state;
    fixture f;
    fx_init(&f, 32, 4, 4, 64, true);
    inf_seq *a = fx_seq(&f, 1, 0, 10, 12);
    fx_step(&f);
    assert_int_equal(a->n_published, 2); /* pages of tokens 0..7 entered the cache */
    /* b shares a's first 8 tokens */
    int32_t tb[11] = {0, 1, 2, 3, 4, 5, 6, 7, 50, 51, 52};
    inf_seq *b = calloc(1, sizeof *b);
    assert_int_equal(inf__seq_init(b, tb, 11, 20, 4), 0);
    f.seqs[f.n_seqs++] = b;
    inf__sched_enqueue(&f.s, b);
    /* c's prompt is exactly 2 pages: only 1 page is reused (the last token is recomputed) */
    inf_seq *c = calloc(1, sizeof *c);
    assert_int_equal(inf__seq_init(c, tb, 8, 20, 4), 0);
    f.seqs[f.n_seqs++] = c;
    inf__sched_enqueue(&f.s, c);
    inf__sched_plan(&f.s);
    assert_int_equal(b->cached_tokens, 8);
    assert_int_equal(item_of(&f.s, b)->start, 8);
    assert_int_equal(item_of(&f.s, b)->count, 3);
    assert_int_equal(b->pages[0], a->pages[0]);
    assert_int_equal(b->pages[1], a->pages[1]);
    assert_int_equal(f.pool.ref[a->pages[0]], 3);
    assert_int_equal(c->cached_tokens, 4);
    assert_int_equal(item_of(&f.s, c)->start, 4);
    assert_int_equal(item_of(&f.s, c)->count, 4);
    assert_int_not_equal(c->pages[1], a->pages[1]);
    assert_int_equal(f.s.prefix_hit_tokens, 12);
    inf__sched_commit(&f.s);
    fx_sample(&f);
    /* a finishes; the shared pages stay used by b and c */
    while (a->state != INF_SEQ_FINISHED)
        fx_step(&f);
    assert_int_equal(f.pool.ref[b->pages[0]], 2);
    assert_int_equal(f.pool.ref[b->pages[1]], 1);
    fx_free(&f);
}

static void test_prefix_cache_off(void **state) {
    (void)state;
    fixture f;
    fx_init(&f, 32, 4, 4, 64, false);
    inf_seq *a = fx_seq(&f, 1, 0, 10, 12);
    fx_step(&f);
    assert_int_equal(a->n_published, 0);
    inf_seq *b = fx_seq(&f, 2, 0, 10, 12);
    inf__sched_plan(&f.s);
    assert_int_equal(b->cached_tokens, 0);
    assert_int_equal(item_of(&f.s, b)->count, 10);
    inf__sched_commit(&f.s);
    fx_free(&f);
}

static void test_never_fits(void **state) {
    (void)state;
    fixture f;
    fx_init(&f, 2, 4, 4, 64, true);
    inf_seq *a = fx_seq(&f, 1, 0, 8, 20); /* needs ceil(9/4) = 3 pages > 2 */
    inf_seq *b = fx_seq(&f, 2, 0, 3, 20);
    inf__sched_plan(&f.s);
    assert_int_equal(f.s.n_failed, 1);
    assert_ptr_equal(f.s.failed[0], a);
    assert_int_equal(a->where, INF_SEQ_IN_NONE);
    assert_int_equal(b->state, INF_SEQ_PREFILL); /* the next one is admitted */
    inf__sched_commit(&f.s);
    inf__seq_transition(a, INF_SEQ_FINISHED);
    fx_free(&f);
}

/* A lone sequence that outgrows the pool preempts itself and then cannot be readmitted. */
static void test_self_preemption(void **state) {
    (void)state;
    fixture f;
    fx_init(&f, 2, 4, 4, 64, false);
    inf_seq *a = fx_seq(&f, 1, 0, 3, 100);
    for (int i = 0; i < 20 && f.s.n_preemptions == 0; i++)
        fx_step(&f);
    assert_int_equal(f.s.n_preemptions, 1);
    assert_int_equal(a->n_tokens, 9); /* positions 0..7 filled both pages */
    assert_int_equal(a->state, INF_SEQ_QUEUED);
    inf__sched_plan(&f.s);
    assert_int_equal(f.s.n_failed, 1);
    inf__seq_transition(a, INF_SEQ_FINISHED);
    fx_free(&f);
}

/* ---- the engine on a real model ---- */

static char *model_path(void) {
    const char *root = getenv("INFERNEO_ROOT");
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/models/stories260K.gguf", root ? root : ".");
    return buf;
}

static inf_model *load_model(void) {
    inf_model_params mp = inf_model_params_default();
    mp.n_threads = 2;
    inf_model *m = NULL;
    int rc = inf_model_load(model_path(), &mp, &m);
    if (rc) fprintf(stderr, "load %s: %s\n", model_path(), inf_last_error());
    assert_int_equal(rc, 0);
    return m;
}

static const char *prompts[] = {"Once upon a time", "The cat",     "Lily and Tom",
                                "One day",          "The sun was", "Tim had a big"};

static void test_engine_cancellations(void **state) {
    (void)state;
    inf_model *m = load_model();
    inf_engine_params ep = inf_engine_params_default();
    ep.max_seqs = 8;
    ep.max_batch_tokens = 64;
    ep.kv_mem_bytes = 0;
    inf_engine *e = NULL;
    assert_int_equal(inf_engine_create(m, &ep, &e), 0);

    enum { N = 50 };
    uint64_t ids[N];
    int cancel_after[N]; /* -1: never; else cancel after that many deltas */
    int deltas[N] = {0}, finished[N] = {0}, reason[N] = {0};
    inf_rng rng;
    inf__rng_seed(&rng, 42);
    for (int i = 0; i < N; i++) {
        inf_request_params rp = inf_request_params_default();
        rp.prompt_text = prompts[i % 6];
        rp.max_tokens = 10 + (int64_t)(inf__rng_next(&rng) % 40);
        rp.sampling.temperature = (i % 3) ? 0.0f : 0.9f;
        rp.sampling.seed = (uint64_t)i;
        rp.ignore_eos = true;
        assert_int_equal(inf_engine_submit(e, &rp, &ids[i]), 0);
        cancel_after[i] = (i % 2) ? (int)(inf__rng_next(&rng) % 12) : -1;
        if (cancel_after[i] == 0) assert_int_equal(inf_engine_cancel(e, ids[i]), 0);
    }
    int n_done = 0;
    while (n_done < N) {
        inf_event ev;
        int got = inf_engine_wait(e, &ev, 20000);
        assert_int_equal(got, 1);
        int i = (int)(ev.id - ids[0]);
        assert_true(i >= 0 && i < N && ev.id == ids[i]);
        assert_int_equal(finished[i], 0);
        if (ev.type == INF_EVENT_DELTA) {
            deltas[i]++;
            assert_int_equal(ev.n_tokens, 1);
            if (deltas[i] == cancel_after[i]) assert_int_equal(inf_engine_cancel(e, ev.id), 0);
        } else {
            assert_int_equal(ev.type, INF_EVENT_FINISH);
            finished[i] = 1;
            reason[i] = ev.finish_reason;
            assert_int_equal(ev.usage.completion_tokens, deltas[i]);
            n_done++;
        }
        inf_event_clear(&ev);
    }
    int n_cancelled = 0;
    for (int i = 0; i < N; i++) {
        if (cancel_after[i] < 0)
            assert_int_equal(reason[i], INF_FINISH_LENGTH);
        else
            assert_true(reason[i] == INF_FINISH_CANCELLED || reason[i] == INF_FINISH_LENGTH);
        n_cancelled += reason[i] == INF_FINISH_CANCELLED;
    }
    assert_true(n_cancelled >= N / 4);
    inf_engine_stats st;
    inf_engine_get_stats(e, &st);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.pages_used, 0);
    assert_int_equal(st.pages_free + st.pages_cached, st.pages_total);
    assert_true(st.pages_total > 0);
    /* cancelling a finished request is a no-op; an unknown id is not found */
    assert_int_equal(inf_engine_cancel(e, ids[0]), 0);
    assert_int_equal(inf_engine_cancel(e, ids[N - 1] + 1000), INF_ENOTFOUND);
    inf_event ev;
    assert_int_equal(inf_engine_poll(e, &ev), 0);
    inf_engine_destroy(e);
    inf_model_free(m);
}

/* Submits a greedy request of n tokens (EOS ignored). */
static void submit_greedy(inf_engine *e, const char *prompt, int n, uint64_t *idp) {
    inf_request_params rp = inf_request_params_default();
    rp.prompt_text = prompt;
    rp.max_tokens = n;
    rp.sampling.temperature = 0;
    rp.ignore_eos = true;
    assert_int_equal(inf_engine_submit(e, &rp, idp), 0);
}

static void test_engine_batch_invariance_and_outputs(void **state) {
    (void)state;
    inf_model *m = load_model();
    inf_model_info info;
    inf_model_get_info(m, &info);
    inf_engine_params ep = inf_engine_params_default();
    ep.max_seqs = 6;
    ep.max_batch_tokens = 16; /* forces chunked prefill */
    ep.page_tokens = 4;
    inf_engine *e = NULL;
    assert_int_equal(inf_engine_create(m, &ep, &e), 0);

    enum { NT = 24 };
    int32_t alone[6][NT], batch[6][NT];
    int n_alone[6] = {0}, n_batch[6] = {0};
    /* alone, one at a time */
    for (int p = 0; p < 6; p++) {
        uint64_t id;
        submit_greedy(e, prompts[p], NT, &id);
        for (;;) {
            inf_event ev;
            assert_int_equal(inf_engine_wait(e, &ev, 20000), 1);
            int done = ev.type == INF_EVENT_FINISH;
            if (ev.type == INF_EVENT_DELTA) alone[p][n_alone[p]++] = ev.tokens[0];
            inf_event_clear(&ev);
            if (done) break;
        }
    }
    /* all together, plus an embedding request and a logprobs request in the same batch */
    uint64_t ids[6], id_embed, id_lp;
    for (int p = 0; p < 6; p++)
        submit_greedy(e, prompts[p], NT, &ids[p]);
    inf_request_params rp = inf_request_params_default();
    rp.prompt_text = "Once upon a time there was a dog";
    rp.embed = true;
    assert_int_equal(inf_engine_submit(e, &rp, &id_embed), 0);
    rp = inf_request_params_default();
    rp.prompt_text = "The cat";
    rp.max_tokens = 4;
    rp.sampling.temperature = 0;
    rp.n_logprobs = 3;
    assert_int_equal(inf_engine_submit(e, &rp, &id_lp), 0);
    int left = 8;
    while (left > 0) {
        inf_event ev;
        assert_int_equal(inf_engine_wait(e, &ev, 20000), 1);
        if (ev.id == id_embed) {
            assert_int_equal(ev.type, INF_EVENT_FINISH);
            assert_int_equal(ev.n_embd, info.n_embd);
            double norm = 0;
            for (int64_t d = 0; d < ev.n_embd; d++)
                norm += (double)ev.embedding[d] * ev.embedding[d];
            assert_true(fabs(norm - 1.0) < 1e-4);
            assert_true(ev.usage.prompt_tokens > 1);
        } else if (ev.id == id_lp && ev.type == INF_EVENT_DELTA) {
            assert_int_equal(ev.n_top, 3);
            assert_non_null(ev.chosen);
            assert_non_null(ev.top);
            assert_true(ev.chosen[0].logprob <= 0);
            /* greedy: the chosen token is the most likely one */
            assert_int_equal(ev.chosen[0].token, ev.top[0].token);
            assert_true(fabs(ev.chosen[0].logprob - ev.top[0].logprob) < 1e-6);
            assert_true(ev.top[0].logprob >= ev.top[1].logprob);
            assert_true(ev.top[1].logprob >= ev.top[2].logprob);
        } else if (ev.type == INF_EVENT_DELTA) {
            for (int p = 0; p < 6; p++)
                if (ev.id == ids[p]) batch[p][n_batch[p]++] = ev.tokens[0];
        }
        if (ev.type == INF_EVENT_FINISH) left--;
        inf_event_clear(&ev);
    }
    for (int p = 0; p < 6; p++) {
        assert_int_equal(n_alone[p], NT);
        assert_int_equal(n_batch[p], NT);
        assert_memory_equal(alone[p], batch[p], sizeof alone[p]);
    }
    inf_engine_stats st;
    inf_engine_get_stats(e, &st);
    assert_true(st.prefix_hit_tokens > 0); /* the second round reused the first's pages */
    assert_int_equal(st.pages_used, 0);
    inf_engine_destroy(e);
    inf_model_free(m);
}

static void test_engine_rejects_bad_requests(void **state) {
    (void)state;
    inf_model *m = load_model();
    inf_engine_params ep = inf_engine_params_default();
    ep.n_ctx = 32;
    ep.max_queue = 2;
    inf_engine *e = NULL;
    assert_int_equal(inf_engine_create(m, &ep, &e), 0);
    uint64_t id;
    inf_request_params rp = inf_request_params_default();
    assert_int_equal(inf_engine_submit(e, &rp, &id), INF_EINVAL); /* no prompt */
    int32_t toks[40];
    for (int i = 0; i < 40; i++)
        toks[i] = 1 + i;
    rp.prompt = toks;
    rp.n_prompt = 32;
    assert_int_equal(inf_engine_submit(e, &rp, &id), INF_ECONTEXT);
    toks[0] = 1 << 30;
    rp.n_prompt = 4;
    assert_int_equal(inf_engine_submit(e, &rp, &id), INF_EINVAL);
    toks[0] = 1;
    rp.sampling.top_p = 2.0f;
    assert_int_equal(inf_engine_submit(e, &rp, &id), INF_EINVAL);
    rp.sampling = inf_sampling_params_default();
    rp.n_logprobs = 1000;
    assert_int_equal(inf_engine_submit(e, &rp, &id), INF_EINVAL);
    inf_engine_destroy(e); /* with nothing in flight */

    /* context limit: generation stops with "length" when the context is full */
    assert_int_equal(inf_engine_create(m, &ep, &e), 0);
    rp = inf_request_params_default();
    rp.prompt = toks;
    rp.n_prompt = 30;
    rp.ignore_eos = true;
    assert_int_equal(inf_engine_submit(e, &rp, &id), 0);
    int n = 0;
    for (;;) {
        inf_event ev;
        assert_int_equal(inf_engine_wait(e, &ev, 20000), 1);
        int fin = ev.type == INF_EVENT_FINISH;
        if (fin) {
            assert_int_equal(ev.finish_reason, INF_FINISH_LENGTH);
            assert_int_equal(ev.usage.completion_tokens, 2);
        } else {
            n++;
        }
        inf_event_clear(&ev);
        if (fin) break;
    }
    assert_int_equal(n, 2);
    /* destroy with requests in flight */
    rp.n_prompt = 4;
    for (int i = 0; i < 2; i++)
        inf_engine_submit(e, &rp, &id);
    inf_engine_destroy(e);
    inf_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admission_fcfs_max_seqs),
        cmocka_unit_test(test_budget_chunked_prefill),
        cmocka_unit_test(test_decode_uses_budget_first),
        cmocka_unit_test(test_preempt_newest),
        cmocka_unit_test(test_prefix_reuse_at_admission),
        cmocka_unit_test(test_prefix_cache_off),
        cmocka_unit_test(test_never_fits),
        cmocka_unit_test(test_self_preemption),
        cmocka_unit_test(test_engine_cancellations),
        cmocka_unit_test(test_engine_batch_invariance_and_outputs),
        cmocka_unit_test(test_engine_rejects_bad_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
