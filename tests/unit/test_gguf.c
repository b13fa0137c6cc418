/*
 * test_gguf.c — GGUF writer -> reader round trip, targeted malformed files, and a corruption
 * loop (truncation at every byte, seeded byte flips, huge counts). Every truncated buffer is an
 * exact-size heap copy so ASan catches any read past its end. Also opens every fixture GGUF.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the headers above first */
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/gguf.h"

/* ---- helpers ---- */

static void *build(inf_gguf_writer *w, size_t *len) {
    void *buf = NULL;
    int err = inf_gguf_writer_write_mem(w, &buf, len);
    if (err) fprintf(stderr, "write_mem: %s\n", inf_last_error());
    assert_int_equal(err, 0);
    inf_gguf_writer_free(w);
    return buf;
}

/* Opens an exact-size heap copy of buf[0..n); returns the error code (0 = opened). When it
 * opens, every accessor is exercised so ASan sees any out-of-bounds view. */
static int open_copy(const void *buf, size_t n, char *detail, size_t cap) {
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n) memcpy(copy, buf, n);
    inf_gguf *g = NULL;
    int err = inf_gguf_open_buffer(copy, n, &g);
    if (detail) snprintf(detail, cap, "%s", inf_last_error());
    if (err == 0) {
        assert_non_null(g);
        volatile unsigned sum = 0;
        for (int64_t i = 0; i < inf_gguf_n_kv(g); i++) {
            const char *key = inf_gguf_key_name(g, i);
            assert_non_null(key);
            assert_int_equal(inf_gguf_find_key(g, key), i);
            int t = inf_gguf_kv_type(g, i);
            if (t == INF_GGUF_STRING) {
                const char *s;
                size_t len;
                assert_int_equal(inf_gguf_get_str(g, key, &s, &len), 0);
                for (size_t k = 0; k < len; k++)
                    sum += (unsigned char)s[k];
            } else if (t == INF_GGUF_ARRAY) {
                int et;
                int64_t an;
                assert_int_equal(inf_gguf_get_arr(g, key, &et, &an), 0);
                if (et == INF_GGUF_STRING) {
                    for (int64_t k = 0; k < an; k++) {
                        const char *s;
                        size_t len;
                        assert_int_equal(inf_gguf_get_arr_str(g, key, k, &s, &len), 0);
                        for (size_t q = 0; q < len; q++)
                            sum += (unsigned char)s[q];
                    }
                } else if (et != INF_GGUF_ARRAY) {
                    const void *d;
                    assert_int_equal(inf_gguf_get_arr_data(g, key, &d), 0);
                    if (an > 0) sum += ((const uint8_t *)d)[0];
                }
            } else {
                int64_t v;
                float f;
                bool b;
                (void)inf_gguf_get_i64(g, key, &v);
                (void)inf_gguf_get_f32(g, key, &f);
                (void)inf_gguf_get_bool(g, key, &b);
            }
        }
        for (int64_t i = 0; i < inf_gguf_n_tensors(g); i++) {
            const inf_gguf_tensor *t = inf_gguf_tensor_at(g, i);
            assert_non_null(t);
            assert_ptr_equal(inf_gguf_find_tensor(g, t->name), t);
            const uint8_t *d = t->data;
            assert_true(d >= copy && d + t->nbytes <= copy + n);
            if (t->nbytes) sum += d[0] + d[t->nbytes - 1];
        }
        (void)sum;
        inf_gguf_close(g);
    } else {
        assert_null(g);
        assert_true(err == INF_EFORMAT || err == INF_EIO);
        assert_true(inf_last_error()[0] != 0);
        assert_null(strchr(inf_last_error(), '\n'));
    }
    free(copy);
    return err;
}

/* Offset of the first occurrence of the length-prefixed string s in buf (its length field). */
static size_t find_lstr(const uint8_t *buf, size_t n, const char *s) {
    uint64_t len = strlen(s);
    for (size_t i = 0; i + 8 + len <= n; i++)
        if (!memcmp(buf + i, &len, 8) && !memcmp(buf + i + 8, s, (size_t)len)) return i;
    fail_msg("string '%s' not found", s);
    return 0;
}

