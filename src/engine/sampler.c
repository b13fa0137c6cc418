/*
 * sampler.c — token sampling: penalties, top-k, top-p, min-p, temperature, seeded draw.
 *
 * Order of the chain (as llama.cpp's common sampler): penalties -> top_k -> top_p -> min_p ->
 * temperature -> softmax -> draw. temperature <= 0 is greedy: argmax after the penalties, ties
 * to the lowest id.
 *
 * Invariants:
 * - Every buffer is allocated in inf_sampler_new (sized by n_vocab and repeat_last_n); sampling
 *   and accepting never allocate.
 * - Penalty bookkeeping: counts[t] = occurrences of t in the window (the last repeat_last_n
 *   accepted tokens, or all of them for -1); uniq[] lists the tokens with counts > 0 so that
 *   applying the penalties costs O(distinct tokens in the window), not O(n_vocab).
 * - Candidate order is fully determined by (logit desc, id asc), so the same seed and the same
 *   logits always give the same token.
 * - top_k selects with a bounded min-heap (O(n log k)); without top_k, top_p buckets the
 *   candidates by logit and sorts only the bucket where the cut falls (no full sort).
 *
 * Threads: a sampler belongs to one thread (the engine thread, or the CLI) — no locking.
 */
#include "base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The penalty window is kept in a ring allocated up front; cap it so that a request cannot ask
 * for an unbounded allocation. */
#define INF_SAMPLER_MAX_WINDOW (1 << 20)

typedef struct inf_cand {
    float logit;
    float p; /* unnormalised probability exp(logit - max), filled when needed */
    int32_t id;
} inf_cand;

struct inf_sampler {
    inf_sampling_params params;
    int64_t n_vocab;
    inf_rng rng;
    inf_cand *cand; /* [n_vocab] */
    inf_cand *aux;  /* [n_vocab] boundary bucket of the top_p cut */
    /* penalties (allocated only when a penalty is active) */
    bool penalties;
    int32_t *counts;   /* [n_vocab] occurrences within the window */
    int32_t *uniq;     /* [n_vocab] tokens with counts > 0 */
    int32_t *uniq_pos; /* [n_vocab] index in uniq, or -1 */
    int64_t n_uniq;
    int32_t *ring; /* [window] last accepted tokens (NULL when the window is unbounded) */
    int64_t window, ring_head, ring_len;
};

inf_sampling_params inf_sampling_params_default(void) {
    inf_sampling_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repetition_penalty = 1.0f;
    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.0f;
    p.repeat_last_n = 64;
    p.seed = 0; /* a fixed, valid seed; callers wanting variety pick one (e.g. from the clock) */
    return p;
}

static int validate(const inf_sampling_params *p) {
    if (!isfinite(p->temperature) || p->temperature < 0)
        return inf__err(INF_EINVAL, "temperature must be a finite number >= 0, got %g",
                        (double)p->temperature);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return inf__err(INF_EINVAL, "top_p must be in (0, 1], got %g", (double)p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1))
        return inf__err(INF_EINVAL, "min_p must be in [0, 1], got %g", (double)p->min_p);
    if (!isfinite(p->repetition_penalty) || !(p->repetition_penalty > 0))
        return inf__err(INF_EINVAL, "repetition_penalty must be a finite number > 0, got %g",
                        (double)p->repetition_penalty);
    if (!(p->frequency_penalty >= -2 && p->frequency_penalty <= 2))
        return inf__err(INF_EINVAL, "frequency_penalty must be in [-2, 2], got %g",
                        (double)p->frequency_penalty);
    if (!(p->presence_penalty >= -2 && p->presence_penalty <= 2))
        return inf__err(INF_EINVAL, "presence_penalty must be in [-2, 2], got %g",
                        (double)p->presence_penalty);
    if (p->repeat_last_n < -1 || p->repeat_last_n > INF_SAMPLER_MAX_WINDOW)
        return inf__err(INF_EINVAL, "repeat_last_n must be in [-1, %d], got %d",
                        INF_SAMPLER_MAX_WINDOW, (int)p->repeat_last_n);
    return 0;
}

