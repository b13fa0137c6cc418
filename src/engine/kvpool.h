/*
 * kvpool.h — the KV page pool and the prefix cache (engine-internal).
 *
 * The KV store holds n_pages * page_tokens slots; page p owns slots [p * page_tokens,
 * (p + 1) * page_tokens). Every page is in exactly one state:
 *   FREE    ref == 0, not hashed, on the free stack;
 *   USED    ref >  0 (held by that many block tables), maybe hashed (shared through the cache);
 *   CACHED  ref == 0, hashed, on the LRU list (kept for a later prefix hit, evictable).
 * A hashed page is full and immutable: its key is the chain hash of (parent page's hash, its
 * page_tokens tokens), so equal keys mean equal token prefixes at equal positions, hence equal
 * K/V (the forward pass is batch-invariant). Lookups also compare the parent hash and the tokens,
 * so a 64-bit hash collision can never hand out a wrong page.
 *
 * Threads: owned by the engine thread; no locking.
 */
#ifndef INF_KVPOOL_H
#define INF_KVPOOL_H

#include "base/base.h"

/* Parent hash of a sequence's first page. */
#define INF_KV_ROOT_HASH 0x9e3779b97f4a7c15ull

typedef struct inf_kvpool {
    int32_t n_pages, page_tokens;
    int32_t *ref;       /* [n_pages] number of block tables holding the page */
    int32_t *free_list; /* [n_pages] stack of FREE page ids */
    int32_t n_free;
    /* prefix cache */
    uint8_t *hashed;              /* [n_pages] 1 when the page is in the hash map */
    uint64_t *hash;               /* [n_pages] chain hash (valid when hashed) */
    uint64_t *parent;             /* [n_pages] parent's chain hash (valid when hashed) */
    int32_t *toks;                /* [n_pages][page_tokens] tokens of a hashed page */
    int32_t *lru_prev, *lru_next; /* [n_pages] links of CACHED pages, oldest at head */
    int32_t lru_head, lru_tail, n_cached;
    inf_hmap map; /* chain hash -> page id (hashes may collide: a key may hold several pages) */
    int64_t n_evictions;
} inf_kvpool;

/* Allocates the bookkeeping for n_pages pages of page_tokens tokens (not the K/V data). */
int inf__kvpool_init(inf_kvpool *p, int32_t n_pages, int32_t page_tokens);
void inf__kvpool_free(inf_kvpool *p);

/* Takes a page with ref 1: a FREE one, else evicts the least recently cached one. Returns the
 * page id, or -1 when every page is USED. */
int32_t inf__kvpool_alloc(inf_kvpool *p);
/* Adds a reference to a USED or CACHED page (a CACHED page becomes USED). */
void inf__kvpool_ref(inf_kvpool *p, int32_t page);
/* Drops a reference; at 0 the page becomes CACHED (hashed) or FREE. */
void inf__kvpool_unref(inf_kvpool *p, int32_t page);

static inline int32_t inf__kvpool_n_used(const inf_kvpool *p) {
    return p->n_pages - p->n_free - p->n_cached;
}
/* Pages an allocation could obtain now (FREE + CACHED). */
static inline int32_t inf__kvpool_n_available(const inf_kvpool *p) {
    return p->n_free + p->n_cached;
}

/* Chain hash of a full page: tokens [page_tokens] following the page whose hash is parent. */
uint64_t inf__kvpool_chain_hash(const inf_kvpool *p, uint64_t parent, const int32_t *tokens);
/* The hashed page holding tokens after parent, or -1. Does not change any reference. */
int32_t inf__kvpool_lookup(const inf_kvpool *p, uint64_t parent, const int32_t *tokens);
/* Enters a full USED page into the cache under (parent, tokens) and stores its hash in *hash.
 * Returns 1 when entered, 0 when an equal page is already cached (this page stays private and
 * is freed, not cached, when released) or the page is already hashed. */
int inf__kvpool_publish(inf_kvpool *p, int32_t page, uint64_t parent, const int32_t *tokens,
                        uint64_t *hash);

#endif
