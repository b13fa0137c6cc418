/*
 * test_base.c — base's hash map and UTF-8 rule:
 *   - hash map: put/get/del on exact keys, replace, multimap entries under one key (hashed keys)
 *     walked with next and removed one by one, a long random mix of operations checked against
 *     a plain array after every step (backward-shift deletion must keep every entry findable),
 *     a reserve that never reallocates, keys that collide in the home slot;
 *   - UTF-8: well-formedness of Table 3-7's edge cases, the maximal-subpart replacement on the
 *     Unicode/WHATWG examples, a held incomplete tail, complete_prefix, and a random check that
 *     sanitize's output is always well-formed and equals the input when the input is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/base.h"

#include <stdlib.h>
#include <string.h>

/* ---- hash map ----------------------------------------------------------------------------- */

static void test_hmap_basic(void **state) {
    (void)state;
    inf_hmap m = {0};
    uint64_t v = 99;
    assert_false(inf__hmap_get(&m, 1, &v));
    assert_false(inf__hmap_del(&m, 1));
    assert_int_equal(inf__hmap_put(&m, 0, 10), 1); /* key 0 is an ordinary key */
    assert_int_equal(inf__hmap_put(&m, 1, 11), 1);
    assert_int_equal(inf__hmap_put(&m, 1, 12), 0); /* replaced */
    assert_true(inf__hmap_get(&m, 0, &v));
    assert_int_equal(v, 10);
    assert_true(inf__hmap_get(&m, 1, &v));
    assert_int_equal(v, 12);
    assert_int_equal(m.n, 2);
    assert_true(inf__hmap_del(&m, 0));
    assert_false(inf__hmap_get(&m, 0, NULL));
    assert_true(inf__hmap_get(&m, 1, NULL));
    assert_int_equal(m.n, 1);
    inf__hmap_free(&m);
    assert_int_equal(m.cap, 0);
}

static void test_hmap_multi(void **state) {
    (void)state;
    inf_hmap m = {0};
    for (uint64_t v = 0; v < 5; v++)
        assert_int_equal(inf__hmap_add(&m, 7, v), 0);
    assert_int_equal(inf__hmap_add(&m, 8, 100), 0);
    unsigned seen = 0;
    uint64_t v;
    int count = 0;
    for (size_t it = 0; inf__hmap_next(&m, 7, &it, &v); count++)
        seen |= 1u << v;
    assert_int_equal(count, 5);
    assert_int_equal(seen, 0x1f);
    assert_true(inf__hmap_del_entry(&m, 7, 2));
    assert_false(inf__hmap_del_entry(&m, 7, 2));
    assert_false(inf__hmap_del_entry(&m, 8, 2));
    seen = 0;
    count = 0;
    for (size_t it = 0; inf__hmap_next(&m, 7, &it, &v); count++)
        seen |= 1u << v;
    assert_int_equal(count, 4);
    assert_int_equal(seen, 0x1b);
    assert_true(inf__hmap_get(&m, 8, &v));
    assert_int_equal(v, 100);
    /* each walks every entry once */
    count = 0;
    for (size_t it = 0; inf__hmap_each(&m, &it, NULL, NULL);)
        count++;
    assert_int_equal(count, 5);
    inf__hmap_free(&m);
}

static void test_hmap_reserve_keeps_table(void **state) {
    (void)state;
    inf_hmap m;
    assert_int_equal(inf__hmap_init(&m, 1000), 0);
    inf_hmap_slot *slots = m.slot;
    size_t cap = m.cap;
    for (uint64_t k = 0; k < 1000; k++)
        assert_int_equal(inf__hmap_put(&m, k * 0x100000001ull, k), 1);
    assert_ptr_equal(m.slot, slots);
    assert_int_equal(m.cap, cap);
    assert_true(m.n * 2 <= m.cap);
    assert_int_equal(inf__hmap_put(&m, 12345678901ull, 1), 1); /* one more: grows */
    assert_true(m.n * 2 <= m.cap);
    for (uint64_t k = 0; k < 1000; k++) {
        uint64_t v;
        assert_true(inf__hmap_get(&m, k * 0x100000001ull, &v));
        assert_int_equal(v, k);
    }
    inf__hmap_free(&m);
}

