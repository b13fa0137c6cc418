/*
 * test_tokenizer.c — the tokenizer against llama.cpp's vectors and on synthetic vocabularies:
 *   - each fixtures/vocab/ggml-vocab-NAME.gguf: encode each .inp string (no BOS, no special
 * parsing), compare with .out, decode back to the input; stream-detokenize with BOS and compare
 * with decode;
 *   - a small SPM vocabulary written with the GGUF writer: score-ordered merges, byte fallback,
 *     special-token partition (user-defined always, control only with parse_special, longest
 *     first), pieces, decode's leading-space rule, EOG;
 *   - the streaming detokenizer on multi-byte characters split across tokens and invalid bytes;
 *   - hostile metadata (wrong types, short arrays, bad ids) fails cleanly or is ignored as
 *     llama.cpp ignores it; a long input encodes quickly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above first */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "tokenizer/tokenizer.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static const char *fixtures_dir(void) {
    static char buf[1024];
    const char *f = getenv("INFERNEO_FIXTURES");
    if (f && *f) return f;
    const char *root = getenv("INFERNEO_ROOT");
    snprintf(buf, sizeof buf, "%s/../shared/fixtures", root && *root ? root : "..");
    return buf;
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    *len = fread(b, 1, (size_t)n, f);
    b[*len] = 0;
    fclose(f);
    return b;
}

static inf_tokenizer *load_fixture(const char *rel, inf_gguf **g) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", fixtures_dir(), rel);
    int rc = inf_gguf_open(path, g);
    if (rc) fprintf(stderr, "%s: %s\n", path, inf_last_error());
    assert_int_equal(rc, 0);
    inf_tokenizer *t = NULL;
    rc = inf_tokenizer_load(*g, &t);
    if (rc) fprintf(stderr, "%s: %s\n", path, inf_last_error());
    assert_int_equal(rc, 0);
    return t;
}

static void expect_ids(const inf_tokenizer *t, const char *text, bool add, bool parse,
                       const int32_t *want, int64_t n_want) {
    int32_t *ids = NULL;
    int64_t n = -1;
    assert_int_equal(inf_tokenizer_encode(t, text, strlen(text), add, parse, &ids, &n), 0);
    if (n != n_want || (n > 0 && memcmp(ids, want, (size_t)n * sizeof *ids))) {
        fprintf(stderr, "encode '%s': got", text);
        for (int64_t i = 0; i < n; i++)
            fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, ", want");
        for (int64_t i = 0; i < n_want; i++)
            fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
        fail();
    }
    free(ids);
}

static void expect_decode(const inf_tokenizer *t, const int32_t *ids, int64_t n, bool render,
                          const char *want, size_t want_len) {
    char *s = NULL;
    size_t len = 0;
    assert_int_equal(inf_tokenizer_decode(t, ids, n, render, &s, &len), 0);
    assert_int_equal(len, want_len);
    assert_memory_equal(s, want, want_len);
    assert_int_equal(s[len], 0);
    free(s);
}

/* Stream-decodes ids through the public detokenizer into one string (new). */
static char *stream_all(inf_model *m, const int32_t *ids, int64_t n, size_t *len) {
    inf_detok *d = NULL;
    assert_int_equal(inf_detok_new(m, &d), 0);
    size_t cap = 64, l = 0;
    char *out = malloc(cap);
    for (int64_t i = 0; i <= n; i++) {
        const char *s;
        size_t sl;
        if (i < n)
            assert_int_equal(inf_detok_push(d, ids[i], &s, &sl), 0);
        else
            assert_int_equal(inf_detok_flush(d, &s, &sl), 0);
        while (l + sl + 1 > cap)
            out = realloc(out, cap *= 2);
        memcpy(out + l, s, sl);
        l += sl;
    }
    out[l] = 0;
    inf_detok_free(d);
    *len = l;
    return out;
}

/* ---- llama.cpp vectors ------------------------------------------------------------------ */

