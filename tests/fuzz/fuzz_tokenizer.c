/*
 * fuzz_tokenizer.c — libFuzzer target: tokenizer round trip on arbitrary bytes with the fixture
 * vocabularies (../shared/fixtures/vocab/ggml-vocab-*.gguf, or the folder in
 * $INFERNEO_FUZZ_VOCAB_DIR): SentencePiece (llama-spm, phi-3) and byte-level BPE (gpt-2,
 * falcon, deepseek-coder).
 *
 * Input: byte 0 picks the vocabulary and the options (parse_special, add_special); the rest is
 * the text. Checked on every input: encode succeeds on any bytes, every id is in range, decode
 * succeeds. decode(encode(x)) == x byte for byte when no special token was asked for or matched
 * (user-defined tokens such as phi-3's "</s>" are matched in any text, as in llama.cpp), the
 * vocabulary has a token for each byte of x (falcon lacks 0x0B and 0x1E: such bytes are
 * dropped, as in llama.cpp), x has no U+2581 for SPM (its escape for a space, decoded as a
 * space) and x is well-formed UTF-8 unless ROUND_TRIP_ANY_BYTES (see below).
 * The streaming detokenizer (inf_detok_*) over the same ids always releases valid UTF-8 and,
 * when the decoded text (special tokens skipped) is valid UTF-8 and the sequence starts the way
 * the stream expects (BOS first for SPM), exactly that text (tokenize_api.c promises both).
 */
#define _GNU_SOURCE /* memmem */
#include "model/model.h"
#include "tokenizer/tok_internal.h"

/* 1: ill-formed UTF-8 must round-trip too. This branch's tokenizer reads ill-formed bytes as
 * U+FFFD (BPE) or lets an invalid SPM lead byte swallow the next U+2581, as llama.cpp does, so
 * it checks well-formed text only; main's tokenizer (cd4582f) promises any byte string: set 1
 * there. */
#ifndef ROUND_TRIP_ANY_BYTES
#define ROUND_TRIP_ANY_BYTES 1
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const vocab_names[] = {"llama-spm", "phi-3", "gpt-2", "falcon",
                                          "deepseek-coder"};
enum { N_VOCABS = sizeof vocab_names / sizeof vocab_names[0] };
static inf_model *vocabs[N_VOCABS];
/* Whether the vocabulary has a token for byte b (SPM: <0xXX> byte fallback; BPE: the byte-level
 * symbol of the byte); a byte without one is dropped or becomes <unk>, as in llama.cpp. */
static bool byte_ok[N_VOCABS][256];

/* The byte-level BPE symbol of byte b as UTF-8 (GPT-2's bytes_to_unicode): printable bytes stand
 * for themselves, the 68 others for U+0100.. in byte order. */
static size_t byte_symbol(unsigned b, char out[2]) {
    bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
    unsigned cp = b;
    if (!printable) {
        unsigned k = 0;
        for (unsigned c = 0; c < b; c++)
            if (!((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || c >= 0xae)) k++;
        cp = 0x100 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xc0 | cp >> 6);
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
}

static void find_bytes(const inf_tokenizer *t, bool *ok) {
    for (unsigned b = 0; b < 256; b++) {
        char text[8];
        size_t n;
        if (inf_tokenizer_kind(t) == INF_TOK_SPM)
            n = (size_t)snprintf(text, sizeof text, "<0x%02X>", b);
        else
            n = byte_symbol(b, text);
        ok[b] = inf_tokenizer_find(t, text, n) >= 0;
    }
}

/* Strict UTF-8 (no overlong forms, no surrogates, at most U+10FFFF). */
static bool utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        unsigned cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i <= k) return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += k + 1;
    }
    return true;
}

