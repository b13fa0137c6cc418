/*
 * kvpool.c — KV page pool (free stack, per-page refcounts) and prefix cache (hash map of full
 * pages keyed by chain hash, LRU list of unreferenced cached pages).
 *
 * Invariants (checked by tests/unit/test_kvpool.c and test_prefix.c):
 * - n_free + n_cached + (pages with ref > 0) == n_pages;
 * - a page is on the LRU list iff ref == 0 and hashed; on the free stack iff ref == 0 and not
 *   hashed; in the hash map iff hashed;
 * - the map is base's inf_hmap reserved for n_pages entries at init, so it never grows.
 * Every operation is O(1) except lookup/publish (O(probe length)); nothing allocates after init.
 *
 * Threads: engine thread only.
 */
#include "engine/kvpool.h"

#include <stdlib.h>
#include <string.h>

int inf__kvpool_init(inf_kvpool *p, int32_t n_pages, int32_t page_tokens) {
    memset(p, 0, sizeof *p);
    if (n_pages <= 0 || page_tokens <= 0 || n_pages > (1 << 28) || page_tokens > (1 << 16))
        return inf__err(INF_EINVAL, "kv pool: %d pages of %d tokens out of range", (int)n_pages,
                        (int)page_tokens);
    p->n_pages = n_pages;
    p->page_tokens = page_tokens;
    p->ref = inf__calloc((size_t)n_pages, sizeof *p->ref);
    p->free_list = inf__calloc((size_t)n_pages, sizeof *p->free_list);
    p->hashed = inf__calloc((size_t)n_pages, sizeof *p->hashed);
    p->hash = inf__calloc((size_t)n_pages, sizeof *p->hash);
    p->parent = inf__calloc((size_t)n_pages, sizeof *p->parent);
    p->toks = inf__calloc((size_t)n_pages * (size_t)page_tokens, sizeof *p->toks);
    p->lru_prev = inf__calloc((size_t)n_pages, sizeof *p->lru_prev);
    p->lru_next = inf__calloc((size_t)n_pages, sizeof *p->lru_next);
    int map_rc = inf__hmap_init(&p->map, (size_t)n_pages);
    if (!p->ref || !p->free_list || !p->hashed || !p->hash || !p->parent || !p->toks ||
        !p->lru_prev || !p->lru_next || map_rc < 0) {
        inf__kvpool_free(p);
        return inf__err(INF_ENOMEM, "kv pool: out of memory for %d pages", (int)n_pages);
    }
    /* Stack order: page 0 is handed out first (makes tests and dumps easier to read). */
    for (int32_t i = 0; i < n_pages; i++)
        p->free_list[i] = n_pages - 1 - i;
    p->n_free = n_pages;
    p->lru_head = p->lru_tail = -1;
    return 0;
}

void inf__kvpool_free(inf_kvpool *p) {
    if (!p) return;
    free(p->ref);
    free(p->free_list);
    free(p->hashed);
    free(p->hash);
    free(p->parent);
    free(p->toks);
    free(p->lru_prev);
    free(p->lru_next);
    inf__hmap_free(&p->map);
    memset(p, 0, sizeof *p);
}

/* ---- LRU list of CACHED pages ---- */

static void lru_push_tail(inf_kvpool *p, int32_t page) {
    p->lru_prev[page] = p->lru_tail;
    p->lru_next[page] = -1;
    if (p->lru_tail >= 0)
        p->lru_next[p->lru_tail] = page;
    else
        p->lru_head = page;
    p->lru_tail = page;
    p->n_cached++;
}

static void lru_remove(inf_kvpool *p, int32_t page) {
    int32_t a = p->lru_prev[page], b = p->lru_next[page];
    if (a >= 0)
        p->lru_next[a] = b;
    else
        p->lru_head = b;
    if (b >= 0)
        p->lru_prev[b] = a;
    else
        p->lru_tail = a;
    p->lru_prev[page] = p->lru_next[page] = -1;
    p->n_cached--;
}

static void unhash(inf_kvpool *p, int32_t page) {
    bool found = inf__hmap_del_entry(&p->map, p->hash[page], (uint64_t)page);
    INF_ASSERT(found);
    p->hashed[page] = 0;
}

/* ---- pages ---- */

int32_t inf__kvpool_alloc(inf_kvpool *p) {
    int32_t page;
    if (p->n_free > 0) {
        page = p->free_list[--p->n_free];
    } else if (p->lru_head >= 0) {
        page = p->lru_head;
        lru_remove(p, page);
        unhash(p, page);
        p->n_evictions++;
    } else {
        return -1;
    }
    INF_ASSERT(p->ref[page] == 0 && !p->hashed[page]);
    p->ref[page] = 1;
    return page;
}

void inf__kvpool_ref(inf_kvpool *p, int32_t page) {
    INF_ASSERT(page >= 0 && page < p->n_pages);
    if (p->ref[page] == 0) {
        INF_ASSERT(p->hashed[page]); /* a FREE page must come from alloc */
        lru_remove(p, page);
    }
    p->ref[page]++;
}

void inf__kvpool_unref(inf_kvpool *p, int32_t page) {
    INF_ASSERT(page >= 0 && page < p->n_pages && p->ref[page] > 0);
    if (--p->ref[page] > 0) return;
    if (p->hashed[page])
        lru_push_tail(p, page);
    else
        p->free_list[p->n_free++] = page;
}

/* ---- prefix cache ---- */

uint64_t inf__kvpool_chain_hash(const inf_kvpool *p, uint64_t parent, const int32_t *tokens) {
    uint64_t h = inf__hash64(tokens, (size_t)p->page_tokens * sizeof *tokens, parent);
    /* Final mix so that nearby parents do not give nearby buckets. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static int32_t find(const inf_kvpool *p, uint64_t h, uint64_t parent, const int32_t *tokens) {
    size_t bytes = (size_t)p->page_tokens * sizeof *tokens;
    uint64_t q;
    for (size_t it = 0; inf__hmap_next(&p->map, h, &it, &q);)
        if (p->parent[q] == parent &&
            !memcmp(p->toks + (size_t)q * (size_t)p->page_tokens, tokens, bytes))
            return (int32_t)q;
    return -1;
}

int32_t inf__kvpool_lookup(const inf_kvpool *p, uint64_t parent, const int32_t *tokens) {
    return find(p, inf__kvpool_chain_hash(p, parent, tokens), parent, tokens);
}

int inf__kvpool_publish(inf_kvpool *p, int32_t page, uint64_t parent, const int32_t *tokens,
                        uint64_t *hash) {
    INF_ASSERT(page >= 0 && page < p->n_pages && p->ref[page] > 0);
    uint64_t h = inf__kvpool_chain_hash(p, parent, tokens);
    *hash = h;
    if (p->hashed[page] || find(p, h, parent, tokens) >= 0) return 0;
    p->hash[page] = h;
    p->parent[page] = parent;
    memcpy(p->toks + (size_t)page * (size_t)p->page_tokens, tokens,
           (size_t)p->page_tokens * sizeof *tokens);
    p->hashed[page] = 1;
    int rc = inf__hmap_add(&p->map, h, (uint64_t)page);
    INF_ASSERT(rc == 0); /* reserved for n_pages entries at init: never allocates */
    return 1;
}