int inf_sampler_new(const inf_sampling_params *params, int64_t n_vocab, inf_sampler **out) {
    if (!params || !out) return inf__err(INF_EINVAL, "sampler: NULL argument");
    *out = NULL;
    if (n_vocab <= 0 || n_vocab > INT32_MAX)
        return inf__err(INF_EINVAL, "sampler: n_vocab %lld out of range", (long long)n_vocab);
    int err = validate(params);
    if (err) return err;

    inf_sampler *s = inf__calloc(1, sizeof *s);
    if (!s) return inf__err(INF_ENOMEM, "sampler: out of memory");
    s->params = *params;
    s->n_vocab = n_vocab;
    inf__rng_seed(&s->rng, params->seed);
    s->cand = inf__calloc((size_t)n_vocab, sizeof *s->cand);
    s->aux = inf__calloc((size_t)n_vocab, sizeof *s->aux);
    if (!s->cand || !s->aux) goto fail;

    s->penalties = params->repeat_last_n != 0 &&
                   (params->repetition_penalty != 1.0f || params->frequency_penalty != 0.0f ||
                    params->presence_penalty != 0.0f);
    if (s->penalties) {
        s->counts = inf__calloc((size_t)n_vocab, sizeof *s->counts);
        s->uniq = inf__calloc((size_t)n_vocab, sizeof *s->uniq);
        s->uniq_pos = inf__calloc((size_t)n_vocab, sizeof *s->uniq_pos);
        if (!s->counts || !s->uniq || !s->uniq_pos) goto fail;
        for (int64_t i = 0; i < n_vocab; i++)
            s->uniq_pos[i] = -1;
        s->window = params->repeat_last_n; /* -1: unbounded */
        if (s->window > 0) {
            s->ring = inf__calloc((size_t)s->window, sizeof *s->ring);
            if (!s->ring) goto fail;
        }
    }
    *out = s;
    return 0;
fail:
    inf_sampler_free(s);
    return inf__err(INF_ENOMEM, "sampler: out of memory (n_vocab %lld)", (long long)n_vocab);
}

void inf_sampler_free(inf_sampler *s) {
    if (!s) return;
    free(s->cand);
    free(s->aux);
    free(s->counts);
    free(s->uniq);
    free(s->uniq_pos);
    free(s->ring);
    free(s);
}

static void count_add(inf_sampler *s, int32_t t) {
    if (s->counts[t]++ == 0) {
        s->uniq_pos[t] = (int32_t)s->n_uniq;
        s->uniq[s->n_uniq++] = t;
    }
}

static void count_remove(inf_sampler *s, int32_t t) {
    if (--s->counts[t] == 0) {
        int32_t at = s->uniq_pos[t], last = s->uniq[--s->n_uniq];
        s->uniq[at] = last;
        s->uniq_pos[last] = at;
        s->uniq_pos[t] = -1;
    }
}

void inf_sampler_accept(inf_sampler *s, int32_t token) {
    if (!s || !s->penalties || token < 0 || token >= s->n_vocab) return;
    if (s->ring) {
        if (s->ring_len == s->window) {
            count_remove(s, s->ring[s->ring_head]);
        } else {
            s->ring_len++;
        }
        s->ring[s->ring_head] = token;
        s->ring_head = (s->ring_head + 1) % s->window;
    }
    count_add(s, token);
}

static void apply_penalties(const inf_sampler *s, float *logits) {
    const float rep = s->params.repetition_penalty;
    const float freq = s->params.frequency_penalty, pres = s->params.presence_penalty;
    for (int64_t i = 0; i < s->n_uniq; i++) {
        int32_t t = s->uniq[i];
        int32_t c = s->counts[t];
        float l = logits[t];
        if (rep != 1.0f) l = l > 0 ? l / rep : l * rep;
        l -= (float)c * freq + (c > 0 ? pres : 0.0f);
        logits[t] = l;
    }
}