static void run_vocab(const char *name) {
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", name);
    inf_gguf *g = NULL;
    inf_tokenizer *t = load_fixture(rel, &g);
    inf_model m = {0};
    m.tok = t;

    size_t ilen, olen;
    snprintf(path, sizeof path, "%s/%s.inp", fixtures_dir(), rel);
    char *inp = read_all(path, &ilen);
    snprintf(path, sizeof path, "%s/%s.out", fixtures_dir(), rel);
    char *outs = read_all(path, &olen);
    assert_non_null(inp);
    assert_non_null(outs);

    const char *sep = "\n__ggml_vocab_test__\n";
    char *s = inp, *o = outs;
    int cases = 0, fails = 0;
    for (char *e; (e = strstr(s, sep)); s = e + strlen(sep)) {
        char *oe = strchr(o, '\n');
        assert_non_null(oe);
        size_t len = (size_t)(e - s);
        int32_t *ids = NULL;
        int64_t n = 0;
        assert_int_equal(inf_tokenizer_encode(t, s, len, false, false, &ids, &n), 0);
        /* expected line: " id id id" */
        char *p = o;
        bool ok = true;
        for (int64_t i = 0; i < n && ok; i++) {
            char *end;
            long v = strtol(p, &end, 10);
            ok = end != p && v == ids[i];
            p = end;
        }
        ok = ok && p == oe;
        if (!ok) {
            fprintf(stderr, "%s case %d '%.*s': got", name, cases, (int)len, s);
            for (int64_t i = 0; i < n; i++)
                fprintf(stderr, " %d", ids[i]);
            fprintf(stderr, "\n  want%.*s\n", (int)(oe - o), o);
            fails++;
        }
        /* round trip */
        char *dec = NULL;
        size_t dl = 0;
        assert_int_equal(inf_tokenizer_decode(t, ids, n, false, &dec, &dl), 0);
        if (dl != len || memcmp(dec, s, len)) {
            fprintf(stderr, "%s case %d: decode gives '%s'\n", name, cases, dec);
            fails++;
        }
        free(dec);
        free(ids);
        /* with BOS: the stream equals the whole decode */
        assert_int_equal(inf_tokenizer_encode(t, s, len, true, false, &ids, &n), 0);
        assert_int_equal(inf_tokenizer_decode(t, ids, n, false, &dec, &dl), 0);
        size_t sl;
        char *st = stream_all(&m, ids, n, &sl);
        if (sl != dl || memcmp(st, dec, dl)) {
            fprintf(stderr, "%s case %d: stream '%s' != decode '%s'\n", name, cases, st, dec);
            fails++;
        }
        free(st);
        free(dec);
        free(ids);
        o = oe + 1;
        cases++;
    }
    assert_true(cases >= 40);
    assert_int_equal(fails, 0);
    free(inp);
    free(outs);
    inf_tokenizer_free(t);
    inf_gguf_close(g);
}

static void test_vocab_llama_spm(void **st) {
    (void)st;
    run_vocab("llama-spm");
}
static void test_vocab_phi3(void **st) {
    (void)st;
    run_vocab("phi-3");
}
static void test_vocab_gpt2(void **st) {
    (void)st;
    run_vocab("gpt-2");
}
static void test_vocab_falcon(void **st) {
    (void)st;
    run_vocab("falcon");
}
static void test_vocab_deepseek_coder(void **st) {
    (void)st;
    run_vocab("deepseek-coder");
}

/* ---- synthetic SPM vocabulary ----------------------------------------------------------- */

enum {
    T_UNK = 0,
    T_BOS = 1,
    T_EOS = 2,
    T_BYTE0 = 3, /* <0x00>.. <0xFF> = 3..258 */
    T_SP = 259,
    T_A,
    T_B,
    T_AB,
    T_SPA,
    T_SPAB,
    T_UD,
    T_CTL,
    T_IMEND,
    T_C,
    T_BC,
    T_DUD,
    T_N
};

typedef struct synth_opts {
    const char *model;
    bool short_types, str_scores, bad_bos, no_model, empty_token;
} synth_opts;

static void *synth_vocab(const synth_opts *o, size_t *len) {
    static char bytes[256][8];
    const char *tok[T_N];
    float score[T_N];
    int32_t type[T_N];
    for (int i = 0; i < T_N; i++)
        score[i] = 0, type[i] = 1;
    tok[T_UNK] = "<unk>", type[T_UNK] = 2;
    tok[T_BOS] = "<s>", type[T_BOS] = 3;
    tok[T_EOS] = "</s>", type[T_EOS] = 3;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tok[T_BYTE0 + b] = bytes[b];
        type[T_BYTE0 + b] = 6;
    }
    tok[T_SP] = "\xe2\x96\x81", score[T_SP] = -1;
    tok[T_A] = "a", score[T_A] = -2;
    tok[T_B] = "b", score[T_B] = -2;
    tok[T_AB] = "ab", score[T_AB] = -1.5f;
    tok[T_SPA] = "\xe2\x96\x81"
                 "a",
    score[T_SPA] = -1.2f;
    tok[T_SPAB] = "\xe2\x96\x81"
                  "ab",
    score[T_SPAB] = -0.5f;
    tok[T_UD] = "<|ud|>", type[T_UD] = 4;
    tok[T_CTL] = "<|ctl|>", type[T_CTL] = 3;
    tok[T_IMEND] = "<|im_end|>", type[T_IMEND] = 3;
    tok[T_C] = "c", score[T_C] = -3;
    tok[T_BC] = "bc", score[T_BC] = -0.1f;
    tok[T_DUD] = "d|>", type[T_DUD] = 4;
    if (o->empty_token) tok[T_C] = "";

    inf_gguf_writer *w = inf_gguf_writer_new();
    assert_non_null(w);
    if (!o->no_model)
        assert_int_equal(
            inf_gguf_writer_set_str(w, "tokenizer.ggml.model", o->model ? o->model : "llama"), 0);
    assert_int_equal(inf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tok, T_N), 0);
    if (o->str_scores)
        assert_int_equal(inf_gguf_writer_set_arr_str(w, "tokenizer.ggml.scores", tok, T_N), 0);
    else
        assert_int_equal(
            inf_gguf_writer_set_arr(w, "tokenizer.ggml.scores", INF_GGUF_FLOAT32, score, T_N), 0);
    assert_int_equal(inf_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", INF_GGUF_INT32, type,
                                             o->short_types ? T_N - 1 : T_N),
                     0);
    if (o->bad_bos) {
        assert_int_equal(inf_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 4294967295u), 0);
        assert_int_equal(inf_gguf_writer_set_i32(w, "tokenizer.ggml.eos_token_id", T_N), 0);
    }
    void *buf = NULL;
    assert_int_equal(inf_gguf_writer_write_mem(w, &buf, len), 0);
    inf_gguf_writer_free(w);
    return buf;
}

