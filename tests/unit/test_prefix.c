/*
 * test_prefix.c — prefix cache: hash-chain hits, collisions of page content under different
 * parents, LRU eviction order, reference counts of shared pages, duplicate publication.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/kvpool.h"

#include <stdlib.h>
#include <string.h>

enum { P = 4 };

/* Allocates and publishes the full pages of toks[0..n) (n multiple of P) as one sequence
 * would; pages[] receives the ids; returns the number published. */
static int publish_seq(inf_kvpool *p, const int32_t *toks, int n, int32_t *pages) {
    uint64_t chain = INF_KV_ROOT_HASH;
    int published = 0;
    for (int b = 0; b < n / P; b++) {
        pages[b] = inf__kvpool_alloc(p);
        assert_true(pages[b] >= 0);
        published += inf__kvpool_publish(p, pages[b], chain, toks + b * P, &chain);
    }
    return published;
}

/* Number of leading full pages of toks found in the cache. */
static int walk(const inf_kvpool *p, const int32_t *toks, int n, int32_t *pages) {
    uint64_t chain = INF_KV_ROOT_HASH;
    int b = 0;
    for (; b < n / P; b++) {
        int32_t q = inf__kvpool_lookup(p, chain, toks + b * P);
        if (q < 0) break;
        if (pages) pages[b] = q;
        chain = p->hash[q];
    }
    return b;
}

static void test_chain_hits(void **state) {
    (void)state;
    inf_kvpool p;
    assert_int_equal(inf__kvpool_init(&p, 32, P), 0);
    int32_t a[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, pa[3];
    assert_int_equal(publish_seq(&p, a, 12, pa), 3);
    int32_t got[3];
    assert_int_equal(walk(&p, a, 12, got), 3);
    assert_memory_equal(got, pa, sizeof pa);
    /* same first two pages, different third */
    int32_t b[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 99};
    assert_int_equal(walk(&p, b, 12, got), 2);
    /* differs in the first page: the identical later pages must not hit (other parent) */
    int32_t c[12] = {0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    assert_int_equal(walk(&p, c, 12, NULL), 0);
    assert_int_equal(inf__kvpool_lookup(&p, INF_KV_ROOT_HASH, a + 4), -1);
    /* page 2 is found only under page 1's hash */
    assert_int_equal(inf__kvpool_lookup(&p, p.hash[pa[0]], a + 4), pa[1]);
    inf__kvpool_free(&p);
}

static void test_duplicate_publish(void **state) {
    (void)state;
    inf_kvpool p;
    assert_int_equal(inf__kvpool_init(&p, 8, P), 0);
    int32_t t[4] = {7, 7, 7, 7}, pa[1], pb[1];
    assert_int_equal(publish_seq(&p, t, 4, pa), 1);
    /* a second sequence computed the same page concurrently: stays private */
    assert_int_equal(publish_seq(&p, t, 4, pb), 0);
    assert_int_equal(p.hashed[pb[0]], 0);
    uint64_t h;
    assert_int_equal(inf__kvpool_publish(&p, pa[0], INF_KV_ROOT_HASH, t, &h), 0); /* again */
    assert_int_equal(h, p.hash[pa[0]]);
    inf__kvpool_unref(&p, pb[0]);
    assert_int_equal(p.n_cached, 0); /* the private copy went back to the free list */
    inf__kvpool_unref(&p, pa[0]);
    assert_int_equal(p.n_cached, 1);
    assert_int_equal(walk(&p, t, 4, NULL), 1);
    inf__kvpool_free(&p);
}

static void test_shared_refcount(void **state) {
    (void)state;
    inf_kvpool p;
    assert_int_equal(inf__kvpool_init(&p, 8, P), 0);
    int32_t t[8] = {1, 2, 3, 4, 5, 6, 7, 8}, pa[2], hit[2] = {-1, -1};
    publish_seq(&p, t, 8, pa);
    /* a second request takes both pages from the cache */
    assert_int_equal(walk(&p, t, 8, hit), 2);
    inf__kvpool_ref(&p, hit[0]);
    inf__kvpool_ref(&p, hit[1]);
    assert_int_equal(p.ref[pa[0]], 2);
    /* the first request finishes: pages stay USED (held by the second) */
    inf__kvpool_unref(&p, pa[1]);
    inf__kvpool_unref(&p, pa[0]);
    assert_int_equal(p.n_cached, 0);
    assert_int_equal(inf__kvpool_n_used(&p), 2);
    /* the second finishes: both cached, still found */
    inf__kvpool_unref(&p, hit[1]);
    inf__kvpool_unref(&p, hit[0]);
    assert_int_equal(p.n_cached, 2);
    assert_int_equal(inf__kvpool_n_used(&p), 0);
    assert_int_equal(walk(&p, t, 8, NULL), 2);
    /* a cached page taken again leaves the LRU list */
    inf__kvpool_ref(&p, pa[0]);
    assert_int_equal(p.n_cached, 1);
    assert_int_equal(p.ref[pa[0]], 1);
    inf__kvpool_unref(&p, pa[0]);
    inf__kvpool_free(&p);
}

static void test_lru_eviction_order(void **state) {
    (void)state;
    inf_kvpool p;
    assert_int_equal(inf__kvpool_init(&p, 4, P), 0);
    int32_t s[4][4], pg[4];
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 4; j++)
            s[i][j] = 10 * i + j;
        publish_seq(&p, s[i], 4, &pg[i]);
    }
    /* release in order 2, 0, 3, 1: that is the LRU order */
    int order[4] = {2, 0, 3, 1};
    for (int i = 0; i < 4; i++)
        inf__kvpool_unref(&p, pg[order[i]]);
    assert_int_equal(p.n_free, 0);
    assert_int_equal(p.n_cached, 4);
    /* touching 0 (a hit) and releasing it again makes it most recent: 2, 3, 1, 0 */
    assert_int_equal(walk(&p, s[0], 4, NULL), 1);
    inf__kvpool_ref(&p, pg[0]);
    inf__kvpool_unref(&p, pg[0]);
    int expect[4] = {2, 3, 1, 0};
    for (int i = 0; i < 4; i++) {
        int32_t q = inf__kvpool_alloc(&p);
        assert_int_equal(q, pg[expect[i]]);
        assert_int_equal(walk(&p, s[expect[i]], 4, NULL), 0); /* evicted: no longer found */
        for (int j = i + 1; j < 4; j++)
            assert_int_equal(walk(&p, s[expect[j]], 4, NULL), 1);
    }
    assert_int_equal(p.n_evictions, 4);
    assert_int_equal(inf__kvpool_alloc(&p), -1);
    inf__kvpool_free(&p);
}

