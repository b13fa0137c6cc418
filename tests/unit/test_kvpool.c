/*
 * test_kvpool.c — KV page pool: allocation, free list, reference counts, page states.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/kvpool.h"

#include <stdlib.h>
#include <string.h>

/* Recounts every page's state from scratch and checks the pool's counters and lists. */
static void check_invariants(const inf_kvpool *p) {
    int32_t used = 0, cached = 0, free_ = 0;
    for (int32_t i = 0; i < p->n_pages; i++) {
        if (p->ref[i] > 0)
            used++;
        else if (p->hashed[i])
            cached++;
        else
            free_++;
    }
    assert_int_equal(free_, p->n_free);
    assert_int_equal(cached, p->n_cached);
    assert_int_equal(used, inf__kvpool_n_used(p));
    /* free stack holds exactly the free pages, once each */
    uint8_t *seen = calloc((size_t)p->n_pages, 1);
    assert_non_null(seen);
    for (int32_t i = 0; i < p->n_free; i++) {
        int32_t q = p->free_list[i];
        assert_true(q >= 0 && q < p->n_pages);
        assert_int_equal(seen[q], 0);
        seen[q] = 1;
        assert_int_equal(p->ref[q], 0);
        assert_int_equal(p->hashed[q], 0);
    }
    /* LRU list holds exactly the cached pages */
    int32_t n = 0, prev = -1;
    for (int32_t q = p->lru_head; q >= 0; q = p->lru_next[q]) {
        assert_int_equal(p->lru_prev[q], prev);
        assert_int_equal(p->ref[q], 0);
        assert_int_equal(p->hashed[q], 1);
        assert_int_equal(seen[q], 0);
        seen[q] = 2;
        prev = q;
        n++;
    }
    assert_int_equal(prev, p->lru_tail);
    assert_int_equal(n, p->n_cached);
    /* every hashed page is findable in the map */
    int32_t in_map = 0;
    uint64_t key, val;
    for (size_t it = 0; inf__hmap_each(&p->map, &it, &key, &val);) {
        int32_t q = (int32_t)val;
        in_map++;
        assert_true(key == p->hash[q]);
        assert_int_equal(p->hashed[q], 1);
        assert_int_equal(inf__kvpool_lookup(p, p->parent[q], p->toks + (size_t)q * p->page_tokens),
                         q);
    }
    int32_t n_hashed = 0;
    for (int32_t i = 0; i < p->n_pages; i++)
        n_hashed += p->hashed[i];
    assert_int_equal(in_map, n_hashed);
    free(seen);
}

static void test_init_rejects_bad_sizes(void **state) {
    (void)state;
    inf_kvpool p;
    assert_int_equal(inf__kvpool_init(&p, 0, 16), INF_EINVAL);
    assert_int_equal(inf__kvpool_init(&p, 8, 0), INF_EINVAL);
    assert_int_equal(inf__kvpool_init(&p, -3, 16), INF_EINVAL);
    inf__kvpool_free(&p); /* freeing a failed init is fine */
}

static void test_alloc_until_empty(void **state) {
    (void)state;
    inf_kvpool p;
    assert_int_equal(inf__kvpool_init(&p, 10, 4), 0);
    check_invariants(&p);
    uint8_t got[10] = {0};
    for (int i = 0; i < 10; i++) {
        int32_t q = inf__kvpool_alloc(&p);
        assert_true(q >= 0 && q < 10);
        assert_int_equal(got[q], 0);
        got[q] = 1;
        assert_int_equal(p.ref[q], 1);
    }
    assert_int_equal(inf__kvpool_alloc(&p), -1);
    assert_int_equal(p.n_free, 0);
    assert_int_equal(inf__kvpool_n_used(&p), 10);
    assert_int_equal(inf__kvpool_n_available(&p), 0);
    check_invariants(&p);
    for (int32_t q = 0; q < 10; q++)
        inf__kvpool_unref(&p, q);
    assert_int_equal(p.n_free, 10);
    assert_int_equal(inf__kvpool_n_used(&p), 0);
    check_invariants(&p);
    inf__kvpool_free(&p);
}

static void test_refcount(void **state) {
    (void)state;
    inf_kvpool p;
    assert_int_equal(inf__kvpool_init(&p, 4, 2), 0);
    int32_t a = inf__kvpool_alloc(&p);
    inf__kvpool_ref(&p, a);
    inf__kvpool_ref(&p, a);
    assert_int_equal(p.ref[a], 3);
    inf__kvpool_unref(&p, a);
    inf__kvpool_unref(&p, a);
    assert_int_equal(p.ref[a], 1);
    assert_int_equal(p.n_free, 3); /* still held */
    inf__kvpool_unref(&p, a);
    assert_int_equal(p.n_free, 4);
    /* the page comes back (LIFO) */
    assert_int_equal(inf__kvpool_alloc(&p), a);
    check_invariants(&p);
    inf__kvpool_free(&p);
}