static int synth_load(const synth_opts *o, inf_tokenizer **t, void **buf) {
    size_t len;
    *buf = synth_vocab(o, &len);
    inf_gguf *g = NULL;
    assert_int_equal(inf_gguf_open_buffer(*buf, len, &g), 0);
    int rc = inf_tokenizer_load(g, t);
    inf_gguf_close(g); /* the tokenizer keeps its own copies */
    return rc;
}

static void test_spm_synthetic(void **st) {
    (void)st;
    synth_opts o = {0};
    inf_tokenizer *t = NULL;
    void *buf;
    assert_int_equal(synth_load(&o, &t, &buf), 0);
    free(buf); /* nothing may still point into the GGUF */
    assert_int_equal(inf_tokenizer_kind(t), INF_TOK_SPM);
    assert_int_equal(inf_tokenizer_n_vocab(t), T_N);
    assert_int_equal(inf_tokenizer_bos(t), T_BOS);
    assert_int_equal(inf_tokenizer_eos(t), T_EOS);
    assert_true(inf_tokenizer_add_bos(t));
    assert_false(inf_tokenizer_add_eos(t));
    assert_int_equal(inf_tokenizer_find(t, "ab", 2), T_AB);
    assert_int_equal(inf_tokenizer_find(t, "zz", 2), -1);

    /* merges by score: "▁ab" = (▁a)+b then ▁ab; "abc": bc outranks ab */
    expect_ids(t, "ab", false, false, (int32_t[]){T_SPAB}, 1);
    expect_ids(t, "ab", true, false, (int32_t[]){T_BOS, T_SPAB}, 2);
    expect_ids(t, "abc", false, false, (int32_t[]){T_SPA, T_BC}, 2);
    expect_ids(t, "", true, false, (int32_t[]){T_BOS}, 1);
    expect_ids(t, "", false, false, NULL, 0);
    /* whitespace runs are kept; byte fallback for unknown characters */
    expect_ids(t, "a  b", false, false, (int32_t[]){T_SPA, T_SP, T_SP, T_B}, 4);
    expect_ids(t, "\xc3\xa9", false, false, (int32_t[]){T_SP, T_BYTE0 + 0xc3, T_BYTE0 + 0xa9}, 3);
    /* invalid UTF-8 bytes fall back too */
    expect_ids(t, "\xff", false, false, (int32_t[]){T_SP, T_BYTE0 + 0xff}, 2);

    /* partition: user-defined always, control only with parse_special, longest text first,
     * a space prefix again after each special token */
    expect_ids(t, "a<|ud|>b", false, false, (int32_t[]){T_SPA, T_UD, T_SP, T_B}, 4);
    expect_ids(t, "a<|ctl|>b", false, true, (int32_t[]){T_SPA, T_CTL, T_SP, T_B}, 4);
    {
        int32_t *ids;
        int64_t n;
        assert_int_equal(inf_tokenizer_encode(t, "a<|ctl|>b", 9, false, false, &ids, &n), 0);
        for (int64_t i = 0; i < n; i++)
            assert_int_not_equal(ids[i], T_CTL);
        assert_true(n > 4); /* spelled out with byte tokens */
        free(ids);
    }
    expect_ids(t, "<|ud|>d|>", false, false, (int32_t[]){T_UD, T_DUD}, 2);
    expect_ids(t, "<|ud|>", false, false, (int32_t[]){T_UD}, 1);
    expect_ids(t, "<|ctl|><|ctl|>", false, true, (int32_t[]){T_CTL, T_CTL}, 2);

    /* pieces */
    char pb[32];
    assert_int_equal(inf_tokenizer_piece(t, T_SPAB, false, pb, sizeof pb), 3);
    assert_memory_equal(pb, " ab", 3);
    assert_int_equal(inf_tokenizer_piece(t, T_BYTE0 + 0x41, false, pb, sizeof pb), 1);
    assert_int_equal(pb[0], 'A');
    assert_int_equal(inf_tokenizer_piece(t, T_CTL, false, pb, sizeof pb), 0);
    assert_int_equal(inf_tokenizer_piece(t, T_CTL, true, pb, sizeof pb), 7);
    assert_memory_equal(pb, "<|ctl|>", 7);
    assert_int_equal(inf_tokenizer_piece(t, T_UD, false, pb, sizeof pb), 6);
    assert_int_equal(inf_tokenizer_piece(t, T_SPAB, false, pb, 1), 3); /* snprintf-like */
    assert_true(inf_tokenizer_piece(t, T_N, false, pb, sizeof pb) < 0);
    assert_true(inf_tokenizer_piece(t, -1, false, pb, sizeof pb) < 0);

    /* decode: the first piece's space goes at the start or right after a leading BOS */
    expect_decode(t, (int32_t[]){T_BOS, T_SPAB, T_SPA}, 3, false, "ab a", 4);
    expect_decode(t, (int32_t[]){T_BOS, T_SPAB}, 2, true, "<s>ab", 5);
    expect_decode(t, (int32_t[]){T_SPAB, T_SPAB}, 2, false, "ab ab", 5);
    expect_decode(t, (int32_t[]){T_SP, T_BYTE0 + 0xc3, T_BYTE0 + 0xa9}, 3, false, "\xc3\xa9", 2);
    expect_decode(t, (int32_t[]){T_SPA, T_CTL, T_SP, T_B}, 4, false, "a b", 3);
    expect_decode(t, (int32_t[]){T_SPA, T_CTL, T_SP, T_B}, 4, true, "a<|ctl|> b", 10);
    expect_decode(t, NULL, 0, false, "", 0);
    {
        char *s = NULL;
        size_t l;
        assert_true(inf_tokenizer_decode(t, (int32_t[]){T_A, 99999}, 2, false, &s, &l) < 0);
        assert_null(s);
    }

    /* end of generation: EOS and the <|im_end|> text */
    assert_true(inf_tokenizer_is_eog(t, T_EOS));
    assert_true(inf_tokenizer_is_eog(t, T_IMEND));
    assert_int_equal(inf_tokenizer_eot(t), T_IMEND);
    assert_false(inf_tokenizer_is_eog(t, T_UD));
    assert_false(inf_tokenizer_is_eog(t, -5));
    assert_true(inf_tokenizer_is_control(t, T_CTL));
    assert_false(inf_tokenizer_is_control(t, T_A));
    inf_tokenizer_free(t);
}