/* Random puts/adds/deletes against a reference array of (key, val, live) entries. */
static void test_hmap_random_vs_reference(void **state) {
    (void)state;
    enum { N = 3000, KEYS = 400 };
    typedef struct {
        uint64_t key, val;
        bool live;
    } ref_e;
    ref_e *ref = calloc(N, sizeof *ref);
    int n_ref = 0;
    inf_hmap m = {0};
    inf_rng r;
    inf__rng_seed(&r, 42);
    for (int step = 0; step < N; step++) {
        /* few distinct keys, so probe runs are long and deletions shift a lot */
        uint64_t key = inf__rng_next(&r) % KEYS, val = (uint64_t)n_ref; /* val: index in ref */
        int op = (int)(inf__rng_next(&r) % 3);
        if (op < 2) {
            assert_int_equal(inf__hmap_add(&m, key, val), 0);
            ref[n_ref++] = (ref_e){key, val, true};
        } else {
            int live = 0;
            for (int i = 0; i < n_ref; i++)
                live += ref[i].live;
            if (!live) continue;
            int pick = (int)(inf__rng_next(&r) % (uint64_t)live);
            for (int i = 0; i < n_ref; i++)
                if (ref[i].live && pick-- == 0) {
                    assert_true(inf__hmap_del_entry(&m, ref[i].key, ref[i].val));
                    ref[i].live = false;
                    break;
                }
        }
        if (step % 97 != 0 && step != N - 1) continue;
        /* every live entry is found under its key, and nothing else */
        size_t live = 0;
        for (uint64_t k = 0; k < KEYS; k++) {
            int want = 0, got = 0;
            for (int i = 0; i < n_ref; i++)
                want += ref[i].live && ref[i].key == k;
            uint64_t v;
            for (size_t it = 0; inf__hmap_next(&m, k, &it, &v); got++) {
                assert_true(v < (uint64_t)n_ref);
                assert_true(ref[v].live && ref[v].key == k);
            }
            assert_int_equal(got, want);
            live += (size_t)want;
        }
        assert_int_equal(m.n, live);
    }
    inf__hmap_free(&m);
    free(ref);
}

/* ---- UTF-8 -------------------------------------------------------------------------------- */

static char *sanitize(const char *s, size_t n, size_t *held, size_t *bad) {
    inf_sb sb = {0};
    size_t b = inf__utf8_sanitize(&sb, s, n, held);
    if (bad) *bad = b;
    return inf__sb_take(&sb);
}

static void expect_sanitized(const char *in, size_t n, const char *want, size_t want_bad) {
    size_t bad;
    char *got = sanitize(in, n, NULL, &bad);
    assert_string_equal(got, want);
    assert_int_equal(bad, want_bad);
    free(got);
}

static void test_utf8_seq(void **state) {
    (void)state;
    assert_int_equal(inf__utf8_seq("a", 1), 1);
    assert_int_equal(inf__utf8_seq("\xc2\x80", 2), 2);
    assert_int_equal(inf__utf8_seq("\xc0\x80", 2), -1); /* overlong */
    assert_int_equal(inf__utf8_seq("\xc1\xbf", 2), -1);
    assert_int_equal(inf__utf8_seq("\xe0\x9f\x80", 3), -1); /* overlong 3-byte */
    assert_int_equal(inf__utf8_seq("\xe0\xa0\x80", 3), 3);
    assert_int_equal(inf__utf8_seq("\xed\x9f\xbf", 3), 3);
    assert_int_equal(inf__utf8_seq("\xed\xa0\x80", 3), -1); /* surrogate */
    assert_int_equal(inf__utf8_seq("\xf0\x8f\xbf\xbf", 4), -1);
    assert_int_equal(inf__utf8_seq("\xf0\x90\x80\x80", 4), 4);
    assert_int_equal(inf__utf8_seq("\xf4\x8f\xbf\xbf", 4), 4);
    assert_int_equal(inf__utf8_seq("\xf4\x90\x80\x80", 4), -1); /* above U+10FFFF */
    assert_int_equal(inf__utf8_seq("\xf5", 1), -1);
    assert_int_equal(inf__utf8_seq("\x80", 1), -1);
    assert_int_equal(inf__utf8_seq("\xe2\x82", 2), 0);  /* incomplete */
    assert_int_equal(inf__utf8_seq("\xe2\x82x", 3), -2); /* cut short: one subpart */
    assert_int_equal(inf__utf8_seq("\xf0\x9f\x98", 3), 0);
    assert_int_equal(inf__utf8_seq("\xf0\x9f\x98!", 4), -3);
    assert_true(inf__utf8_valid("h\xc3\xa9llo \xf0\x9f\x98\x80", 11));
    assert_false(inf__utf8_valid("\xed\xa0\x80", 3));
    assert_false(inf__utf8_valid("\xe2\x82", 2));
    char b[4];
    assert_int_equal(inf__utf8_put(0x41, b), 1);
    assert_int_equal(inf__utf8_put(0xe9, b), 2);
    assert_memory_equal(b, "\xc3\xa9", 2);
    assert_int_equal(inf__utf8_put(0x20ac, b), 3);
    assert_memory_equal(b, "\xe2\x82\xac", 3);
    assert_int_equal(inf__utf8_put(0x1f600, b), 4);
    assert_memory_equal(b, "\xf0\x9f\x98\x80", 4);
}