/* Greater-than in candidate order: higher logit first, then lower id. */
static inline bool cand_before(const inf_cand *a, const inf_cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

/* Min-heap (in candidate order: root is the candidate that comes last) of the k best. */
static void heap_sift_down(inf_cand *h, int64_t n, int64_t i) {
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && cand_before(&h[m], &h[l])) m = l;
        if (r < n && cand_before(&h[m], &h[r])) m = r;
        if (m == i) return;
        inf_cand t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heap_sift_up(inf_cand *h, int64_t i) {
    while (i > 0) {
        int64_t p = (i - 1) / 2;
        if (!cand_before(&h[p], &h[i])) return;
        inf_cand t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

/* Sorts into candidate order in place: heapsort, so no allocation (glibc's qsort may malloc)
 * and O(n log n) worst case. */
static void sort_cands(inf_cand *a, int64_t n) {
    for (int64_t i = n / 2 - 1; i >= 0; i--)
        heap_sift_down(a, n, i);
    for (int64_t end = n - 1; end > 0; end--) {
        inf_cand t = a[0];
        a[0] = a[end];
        a[end] = t;
        heap_sift_down(a, end, 0);
    }
}

/* Keeps the k best finite logits in cand[0..ret), sorted. */
static int64_t select_top_k(inf_sampler *s, const float *logits, int64_t k) {
    inf_cand *h = s->cand;
    int64_t n = 0;
    for (int64_t i = 0; i < s->n_vocab; i++) {
        float l = logits[i];
        if (!(l > -INFINITY)) continue; /* -inf and NaN are never candidates */
        inf_cand c = {l, 0, (int32_t)i};
        if (n < k) {
            h[n] = c;
            heap_sift_up(h, n++);
        } else if (cand_before(&c, &h[0])) {
            h[0] = c;
            heap_sift_down(h, n, 0);
        }
    }
    sort_cands(h, n); /* already a heap: heapify is a no-op pass */
    return n;
}

static int32_t argmax(const float *logits, int64_t n) {
    int32_t best = -1;
    float bv = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = logits[i];
        if (v != v) continue;
        if (best < 0 || v > bv) {
            best = (int32_t)i;
            bv = v;
        }
    }
    return best < 0 ? 0 : best;
}

/* Bucket of a candidate for the unsorted top_p cut: logit distance below the max in steps of
 * 1/INF_TOPP_BUCKET_SCALE; everything INF_TOPP_BUCKETS steps below (relative probability
 * < e^-32) shares the last bucket. */
#define INF_TOPP_BUCKETS 256
#define INF_TOPP_BUCKET_SCALE 8.0f
static inline int topp_bucket(float logit, float max) {
    float d = (max - logit) * INF_TOPP_BUCKET_SCALE;
    return d < (float)INF_TOPP_BUCKETS ? (int)d : INF_TOPP_BUCKETS; /* NaN -> last */
}

/* Keeps the top_p set of cand[0..n): the smallest highest-logit prefix (in candidate order)
 * whose mass reaches top_p. cand[i].p = exp(logit - max), sum = their total. Returns the new
 * count; the result is sorted only when the input was.
 * Unsorted input: one pass sums the mass per logit bucket; the buckets above the one where the
 * cumulative mass reaches top_p are kept whole, and only that boundary bucket is sorted to find
 * the exact cut. Candidates below min_logit are dropped on the way (min_p keeps a prefix of the
 * same order, so the final set is unchanged). */
static int64_t apply_top_p(inf_sampler *s, int64_t n, double sum, float max, float top_p,
                           float min_logit, bool sorted) {
    inf_cand *cand = s->cand;
    const double target = (double)top_p * sum;
    double cum = 0;
    if (sorted) {
        for (int64_t i = 0; i < n; i++) {
            cum += cand[i].p;
            if (cum >= target) return i + 1;
        }
        return n;
    }
    double mass[INF_TOPP_BUCKETS + 1] = {0};
    for (int64_t i = 0; i < n; i++)
        mass[topp_bucket(cand[i].logit, max)] += cand[i].p;
    int cut = INF_TOPP_BUCKETS + 1; /* rounding kept the total below target: keep all */
    for (int b = 0; b <= INF_TOPP_BUCKETS; b++) {
        if (cum + mass[b] >= target) {
            cut = b;
            break;
        }
        cum += mass[b];
    }
    int64_t m = 0, nb = 0;
    for (int64_t i = 0; i < n; i++) {
        int b = topp_bucket(cand[i].logit, max);
        if (b > cut || cand[i].logit < min_logit) continue;
        if (b < cut)
            cand[m++] = cand[i]; /* m <= i: compaction in place */
        else
            s->aux[nb++] = cand[i];
    }
    if (cut > INF_TOPP_BUCKETS) return m;
    /* cum = mass of the buckets above the cut (all kept); walk the boundary bucket in order */
    sort_cands(s->aux, nb);
    for (int64_t i = 0; i < nb; i++) {
        cand[m++] = s->aux[i];
        cum += s->aux[i].p;
        if (cum >= target) break;
    }
    return m;
}

int32_t inf_sampler_sample(inf_sampler *s, float *logits) {
    if (!s || !logits) return -1;
    const inf_sampling_params *p = &s->params;
    if (s->penalties) apply_penalties(s, logits);
    if (p->temperature <= 0) return argmax(logits, s->n_vocab);

    inf_cand *cand = s->cand;
    int64_t n;
    bool sorted = false;
    if (p->top_k > 0 && p->top_k < s->n_vocab) {
        n = select_top_k(s, logits, p->top_k);
        sorted = true;
    } else {
        n = 0;
        for (int64_t i = 0; i < s->n_vocab; i++) {
            float l = logits[i];
            if (!(l > -INFINITY)) continue;
            cand[n].logit = l;
            cand[n].id = (int32_t)i;
            n++;
        }
    }
    if (n == 0) return argmax(logits, s->n_vocab);

    float max = cand[0].logit;
    if (!sorted)
        for (int64_t i = 1; i < n; i++)
            max = cand[i].logit > max ? cand[i].logit : max;
    /* min_p keeps logits >= max + log(min_p) (llama.cpp's formulation, before temperature) */
    const float min_logit = p->min_p > 0 ? max + logf(p->min_p) : -INFINITY;

    if (p->top_p < 1.0f) {
        double sum = 0;
        for (int64_t i = 0; i < n; i++) {
            cand[i].p = expf(cand[i].logit - max);
            sum += cand[i].p;
        }
        n = apply_top_p(s, n, sum, max, p->top_p, min_logit, sorted);
    }
    if (p->min_p > 0) {
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++)
            if (cand[i].logit >= min_logit) cand[m++] = cand[i];
        n = m; /* the max always survives (log(min_p) <= 0) */
    }

    /* temperature, softmax, draw */
    const float inv_t = 1.0f / p->temperature;
    if (!(inv_t < INFINITY)) { /* a denormal temperature: the limit is greedy */
        int64_t b = 0;
        for (int64_t i = 1; i < n; i++)
            if (cand_before(&cand[i], &cand[b])) b = i;
        return cand[b].id;
    }
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        cand[i].p = expf((cand[i].logit - max) * inv_t);
        sum += cand[i].p;
    }
    double u = inf__rng_uniform(&s->rng) * sum, cum = 0;
    for (int64_t i = 0; i < n; i++) {
        cum += cand[i].p;
        if (u < cum) return cand[i].id;
    }
    /* rounding: the last candidate with non-zero probability */
    for (int64_t i = n - 1; i > 0; i--)
        if (cand[i].p > 0) return cand[i].id;
    return cand[0].id;
}