/* ---- streaming detokenizer -------------------------------------------------------------- */

static void push_expect(inf_detok *d, int32_t tok, const char *want) {
    const char *s;
    size_t l;
    assert_int_equal(inf_detok_push(d, tok, &s, &l), 0);
    assert_int_equal(l, strlen(want));
    assert_memory_equal(s, want, l);
}

static void flush_expect(inf_detok *d, const char *want) {
    const char *s;
    size_t l;
    assert_int_equal(inf_detok_flush(d, &s, &l), 0);
    assert_int_equal(l, strlen(want));
    assert_memory_equal(s, want, l);
}

static void test_detok_stream(void **st) {
    (void)st;
    synth_opts o = {0};
    inf_tokenizer *t = NULL;
    void *buf;
    assert_int_equal(synth_load(&o, &t, &buf), 0);
    free(buf);
    inf_model m = {0};
    m.tok = t;
    inf_detok *d = NULL;

    /* 日 = E6 97 A5 split over three byte tokens: released only when complete */
    assert_int_equal(inf_detok_new(&m, &d), 0);
    push_expect(d, T_SPA, " a"); /* no BOS first: a continuation keeps its space */
    push_expect(d, T_BYTE0 + 0xe6, "");
    push_expect(d, T_BYTE0 + 0x97, "");
    push_expect(d, T_BYTE0 + 0xa5, "\xe6\x97\xa5");
    push_expect(d, T_CTL, ""); /* control tokens are not rendered */
    /* 4-byte character split 1 + 3, then a lone continuation byte */
    push_expect(d, T_BYTE0 + 0xf0, "");
    push_expect(d, T_BYTE0 + 0x9f, "");
    push_expect(d, T_BYTE0 + 0x98, "");
    push_expect(d, T_BYTE0 + 0x80, "\xf0\x9f\x98\x80");
    push_expect(d, T_BYTE0 + 0x80, "\xef\xbf\xbd");
    push_expect(d, T_BYTE0 + 0xff, "\xef\xbf\xbd");
    /* a surrogate's bytes (ED A0): each is a maximal ill-formed subpart, so two U+FFFD */
    push_expect(d, T_BYTE0 + 0xed, "");
    push_expect(d, T_BYTE0 + 0xa0, "\xef\xbf\xbd\xef\xbf\xbd");
    /* an interrupted sequence: one U+FFFD, then the byte that broke it */
    push_expect(d, T_BYTE0 + 0xe6, "");
    push_expect(d, T_BYTE0 + 0x41,
                "\xef\xbf\xbd"
                "A");
    /* incomplete tail at the end becomes one U+FFFD at flush */
    push_expect(d, T_BYTE0 + 0xe6, "");
    push_expect(d, T_BYTE0 + 0x97, "");
    flush_expect(d, "\xef\xbf\xbd");
    flush_expect(d, "");
    assert_true(inf_detok_push(d, T_N, &(const char *){0}, &(size_t){0}) < 0);
    inf_detok_free(d);

    /* BOS first: the stream decodes a whole sequence, the first space goes */
    assert_int_equal(inf_detok_new(&m, &d), 0);
    push_expect(d, T_BOS, "");
    push_expect(d, T_SPAB, "ab");
    push_expect(d, T_SPAB, " ab");
    flush_expect(d, "");
    inf_detok_free(d);

    /* public wrappers */
    int32_t *ids = NULL;
    int64_t n = 0;
    assert_int_equal(inf_tokenize(&m, "ab", 2, true, false, &ids, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], T_BOS);
    char *txt = NULL;
    size_t tl = 0;
    assert_int_equal(inf_detokenize(&m, ids, n, true, &txt, &tl), 0);
    assert_string_equal(txt, "ab");
    inf_free(txt);
    assert_int_equal(inf_detokenize(&m, ids, n, false, &txt, &tl), 0);
    assert_string_equal(txt, "<s>ab");
    inf_free(txt);
    inf_free(ids);
    char pb[16];
    assert_int_equal(inf_token_to_piece(&m, T_SPAB, false, pb, sizeof pb), 3);
    assert_memory_equal(pb, " ab", 3);
    assert_int_equal(inf_token_to_piece(&m, T_BOS, false, pb, sizeof pb), 0);
    assert_int_equal(inf_token_to_piece(&m, T_BOS, true, NULL, 0), 3);
    assert_true(inf_token_to_piece(&m, T_N, false, pb, sizeof pb) < 0);
    assert_true(inf_token_is_eog(&m, T_EOS));
    assert_false(inf_token_is_eog(&m, T_A));
    assert_false(inf_token_is_eog(NULL, T_EOS));
    inf_model none = {0};
    assert_true(inf_tokenize(&none, "a", 1, false, false, &ids, &n) < 0);
    assert_true(inf_detok_new(&none, &d) < 0);
    inf_tokenizer_free(t);
}

