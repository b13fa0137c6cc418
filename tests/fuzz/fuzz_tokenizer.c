/*
 * fuzz_tokenizer.c — libFuzzer target: tokenizer round trip on arbitrary bytes with the fixture
 * vocabularies (../shared/fixtures/vocab/ggml-vocab-*.gguf, or the folder in
 * $INFERNEO_FUZZ_VOCAB_DIR): SentencePiece (llama-spm, phi-3) and byte-level BPE (gpt-2,
 * falcon, deepseek-coder).
 *
 * Input: byte 0 picks the vocabulary and the options (parse_special, add_special); the rest is
 * the text. Checked on every input: encode succeeds on any bytes, every id is in range, decode
 * succeeds. Without special tokens (neither asked for nor matched: user-defined tokens such as
 * phi-3's "</s>" are matched in any text, as in llama.cpp), decode(encode(x)) == x byte for byte
 * (tokenizer.h's promise) when x is valid UTF-8, the vocabulary has a token for every byte and, for SPM, x has
 * no U+2581 (SPM's escape for a space, which decodes as a space). Invalid UTF-8 does not
 * round-trip, as in llama.cpp: BPE reads invalid bytes as U+FFFD and overlong forms as their
 * character; SPM's byte fallback of an invalid lead byte swallows the U+2581 escape of a
 * following space, which then decodes as those three bytes.
 * The streaming detokenizer (inf_detok_*) over the same ids always releases valid UTF-8 and,
 * when the decoded text (special tokens skipped) is valid UTF-8 and the sequence starts the way
 * the stream expects (BOS first for SPM), exactly that text (tokenize_api.c promises both).
 */
#define _GNU_SOURCE /* memmem */
#include "model/model.h"
#include "tokenizer/tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const vocab_names[] = {"llama-spm", "phi-3", "gpt-2", "falcon",
                                          "deepseek-coder"};
enum { N_VOCABS = sizeof vocab_names / sizeof vocab_names[0] };
static inf_model *vocabs[N_VOCABS];
/* Whether the vocabulary has a token for every byte (SPM: <0xXX> byte fallback; BPE: the
 * byte-level symbol of each byte). Only then can every text round-trip: a BPE vocabulary
 * without a byte's symbol drops that byte (falcon lacks 0x0B and 0x1E), as llama.cpp does. */
static bool all_bytes[N_VOCABS];

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

static bool has_all_bytes(const inf_tokenizer *t) {
    for (unsigned b = 0; b < 256; b++) {
        char text[8];
        size_t n;
        if (inf_tokenizer_kind(t) == INF_TOK_SPM)
            n = (size_t)snprintf(text, sizeof text, "<0x%02X>", b);
        else
            n = byte_symbol(b, text);
        if (inf_tokenizer_find(t, text, n) < 0) return false;
    }
    return true;
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

static void fail(const char *what, const uint8_t *text, size_t n) {
    fprintf(stderr, "fuzz_tokenizer: %s (input of %zu bytes)\n", what, n);
    (void)text;
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
        all_bytes[i] = has_all_bytes(vocabs[i]->tok);
        if (!all_bytes[i])
            fprintf(stderr, "fuzz_tokenizer: %s lacks some byte tokens: no round-trip check\n",
                    vocab_names[i]);
    }
    return 0;
}

/* The streaming detokenizer over ids: always valid UTF-8, equal to decode when that is valid. */
static void check_stream(inf_model *m, const int32_t *ids, int64_t n, const char *dec, size_t dlen,
                         bool comparable, const uint8_t *text, size_t size) {
    inf_detok *d = NULL;
    if (inf_detok_new(m, &d) < 0) fail("detok_new failed", text, size);
    char *acc = NULL;
    size_t alen = 0;
    const char *s;
    size_t len;
    for (int64_t i = 0; i <= n; i++) {
        int rc = i < n ? inf_detok_push(d, ids[i], &s, &len) : inf_detok_flush(d, &s, &len);
        if (rc < 0) fail("detok push/flush failed", text, size);
        if (!len) continue;
        char *grown = realloc(acc, alen + len);
        if (!grown) abort();
        acc = grown;
        memcpy(acc + alen, s, len);
        alen += len;
    }
    if (!utf8_valid((const unsigned char *)acc, alen)) fail("stream: invalid UTF-8", text, size);
    if (comparable && utf8_valid((const unsigned char *)dec, dlen) &&
        (alen != dlen || (alen && memcmp(acc, dec, dlen))))
        fail("stream != decode for valid UTF-8", text, size);
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
        fail("tokenize failed", data, size);
    inf_model_info info;
    inf_model_get_info(m, &info);
    for (int64_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= info.n_vocab) fail("token id out of range", data, size);
    char *dec = NULL;
    size_t dlen = 0;
    if (inf_detokenize(m, ids, n_ids, false, &dec, &dlen) < 0) fail("detokenize failed", data, size);
    if (dec[dlen] != 0) fail("decode not NUL-terminated", data, size);
    bool spm = info.tokenizer && !strcmp(info.tokenizer, "llama");
    bool special = false; /* user-defined tokens are matched even without parse_special */
    for (int64_t i = 0; i < n_ids; i++)
        special |= (m->tok->attr[ids[i]] & (INF_TATTR_USER_DEFINED | INF_TATTR_CONTROL)) != 0;
    bool round_trips = all_bytes[v] && !special && utf8_valid((const unsigned char *)text, n) &&
                       !(spm && memmem(text, n, "\xe2\x96\x81", 3)); /* SPM: U+2581 is a space */
    if (!parse_special && !add_special && round_trips && (dlen != n || (n && memcmp(dec, text, n))))
        fail("decode(encode(x)) != x", data, size);
    inf_free(dec);
    /* The stream never renders special tokens and keeps the first piece's space unless BOS
     * starts it (SPM); compare it with the decode that matches those rules. */
    if (inf_detokenize(m, ids, n_ids, true, &dec, &dlen) < 0) fail("detokenize failed", data, size);
    check_stream(m, ids, n_ids, dec, dlen, !spm || (n_ids && ids[0] == info.bos), data, size);
    inf_free(dec);
    inf_free(ids);
    return 0;
}
