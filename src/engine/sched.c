/*
 * sched.c — sequence bookkeeping and the per-step scheduling decisions (see sched.h).
 *
 * Invariants:
 * - a running sequence (PREFILL/DECODE) holds pages for every position it will compute before
 *   its next page request: PREFILL sequences get all pages for n_tokens + 1 at admission, so
 *   prefill chunks never allocate; a DECODE sequence allocates at most one page per step;
 * - slots[pos] == pages[pos / P] * P + pos % P for every pos < n_pages * P;
 * - pages [0, n_published) are hashed in the pool (by this sequence or shared from the cache),
 *   all of them full and computed; the hash chain is recomputed from tokens after preemption;
 * - running[] is in admission order, so "newest" is always running[n_running - 1].
 *
 * Threads: engine thread only. Nothing here allocates after inf__sched_init / inf__seq_init.
 */
#include "engine/sched.h"

#include <stdlib.h>
#include <string.h>

/* ---- sequences ---- */

int inf__seq_init(inf_seq *s, const int32_t *prompt, int64_t n_prompt, int64_t cap,
                  int32_t page_tokens) {
    memset(s, 0, sizeof *s);
    if (n_prompt < 1 || cap < n_prompt || page_tokens < 1 || cap > ((int64_t)1 << 40))
        return inf__err(INF_EINVAL, "sequence: %lld prompt tokens, capacity %lld",
                        (long long)n_prompt, (long long)cap);
    s->max_pages = (cap + page_tokens - 1) / page_tokens;
    s->tokens = inf__calloc((size_t)cap, sizeof *s->tokens);
    s->pages = inf__calloc((size_t)s->max_pages, sizeof *s->pages);
    s->slots = inf__calloc((size_t)s->max_pages * (size_t)page_tokens, sizeof *s->slots);
    if (!s->tokens || !s->pages || !s->slots) {
        inf__seq_free(s);
        return inf__err(INF_ENOMEM, "sequence: out of memory (capacity %lld)", (long long)cap);
    }
    memcpy(s->tokens, prompt, (size_t)n_prompt * sizeof *prompt);
    s->n_tokens = s->n_prompt = n_prompt;
    s->cap = cap;
    s->chain = INF_KV_ROOT_HASH;
    s->state = INF_SEQ_QUEUED;
    return 0;
}

void inf__seq_free(inf_seq *s) {
    if (!s) return;
    free(s->tokens);
    free(s->pages);
    free(s->slots);
    s->tokens = NULL;
    s->pages = s->slots = NULL;
}

void inf__seq_transition(inf_seq *s, int to) {
    int from = s->state;
    bool ok = false;
    switch (to) {
    case INF_SEQ_PREFILL: ok = from == INF_SEQ_QUEUED; break;
    case INF_SEQ_DECODE: ok = from == INF_SEQ_PREFILL; break;
    case INF_SEQ_QUEUED: ok = from == INF_SEQ_PREFILL || from == INF_SEQ_DECODE; break;
    case INF_SEQ_FINISHED: ok = from != INF_SEQ_FINISHED; break;
    default: break;
    }
    INF_ASSERT(ok);
    s->state = to;
}

/* ---- scheduler ---- */

int inf__sched_init(inf_sched *s, inf_kvpool *pool, int32_t max_seqs, int32_t max_batch_tokens,
                    bool prefix_cache) {
    memset(s, 0, sizeof *s);
    if (max_seqs < 1 || max_seqs > (1 << 20) || max_batch_tokens < 1)
        return inf__err(INF_EINVAL, "scheduler: max_seqs %d, max_batch_tokens %d", (int)max_seqs,
                        (int)max_batch_tokens);
    s->pool = pool;
    s->max_seqs = max_seqs;
    s->max_batch_tokens = INF_MAX(max_batch_tokens, max_seqs);
    s->prefix_cache = prefix_cache;
    s->running = inf__calloc((size_t)max_seqs, sizeof *s->running);
    s->items = inf__calloc((size_t)max_seqs, sizeof *s->items);
    s->failed = inf__calloc((size_t)max_seqs, sizeof *s->failed);
    if (!s->running || !s->items || !s->failed) {
        inf__sched_free(s);
        return inf__err(INF_ENOMEM, "scheduler: out of memory");
    }
    return 0;
}

void inf__sched_free(inf_sched *s) {
    free(s->running);
    free(s->items);
    free(s->failed);
    memset(s, 0, sizeof *s);
}

int64_t inf__sched_pages_needed(const inf_sched *s, const inf_seq *seq) {
    int64_t P = s->pool->page_tokens;
    int64_t positions = INF_MIN(seq->n_tokens + 1, seq->cap);
    return (positions + P - 1) / P;
}

static void q_push_back(inf_sched *s, inf_seq *seq) {
    seq->q_next = NULL;
    seq->q_prev = s->q_tail;
    if (s->q_tail)
        s->q_tail->q_next = seq;
    else
        s->q_head = seq;
    s->q_tail = seq;
    s->n_queued++;
    seq->where = INF_SEQ_IN_QUEUE;
}

