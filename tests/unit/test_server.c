/*
 * test_server.c — the server's pure parts, without a socket: the local REST endpoints
 * (health/ready by state, models, model by id, tokenize/detokenize with validation errors)
 * on the bundled model, the chunked transfer decoder (split at every byte, malformed framing,
 * size limits, trailers) and the WebSocket request_id equality rule (1 and 1.0 are one id).
 * The engine-id map is base's hash map (tests/unit/test_base.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- endpoints ---- */

static inf_model *g_model;
static char *g_names[] = {"stories", "alias"};

static void fake_server(inf_server *srv) {
    memset(srv, 0, sizeof *srv);
    srv->names = g_names;
    srv->n_names = 2;
    srv->n_ctx = 512;
    srv->n_vocab = 512;
    srv->created = 1234;
    srv->model = g_model;
    srv->ready_announced = true;
}

static int setup_model(void **state) {
    (void)state;
    const char *root = getenv("INFERNEO_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", root ? root : ".");
    return inf_model_load(path, NULL, &g_model) == 0 ? 0 : -1;
}

static int teardown_model(void **state) {
    (void)state;
    inf_model_free(g_model);
    return 0;
}

static const char *str_at(json_t *o, const char *k1, const char *k2) {
    json_t *v = json_object_get(o, k1);
    if (k2) v = json_object_get(v, k2);
    return json_string_value(v);
}

static void test_health_ready(void **state) {
    (void)state;
    inf_server srv;
    fake_server(&srv);
    int st = 0;
    json_t *o = inf__ep_health(&srv, &st);
    assert_int_equal(st, 200);
    assert_string_equal(str_at(o, "status", NULL), "ok");
    json_decref(o);
    srv.ready_announced = false; /* loading */
    o = inf__ep_ready(&srv, &st);
    assert_int_equal(st, 503);
    assert_string_equal(str_at(o, "status", NULL), "loading");
    json_decref(o);
    srv.ready_announced = true;
    srv.shutting_down = true; /* draining */
    o = inf__ep_ready(&srv, &st);
    assert_int_equal(st, 503);
    assert_string_equal(str_at(o, "status", NULL), "shutting_down");
    json_decref(o);
}

static void test_models(void **state) {
    (void)state;
    inf_server srv;
    fake_server(&srv);
    int st = 0;
    json_t *o = inf__ep_models(&srv, &st);
    assert_int_equal(st, 200);
    json_t *data = json_object_get(o, "data");
    assert_int_equal(json_array_size(data), 2);
    assert_string_equal(str_at(json_array_get(data, 1), "id", NULL), "alias");
    json_t *card = json_array_get(data, 0);
    assert_int_equal(json_integer_value(json_object_get(card, "max_model_len")), 512);
    assert_string_equal(str_at(card, "architecture", NULL), "llama");
    assert_string_equal(str_at(card, "format", NULL), "f32"); /* stories260K is all f32 */
    assert_true(json_integer_value(json_object_get(card, "n_params")) > 200000);
    json_decref(o);
    o = inf__ep_model(&srv, "alias", &st);
    assert_int_equal(st, 200);
    assert_string_equal(str_at(o, "object", NULL), "model");
    json_decref(o);
    o = inf__ep_model(&srv, "nope", &st);
    assert_int_equal(st, 404);
    assert_string_equal(str_at(o, "error", "code"), "model_not_found");
    json_decref(o);
}

static json_t *parse(const char *s) {
    json_t *o = json_loads(s, 0, NULL);
    assert_non_null(o);
    return o;
}

static void test_tokenize_roundtrip(void **state) {
    (void)state;
    inf_server srv;
    fake_server(&srv);
    int st = 0;
    json_t *req = parse("{\"content\":\"Once upon a time\",\"add_special\":true}");
    json_t *o = inf__ep_tokenize(&srv, req, &st);
    json_decref(req);
    assert_int_equal(st, 200);
    json_t *toks = json_object_get(o, "tokens");
    assert_true(json_array_size(toks) > 2);
    assert_int_equal(json_integer_value(json_array_get(toks, 0)), 1); /* BOS */
    /* detokenize without the BOS gives the text back */
    json_array_remove(toks, 0);
    json_t *dreq = json_object();
    json_object_set(dreq, "tokens", toks);
    json_decref(o);
    o = inf__ep_detokenize(&srv, dreq, &st);
    json_decref(dreq);
    assert_int_equal(st, 200);
    assert_string_equal(str_at(o, "content", NULL), "Once upon a time");
    json_decref(o);
}