/* ---- hostile metadata ------------------------------------------------------------------- */

static void test_bad_metadata(void **st) {
    (void)st;
    inf_tokenizer *t = NULL;
    void *buf;
    synth_opts o = {.model = "rwkv"};
    assert_int_equal(synth_load(&o, &t, &buf), INF_EUNSUPPORTED);
    assert_null(t);
    free(buf);
    o = (synth_opts){.no_model = true};
    assert_int_equal(synth_load(&o, &t, &buf), INF_EFORMAT);
    free(buf);
    o = (synth_opts){.short_types = true};
    assert_int_equal(synth_load(&o, &t, &buf), INF_EFORMAT);
    assert_non_null(strstr(inf_last_error(), "token_type"));
    free(buf);
    o = (synth_opts){.str_scores = true};
    assert_int_equal(synth_load(&o, &t, &buf), INF_EFORMAT);
    free(buf);
    /* gpt2 without merges */
    o = (synth_opts){.model = "gpt2"};
    assert_int_equal(synth_load(&o, &t, &buf), INF_EFORMAT);
    assert_non_null(strstr(inf_last_error(), "merges"));
    free(buf);
    /* out-of-range special ids are ignored (llama.cpp keeps its defaults) */
    o = (synth_opts){.bad_bos = true};
    assert_int_equal(synth_load(&o, &t, &buf), 0);
    assert_int_equal(inf_tokenizer_bos(t), T_BOS);
    assert_int_equal(inf_tokenizer_eos(t), T_EOS);
    inf_tokenizer_free(t);
    free(buf);
    /* an empty token text gets a placeholder name instead of colliding */
    o = (synth_opts){.empty_token = true};
    assert_int_equal(synth_load(&o, &t, &buf), 0);
    size_t l;
    const char *s = inf_tokenizer_text(t, T_C, &l);
    assert_non_null(s);
    assert_true(l > 0);
    inf_tokenizer_free(t);
    free(buf);
}

