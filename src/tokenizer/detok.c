/*
 * detok.c — the streaming detokenizer (inf_detok_* of inferneo.h; the model layer only opens one
 * over its tokenizer).
 *
 * Each push appends the token's piece (special tokens not rendered) to a pending tail and
 * releases the longest prefix that ends on a UTF-8 character boundary. What it releases is always
 * well-formed UTF-8, repaired by base's one rule (inf__utf8_sanitize): each maximal ill-formed
 * subpart becomes one U+FFFD; an incomplete tail (at most 3 bytes) is held until the next push and
 * becomes one U+FFFD at flush. When the first pushed token is BOS of an SPM vocabulary with
 * add_space_prefix, the leading space of the next piece is dropped, as inf_tokenizer_decode does,
 * so a stream over a whole sequence equals its decode (for well-formed text). A stream that starts
 * with generated tokens (no BOS) keeps every space: it continues a prompt.
 * Memory: the scratch and output buffers grow to the longest piece seen, then are reused: no
 * allocation per token once warm.
 * Threads: a detokenizer belongs to one thread at a time; the tokenizer is shared read-only.
 */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

struct inf_detok {
    const inf_tokenizer *t;
    int64_t n_pushed;
    bool strip;   /* drop the leading space of the next piece */
    char pend[4]; /* incomplete UTF-8 character held back (at most 3 bytes) */
    size_t n_pend;
    char *buf; /* scratch: pending + piece */
    size_t buf_cap;
    inf_sb out; /* released text, valid until the next call */
};

int inf_tokenizer_detok_new(const inf_tokenizer *t, inf_detok **out) {
    if (!out) return inf__err(INF_EINVAL, "detok: NULL output");
    *out = NULL;
    if (!t) return inf__err(INF_EINVAL, "detok: NULL tokenizer");
    inf_detok *d = inf__calloc(1, sizeof *d);
    if (!d) return inf__err(INF_ENOMEM, "detok: out of memory");
    d->t = t;
    *out = d;
    return 0;
}

void inf_detok_free(inf_detok *d) {
    if (!d) return;
    free(d->buf);
    inf__sb_free(&d->out);
    free(d);
}

/* Releases buf[0..n) into d->out (emptied first); keeps an incomplete tail unless final. */
static int release(inf_detok *d, const char *buf, size_t n, bool final, const char **text,
                   size_t *len) {
    d->out.len = 0;
    d->out.oom = false;
    size_t held = 0;
    inf__utf8_sanitize(&d->out, buf, n, final ? NULL : &held);
    memcpy(d->pend, buf + n - held, held);
    d->n_pend = held;
    if (d->out.oom) return inf__err(INF_ENOMEM, "detok: out of memory");
    *text = d->out.data && d->out.len ? d->out.data : "";
    *len = d->out.len;
    return 0;
}

int inf_detok_push(inf_detok *d, int32_t token, const char **text, size_t *len) {
    if (!d || !text || !len) return inf__err(INF_EINVAL, "detok: NULL argument");
    *text = "";
    *len = 0;
    const inf_tokenizer *t = d->t;
    int64_t pl = inf_tokenizer_piece(t, token, false, NULL, 0);
    if (pl < 0) return (int)pl;
    bool first = d->n_pushed++ == 0;
    bool is_bos = first && token == t->bos && t->add_space_prefix;
    size_t need = d->n_pend + (size_t)pl;
    if (!d->buf || need > d->buf_cap) {
        size_t cap = need < 64 ? 64 : need * 2;
        char *nb = realloc(d->buf, cap);
        if (!nb) return inf__err(INF_ENOMEM, "detok: out of memory");
        d->buf = nb, d->buf_cap = cap;
    }
    memcpy(d->buf, d->pend, d->n_pend);
    inf_tokenizer_piece(t, token, false, d->buf + d->n_pend, (size_t)pl);
    size_t n = need;
    if (d->strip && pl > 0 && d->buf[d->n_pend] == ' ') {
        memmove(d->buf + d->n_pend, d->buf + d->n_pend + 1, (size_t)pl - 1);
        n--;
    }
    d->strip = is_bos;
    return release(d, d->buf, n, false, text, len);
}

int inf_detok_flush(inf_detok *d, const char **text, size_t *len) {
    if (!d || !text || !len) return inf__err(INF_EINVAL, "detok: NULL argument");
    char tail[4];
    size_t n = d->n_pend;
    memcpy(tail, d->pend, n);
    return release(d, tail, n, true, text, len);
}