static void test_tokenize_errors(void **state) {
    (void)state;
    inf_server srv;
    fake_server(&srv);
    static const struct {
        const char *body;
        int status;
        const char *code;
        int detok;
    } cases[] = {
        {"{\"content\":1}", 400, "invalid_type", 0},
        {"{\"content\":\"x\",\"add_special\":\"yes\"}", 400, "invalid_type", 0},
        {"{\"content\":\"x\",\"bogus\":1}", 400, "unknown_parameter", 0},
        {"{\"content\":\"x\",\"model\":\"other\"}", 404, "model_not_found", 0},
        {"{\"tokens\":\"x\"}", 400, "invalid_type", 1},
        {"{\"tokens\":[1,2,512]}", 400, "invalid_value", 1},
        {"{\"tokens\":[-1]}", 400, "invalid_value", 1},
        {"{\"tokens\":[1.5]}", 400, "invalid_value", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *req = parse(cases[i].body);
        int st = 0;
        json_t *o = cases[i].detok ? inf__ep_detokenize(&srv, req, &st)
                                   : inf__ep_tokenize(&srv, req, &st);
        json_decref(req);
        assert_int_equal(st, cases[i].status);
        assert_string_equal(str_at(o, "error", "code"), cases[i].code);
        json_decref(o);
    }
}

/* Token pieces that split a UTF-8 character come back with U+FFFD, valid text unchanged. */
static void test_detokenize_invalid_utf8(void **state) {
    (void)state;
    inf_server srv;
    fake_server(&srv);
    int32_t byte_tok = -1; /* stories260K has byte-fallback tokens <0xE2> */
    for (int32_t t = 0; t < 512 && byte_tok < 0; t++) {
        char buf[16];
        int32_t one[] = {t};
        char *text = NULL;
        size_t len = 0;
        if (inf_detokenize(g_model, one, 1, false, &text, &len) == 0 && len == 1 &&
            (unsigned char)text[0] == 0xE2)
            byte_tok = t;
        inf_free(text);
        (void)buf;
    }
    assert_true(byte_tok >= 0);
    char body[128];
    snprintf(body, sizeof body, "{\"tokens\":[%d]}", byte_tok);
    json_t *req = parse(body);
    int st = 0;
    json_t *o = inf__ep_detokenize(&srv, req, &st);
    json_decref(req);
    assert_int_equal(st, 200);
    assert_string_equal(str_at(o, "content", NULL), "\xef\xbf\xbd");
    json_decref(o);
}

/* ---- chunked decoder ---- */

typedef struct sink_buf {
    char data[256];
    size_t len;
} sink_buf;

static int sink(void *user, const unsigned char *p, size_t n) {
    sink_buf *b = user;
    if (n > sizeof b->data - b->len) return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

/* Feeds msg in pieces of `step` bytes; returns the final rc. */
static int feed(const char *msg, size_t step, size_t max, sink_buf *out) {
    inf__chunked d = {.max_data = max};
    memset(out, 0, sizeof *out);
    size_t n = strlen(msg);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i += step)
        rc = inf__chunked_feed(&d, (const unsigned char *)msg + i, INF_MIN(step, n - i), NULL,
                               sink, out);
    return rc;
}

static void test_chunked_valid(void **state) {
    (void)state;
    const char *msg = "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
    for (size_t step = 1; step <= strlen(msg); step++) {
        sink_buf b;
        assert_int_equal(feed(msg, step, 1024, &b), 1);
        assert_int_equal(b.len, 16);
        assert_memory_equal(b.data, "hello 0123456789", 16);
    }
    /* bytes after the end are not consumed */
    inf__chunked d = {.max_data = 64};
    sink_buf b = {0};
    size_t used = 0;
    const char *two = "1\r\na\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    assert_int_equal(inf__chunked_feed(&d, (const unsigned char *)two, strlen(two), &used, sink, &b),
                     1);
    assert_int_equal(used, 11);
}

static void test_chunked_malformed(void **state) {
    (void)state;
    static const char *const bad[] = {
        "x\r\n",                /* not hex */
        "\r\n",                 /* empty size */
        "5\nhello\r\n",         /* bare LF */
        "5\r\nhelloX\r\n",      /* data longer than declared */
        "00000000000000001\r\n", /* 17 hex digits */
        "0\r\nbad\nheader\r\n", /* bare LF in a trailer */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sink_buf b;
        assert_int_equal(feed(bad[i], 1, 1 << 20, &b), -1);
        assert_int_equal(feed(bad[i], strlen(bad[i]), 1 << 20, &b), -1);
    }
    sink_buf b;
    assert_int_equal(feed("5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", 3, 8, &b), -2);
    assert_int_equal(feed("ffffffff\r\n", 1, 1 << 20, &b), -2); /* declared over the limit */
    assert_int_equal(feed("5\r\nhel", 2, 1 << 20, &b), 0);       /* incomplete */
    /* a failed decoder stays failed, whatever follows */
    inf__chunked d = {.max_data = 64};
    assert_int_equal(inf__chunked_feed(&d, (const unsigned char *)"5\r\nhelloX", 11, NULL, sink,
                                       &b),
                     -1);
    assert_int_equal(inf__chunked_feed(&d, (const unsigned char *)"0\r\n\r\n", 5, NULL, sink, &b),
                     -1);
}