/* ---- BPE details on the gpt-2 vocabulary ------------------------------------------------ */

static void test_bpe_gpt2(void **st) {
    (void)st;
    inf_gguf *g = NULL;
    inf_tokenizer *t = load_fixture("vocab/ggml-vocab-gpt-2.gguf", &g);
    assert_int_equal(inf_tokenizer_kind(t), INF_TOK_BPE);
    assert_false(inf_tokenizer_add_bos(t));
    assert_true(inf_tokenizer_is_eog(t, 50256));
    int32_t id = inf_tokenizer_find(t, "\xc4\xa0the", 5); /* "Ġthe" */
    assert_true(id >= 0);
    char pb[16];
    assert_int_equal(inf_tokenizer_piece(t, id, false, pb, sizeof pb), 4);
    assert_memory_equal(pb, " the", 4);
    /* <|endoftext|> is one token only with parse_special */
    expect_ids(t, "<|endoftext|>", false, true, (int32_t[]){50256}, 1);
    int32_t *ids;
    int64_t n;
    assert_int_equal(inf_tokenizer_encode(t, "<|endoftext|>", 13, false, false, &ids, &n), 0);
    assert_true(n > 1);
    free(ids);
    /* add_special does not add BOS for gpt-2 */
    assert_int_equal(inf_tokenizer_encode(t, "Hello", 5, true, false, &ids, &n), 0);
    assert_int_equal(n, 1);
    free(ids);
    /* invalid UTF-8 and NUL bytes tokenize without trouble and decode back to the same bytes */
    assert_int_equal(inf_tokenizer_encode(t, "a\xff\0b", 4, false, false, &ids, &n), 0);
    char *dec;
    size_t dl;
    assert_int_equal(inf_tokenizer_decode(t, ids, n, false, &dec, &dl), 0);
    assert_int_equal(dl, 4);
    assert_memory_equal(dec, "a\xff\0b", 4);
    free(dec);
    free(ids);
    inf_tokenizer_free(t);
    inf_gguf_close(g);
}

/* ---- every pre-tokenizer compiles and splits ------------------------------------------ */

/* A byte-level BPE vocabulary: the 256 byte stand-ins, "Ġt", "he", "Ġthe", <|endoftext|>. */
static void *synth_bpe(const char *pre, size_t *len) {
    static char chars[256][4];
    const char *tok[260];
    int32_t type[260];
    int k = 0;
    for (int b = 0; b < 256; b++) {
        bool self = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
        unsigned cp = self ? (unsigned)b : 256u + (unsigned)k++;
        if (cp < 0x80) {
            chars[b][0] = (char)cp, chars[b][1] = 0;
        } else {
            chars[b][0] = (char)(0xc0 | (cp >> 6)), chars[b][1] = (char)(0x80 | (cp & 0x3f));
            chars[b][2] = 0;
        }
        tok[b] = chars[b];
        type[b] = 1;
    }
    tok[256] = "\xc4\xa0t", tok[257] = "he", tok[258] = "\xc4\xa0the", tok[259] = "<|endoftext|>";
    type[256] = type[257] = type[258] = 1, type[259] = 3;
    const char *merges[] = {"\xc4\xa0 t", "h e", "\xc4\xa0t he"};
    inf_gguf_writer *w = inf_gguf_writer_new();
    assert_int_equal(inf_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2"), 0);
    if (pre) assert_int_equal(inf_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre), 0);
    assert_int_equal(inf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tok, 260), 0);
    assert_int_equal(
        inf_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", INF_GGUF_INT32, type, 260), 0);
    assert_int_equal(inf_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 3), 0);
    assert_int_equal(inf_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 259), 0);
    assert_int_equal(inf_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 259), 0);
    void *buf = NULL;
    assert_int_equal(inf_gguf_writer_write_mem(w, &buf, len), 0);
    inf_gguf_writer_free(w);
    return buf;
}

/* llama.cpp refuses a vocabulary whose pre-tokenizer it does not know; so do we, with a
 * one-line message that quotes the (sanitized) name. */
static void test_unknown_pre_tokenizer_rejected(void **st) {
    (void)st;
    static const char *const bad[] = {"no-such-pre", "bert\nx", "superbpe"};
    for (size_t i = 0; i < INF_ARRAY_LEN(bad); i++) {
        size_t len;
        void *buf = synth_bpe(bad[i], &len);
        inf_gguf *g = NULL;
        assert_int_equal(inf_gguf_open_buffer(buf, len, &g), 0);
        inf_tokenizer *t = NULL;
        assert_int_equal(inf_tokenizer_load(g, &t), INF_EUNSUPPORTED);
        assert_null(t);
        assert_non_null(strstr(inf_last_error(), "pre-tokenizer"));
        assert_null(strchr(inf_last_error(), '\n'));
        inf_gguf_close(g);
        free(buf);
    }
}

