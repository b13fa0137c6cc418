/*
 * test_stop.c — the stop-string matcher: matches across feeds, held prefixes released when they
 * stop matching, several stop strings, UTF-8 boundaries, a match at the very start, and a
 * randomised check that the stop string is never emitted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/base.h"
#include "engine/stop.h"

#include <stdlib.h>
#include <string.h>

/* Accumulates everything the matcher released. */
typedef struct acc {
    char buf[8192];
    size_t len;
    int matched;
} acc;

static void feed(inf_stop *m, acc *a, const char *s) {
    const char *out;
    size_t n;
    int matched;
    assert_int_equal(inf__stop_feed(m, s, strlen(s), &out, &n, &matched), 0);
    assert_true(a->len + n < sizeof a->buf);
    memcpy(a->buf + a->len, out, n);
    a->len += n;
    a->buf[a->len] = 0;
    a->matched = matched;
}

static void flush(inf_stop *m, acc *a) {
    const char *out;
    size_t n;
    inf__stop_flush(m, &out, &n);
    memcpy(a->buf + a->len, out, n);
    a->len += n;
    a->buf[a->len] = 0;
}

static void init(inf_stop *m, const char *const *stops, int n) {
    assert_int_equal(inf__stop_init(m, stops, n), 0);
}

static void test_split_across_feeds(void **st) {
    (void)st;
    const char *stops[] = {"Hello"};
    inf_stop m;
    init(&m, stops, 1);
    acc a = {.matched = -1};
    feed(&m, &a, "He");
    assert_int_equal(a.len, 0);
    assert_int_equal(a.matched, -1);
    feed(&m, &a, "llo");
    assert_int_equal(a.matched, 0);
    assert_int_equal(a.len, 0);
    feed(&m, &a, " more"); /* nothing after a match */
    flush(&m, &a);
    assert_int_equal(a.len, 0);
    inf__stop_free(&m);

    init(&m, stops, 1);
    a = (acc){.matched = -1};
    feed(&m, &a, "Say He");
    assert_string_equal(a.buf, "Say ");
    feed(&m, &a, "l");
    assert_string_equal(a.buf, "Say ");
    feed(&m, &a, "lo world");
    assert_string_equal(a.buf, "Say ");
    assert_int_equal(a.matched, 0);
    inf__stop_free(&m);
}

static void test_partial_released(void **st) {
    (void)st;
    const char *stops[] = {"Hello"};
    inf_stop m;
    init(&m, stops, 1);
    acc a = {.matched = -1};
    feed(&m, &a, "Hel");
    assert_int_equal(a.len, 0);
    feed(&m, &a, "p");
    assert_string_equal(a.buf, "Help");
    feed(&m, &a, "HeHel"); /* "He" can no longer start a match; "Hel" can */
    assert_string_equal(a.buf, "HelpHe");
    feed(&m, &a, "lHello!");
    assert_string_equal(a.buf, "HelpHeHell");
    assert_int_equal(a.matched, 0);
    inf__stop_free(&m);

    /* self-overlapping stop string: "aab" inside "aaab" */
    const char *s2[] = {"aab"};
    init(&m, s2, 1);
    a = (acc){.matched = -1};
    feed(&m, &a, "xa");
    feed(&m, &a, "a");
    assert_string_equal(a.buf, "x");
    feed(&m, &a, "a");
    assert_string_equal(a.buf, "xa");
    feed(&m, &a, "b");
    assert_string_equal(a.buf, "xa");
    assert_int_equal(a.matched, 0);
    inf__stop_free(&m);

    /* flush at the end releases a held prefix */
    init(&m, stops, 1);
    a = (acc){.matched = -1};
    feed(&m, &a, "Oh, Hell");
    assert_string_equal(a.buf, "Oh, ");
    flush(&m, &a);
    assert_string_equal(a.buf, "Oh, Hell");
    assert_int_equal(a.matched, -1);
    inf__stop_free(&m);
}