static void put_u32(uint8_t *p, uint32_t v) {
    memcpy(p, &v, 4);
}
static void put_u64(uint8_t *p, uint64_t v) {
    memcpy(p, &v, 8);
}

/* A small file with metadata of several kinds and three tensors. */
static uint8_t *small_file(size_t *len) {
    inf_gguf_writer *w = inf_gguf_writer_new();
    assert_non_null(w);
    assert_int_equal(inf_gguf_writer_set_str(w, "general.architecture", "llama"), 0);
    assert_int_equal(inf_gguf_writer_set_str(w, "general.name", "tiny"), 0);
    assert_int_equal(inf_gguf_writer_set_u32(w, "llama.block_count", 2), 0);
    assert_int_equal(inf_gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f), 0);
    const char *toks[] = {"<unk>", "<s>", "</s>", "a", "b"};
    assert_int_equal(inf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 5), 0);
    float scores[5] = {0, 0, 0, -1, -2};
    assert_int_equal(
        inf_gguf_writer_set_arr(w, "tokenizer.ggml.scores", INF_GGUF_FLOAT32, scores, 5), 0);
    float a[4 * 8];
    for (int i = 0; i < 32; i++)
        a[i] = (float)i;
    int64_t ne_a[2] = {8, 4};
    assert_int_equal(inf_gguf_writer_add_tensor(w, "t.a", 0, 2, ne_a, a), 0);
    uint8_t q[2 * 34];
    for (int i = 0; i < 68; i++)
        q[i] = (uint8_t)i;
    int64_t ne_q[2] = {32, 2};
    assert_int_equal(inf_gguf_writer_add_tensor(w, "t.q", 8, 2, ne_q, q), 0);
    int64_t ne_n[1] = {5};
    float nrm[5] = {1, 1, 1, 1, 1};
    assert_int_equal(inf_gguf_writer_add_tensor(w, "t.norm", 0, 1, ne_n, nrm), 0);
    return build(w, len);
}

/* ---- round trip ---- */