/* Many pages whose hashes share buckets: eviction (backward-shift deletion) must keep every
 * remaining page findable. */
static void test_map_deletions_keep_entries_findable(void **state) {
    (void)state;
    enum { N = 200 };
    inf_kvpool p;
    assert_int_equal(inf__kvpool_init(&p, N, P), 0);
    int32_t toks[N][P], pages[N];
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < P; j++)
            toks[i][j] = i * 7 + j;
        pages[i] = inf__kvpool_alloc(&p);
        uint64_t h;
        assert_int_equal(inf__kvpool_publish(&p, pages[i], INF_KV_ROOT_HASH, toks[i], &h), 1);
    }
    for (int i = 0; i < N; i++)
        inf__kvpool_unref(&p, pages[i]);
    /* evict half (the oldest), check the rest */
    for (int i = 0; i < N / 2; i++)
        assert_int_equal(inf__kvpool_alloc(&p), pages[i]);
    for (int i = 0; i < N; i++)
        assert_int_equal(inf__kvpool_lookup(&p, INF_KV_ROOT_HASH, toks[i]),
                         i < N / 2 ? -1 : pages[i]);
    inf__kvpool_free(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_hits),
        cmocka_unit_test(test_duplicate_publish),
        cmocka_unit_test(test_shared_refcount),
        cmocka_unit_test(test_lru_eviction_order),
        cmocka_unit_test(test_map_deletions_keep_entries_findable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