static void test_multiple(void **st) {
    (void)st;
    const char *stops[] = {"", "abcd", "bc", NULL, "zz"};
    inf_stop m;
    init(&m, stops, 5); /* the empty string is ignored, NULL ends the list */
    acc a = {.matched = -1};
    feed(&m, &a, "xab");
    assert_string_equal(a.buf, "x");
    feed(&m, &a, "c");
    /* "bc" completes first; "abcd" could still have matched but llama.cpp stops here */
    assert_int_equal(a.matched, 2);
    assert_string_equal(a.buf, "xa");
    inf__stop_free(&m);

    /* within one feed the earliest start wins */
    const char *s2[] = {"cd", "abcdef"};
    init(&m, s2, 2);
    a = (acc){.matched = -1};
    feed(&m, &a, "__abcdefgh");
    assert_int_equal(a.matched, 1);
    assert_string_equal(a.buf, "__");
    inf__stop_free(&m);

    /* same start, both complete in one feed: the first listed wins */
    const char *s4[] = {"abc", "ab"};
    init(&m, s4, 2);
    a = (acc){.matched = -1};
    feed(&m, &a, "-abc");
    assert_int_equal(a.matched, 0);
    assert_string_equal(a.buf, "-");
    inf__stop_free(&m);

    const char *s3[] = {"</s>", "\n\n", "User:"};
    init(&m, s3, 3);
    a = (acc){.matched = -1};
    feed(&m, &a, "Hi\n");
    assert_string_equal(a.buf, "Hi");
    feed(&m, &a, "there <");
    assert_string_equal(a.buf, "Hi\nthere ");
    feed(&m, &a, "b> Us");
    assert_string_equal(a.buf, "Hi\nthere <b> ");
    feed(&m, &a, "er:");
    assert_int_equal(a.matched, 2);
    assert_string_equal(a.buf, "Hi\nthere <b> ");
    inf__stop_free(&m);
}

static void test_start(void **st) {
    (void)st;
    const char *stops[] = {"STOP"};
    inf_stop m;
    init(&m, stops, 1);
    acc a = {.matched = -1};
    feed(&m, &a, "STOP and more");
    assert_int_equal(a.matched, 0);
    assert_int_equal(a.len, 0);
    inf__stop_free(&m);

    init(&m, stops, 1);
    a = (acc){.matched = -1};
    feed(&m, &a, "S");
    feed(&m, &a, "T");
    feed(&m, &a, "OP");
    assert_int_equal(a.matched, 0);
    assert_int_equal(a.len, 0);
    /* reset keeps the strings */
    inf__stop_reset(&m);
    a = (acc){.matched = -1};
    feed(&m, &a, "xSTO");
    assert_string_equal(a.buf, "x");
    feed(&m, &a, "P");
    assert_int_equal(a.matched, 0);
    inf__stop_free(&m);
}

static void test_utf8(void **st) {
    (void)st;
    inf_stop m;
    init(&m, NULL, 0); /* no stop strings: only UTF-8 alignment */
    acc a = {.matched = -1};
    feed(&m, &a, "caf\xc3");
    assert_string_equal(a.buf, "caf");
    feed(&m, &a, "\xa9 \xe2\x82");
    assert_string_equal(a.buf, "caf\xc3\xa9 ");
    feed(&m, &a, "\xac");
    assert_string_equal(a.buf, "caf\xc3\xa9 \xe2\x82\xac");
    feed(&m, &a, "\xf0\x9f");
    flush(&m, &a); /* an incomplete tail is released at the end */
    assert_string_equal(a.buf, "caf\xc3\xa9 \xe2\x82\xac\xf0\x9f");
    inf__stop_free(&m);

    /* a multi-byte stop string split inside its characters */
    const char *stops[] = {"\xc3\xa9t\xc3\xa9"}; /* "été" */
    init(&m, stops, 1);
    a = (acc){.matched = -1};
    feed(&m, &a, "l'\xc3");
    assert_string_equal(a.buf, "l'");
    feed(&m, &a, "\xa9t");
    assert_string_equal(a.buf, "l'");
    feed(&m, &a, "\xc3");
    feed(&m, &a, "\xa8"); /* "è": no match, the held text is released */
    assert_string_equal(a.buf, "l'\xc3\xa9t\xc3\xa8");
    feed(&m, &a, " \xc3\xa9t\xc3");
    assert_string_equal(a.buf, "l'\xc3\xa9t\xc3\xa8 ");
    feed(&m, &a, "\xa9!");
    assert_int_equal(a.matched, 0);
    assert_string_equal(a.buf, "l'\xc3\xa9t\xc3\xa8 ");
    inf__stop_free(&m);

    /* emitted text never ends inside a character, even next to a held prefix */
    const char *s2[] = {"XY"};
    init(&m, s2, 1);
    a = (acc){.matched = -1};
    feed(&m, &a, "\xe2\x82");
    assert_int_equal(a.len, 0);
    feed(&m, &a, "\xacX");
    assert_string_equal(a.buf, "\xe2\x82\xac");
    inf__stop_free(&m);
}

