/*
 * test_pool.c — the compute pool runs every ith exactly once per run, with every size 1..4,
 * over many back-to-back runs and across the spin-then-sleep transition.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"

#define MAXT 8

struct count_ctx {
    _Atomic int hits[MAXT];
    _Atomic int bad_nth;
    int expect_nth;
    int64_t round;
    int64_t seen_round[MAXT];
};

static void count_fn(void *vctx, int ith, int nth) {
    struct count_ctx *c = vctx;
    if (nth != c->expect_nth || ith < 0 || ith >= nth) {
        atomic_fetch_add(&c->bad_nth, 1);
        return;
    }
    atomic_fetch_add(&c->hits[ith], 1);
    c->seen_round[ith] = c->round; /* each ith written by one thread only */
}

static void check_runs(int n, int runs) {
    inf_pool *p = NULL;
    assert_int_equal(inf_pool_create(n, &p), 0);
    assert_non_null(p);
    assert_int_equal(inf_pool_size(p), n);
    struct count_ctx c;
    memset(&c, 0, sizeof(c));
    c.expect_nth = n;
    for (int r = 0; r < runs; r++) {
        c.round = r;
        inf_pool_run(p, count_fn, &c);
        /* After run returns every thread has finished this round. */
        for (int i = 0; i < n; i++) assert_int_equal(c.seen_round[i], r);
    }
    assert_int_equal(atomic_load(&c.bad_nth), 0);
    for (int i = 0; i < n; i++) assert_int_equal(atomic_load(&c.hits[i]), runs);
    for (int i = n; i < MAXT; i++) assert_int_equal(atomic_load(&c.hits[i]), 0);
    inf_pool_destroy(p);
}

static void test_sizes(void **state) {
    (void)state;
    for (int n = 1; n <= 4; n++) check_runs(n, 2000);
}

static void test_default_size(void **state) {
    (void)state;
    inf_pool *p = NULL;
    assert_int_equal(inf_pool_create(0, &p), 0);
    assert_true(inf_pool_size(p) >= 1);
    inf_pool_destroy(p);
}

/* Runs separated by pauses longer than the spin window: workers must wake from sleep. */
static void test_sleep_wake(void **state) {
    (void)state;
    inf_pool *p = NULL;
    assert_int_equal(inf_pool_create(3, &p), 0);
    struct count_ctx c;
    memset(&c, 0, sizeof(c));
    c.expect_nth = 3;
    for (int r = 0; r < 6; r++) {
        struct timespec ts = {0, 5 * 1000 * 1000}; /* 5 ms > default 1 ms spin */
        nanosleep(&ts, NULL);
        c.round = r;
        inf_pool_run(p, count_fn, &c);
        for (int i = 0; i < 3; i++) assert_int_equal(c.seen_round[i], r);
    }
    for (int i = 0; i < 3; i++) assert_int_equal(atomic_load(&c.hits[i]), 6);
    inf_pool_destroy(p);
}

/* Work partitioned by ith covers every item exactly once. */
struct sum_ctx {
    int64_t n;
    uint8_t *marks;
};

static void mark_fn(void *vctx, int ith, int nth) {
    struct sum_ctx *c = vctx;
    for (int64_t i = ith; i < c->n; i += nth) c->marks[i]++;
}

static void test_partition(void **state) {
    (void)state;
    for (int n = 1; n <= 4; n++) {
        inf_pool *p = NULL;
        assert_int_equal(inf_pool_create(n, &p), 0);
        for (int64_t len = 0; len < 100; len += 7) {
            uint8_t marks[128];
            memset(marks, 0, sizeof(marks));
            struct sum_ctx c = {len, marks};
            inf_pool_run(p, mark_fn, &c);
            for (int64_t i = 0; i < len; i++) assert_int_equal(marks[i], 1);
            for (int64_t i = len; i < 128; i++) assert_int_equal(marks[i], 0);
        }
        inf_pool_destroy(p);
    }
}

/* Several pools alive at once, used alternately. */
static void test_many_pools(void **state) {
    (void)state;
    inf_pool *ps[4];
    struct count_ctx cs[4];
    for (int n = 1; n <= 4; n++) {
        assert_int_equal(inf_pool_create(n, &ps[n - 1]), 0);
        memset(&cs[n - 1], 0, sizeof(cs[0]));
        cs[n - 1].expect_nth = n;
    }
    for (int r = 0; r < 300; r++)
        for (int k = 0; k < 4; k++) inf_pool_run(ps[k], count_fn, &cs[k]);
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i <= k; i++) assert_int_equal(atomic_load(&cs[k].hits[i]), 300);
        assert_int_equal(atomic_load(&cs[k].bad_nth), 0);
        inf_pool_destroy(ps[k]);
    }
    inf_pool_destroy(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),      cmocka_unit_test(test_default_size),
        cmocka_unit_test(test_sleep_wake), cmocka_unit_test(test_partition),
        cmocka_unit_test(test_many_pools),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