static void fail(const char *what, size_t n) {
    fprintf(stderr, "fuzz_tokenizer: %s (input of %zu bytes)\n", what, n);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *dir = getenv("INFERNEO_FUZZ_VOCAB_DIR");
    char path[4096];
    inf_model_params p = inf_model_params_default();
    p.vocab_only = true;
    for (int i = 0; i < N_VOCABS; i++) {
        if (dir)
            snprintf(path, sizeof path, "%s/ggml-vocab-%s.gguf", dir, vocab_names[i]);
        else
            snprintf(path, sizeof path, "%s/vocab/ggml-vocab-%s.gguf", INF_FIXTURES_DIR,
                     vocab_names[i]);
        if (inf_model_load(path, &p, &vocabs[i]) < 0) {
            fprintf(stderr, "fuzz_tokenizer: cannot load %s: %s\n", path, inf_last_error());
            exit(1);
        }
        find_bytes(vocabs[i]->tok, byte_ok[i]);
    }
    return 0;
}

/* The streaming detokenizer over ids: always valid UTF-8, equal to decode when that is valid. */
static void check_stream(inf_model *m, const int32_t *ids, int64_t n, const char *dec, size_t dlen,
                         bool comparable, size_t size) {
    inf_detok *d = NULL;
    if (inf_detok_new(m, &d) < 0) fail("detok_new failed", size);
    char *acc = NULL;
    size_t alen = 0;
    const char *s;
    size_t len;
    for (int64_t i = 0; i <= n; i++) {
        int rc = i < n ? inf_detok_push(d, ids[i], &s, &len) : inf_detok_flush(d, &s, &len);
        if (rc < 0) fail("detok push/flush failed", size);
        if (!len) continue;
        char *grown = realloc(acc, alen + len);
        if (!grown) abort();
        acc = grown;
        memcpy(acc + alen, s, len);
        alen += len;
    }
    if (!utf8_valid((const unsigned char *)acc, alen)) fail("stream: invalid UTF-8", size);
    if (comparable && utf8_valid((const unsigned char *)dec, dlen) &&
        (alen != dlen || (alen && memcmp(acc, dec, dlen))))
        fail("stream != decode for valid UTF-8", size);
    free(acc);
    inf_detok_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int v = data[0] % N_VOCABS;
    inf_model *m = vocabs[v];
    bool parse_special = data[0] & 0x80, add_special = data[0] & 0x40;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    int32_t *ids = NULL;
    int64_t n_ids = 0;
    if (inf_tokenize(m, text, n, add_special, parse_special, &ids, &n_ids) < 0)
        fail("tokenize failed", size);
    inf_model_info info;
    inf_model_get_info(m, &info);
    for (int64_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= info.n_vocab) fail("token id out of range", size);
    char *dec = NULL;
    size_t dlen = 0;
    if (inf_detokenize(m, ids, n_ids, false, &dec, &dlen) < 0) fail("detokenize failed", size);
    if (dec[dlen] != 0) fail("decode not NUL-terminated", size);
    bool spm = info.tokenizer && !strcmp(info.tokenizer, "llama");
    bool special = false; /* user-defined tokens are matched even without parse_special */
    for (int64_t i = 0; i < n_ids; i++)
        special |= (m->tok->attr[ids[i]] & (INF_TATTR_USER_DEFINED | INF_TATTR_CONTROL)) != 0;
    bool bytes = true;
    for (size_t i = 0; i < n; i++)
        bytes &= byte_ok[v][(unsigned char)text[i]];
    bool round_trips = bytes && !special &&
                       (ROUND_TRIP_ANY_BYTES || utf8_valid((const unsigned char *)text, n)) &&
                       !(spm && memmem(text, n, "\xe2\x96\x81", 3)); /* SPM: U+2581 is a space */
    if (!parse_special && !add_special && round_trips && (dlen != n || (n && memcmp(dec, text, n))))
        fail("decode(encode(x)) != x", size);
    inf_free(dec);
    /* The stream never renders special tokens and keeps the first piece's space unless BOS
     * starts it (SPM); compare it with the decode that matches those rules. */
    if (inf_detokenize(m, ids, n_ids, true, &dec, &dlen) < 0) fail("detokenize failed", size);
    check_stream(m, ids, n_ids, dec, dlen, !spm || (n_ids && ids[0] == info.bos), size);
    inf_free(dec);
    inf_free(ids);
    return 0;
}