static void test_bad_args(void **st) {
    (void)st;
    inf_stop m;
    const char *stops[] = {"a"};
    assert_int_equal(inf__stop_init(&m, stops, INF_MAX_STOP + 1), INF_EINVAL);
    inf__stop_free(&m);
    assert_int_equal(inf__stop_init(&m, stops, -1), INF_EINVAL);
    inf__stop_free(&m);
}

/* Random texts over a small alphabet, random stop strings, random splits: the output is always
 * the text up to the first completed stop string (or all of it), and never contains one. */
static void test_random(void **st) {
    (void)st;
    inf_rng r;
    inf__rng_seed(&r, 77);
    const char alpha[] = "ab\xc3\xa9";
    for (int it = 0; it < 3000; it++) {
        char text[200];
        size_t tl = 1 + inf__rng_next(&r) % 150;
        for (size_t i = 0; i < tl; i++)
            text[i] = alpha[inf__rng_next(&r) % 4];
        text[tl] = 0;
        char sbuf[4][8];
        const char *stops[4];
        int ns = 1 + (int)(inf__rng_next(&r) % 4);
        for (int k = 0; k < ns; k++) {
            size_t sl = 1 + inf__rng_next(&r) % 6;
            for (size_t i = 0; i < sl; i++)
                sbuf[k][i] = alpha[inf__rng_next(&r) % 4];
            sbuf[k][sl] = 0;
            stops[k] = sbuf[k];
        }
        inf_stop m;
        init(&m, stops, ns);
        acc a = {.matched = -1};
        /* single-byte feeds make "first completed" unambiguous: earliest end, then start */
        bool bytewise = it % 2 == 0;
        size_t pos = 0;
        while (pos < tl && a.matched < 0) {
            size_t step = bytewise ? 1 : 1 + inf__rng_next(&r) % 7;
            if (step > tl - pos) step = tl - pos;
            char piece[16];
            memcpy(piece, text + pos, step);
            piece[step] = 0;
            feed(&m, &a, piece);
            pos += step;
        }
        if (a.matched < 0) flush(&m, &a);
        inf__stop_free(&m);

        /* reference: first occurrence end of each stop string */
        size_t best_end = SIZE_MAX, best_start = SIZE_MAX;
        for (int k = 0; k < ns; k++) {
            const char *f = strstr(text, stops[k]);
            if (!f) continue;
            size_t start = (size_t)(f - text), end = start + strlen(stops[k]);
            if (end < best_end || (end == best_end && start < best_start)) {
                best_end = end;
                best_start = start;
            }
        }
        for (int k = 0; k < ns; k++)
            assert_null(strstr(a.buf, stops[k]));
        if (best_end == SIZE_MAX) {
            assert_int_equal(a.matched, -1);
            assert_int_equal(a.len, tl);
            assert_memory_equal(a.buf, text, tl);
        } else {
            assert_true(a.matched >= 0 && a.matched < ns);
            assert_true(a.len <= best_start);
            assert_memory_equal(a.buf, text, a.len);
            /* the matched stop string sits right after the output */
            assert_memory_equal(text + a.len, stops[a.matched], strlen(stops[a.matched]));
            if (bytewise) assert_int_equal(a.len, best_start);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_across_feeds),
        cmocka_unit_test(test_partial_released),
        cmocka_unit_test(test_multiple),
        cmocka_unit_test(test_start),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
