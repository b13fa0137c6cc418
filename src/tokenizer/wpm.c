/*
 * wpm.c — WordPiece ("bert" vocabularies), as llama.cpp's llm_tokenizer_wpm_session does it, and
 * the lookups over the generated Unicode tables (unicode_tables.c).
 *
 * Pre-processing of a raw fragment, code point by code point (UTF-8 read as llama.cpp does):
 *   NFD (only the first code point of the decomposition is kept, so accents disappear; done when
 *   strip_accents) -> whitespace ends the current word; U+0000, U+FFFD and control characters
 *   (Cc Cf Co Cs) are dropped -> the code point is lowercased (when lowercase) -> punctuation,
 *   ASCII symbols and CJK ideographs are words of their own; anything else extends the word.
 *   Code points above U+10FFFF (4-byte forms llama.cpp decodes but then cannot re-encode: it
 *   throws) are dropped.
 * Each word gets the "▁" (U+2581) prefix and is cut greedily from the left into the longest
 * vocabulary tokens (byte-wise, any token type, like llama.cpp's text_to_token); if some position
 * matches nothing the whole word becomes the unknown token.
 * The longest match walks a byte trie built at load (inf__wpm_init), so a word of n bytes costs
 * O(n * depth), depth bounded by the longest token.
 * Threads: the trie and tables are read-only after load; encode scratch is per call.
 */
#include "tokenizer/tok_internal.h"
#include "tokenizer/unicode_tables.h"

#include <stdlib.h>
#include <string.h>

/* ---- Unicode lookups ---------------------------------------------------------------------- */

/* Lookups. Code points >= 0x110000: flags 0, mapped to themselves. */
static unsigned ucd_flags(uint32_t cp) {
    if (cp >= 0x110000) return 0;
    /* last range whose start is <= cp; the first range starts at 0 */
    size_t lo = 0, hi = inf__ucd_n_flag_ranges;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if ((inf__ucd_flag_ranges[mid] >> 8) <= cp)
            lo = mid;
        else
            hi = mid;
    }
    return inf__ucd_flag_ranges[lo] & 0xffu;
}

static uint32_t run_map(const inf__ucd_run *r, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n; /* first run with first > cp */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r[mid].first <= cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0) return cp;
    const inf__ucd_run *x = &r[lo - 1];
    if (cp > x->last || (cp - x->first) % x->step) return cp;
    return x->mode ? (uint32_t)x->value : (uint32_t)((int64_t)cp + x->value);
}

static uint32_t ucd_tolower(uint32_t cp) {
    return run_map(inf__ucd_lower, inf__ucd_n_lower, cp);
}

static uint32_t ucd_nfd_first(uint32_t cp) {
    return run_map(inf__ucd_nfd, inf__ucd_n_nfd, cp);
}