static void test_hashed_page_becomes_cached_then_evicted(void **state) {
    (void)state;
    inf_kvpool p;
    assert_int_equal(inf__kvpool_init(&p, 3, 2), 0);
    int32_t a = inf__kvpool_alloc(&p), b = inf__kvpool_alloc(&p), c = inf__kvpool_alloc(&p);
    int32_t ta[2] = {1, 2}, tb[2] = {3, 4};
    uint64_t ha, hb;
    assert_int_equal(inf__kvpool_publish(&p, a, INF_KV_ROOT_HASH, ta, &ha), 1);
    assert_int_equal(inf__kvpool_publish(&p, b, ha, tb, &hb), 1);
    check_invariants(&p);
    inf__kvpool_unref(&p, a); /* cached */
    inf__kvpool_unref(&p, b); /* cached */
    inf__kvpool_unref(&p, c); /* free (never hashed) */
    assert_int_equal(p.n_cached, 2);
    assert_int_equal(p.n_free, 1);
    assert_int_equal(inf__kvpool_n_used(&p), 0);
    assert_int_equal(inf__kvpool_n_available(&p), 3);
    check_invariants(&p);
    /* the free page goes first, then cached pages oldest first */
    assert_int_equal(inf__kvpool_alloc(&p), c);
    assert_int_equal(p.n_evictions, 0);
    assert_int_equal(inf__kvpool_alloc(&p), a);
    assert_int_equal(p.n_evictions, 1);
    assert_int_equal(inf__kvpool_lookup(&p, INF_KV_ROOT_HASH, ta), -1);
    assert_int_equal(inf__kvpool_lookup(&p, ha, tb), b);
    check_invariants(&p);
    assert_int_equal(inf__kvpool_alloc(&p), b);
    assert_int_equal(inf__kvpool_alloc(&p), -1);
    check_invariants(&p);
    inf__kvpool_free(&p);
}

/* Random operations against a shadow model of the states. */
static void test_random_ops(void **state) {
    (void)state;
    enum { N = 64, P = 4 };
    inf_kvpool p;
    assert_int_equal(inf__kvpool_init(&p, N, P), 0);
    int32_t held[4 * N];
    int n_held = 0, n_evict_checks = 0;
    inf_rng rng;
    inf__rng_seed(&rng, 1234);
    for (int it = 0; it < 20000; it++) {
        unsigned op = (unsigned)(inf__rng_next(&rng) % 5); /* unref twice as likely */
        if ((op == 0 || n_held == 0) && n_held < 4 * N) {
            int32_t q = inf__kvpool_alloc(&p);
            if (q < 0) {
                assert_int_equal(inf__kvpool_n_available(&p), 0);
                continue;
            }
            n_evict_checks += p.n_free == 0;
            held[n_held++] = q;
        } else if (n_held == 0) {
            continue;
        } else if (op == 1 && n_held < 4 * N) {
            int32_t q = held[inf__rng_next(&rng) % (uint64_t)n_held];
            inf__kvpool_ref(&p, q);
            held[n_held++] = q;
        } else if (op == 2 || op == 3) {
            int i = (int)(inf__rng_next(&rng) % (uint64_t)n_held);
            inf__kvpool_unref(&p, held[i]);
            held[i] = held[--n_held];
        } else {
            int32_t q = held[inf__rng_next(&rng) % (uint64_t)n_held];
            int32_t toks[P];
            for (int j = 0; j < P; j++)
                toks[j] = (int32_t)(inf__rng_next(&rng) % 3);
            uint64_t h;
            inf__kvpool_publish(&p, q, inf__rng_next(&rng) % 4, toks, &h);
        }
        if (it % 97 == 0) check_invariants(&p);
    }
    assert_true(p.n_evictions > 0 && n_evict_checks > 0); /* the cache path was exercised */
    while (n_held > 0)
        inf__kvpool_unref(&p, held[--n_held]);
    assert_int_equal(inf__kvpool_n_used(&p), 0);
    assert_int_equal(p.n_free + p.n_cached, N);
    check_invariants(&p);
    inf__kvpool_free(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_rejects_bad_sizes),
        cmocka_unit_test(test_alloc_until_empty),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_hashed_page_becomes_cached_then_evicted),
        cmocka_unit_test(test_random_ops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