static void q_push_front(inf_sched *s, inf_seq *seq) {
    seq->q_prev = NULL;
    seq->q_next = s->q_head;
    if (s->q_head)
        s->q_head->q_prev = seq;
    else
        s->q_tail = seq;
    s->q_head = seq;
    s->n_queued++;
    seq->where = INF_SEQ_IN_QUEUE;
}

static void q_remove(inf_sched *s, inf_seq *seq) {
    INF_ASSERT(seq->where == INF_SEQ_IN_QUEUE);
    if (seq->q_prev)
        seq->q_prev->q_next = seq->q_next;
    else
        s->q_head = seq->q_next;
    if (seq->q_next)
        seq->q_next->q_prev = seq->q_prev;
    else
        s->q_tail = seq->q_prev;
    seq->q_prev = seq->q_next = NULL;
    s->n_queued--;
    seq->where = INF_SEQ_IN_NONE;
}

void inf__sched_enqueue(inf_sched *s, inf_seq *seq) {
    INF_ASSERT(seq->state == INF_SEQ_QUEUED && seq->n_pages == 0 && seq->where == INF_SEQ_IN_NONE);
    q_push_back(s, seq);
}

static void set_page(inf_sched *s, inf_seq *seq, int64_t b, int32_t page) {
    int64_t P = s->pool->page_tokens;
    INF_ASSERT(b == seq->n_pages && b < seq->max_pages);
    seq->pages[b] = page;
    for (int64_t i = 0; i < P; i++)
        seq->slots[b * P + i] = (int32_t)(page * P + i);
    seq->n_pages = b + 1;
}

static void release_pages(inf_sched *s, inf_seq *seq) {
    /* Release in reverse so that a prefix's later pages enter the LRU list first and are
     * evicted before the earlier ones other requests are more likely to share. */
    for (int64_t b = seq->n_pages - 1; b >= 0; b--)
        inf__kvpool_unref(s->pool, seq->pages[b]);
    seq->n_pages = 0;
    seq->n_computed = 0;
    seq->n_published = 0;
    seq->chain = INF_KV_ROOT_HASH;
}

static void running_remove(inf_sched *s, inf_seq *seq) {
    INF_ASSERT(seq->where == INF_SEQ_IN_RUNNING);
    seq->where = INF_SEQ_IN_NONE;
    for (int32_t i = 0; i < s->n_running; i++) {
        if (s->running[i] != seq) continue;
        memmove(s->running + i, s->running + i + 1,
                (size_t)(s->n_running - i - 1) * sizeof *s->running);
        s->n_running--;
        return;
    }
    INF_ASSERT(!"sequence not running");
}

void inf__sched_remove(inf_sched *s, inf_seq *seq) {
    if (seq->where == INF_SEQ_IN_QUEUE)
        q_remove(s, seq);
    else if (seq->where == INF_SEQ_IN_RUNNING)
        running_remove(s, seq);
    release_pages(s, seq);
}

static void preempt(inf_sched *s, inf_seq *seq) {
    running_remove(s, seq);
    release_pages(s, seq);
    inf__seq_transition(seq, INF_SEQ_QUEUED);
    q_push_front(s, seq);
    seq->n_preempted++;
    s->n_preemptions++;
    s->n_preempted_step++;
}

static void add_item(inf_sched *s, inf_seq *seq, int64_t count) {
    INF_ASSERT(s->n_items < s->max_seqs && count > 0);
    inf_sched_item *it = &s->items[s->n_items++];
    it->seq = seq;
    it->start = seq->n_computed;
    it->count = count;
    it->output = seq->n_computed + count == seq->n_tokens;
    s->n_plan_tokens += count;
}

/* Counts leading full pages of seq's tokens found in the prefix cache, leaving at least the
 * last token to compute (its logits are needed). *n_cached_state: how many of them are
 * CACHED (unreferenced), i.e. would leave the evictable set when taken. */
static int64_t prefix_hits(inf_sched *s, const inf_seq *seq, int64_t *n_cached_state) {
    *n_cached_state = 0;
    if (!s->prefix_cache || seq->embed) return 0;
    int64_t P = s->pool->page_tokens, max_hits = (seq->n_tokens - 1) / P, n = 0;
    uint64_t chain = INF_KV_ROOT_HASH;
    for (; n < max_hits; n++) {
        const int32_t *t = seq->tokens + n * P;
        int32_t page = inf__kvpool_lookup(s->pool, chain, t);
        if (page < 0) break;
        if (s->pool->ref[page] == 0) (*n_cached_state)++;
        chain = s->pool->hash[page];
    }
    return n;
}