static void test_pre_tokenizers(void **st) {
    (void)st;
    static const char *const pres[] = {
        NULL,           "default",        "llama3",      "llama-bpe", "dbrx",       "chatglm-bpe",
        "deepseek-llm", "deepseek-coder", "deepseek-v3", "falcon",    "starcoder",  "refact",
        "smollm",       "gpt-2",          "gpt2",        "qwen2",     "stablelm2",  "poro-chat",
        "viking",       "tekken",         "chameleon",   "gpt-4o",    "bailingmoe", "seed-coder",
        "grok-2",
    };
    const char *text =
        "the  cat's 12345 \xe6\x97\xa5\xe6\x9c\xac, \xc3\xa9t\xc3\xa9!\n\n\tsaw the end "
        "IMGIMGABZ <sentinel:3> \xff\xfe";
    size_t tlen = strlen(text);
    for (size_t i = 0; i < INF_ARRAY_LEN(pres); i++) {
        size_t len;
        void *buf = synth_bpe(pres[i], &len);
        inf_gguf *g = NULL;
        assert_int_equal(inf_gguf_open_buffer(buf, len, &g), 0);
        inf_tokenizer *t = NULL;
        int rc = inf_tokenizer_load(g, &t);
        if (rc) fprintf(stderr, "pre %s: %s\n", pres[i] ? pres[i] : "(none)", inf_last_error());
        assert_int_equal(rc, 0);
        inf_gguf_close(g);
        free(buf);
        assert_string_equal(inf_tokenizer_pre(t), pres[i] ? pres[i] : "default");
        /* llama3-style names add BOS by default, chatglm has no default BOS */
        bool llama3 = pres[i] && (!strcmp(pres[i], "llama3") || !strcmp(pres[i], "llama-bpe") ||
                                  !strcmp(pres[i], "tekken") || !strcmp(pres[i], "chameleon"));
        assert_int_equal(inf_tokenizer_add_bos(t), llama3);
        int32_t *ids;
        int64_t n;
        assert_int_equal(inf_tokenizer_encode(t, text, tlen, false, false, &ids, &n), 0);
        char *dec;
        size_t dl;
        assert_int_equal(inf_tokenizer_decode(t, ids, n, false, &dec, &dl), 0);
        /* every byte comes back, the two invalid ones included */
        assert_int_equal(dl, tlen);
        assert_memory_equal(dec, text, tlen);
        free(dec);
        /* the merges apply: " the" is one token for the GPT-2-like splitters */
        if (pres[i] && !strcmp(pres[i], "gpt-2")) {
            bool found = false;
            for (int64_t j = 0; j < n; j++)
                found |= ids[j] == 258;
            assert_true(found);
        }
        free(ids);
        assert_int_equal(inf_tokenizer_encode(t, "x<|endoftext|>", 14, true, true, &ids, &n), 0);
        assert_int_equal(ids[n - 1], 259);
        free(ids);
        /* long runs must not make the regexes backtrack quadratically */
        size_t bl = 48 * 1024, p = 0;
        char *big = malloc(bl);
        while (p < bl) {
            size_t run = INF_MIN(bl - p, (size_t)16000);
            memset(big + p, p % 3 == 0 ? ' ' : p % 3 == 1 ? 'a' : '7', run);
            p += run;
            if (p < bl) {
                big[p] = "\n\tx"[p % 3];
                p++;
            }
        }
        double t0 = inf__time_s();
        assert_int_equal(inf_tokenizer_encode(t, big, bl, false, false, &ids, &n), 0);
        double dt = inf__time_s() - t0;
        if (dt > 2.0) {
            fprintf(stderr, "pre %s: %.2f s for %zu bytes\n", pres[i] ? pres[i] : "-", dt, bl);
            fail();
        }
        free(ids);
        free(big);
        inf_tokenizer_free(t);
    }
}

/* ---- speed: long inputs stay near-linear ------------------------------------------------ */