static void test_request_id_equality(void **state) {
    (void)state;
    json_t *i1 = json_integer(1), *r1 = json_real(1.0), *r15 = json_real(1.5),
           *s1 = json_string("1"), *s1b = json_string("1"), *i2 = json_integer(2);
    assert_true(inf__ws_rid_equal(i1, r1));
    assert_true(inf__ws_rid_equal(r1, i1));
    assert_false(inf__ws_rid_equal(i1, r15));
    assert_false(inf__ws_rid_equal(i1, s1)); /* a string is not a number */
    assert_true(inf__ws_rid_equal(s1, s1b));
    assert_false(inf__ws_rid_equal(i1, i2));
    assert_false(inf__ws_rid_equal(NULL, i1));
    json_decref(i1), json_decref(r1), json_decref(r15), json_decref(s1), json_decref(s1b),
        json_decref(i2);
}

/* Feeds text one byte at a time or whole; returns the verdict. */
static int guard_run(inf__guard_scan *s, const void *p, size_t n, bool bytewise) {
    const uint8_t *b = p;
    size_t used = 0;
    if (!bytewise) return inf__guard_feed(s, b, n, &used);
    for (size_t i = 0; i < n; i++) {
        int v = inf__guard_feed(s, b + i, 1, &used);
        if (v || s->mode == INF__GUARD_BODY) return v;
    }
    return 0;
}

static void test_guard_scanner(void **state) {
    (void)state;
    static const char req[] = "GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        inf__guard_scan s = {0};
        size_t used = 0;
        assert_int_equal(guard_run(&s, req, strlen(req), bytewise), 0);
        assert_int_equal(s.mode, INF__GUARD_BODY);
        s.mode = INF__GUARD_WS;
        /* masked text frame (5 bytes), masked frame with a 16-bit length (300 bytes), then an
         * unmasked one */
        uint8_t fr[2 + 4 + 5 + 4 + 4 + 300 + 2] = {0x81, 0x85, 1, 2, 3, 4, 'h', 'e', 'l', 'l', 'o',
                                                  0x82, 0xfe, 0x01, 0x2c, 9, 9, 9, 9};
        size_t unmasked_at = sizeof fr - 2;
        fr[unmasked_at] = 0x81;
        fr[unmasked_at + 1] = 0x05;
        if (bytewise) {
            for (size_t i = 0; i < unmasked_at; i++)
                assert_int_equal(inf__guard_feed(&s, fr + i, 1, &used), 0);
            assert_int_equal(inf__guard_feed(&s, fr + unmasked_at, 2, &used), INF__GUARD_UNMASKED);
            assert_int_equal(used, 1);
        } else {
            assert_int_equal(inf__guard_feed(&s, fr, sizeof fr, &used), INF__GUARD_UNMASKED);
            assert_int_equal(used, unmasked_at + 1);
        }
    }
    static const char *const bad[] = {"BREW /pot HTTP/1.1\r\n", "TRACE / HTTP/1.1\r\n",
                                       "\r\nPROPFIND / HTTP/1.1\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        inf__guard_scan s = {0};
        assert_int_equal(guard_run(&s, bad[i], strlen(bad[i]), i & 1), INF__GUARD_BAD_METHOD);
    }
    /* known methods in any case pass; a line that is not a request line is left to lws */
    static const char *const fine[] = {"get / HTTP/1.1\r\n", "OPTIONS * HTTP/1.1\r\n",
                                       "\x16\x03\x01 tls hello", "ABCDEFGHIJKLMNOPQRSTU / x"};
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
        inf__guard_scan s = {0};
        assert_int_equal(guard_run(&s, fine[i], strlen(fine[i]), false), 0);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_ready),
        cmocka_unit_test(test_models),
        cmocka_unit_test(test_tokenize_roundtrip),
        cmocka_unit_test(test_tokenize_errors),
        cmocka_unit_test(test_detokenize_invalid_utf8),
        cmocka_unit_test(test_chunked_valid),
        cmocka_unit_test(test_chunked_malformed),
        cmocka_unit_test(test_request_id_equality),
        cmocka_unit_test(test_guard_scanner),
    };
    return cmocka_run_group_tests(tests, setup_model, teardown_model);
}