static void test_roundtrip(void **state) {
    (void)state;
    inf_gguf_writer *w = inf_gguf_writer_new();
    assert_int_equal(inf_gguf_writer_set_alignment(w, 64), 0);
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    assert_int_equal(inf_gguf_writer_set_scalar(w, "v.u8", INF_GGUF_UINT8, &u8), 0);
    assert_int_equal(inf_gguf_writer_set_scalar(w, "v.i8", INF_GGUF_INT8, &i8), 0);
    assert_int_equal(inf_gguf_writer_set_scalar(w, "v.u16", INF_GGUF_UINT16, &u16), 0);
    assert_int_equal(inf_gguf_writer_set_scalar(w, "v.i16", INF_GGUF_INT16, &i16), 0);
    assert_int_equal(inf_gguf_writer_set_u32(w, "v.u32", 4000000000u), 0);
    assert_int_equal(inf_gguf_writer_set_i32(w, "v.i32", -2000000000), 0);
    assert_int_equal(inf_gguf_writer_set_f32(w, "v.f32", 1.5f), 0);
    assert_int_equal(inf_gguf_writer_set_bool(w, "v.bool", true), 0);
    assert_int_equal(inf_gguf_writer_set_str(w, "v.str", "héllo"), 0);
    assert_int_equal(inf_gguf_writer_set_str(w, "v.empty", ""), 0);
    assert_int_equal(inf_gguf_writer_set_u64(w, "v.u64", UINT64_MAX), 0);
    assert_int_equal(inf_gguf_writer_set_i64(w, "v.i64", INT64_MIN), 0);
    assert_int_equal(inf_gguf_writer_set_f64(w, "v.f64", 0.25), 0);
    int32_t ia[3] = {1, -2, 3};
    assert_int_equal(inf_gguf_writer_set_arr(w, "a.i32", INF_GGUF_INT32, ia, 3), 0);
    double da[2] = {1.0, 2.0};
    assert_int_equal(inf_gguf_writer_set_arr(w, "a.f64", INF_GGUF_FLOAT64, da, 2), 0);
    assert_int_equal(inf_gguf_writer_set_arr(w, "a.empty", INF_GGUF_UINT8, NULL, 0), 0);
    uint8_t ba[3] = {0, 1, 1};
    assert_int_equal(inf_gguf_writer_set_arr(w, "a.bool", INF_GGUF_BOOL, ba, 3), 0);
    const char *sa[] = {"x", "", "zz"};
    assert_int_equal(inf_gguf_writer_set_arr_str(w, "a.str", sa, 3), 0);
    /* array of 2 arrays: [u8 {7}], [string {"q"}] */
    uint8_t raw[64];
    size_t p = 0;
    put_u32(raw + p, INF_GGUF_ARRAY), p += 4;
    put_u64(raw + p, 2), p += 8;
    put_u32(raw + p, INF_GGUF_UINT8), p += 4;
    put_u64(raw + p, 1), p += 8;
    raw[p++] = 7;
    put_u32(raw + p, INF_GGUF_STRING), p += 4;
    put_u64(raw + p, 1), p += 8;
    put_u64(raw + p, 1), p += 8;
    raw[p++] = 'q';
    assert_int_equal(inf_gguf_writer_set_raw(w, "a.nested", INF_GGUF_ARRAY, raw, p), 0);
    /* duplicates are refused by the writer */
    assert_int_equal(inf_gguf_writer_set_u32(w, "v.u32", 1), INF_EINVAL);

    float f32[64];
    for (int i = 0; i < 64; i++)
        f32[i] = (float)i * 0.5f;
    int64_t ne1[1] = {64}, ne2[2] = {32, 2}, ne3[3] = {32, 1, 2}, ne4[4] = {256, 1, 1, 2};
    assert_int_equal(inf_gguf_writer_add_tensor(w, "f32", 0, 1, ne1, f32), 0);
    uint16_t f16[64] = {0x3c00};
    assert_int_equal(inf_gguf_writer_add_tensor(w, "f16", 1, 2, ne2, f16), 0);
    uint8_t q4[2 * 18];
    memset(q4, 0x11, sizeof q4);
    assert_int_equal(inf_gguf_writer_add_tensor(w, "q4_0", 2, 3, ne3, q4), 0);
    assert_int_equal(inf_gguf_writer_add_tensor(w, "q4_k", 12, 4, ne4, NULL), 0);
    /* invalid tensors are refused */
    int64_t bad[2] = {33, 1};
    assert_int_equal(inf_gguf_writer_add_tensor(w, "bad", 8, 2, bad, NULL), INF_EINVAL);
    assert_int_equal(inf_gguf_writer_add_tensor(w, "f32", 0, 1, ne1, f32), INF_EINVAL);

    size_t len;
    void *buf = build(w, &len);
    inf_gguf *g;
    assert_int_equal(inf_gguf_open_buffer(buf, len, &g), 0);
    assert_int_equal(inf_gguf_version(g), 3);
    assert_int_equal(inf_gguf_alignment(g), 64);
    assert_int_equal(inf_gguf_data_offset(g) % 64, 0);
    assert_int_equal(inf_gguf_n_kv(g), 20);

    uint32_t u32;
    int64_t i64;
    float f;
    bool b;
    const char *s;
    size_t sl;
    assert_int_equal(inf_gguf_get_u32(g, "v.u8", &u32), 0);
    assert_int_equal(u32, 200);
    assert_int_equal(inf_gguf_get_i64(g, "v.i8", &i64), 0);
    assert_int_equal(i64, -100);
    assert_int_equal(inf_gguf_get_u32(g, "v.i8", &u32), INF_EFORMAT); /* negative */
    assert_int_equal(inf_gguf_get_u32(g, "v.u16", &u32), 0);
    assert_int_equal(u32, 60000);
    assert_int_equal(inf_gguf_get_i64(g, "v.i16", &i64), 0);
    assert_int_equal(i64, -30000);
    assert_int_equal(inf_gguf_get_u32(g, "v.u32", &u32), 0);
    assert_int_equal(u32, 4000000000u);
    assert_int_equal(inf_gguf_get_i64(g, "v.i32", &i64), 0);
    assert_int_equal(i64, -2000000000);
    assert_int_equal(inf_gguf_get_f32(g, "v.f32", &f), 0);
    assert_true(f == 1.5f);
    assert_int_equal(inf_gguf_get_f32(g, "v.f64", &f), 0);
    assert_true(f == 0.25f);
    assert_int_equal(inf_gguf_get_f32(g, "v.u32", &f), INF_EFORMAT);
    assert_int_equal(inf_gguf_get_bool(g, "v.bool", &b), 0);
    assert_true(b);
    assert_int_equal(inf_gguf_get_bool(g, "v.u8", &b), INF_EFORMAT);
    assert_int_equal(inf_gguf_get_str(g, "v.str", &s, &sl), 0);
    assert_int_equal(sl, strlen("héllo"));
    assert_memory_equal(s, "héllo", sl);
    char *dup;
    assert_int_equal(inf_gguf_get_strdup(g, "v.empty", &dup), 0);
    assert_string_equal(dup, "");
    free(dup);
    assert_int_equal(inf_gguf_get_u32(g, "v.u64", &u32), INF_EFORMAT); /* too big */
    assert_int_equal(inf_gguf_get_i64(g, "v.u64", &i64), INF_EFORMAT);
    assert_int_equal(inf_gguf_get_i64(g, "v.i64", &i64), 0);
    assert_true(i64 == INT64_MIN);
    assert_int_equal(inf_gguf_get_u32(g, "nope", &u32), INF_ENOTFOUND);
    assert_int_equal(inf_gguf_get_str(g, "v.u32", &s, &sl), INF_EFORMAT);
    assert_true(strstr(inf_last_error(), "v.u32") != NULL);

    int et;
    int64_t n;
    const void *d;
    assert_int_equal(inf_gguf_get_arr(g, "a.i32", &et, &n), 0);
    assert_int_equal(et, INF_GGUF_INT32);
    assert_int_equal(n, 3);
    assert_int_equal(inf_gguf_get_arr_data(g, "a.i32", &d), 0);
    int32_t ib[3];
    memcpy(ib, d, sizeof ib);
    assert_memory_equal(ib, ia, sizeof ia);
    assert_int_equal(inf_gguf_get_arr_data(g, "a.f64", &d), 0);
    double db[2];
    memcpy(db, d, sizeof db);
    assert_true(db[0] == 1.0 && db[1] == 2.0);
    assert_int_equal(inf_gguf_get_arr(g, "a.empty", &et, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(inf_gguf_get_arr(g, "a.bool", &et, &n), 0);
    assert_int_equal(et, INF_GGUF_BOOL);
    assert_int_equal(inf_gguf_get_arr(g, "a.str", &et, &n), 0);
    assert_int_equal(et, INF_GGUF_STRING);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(inf_gguf_get_arr_str(g, "a.str", i, &s, &sl), 0);
        assert_int_equal(sl, strlen(sa[i]));
        assert_memory_equal(s, sa[i], sl);
    }
    assert_int_equal(inf_gguf_get_arr_str(g, "a.str", 3, &s, &sl), INF_ERANGE);
    assert_int_equal(inf_gguf_get_arr_data(g, "a.str", &d), INF_EFORMAT);
    assert_int_equal(inf_gguf_get_arr(g, "a.nested", &et, &n), 0);
    assert_int_equal(et, INF_GGUF_ARRAY);
    assert_int_equal(n, 2);
    assert_int_equal(inf_gguf_get_arr_data(g, "a.nested", &d), INF_EFORMAT);
    assert_int_equal(inf_gguf_kv_type(g, inf_gguf_find_key(g, "v.bool")), INF_GGUF_BOOL);

    assert_int_equal(inf_gguf_n_tensors(g), 4);
    const inf_gguf_tensor *t = inf_gguf_find_tensor(g, "f32");
    assert_non_null(t);
    assert_int_equal(t->type, 0);
    assert_int_equal(t->n_dims, 1);
    assert_int_equal(t->ne[0], 64);
    assert_int_equal(t->ne[1], 1);
    assert_int_equal(t->nbytes, 256);
    assert_memory_equal(t->data, f32, 256);
    t = inf_gguf_find_tensor(g, "f16");
    assert_int_equal(t->nbytes, 128);
    assert_memory_equal(t->data, f16, 128);
    t = inf_gguf_find_tensor(g, "q4_0");
    assert_int_equal(t->n_dims, 3);
    assert_int_equal(t->ne[2], 2);
    assert_int_equal(t->nbytes, 36);
    assert_memory_equal(t->data, q4, 36);
    t = inf_gguf_find_tensor(g, "q4_k");
    assert_int_equal(t->nbytes, 2 * 144);
    assert_int_equal(t->ne[3], 2);
    for (size_t i = 0; i < t->nbytes; i++)
        assert_int_equal(((const uint8_t *)t->data)[i], 0);
    for (int64_t i = 0; i < 4; i++) {
        t = inf_gguf_tensor_at(g, i);
        assert_int_equal(((const uint8_t *)t->data - (const uint8_t *)buf) % 64, 0);
    }
    assert_null(inf_gguf_find_tensor(g, "missing"));
    assert_null(inf_gguf_tensor_at(g, 4));
    inf_gguf_close(g);
    free(buf);
}

/* Fill callback: deferred tensors produced one at a time. */
static int fill_pattern(void *user, int64_t index, const char *name, int type, const int64_t *ne,
                        void *buf, size_t nbytes) {
    int *calls = user;
    (*calls)++;
    (void)name, (void)type, (void)ne;
    memset(buf, (int)(index + 1), nbytes);
    return 0;
}

static void test_write_file_cb(void **state) {
    (void)state;
    char path[] = "/tmp/test_gguf_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    inf_gguf_writer *w = inf_gguf_writer_new();
    assert_int_equal(inf_gguf_writer_set_str(w, "general.architecture", "x"), 0);
    int64_t ne[2] = {64, 3};
    float data[64 * 3] = {0};
    assert_int_equal(inf_gguf_writer_add_tensor(w, "a", 0, 2, ne, NULL), 0);
    assert_int_equal(inf_gguf_writer_add_tensor(w, "b", 0, 2, ne, data), 0);
    assert_int_equal(inf_gguf_writer_add_tensor(w, "c", 8, 2, ne, NULL), 0);
    int calls = 0;
    assert_int_equal(inf_gguf_writer_write_cb(w, path, fill_pattern, &calls), 0);
    assert_int_equal(calls, 2);
    inf_gguf_writer_free(w);
    inf_gguf *g;
    assert_int_equal(inf_gguf_open(path, &g), 0);
    const inf_gguf_tensor *a = inf_gguf_find_tensor(g, "a"), *c = inf_gguf_find_tensor(g, "c");
    assert_int_equal(((const uint8_t *)a->data)[a->nbytes - 1], 1);
    assert_int_equal(c->nbytes, 2 * 34 * 3);
    assert_int_equal(((const uint8_t *)c->data)[0], 3);
    inf_gguf_close(g);
    unlink(path);
    assert_int_equal(inf_gguf_open(path, &g), INF_EIO);
    assert_true(strstr(inf_last_error(), path) != NULL);
    assert_int_equal(inf_gguf_open("/tmp", &g), INF_EIO);
    /* a FIFO without a writer must not block the open */
    char fifo[64];
    snprintf(fifo, sizeof fifo, "/tmp/test_gguf_fifo_%ld", (long)getpid());
    if (mkfifo(fifo, 0600) == 0) {
        assert_int_equal(inf_gguf_open(fifo, &g), INF_EIO);
        assert_true(strstr(inf_last_error(), "not a regular file") != NULL);
        unlink(fifo);
    }
}

/* ---- targeted malformed files ---- */

static void expect_fail(const uint8_t *buf, size_t n, const char *needle) {
    char detail[1024];
    int err = open_copy(buf, n, detail, sizeof detail);
    if (err == 0) fail_msg("expected failure containing '%s'", needle);
    if (!strstr(detail, needle)) fail_msg("detail '%s' lacks '%s'", detail, needle);
}

static void test_malformed(void **state) {
    (void)state;
    size_t len;
    uint8_t *base = small_file(&len);
    uint8_t *b = malloc(len);
    assert_int_equal(open_copy(base, len, NULL, 0), 0);
#define RESET() memcpy(b, base, len)

    RESET();
    memcpy(b, "GGML", 4);
    expect_fail(b, len, "bad magic");
    RESET();
    put_u32(b + 4, 1);
    expect_fail(b, len, "version 1");
    RESET();
    put_u32(b + 4, 0x03000000u);
    expect_fail(b, len, "big-endian");
    RESET();
    put_u32(b + 4, 4);
    expect_fail(b, len, "unsupported GGUF version 4");
    RESET();
    put_u32(b + 4, 2); /* v2 has the same layout */
    assert_int_equal(open_copy(b, len, NULL, 0), 0);

    /* huge counts fail fast, before allocating */
    RESET();
    put_u64(b + 8, (uint64_t)1 << 60);
    expect_fail(b, len, "tensor count");
    RESET();
    put_u64(b + 16, (uint64_t)1 << 60);
    expect_fail(b, len, "metadata count");
    RESET();
    put_u64(b + 16, UINT64_MAX);
    expect_fail(b, len, "metadata count");
    RESET();
    put_u64(b + 8, 4); /* one more tensor than present */
    expect_fail(b, len, "tensor");

    /* key / value problems */
    size_t k = find_lstr(base, len, "general.name");
    RESET();
    put_u64(b + k, (uint64_t)INT64_MAX);
    expect_fail(b, len, "key length");
    RESET();
    put_u64(b + k, 0);
    expect_fail(b, len, "metadata key 1");
    RESET();
    b[k + 8 + 3] = 0;
    expect_fail(b, len, "NUL");
    RESET();
    put_u32(b + k + 8 + 12, 13);
    expect_fail(b, len, "invalid value type 13");
    RESET();
    put_u64(b + k + 8 + 12 + 4, (uint64_t)INT64_MAX); /* string length */
    expect_fail(b, len, "'general.name'): string length 9223372036854775807");
    RESET();
    memcpy(b + k + 8 + 8, "arch", 4); /* "general.arch" */
    assert_int_equal(open_copy(b, len, NULL, 0), 0);
    RESET();
    /* duplicate key: rename one key to another of the same length */
    {
        size_t k1 = find_lstr(base, len, "tokenizer.ggml.tokens");
        size_t k2 = find_lstr(base, len, "tokenizer.ggml.scores");
        (void)k1;
        memcpy(b + k2 + 8, "tokenizer.ggml.tokens", 21);
        expect_fail(b, len, "duplicate metadata key 'tokenizer.ggml.tokens'");
        RESET();
        /* array problems */
        put_u32(b + k1 + 8 + 21 + 4, 99);
        expect_fail(b, len, "invalid array element type 99");
        RESET();
        put_u64(b + k1 + 8 + 21 + 8, (uint64_t)INT64_MAX);
        expect_fail(b, len, "array of 9223372036854775807 string");
        RESET();
        put_u64(b + k2 + 8 + 21 + 8, UINT64_MAX / 4 + 1);
        expect_fail(b, len, "float32");
        RESET();
        put_u64(b + k1 + 8 + 21 + 16, UINT64_MAX); /* first string length */
        expect_fail(b, len, "string length");
    }
    /* tensor problems */
    size_t tq = find_lstr(base, len, "t.q");
    size_t nd = tq + 8 + 3, ne0 = nd + 4, ty = ne0 + 16, off = ty + 4;
    RESET();
    put_u32(b + nd, 0);
    expect_fail(b, len, "n_dims 0");
    RESET();
    put_u32(b + nd, 5);
    expect_fail(b, len, "n_dims 5");
    RESET();
    put_u64(b + ne0, 0);
    expect_fail(b, len, "ne[0] = 0");
    RESET();
    put_u64(b + ne0, UINT64_MAX);
    expect_fail(b, len, "ne[0]");
    RESET();
    put_u64(b + ne0, 33);
    expect_fail(b, len, "multiple of the q8_0 block size");
    RESET();
    put_u64(b + ne0, (uint64_t)1 << 40);
    put_u64(b + ne0 + 8, (uint64_t)1 << 40);
    expect_fail(b, len, "overflows");
    RESET();
    put_u64(b + ne0 + 8, (uint64_t)1 << 20);
    expect_fail(b, len, "tensor 't.q': data [offset");
    RESET();
    put_u32(b + ty, 4);
    expect_fail(b, len, "unknown tensor type 4");
    RESET();
    put_u32(b + ty, 1000);
    expect_fail(b, len, "unknown tensor type 1000");
    RESET();
    put_u64(b + off, 1);
    expect_fail(b, len, "not a multiple of the alignment");
    RESET();
    put_u64(b + off, UINT64_MAX - 31);
    expect_fail(b, len, "beyond end of file");
    RESET();
    put_u64(b + off, 1u << 20);
    expect_fail(b, len, "beyond end of file");
    RESET();
    memcpy(b + tq + 8, "t.a", 3);
    expect_fail(b, len, "duplicate tensor name 't.a'");
    RESET();
    b[tq + 8 + 1] = '\n'; /* detail must stay one line */
    assert_int_equal(open_copy(b, len, NULL, 0), 0);
    put_u32(b + nd, 7);
    expect_fail(b, len, "t\\x0aq");

    /* truncation: every prefix fails (the last tensor ends at end of file) */
    for (size_t n = 0; n < len; n++) {
        char detail[1024];
        int err = open_copy(base, n, detail, sizeof detail);
        if (err == 0) fail_msg("truncated to %zu of %zu bytes opened", n, len);
    }
    free(b);
    free(base);
#undef RESET
}

static void test_alignment_and_bool(void **state) {
    (void)state;
    /* bad alignments */
    uint32_t bad[] = {0, 3, 48, 1u << 31};
    for (size_t i = 0; i < INF_ARRAY_LEN(bad); i++) {
        inf_gguf_writer *w = inf_gguf_writer_new();
        assert_int_equal(inf_gguf_writer_set_u32(w, "general.alignment", bad[i]), 0);
        size_t len;
        uint8_t *buf = build(w, &len);
        expect_fail(buf, len, "general.alignment");
        free(buf);
    }
    {
        inf_gguf_writer *w = inf_gguf_writer_new();
        assert_int_equal(inf_gguf_writer_set_str(w, "general.alignment", "32"), 0);
        size_t len;
        uint8_t *buf = build(w, &len);
        expect_fail(buf, len, "general.alignment");
        free(buf);
    }
    /* bool with value 2 */
    {
        inf_gguf_writer *w = inf_gguf_writer_new();
        uint8_t two = 2;
        assert_int_equal(inf_gguf_writer_set_raw(w, "x.b", INF_GGUF_BOOL, &two, 1), 0);
        size_t len;
        uint8_t *buf = build(w, &len);
        expect_fail(buf, len, "bool");
        free(buf);
    }
    /* nested arrays: depth 8 ok, depth 9 rejected */
    for (int depth = 7; depth <= 9; depth++) {
        uint8_t raw[256];
        size_t p = 0;
        for (int i = 0; i < depth; i++) {
            put_u32(raw + p, INF_GGUF_ARRAY), p += 4;
            put_u64(raw + p, 1), p += 8;
        }
        put_u32(raw + p, INF_GGUF_UINT8), p += 4;
        put_u64(raw + p, 1), p += 8;
        raw[p++] = 1;
        inf_gguf_writer *w = inf_gguf_writer_new();
        assert_int_equal(inf_gguf_writer_set_raw(w, "x.n", INF_GGUF_ARRAY, raw, p), 0);
        size_t len;
        uint8_t *buf = build(w, &len);
        if (depth <= 8)
            assert_int_equal(open_copy(buf, len, NULL, 0), 0);
        else
            expect_fail(buf, len, "nested");
        free(buf);
    }
    /* a metadata-only file (no tensors) needs no data section padding */
    {
        inf_gguf_writer *w = inf_gguf_writer_new();
        assert_int_equal(inf_gguf_writer_set_str(w, "a", "b"), 0);
        size_t len;
        uint8_t *buf = build(w, &len);
        assert_int_equal(len, 24 + 8 + 1 + 4 + 8 + 1);
        assert_int_equal(open_copy(buf, len, NULL, 0), 0);
        free(buf);
    }
    assert_int_equal(open_copy(NULL, 0, NULL, 0), INF_EFORMAT);
}

/* ---- corruption loops ---- */

static uint64_t rng_state = 0x1234567887654321ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_random_flips(void **state) {
    (void)state;
    size_t len;
    uint8_t *base = small_file(&len);
    uint8_t *b = malloc(len);
    int opened = 0, failed = 0;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(b, base, len);
        int flips = 1 + (int)(rnd() % 4);
        for (int f = 0; f < flips; f++) {
            size_t pos = (size_t)(rnd() % len);
            switch (rnd() % 4) {
            case 0: b[pos] ^= (uint8_t)(1u << (rnd() % 8)); break;
            case 1: b[pos] = (uint8_t)rnd(); break;
            case 2: b[pos] = 0xff; break;
            default: /* an 8-byte field set to an extreme value */
                if (pos + 8 <= len) {
                    static const uint64_t ext[] = {0,
                                                   1,
                                                   UINT64_MAX,
                                                   (uint64_t)INT64_MAX,
                                                   (uint64_t)1 << 32,
                                                   (uint64_t)1 << 62};
                    put_u64(b + pos, ext[rnd() % INF_ARRAY_LEN(ext)]);
                }
            }
        }
        /* sometimes also truncate */
        size_t n = (rnd() % 8 == 0) ? (size_t)(rnd() % (len + 1)) : len;
        if (open_copy(b, n, NULL, 0) == 0)
            opened++;
        else
            failed++;
    }
    print_message("flips: %d opened, %d rejected\n", opened, failed);
    /* both outcomes must occur (flips in tensor data are harmless) */
    assert_true(opened > 0 && failed > 0);
    free(b);
    free(base);
}

