/*
 * tokenize_api.c — the public tokenizer entry points of inferneo.h (inf_tokenize,
 * inf_detokenize, inf_token_is_eog, inf_token_to_piece) and the streaming detokenizer
 * (inf_detok_*), over model->tok.
 *
 * Streaming detokenizer: each push appends the token's piece (special tokens not rendered) to
 * a pending tail and releases the longest prefix that ends on a UTF-8 character boundary. What it
 * releases is always valid UTF-8: a byte sequence that can never become a character is replaced
 * by U+FFFD (one per maximal invalid subpart), an incomplete tail is held until the next push and
 * becomes one U+FFFD at flush. When the first pushed token is BOS of an SPM vocabulary with
 * add_space_prefix, the leading space of the next piece is dropped, as inf_detokenize does, so a
 * stream over a whole sequence equals its decode (for valid UTF-8). A stream that starts with
 * generated tokens (no BOS) keeps every space: it continues a prompt.
 * Threads: a detokenizer belongs to one thread at a time; the model's tokenizer is shared.
 */
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

static int need_tok(const inf_model *model, const char *what) {
    if (!model) return inf__err(INF_EINVAL, "%s: NULL model", what);
    if (!model->tok) return inf__err(INF_EINVAL, "%s: the model has no tokenizer", what);
    return 0;
}

int inf_tokenize(const inf_model *model, const char *text, size_t len, bool add_special,
                 bool parse_special, int32_t **tokens, int64_t *n_tokens) {
    if (!tokens || !n_tokens) return inf__err(INF_EINVAL, "tokenize: NULL output");
    *tokens = NULL;
    *n_tokens = 0;
    int rc = need_tok(model, "tokenize");
    if (rc < 0) return rc;
    return inf_tokenizer_encode(model->tok, text, len, add_special, parse_special, tokens,
                                n_tokens);
}

int inf_detokenize(const inf_model *model, const int32_t *tokens, int64_t n_tokens,
                   bool skip_special, char **text, size_t *len) {
    if (!text) return inf__err(INF_EINVAL, "detokenize: NULL output");
    *text = NULL;
    if (len) *len = 0;
    int rc = need_tok(model, "detokenize");
    if (rc < 0) return rc;
    return inf_tokenizer_decode(model->tok, tokens, n_tokens, !skip_special, text, len);
}

bool inf_token_is_eog(const inf_model *model, int32_t token) {
    return model && model->tok && inf_tokenizer_is_eog(model->tok, token);
}

int64_t inf_token_to_piece(const inf_model *model, int32_t token, bool render_special, char *buf,
                           size_t cap) {
    int rc = need_tok(model, "token piece");
    if (rc < 0) return rc;
    if (!buf) cap = 0;
    return inf_tokenizer_piece(model->tok, token, render_special, buf, cap);
}

/* ---- streaming ---------------------------------------------------------------------------- */

struct inf_detok {
    const inf_tokenizer *t;
    int64_t n_pushed;
    bool strip;   /* drop the leading space of the next piece */
    char pend[4]; /* incomplete UTF-8 sequence held back (at most 3 bytes) */
    size_t n_pend;
    char *buf; /* scratch: pending + piece */
    size_t buf_cap;
    inf_sb out; /* released text, valid until the next call */
};

int inf_detok_new(const inf_model *model, inf_detok **out) {
    if (!out) return inf__err(INF_EINVAL, "detok: NULL output");
    *out = NULL;
    int rc = need_tok(model, "detok");
    if (rc < 0) return rc;
    inf_detok *d = inf__calloc(1, sizeof *d);
    if (!d) return inf__err(INF_ENOMEM, "detok: out of memory");
    d->t = model->tok;
    *out = d;
    return 0;
}

void inf_detok_free(inf_detok *d) {
    if (!d) return;
    free(d->buf);
    inf__sb_free(&d->out);
    free(d);
}

/* Length of the valid UTF-8 sequence at s[0..n): > 0 valid, 0 incomplete (a valid prefix that
 * runs past n), < 0 invalid with -ret bytes to replace by one U+FFFD. */
static int utf8_seq(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    int need;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else {
        return -1;
    }
    for (int k = 1; k < need; k++) {
        if ((size_t)k >= n) return 0;
        unsigned char b = s[k];
        if (k == 1 ? (b < lo || b > hi) : (b & 0xc0) != 0x80) return -k;
    }
    return need;
}

/* Releases the valid prefix of buf[0..n) into d->out; keeps an incomplete tail unless final. */
static void release(inf_detok *d, const char *buf, size_t n, bool final) {
    const unsigned char *s = (const unsigned char *)buf;
    size_t i = 0;
    d->n_pend = 0;
    while (i < n) {
        int r = utf8_seq(s + i, n - i);
        if (r > 0) {
            inf__sb_append(&d->out, buf + i, (size_t)r);
            i += (size_t)r;
        } else if (r < 0) {
            inf__sb_append(&d->out, "\xef\xbf\xbd", 3);
            i += (size_t)-r;
        } else if (final) {
            inf__sb_append(&d->out, "\xef\xbf\xbd", 3);
            i = n;
        } else {
            d->n_pend = n - i; /* <= 3 */
            memcpy(d->pend, buf + i, d->n_pend);
            i = n;
        }
    }
}

static void reset_out(inf_detok *d) {
    d->out.len = 0;
    d->out.oom = false;
    if (d->out.data) d->out.data[0] = 0;
}

int inf_detok_push(inf_detok *d, int32_t token, const char **text, size_t *len) {
    if (!d || !text || !len) return inf__err(INF_EINVAL, "detok: NULL argument");
    *text = "";
    *len = 0;
    const inf_tokenizer *t = d->t;
    int64_t pl = inf_tokenizer_piece(t, token, false, NULL, 0);
    if (pl < 0) return (int)pl;
    bool first = d->n_pushed++ == 0;
    bool is_bos = first && token == inf_tokenizer_bos(t) && inf_tokenizer_add_space_prefix(t);
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
    reset_out(d);
    release(d, d->buf, n, false);
    if (d->out.oom) return inf__err(INF_ENOMEM, "detok: out of memory");
    *text = d->out.data ? d->out.data : "";
    *len = d->out.len;
    return 0;
}

int inf_detok_flush(inf_detok *d, const char **text, size_t *len) {
    if (!d || !text || !len) return inf__err(INF_EINVAL, "detok: NULL argument");
    reset_out(d);
    char tail[4];
    size_t n = d->n_pend;
    memcpy(tail, d->pend, n);
    release(d, tail, n, true);
    d->n_pend = 0;
    if (d->out.oom) return inf__err(INF_ENOMEM, "detok: out of memory");
    *text = d->out.data ? d->out.data : "";
    *len = d->out.len;
    return 0;
}