static void test_utf8_maximal_subparts(void **state) {
    (void)state;
    /* Unicode 15 §3.9, Table 3-8: "61 F1 80 80 E1 80 C2 62 80 63 80 BF 64" gives
     * a FFFD FFFD FFFD b FFFD c FFFD FFFD d */
    expect_sanitized("\x61\xf1\x80\x80\xe1\x80\xc2\x62\x80\x63\x80\xbf\x64", 13,
                     "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "b\xef\xbf\xbd"
                     "c\xef\xbf\xbd\xef\xbf\xbd" "d",
                     6);
    /* surrogates and overlongs: every byte is its own subpart */
    expect_sanitized("\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 3);
    expect_sanitized("\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd", 2);
    /* a truncated sequence at the end is one U+FFFD without held, held back with it */
    expect_sanitized("ok\xe2\x82", 4, "ok\xef\xbf\xbd", 1);
    size_t held = 9, bad = 9;
    char *s = sanitize("ok\xe2\x82", 4, &held, &bad);
    assert_string_equal(s, "ok");
    assert_int_equal(held, 2);
    assert_int_equal(bad, 0);
    free(s);
    s = sanitize("\xff" "ab", 3, &held, &bad);
    assert_string_equal(s, "\xef\xbf\xbd" "ab");
    assert_int_equal(held, 0);
    free(s);
    expect_sanitized("", 0, "", 0);
}

static void test_utf8_complete_prefix(void **state) {
    (void)state;
    assert_int_equal(inf__utf8_complete_prefix("abc", 3), 3);
    assert_int_equal(inf__utf8_complete_prefix("ab\xe2\x82", 4), 2);
    assert_int_equal(inf__utf8_complete_prefix("ab\xe2\x82\xac", 5), 5);
    assert_int_equal(inf__utf8_complete_prefix("ab\xf0", 3), 2);
    assert_int_equal(inf__utf8_complete_prefix("ab\xe0\x80", 4), 4); /* can never complete */
    assert_int_equal(inf__utf8_complete_prefix("ab\x80\x80", 4), 4);
    assert_int_equal(inf__utf8_complete_prefix("", 0), 0);
}

static void test_utf8_random(void **state) {
    (void)state;
    inf_rng r;
    inf__rng_seed(&r, 7);
    static const unsigned char alphabet[] = {'a',  ' ',  0x80, 0xbf, 0xc2, 0xc3, 0xe0, 0xe2,
                                             0xed, 0xa0, 0x9f, 0xf0, 0xf4, 0x90, 0x8f, 0xff};
    for (int trial = 0; trial < 3000; trial++) {
        char in[24];
        size_t n = (size_t)(inf__rng_next(&r) % sizeof in);
        for (size_t i = 0; i < n; i++)
            in[i] = (char)alphabet[inf__rng_next(&r) % sizeof alphabet];
        inf_sb sb = {0};
        size_t bad = inf__utf8_sanitize(&sb, in, n, NULL);
        assert_false(sb.oom);
        assert_true(inf__utf8_valid(sb.data ? sb.data : "", sb.len));
        if (inf__utf8_valid(in, n)) {
            assert_int_equal(bad, 0);
            assert_int_equal(sb.len, n);
            assert_memory_equal(sb.data ? sb.data : "", in, n);
        } else {
            assert_true(bad > 0);
        }
        /* streaming in two parts (held tail carried over) gives the same text */
        size_t cut = n ? (size_t)(inf__rng_next(&r) % (n + 1)) : 0, held = 0;
        inf_sb st = {0};
        char buf[32];
        inf__utf8_sanitize(&st, in, cut, &held);
        memcpy(buf, in + cut - held, held);
        memcpy(buf + held, in + cut, n - cut);
        inf__utf8_sanitize(&st, buf, held + n - cut, NULL);
        assert_int_equal(st.len, sb.len);
        assert_memory_equal(st.data ? st.data : "", sb.data ? sb.data : "", sb.len);
        inf__sb_free(&st);
        inf__sb_free(&sb);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmap_basic),
        cmocka_unit_test(test_hmap_multi),
        cmocka_unit_test(test_hmap_reserve_keeps_table),
        cmocka_unit_test(test_hmap_random_vs_reference),
        cmocka_unit_test(test_utf8_seq),
        cmocka_unit_test(test_utf8_maximal_subparts),
        cmocka_unit_test(test_utf8_complete_prefix),
        cmocka_unit_test(test_utf8_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