/* llama.cpp's WPM is_chinese_char (the HF list, with its 0x2B920 start kept). */
static bool is_cjk(uint32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/* ---- trie --------------------------------------------------------------------------------- */

static int64_t trie_child(const inf__wpm_trie *tr, size_t node, unsigned char b) {
    uint64_t child;
    return inf__hmap_get(&tr->edges, (uint64_t)node << 8 | b, &child) ? (int64_t)child : -1;
}

static int trie_new_node(inf__wpm_trie *tr, size_t *id) {
    if (tr->n_nodes == tr->nodes_cap) {
        size_t nc = tr->nodes_cap ? tr->nodes_cap * 2 : 1024;
        if (nc >= UINT32_MAX) return INF_ENOMEM;
        int32_t *nv = inf__realloc_array(tr->tok, nc, sizeof *nv);
        if (!nv) return INF_ENOMEM;
        tr->tok = nv;
        tr->nodes_cap = nc;
    }
    tr->tok[tr->n_nodes] = -1;
    *id = tr->n_nodes++;
    return 0;
}

int inf__wpm_init(inf_tokenizer *t) {
    inf__wpm_trie *tr = &t->wpm;
    size_t root;
    int rc = trie_new_node(tr, &root);
    for (int64_t id = 0; rc == 0 && id < t->n_vocab; id++) {
        const unsigned char *s = (const unsigned char *)t->text[id];
        size_t node = root;
        for (uint32_t k = 0; rc == 0 && k < t->len[id]; k++) {
            int64_t c = trie_child(tr, node, s[k]);
            if (c >= 0) {
                node = (size_t)c;
                continue;
            }
            size_t nn;
            if ((rc = trie_new_node(tr, &nn)) < 0) break;
            if ((rc = inf__hmap_add(&tr->edges, (uint64_t)node << 8 | s[k], nn)) < 0) break;
            node = nn;
        }
        if (rc == 0 && tr->tok[node] < 0) tr->tok[node] = (int32_t)id; /* lowest id wins */
    }
    if (rc < 0) return inf__err(INF_ENOMEM, "tokenizer: out of memory for the WordPiece trie");
    return 0;
}

void inf__wpm_free(inf_tokenizer *t) {
    inf__hmap_free(&t->wpm.edges);
    free(t->wpm.tok);
    memset(&t->wpm, 0, sizeof t->wpm);
}

/* ---- encode ------------------------------------------------------------------------------- */

#define WPM_PREFIX "\xe2\x96\x81"
#define WPM_PREFIX_LEN 3

/* Cuts "▁word" (w[0..n)) into the longest tokens from the left; [UNK] when some position
 * matches nothing. */
static void wpm_word(const inf_tokenizer *t, const unsigned char *w, size_t n, inf__ids *out) {
    const inf__wpm_trie *tr = &t->wpm;
    int64_t start = out->n;
    size_t i = 0;
    while (i < n) {
        size_t node = 0, best_len = 0;
        int32_t best = -1;
        for (size_t j = i; j < n; j++) {
            int64_t c = trie_child(tr, node, w[j]);
            if (c < 0) break;
            node = (size_t)c;
            if (tr->tok[node] >= 0) best = tr->tok[node], best_len = j + 1 - i;
        }
        if (best < 0) {
            out->n = start; /* drop the word's tokens */
            break;
        }
        inf__ids_push(out, best);
        i += best_len;
    }
    /* llama.cpp pushes the unknown id even when there is none (-1); we push nothing then */
    if (out->n == start && t->unk >= 0) inf__ids_push(out, t->unk);
}

typedef struct wbuf {
    unsigned char *v;
    size_t n, cap;
} wbuf;

static void put_utf8(unsigned char *d, size_t *n, uint32_t cp) {
    *n += inf__utf8_put(cp, (char *)d + *n);
}

static void flush_word(const inf_tokenizer *t, wbuf *w, inf__ids *out) {
    if (w->n > WPM_PREFIX_LEN) wpm_word(t, w->v, w->n, out);
    w->n = WPM_PREFIX_LEN;
}

int inf__wpm_encode(const inf_tokenizer *t, const char *text, size_t len, inf__ids *out) {
    if (len == 0) return 0;
    /* Every code point read consumes at least one input byte and is written back in at most 4
     * bytes, so 4 * len + the prefix bounds any word. */
    wbuf w = {0};
    size_t cap;
    if (inf__mul_overflow(len, 4, &cap) || inf__add_overflow(cap, 8, &cap))
        return inf__err(INF_ERANGE, "tokenizer: text too long");
    w.v = inf__malloc(cap);
    if (!w.v) return inf__err(INF_ENOMEM, "tokenizer: out of memory");
    w.cap = cap;
    memcpy(w.v, WPM_PREFIX, WPM_PREFIX_LEN);
    w.n = WPM_PREFIX_LEN;
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len && !out->oom;) {
        uint32_t cp = inf__tok_utf8_next(s, len, &i);
        if (t->strip_accents) cp = ucd_nfd_first(cp);
        if (cp > 0x10ffff) continue;
        unsigned f = ucd_flags(cp);
        if (f & INF__UCD_WHITESPACE) {
            flush_word(t, &w, out);
            continue;
        }
        if (cp == 0 || cp == 0xfffd || (f & INF__UCD_CONTROL)) continue;
        uint32_t c = t->lowercase ? ucd_tolower(cp) : cp;
        if ((f & INF__UCD_PUNCT) || (cp < 0x7f && (f & INF__UCD_SYMBOL)) || is_cjk(cp)) {
            flush_word(t, &w, out);
            put_utf8(w.v, &w.n, c);
            flush_word(t, &w, out);
        } else {
            put_utf8(w.v, &w.n, c);
        }
    }
    flush_word(t, &w, out);
    free(w.v);
    if (out->oom) return inf__err(INF_ENOMEM, "tokenizer: out of memory");
    return 0;
}