/* ---- fixtures ---- */

static const char *fixtures_dir(void) {
    const char *f = getenv("INFERNEO_FIXTURES");
    return f && *f ? f : "../../shared/fixtures";
}

static void open_dir(const char *sub, bool expect_tensors, int *count) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", fixtures_dir(), sub);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 5, ".gguf")) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        inf_gguf *g;
        int err = inf_gguf_open(path, &g);
        if (err) fail_msg("%s: %s", path, inf_last_error());
        int et;
        int64_t nt;
        assert_int_equal(inf_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &nt), 0);
        assert_int_equal(et, INF_GGUF_STRING);
        assert_true(nt > 0);
        const char *s;
        size_t sl;
        assert_int_equal(inf_gguf_get_arr_str(g, "tokenizer.ggml.tokens", nt - 1, &s, &sl), 0);
        assert_int_equal(inf_gguf_get_str(g, "general.architecture", &s, &sl), 0);
        if (expect_tensors) assert_true(inf_gguf_n_tensors(g) > 0);
        for (int64_t i = 0; i < inf_gguf_n_tensors(g); i++) {
            const inf_gguf_tensor *t = inf_gguf_tensor_at(g, i);
            assert_non_null(inf_gguf_type_name(t->type));
        }
        inf_gguf_close(g);
        (*count)++;
    }
    closedir(d);
}

static void test_fixtures(void **state) {
    (void)state;
    int count = 0;
    open_dir("models", true, &count);
    open_dir("vocab", false, &count);
    print_message("fixtures opened: %d\n", count);
    if (count == 0) skip();
    assert_true(count >= 12);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),    cmocka_unit_test(test_write_file_cb),
        cmocka_unit_test(test_malformed),    cmocka_unit_test(test_alignment_and_bool),
        cmocka_unit_test(test_random_flips), cmocka_unit_test(test_fixtures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