static void test_long_input(void **st) {
    (void)st;
    const char *vocabs[] = {"vocab/ggml-vocab-llama-spm.gguf", "vocab/ggml-vocab-gpt-2.gguf"};
    size_t n = 64 * 1024;
    char *text = malloc(n);
    for (int v = 0; v < 2; v++) {
        inf_gguf *g = NULL;
        inf_tokenizer *t = load_fixture(vocabs[v], &g);
        for (int kind = 0; kind < 3; kind++) {
            for (size_t i = 0; i < n; i++)
                text[i] = kind == 0   ? "the quick brown fox, 12345!\n"[i % 28]
                          : kind == 1 ? 'a'
                                      : " \t\n"[i % 3];
            double t0 = inf__time_s();
            int32_t *ids;
            int64_t ni;
            assert_int_equal(inf_tokenizer_encode(t, text, n, true, true, &ids, &ni), 0);
            double dt = inf__time_s() - t0;
            assert_true(ni > 0);
            free(ids);
            if (dt > 2.0) {
                fprintf(stderr, "%s kind %d: %.3f s for %zu bytes\n", vocabs[v], kind, dt, n);
                fail();
            }
        }
        inf_tokenizer_free(t);
        inf_gguf_close(g);
    }
    free(text);
}

/* ---- random inputs: never fail on bytes, round-trip valid UTF-8 ------------------------- */

static void test_random_inputs(void **st) {
    (void)st;
    const char *vocabs[] = {"vocab/ggml-vocab-llama-spm.gguf", "vocab/ggml-vocab-gpt-2.gguf",
                            "vocab/ggml-vocab-falcon.gguf", "vocab/ggml-vocab-phi-3.gguf"};
    /* pieces of text: ASCII, whitespace runs, multi-byte characters, numbers, contractions */
    static const char *const atoms[] = {
        "a",
        "Z",
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "'s",
        "'LL",
        "1",
        "123456",
        ".",
        "!?",
        "--",
        "\xc3\xa9",
        "\xe6\x97\xa5",
        "\xf0\x9f\x98\x80",
        "\xcc\x81",
        "\xe2\x80\x83",
        "\xd0\x96",
        "Hello",
        " world",
        "\xef\xbc\x8c",
        "\xe0\xa4\xa8\xe0\xa4\xbf",
        "<",
        "|>",
    };
    static const char *const junk[] = {
        "\xff", "\x80",          "\xc3", "\xe6\x97", "\xed\xa0\x80", "\xc0\x80", "\xf7\xbf\xbf\xbf",
        "<s>",  "<|endoftext|>", "</s>", "\0"};
    inf_rng rng;
    inf__rng_seed(&rng, 1234);
    char text[512];
    for (size_t v = 0; v < INF_ARRAY_LEN(vocabs); v++) {
        inf_gguf *g = NULL;
        inf_tokenizer *t = load_fixture(vocabs[v], &g);
        for (int iter = 0; iter < 300; iter++) {
            bool hostile = iter % 3 == 0;
            size_t n = 0;
            int parts = 1 + (int)(inf__rng_next(&rng) % 24);
            for (int k = 0; k < parts; k++) {
                const char *a;
                size_t al;
                if (hostile && inf__rng_next(&rng) % 3 == 0) {
                    size_t j = inf__rng_next(&rng) % INF_ARRAY_LEN(junk);
                    a = junk[j];
                    al = j == INF_ARRAY_LEN(junk) - 1 ? 1 : strlen(a);
                } else {
                    a = atoms[inf__rng_next(&rng) % INF_ARRAY_LEN(atoms)];
                    al = strlen(a);
                }
                if (n + al > sizeof text) break;
                memcpy(text + n, a, al);
                n += al;
            }
            for (int mode = 0; mode < 4; mode++) {
                int32_t *ids = NULL;
                int64_t ni = 0;
                assert_int_equal(
                    inf_tokenizer_encode(t, text, n, mode & 1, (mode & 2) != 0, &ids, &ni), 0);
                for (int64_t i = 0; i < ni; i++)
                    assert_true(ids[i] >= 0 && ids[i] < inf_tokenizer_n_vocab(t));
                char *dec = NULL;
                size_t dl = 0;
                assert_int_equal(inf_tokenizer_decode(t, ids, ni, true, &dec, &dl), 0);
                if (!hostile && mode == 0 && (dl != n || memcmp(dec, text, n))) {
                    fprintf(stderr, "%s: '%.*s' decodes as '%s'\n", vocabs[v], (int)n, text, dec);
                    fail();
                }
                free(dec);
                free(ids);
            }
        }
        inf_tokenizer_free(t);
        inf_gguf_close(g);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vocab_llama_spm),
        cmocka_unit_test(test_vocab_phi3),
        cmocka_unit_test(test_vocab_gpt2),
        cmocka_unit_test(test_vocab_falcon),
        cmocka_unit_test(test_vocab_deepseek_coder),
        cmocka_unit_test(test_spm_synthetic),
        cmocka_unit_test(test_detok_stream),
        cmocka_unit_test(test_bad_metadata),
        cmocka_unit_test(test_bpe_gpt2),
        cmocka_unit_test(test_long_input),
        cmocka_unit_test(test_random_inputs),
        cmocka_unit_test(test_pre_tokenizers),
        cmocka_unit_test(test_unknown_pre_tokenizer_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