/* Tries to admit the queue head. Returns 1 admitted, 0 must wait, -1 removed as failed. */
static int admit_head(inf_sched *s) {
    inf_seq *seq = s->q_head;
    int64_t need = inf__sched_pages_needed(s, seq);
    if (need > s->pool->n_pages || need > seq->max_pages) {
        q_remove(s, seq);
        s->failed[s->n_failed++] = seq;
        return -1;
    }
    int64_t in_cache_state, hits = prefix_hits(s, seq, &in_cache_state);
    int64_t avail = inf__kvpool_n_available(s->pool) - in_cache_state;
    if (need - hits > avail) return 0;

    q_remove(s, seq);
    int64_t P = s->pool->page_tokens;
    uint64_t chain = INF_KV_ROOT_HASH;
    for (int64_t b = 0; b < hits; b++) {
        int32_t page = inf__kvpool_lookup(s->pool, chain, seq->tokens + b * P);
        INF_ASSERT(page >= 0);
        inf__kvpool_ref(s->pool, page);
        set_page(s, seq, b, page);
        chain = s->pool->hash[page];
    }
    for (int64_t b = hits; b < need; b++) {
        int32_t page = inf__kvpool_alloc(s->pool);
        INF_ASSERT(page >= 0); /* checked against avail above */
        set_page(s, seq, b, page);
    }
    seq->n_computed = hits * P;
    seq->n_published = hits;
    seq->chain = chain;
    s->prefix_hit_tokens += hits * P;
    if (!seq->admitted_once) seq->cached_tokens = hits * P;
    seq->admitted_once = true;
    seq->admit_seq = s->admit_counter++;
    s->n_admitted++;
    inf__seq_transition(seq, INF_SEQ_PREFILL);
    s->running[s->n_running++] = seq;
    seq->where = INF_SEQ_IN_RUNNING;
    return 1;
}

void inf__sched_plan(inf_sched *s) {
    int64_t P = s->pool->page_tokens;
    s->n_items = 0;
    s->n_plan_tokens = 0;
    s->n_failed = 0;
    s->n_preempted_step = 0;
    int64_t budget = s->max_batch_tokens;

    /* 2. one decode token per DECODE sequence, oldest first */
    for (int32_t i = 0; i < s->n_running; i++) {
        inf_seq *seq = s->running[i];
        if (seq->state != INF_SEQ_DECODE) continue;
        INF_ASSERT(seq->n_tokens - seq->n_computed == 1);
        int64_t b = seq->n_computed / P;
        bool preempted_self = false;
        while (b >= seq->n_pages) {
            int32_t page = inf__kvpool_alloc(s->pool);
            if (page >= 0) {
                set_page(s, seq, b, page);
                break;
            }
            inf_seq *victim = s->running[s->n_running - 1];
            preempt(s, victim);
            if (victim == seq) {
                preempted_self = true;
                break;
            }
        }
        if (preempted_self) break; /* it was the newest: nothing after it */
        add_item(s, seq, 1);
        budget--;
    }

    /* 3. prefill chunks in admission order */
    for (int32_t i = 0; i < s->n_running && budget > 0; i++) {
        inf_seq *seq = s->running[i];
        if (seq->state != INF_SEQ_PREFILL) continue;
        int64_t chunk = INF_MIN(seq->n_tokens - seq->n_computed, budget);
        if (chunk <= 0) continue;
        add_item(s, seq, chunk);
        budget -= chunk;
    }

    /* 4. admission, FCFS */
    if (s->n_preempted_step > 0) return;
    while (s->q_head && s->n_running < s->max_seqs && budget > 0 && s->n_failed < s->max_seqs) {
        int r = admit_head(s);
        if (r == 0) break;
        if (r < 0) continue;
        inf_seq *seq = s->running[s->n_running - 1];
        int64_t chunk = INF_MIN(seq->n_tokens - seq->n_computed, budget);
        add_item(s, seq, chunk);
        budget -= chunk;
    }
}

void inf__sched_commit(inf_sched *s) {
    int64_t P = s->pool->page_tokens;
    for (int32_t i = 0; i < s->n_items; i++) {
        inf_seq *seq = s->items[i].seq;
        seq->n_computed += s->items[i].count;
        INF_ASSERT(seq->n_computed <= seq->n_tokens && seq->n_computed <= seq->n_pages * P);
        if (!s->prefix_cache || seq->embed) continue;
        while ((seq->n_published + 1) * P <= seq->n_computed) {
            int64_t b = seq->n_published;
            uint64_t h;
            inf__kvpool_publish(s->pool, seq->pages[b], seq->chain, seq->tokens + b * P, &h);
            seq->chain = h;
            seq->n_published++;
        }
    }
}

void inf__sched_append(inf_sched *s, inf_seq *seq, int32_t token) {
    (void)s;
    INF_ASSERT(seq->n_tokens < seq->cap && seq->n_computed == seq->n_tokens);
    seq->tokens[seq->n_tokens++] = token;
    if (seq->state == INF_SEQ_PREFILL) inf__seq_transition(seq, INF_SEQ_DECODE);
}
