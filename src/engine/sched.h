/*
 * sched.h — sequences and the step scheduler (engine-internal).
 *
 * The scheduler decides, each step, which tokens of which sequences go into the forward pass,
 * and owns page allocation, admission, preemption and prefix-cache reuse. It never touches the
 * model, so its decisions are unit-tested without one (tests/unit/test_scheduler.c).
 *
 * Step (inf__sched_plan):
 *   1. (the engine has already removed cancelled sequences)
 *   2. every DECODE sequence gets its next token; a sequence that needs a new page and finds
 *      none preempts the newest running sequence (pages released, requeued at the front,
 *      recomputed later from prompt + generated tokens) until it gets one or is itself the newest;
 *   3. PREFILL sequences (admission order) get chunks from the remaining token budget;
 *   4. unless something was preempted in this step, queued sequences are admitted FCFS while
 *      running < max_seqs, budget remains and the pages for all their tokens + 1 can be had
 *      (prefix-cache hits count as already had); each admitted one gets a chunk at once.
 * The engine then runs the items, calls inf__sched_commit, samples where an item has output.
 *
 * Sequence state machine (inf__seq_transition is the only place states change):
 *   QUEUED -> PREFILL -> DECODE -> FINISHED; PREFILL/DECODE -> QUEUED on preemption;
 *   any -> FINISHED.
 *
 * Threads: engine thread only.
 */
#ifndef INF_SCHED_H
#define INF_SCHED_H

#include "engine/kvpool.h"

enum inf_seq_state { INF_SEQ_QUEUED = 0, INF_SEQ_PREFILL, INF_SEQ_DECODE, INF_SEQ_FINISHED };
enum inf_seq_where { INF_SEQ_IN_NONE = 0, INF_SEQ_IN_QUEUE, INF_SEQ_IN_RUNNING };

typedef struct inf_seq {
    uint64_t id;
    int state;
    bool embed;      /* prompt only: no prefix cache, output rows for every token */
    int32_t *tokens; /* [cap] prompt, then generated tokens */
    int64_t n_tokens, n_prompt;
    int64_t cap;        /* the sequence ends when n_tokens reaches cap (context / max_tokens) */
    int64_t n_computed; /* positions [0, n_computed) have K/V in the pool */
    int32_t *pages;     /* [max_pages] block table */
    int32_t *slots;     /* [max_pages * page_tokens] KV slot of each position */
    int64_t n_pages, max_pages;
    int64_t n_published;   /* leading pages entered into (or taken from) the prefix cache */
    uint64_t chain;        /* chain hash of page n_published - 1 (root hash when 0) */
    int64_t cached_tokens; /* prefix-cache hit at the first admission */
    bool admitted_once;
    int64_t n_preempted;
    int64_t admit_seq;               /* admission counter value (orders running sequences) */
    int where;                       /* INF_SEQ_IN_*: which scheduler list holds it */
    struct inf_seq *q_prev, *q_next; /* queue links */
} inf_seq;

/* Allocates tokens/pages/slots for a sequence of at most cap tokens, copies the prompt.
 * cap >= n_prompt >= 1. */
int inf__seq_init(inf_seq *s, const int32_t *prompt, int64_t n_prompt, int64_t cap,
                  int32_t page_tokens);
void inf__seq_free(inf_seq *s);
/* The only state change; asserts that the transition is allowed. */
void inf__seq_transition(inf_seq *s, int to);

typedef struct inf_sched_item {
    inf_seq *seq;
    int64_t start, count; /* tokens [start, start + count) at those positions */
    bool output;          /* the last token's logits are needed (all pending tokens done) */
} inf_sched_item;

typedef struct inf_sched {
    inf_kvpool *pool;
    int32_t max_seqs, max_batch_tokens;
    bool prefix_cache;
    inf_seq **running; /* [max_seqs] in admission order (newest last) */
    int32_t n_running;
    inf_seq *q_head, *q_tail;
    int64_t n_queued;
    int64_t admit_counter;
    /* results of the last plan */
    inf_sched_item *items; /* [max_seqs] */
    int32_t n_items;
    int64_t n_plan_tokens;
    inf_seq **failed; /* [max_seqs] taken off the queue (still QUEUED, in no list): they
                       * can never fit in the pool; the caller finishes them */
    int32_t n_failed;
    int32_t n_preempted_step;
    /* cumulative */
    int64_t n_preemptions, prefix_hit_tokens, n_admitted;
} inf_sched;

/* max_batch_tokens is raised to max_seqs when smaller (every running sequence must be able to
 * decode in one step). */
int inf__sched_init(inf_sched *s, inf_kvpool *pool, int32_t max_seqs, int32_t max_batch_tokens,
                    bool prefix_cache);
void inf__sched_free(inf_sched *s);

/* Pages a sequence needs to be admitted: its tokens + 1 (capped by cap). */
int64_t inf__sched_pages_needed(const inf_sched *s, const inf_seq *seq);
/* Appends a new QUEUED sequence at the back of the queue. */
void inf__sched_enqueue(inf_sched *s, inf_seq *seq);
/* Plans one step into s->items / s->failed (see the file comment). */
void inf__sched_plan(inf_sched *s);
/* Marks the planned tokens computed and enters newly full pages into the prefix cache. */
void inf__sched_commit(inf_sched *s);
/* Removes a sequence from whichever list holds it (if any) and releases its pages (its state
 * is left for the caller to finish). */
void inf__sched_remove(inf_sched *s, inf_seq *seq);
/* Appends a generated token (after an output item); PREFILL -> DECODE. */
void inf__sched_append(inf_sched *s, inf_seq *seq, int32_t token);

#endif
