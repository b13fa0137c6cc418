/*
 * encode.c — text to token ids, as llama.cpp's llama_vocab::impl::tokenize does:
 *   1. special-token partition (tokenizer_st_partition): for each special token, longest text
 *      first, every occurrence inside the remaining raw fragments is cut out as that token.
 *      Control and unknown tokens take part only with parse_special; user-defined tokens always.
 *      LSTRIP/RSTRIP attributes eat the whitespace beside a match.
 *   2. each raw fragment is encoded by SPM (below), byte-level BPE (bpe.c) or WordPiece (wpm.c);
 *   3. BOS/EOS added per metadata when add_special. WordPiece, as llama.cpp, always adds BOS
 *      ([CLS]) first and SEP last with add_special, whatever add_bos/add_sep say.
 * SPM (llama.cpp's llm_tokenizer_spm): a space before a fragment that starts the text or follows
 * a special token (add_space_prefix), spaces escaped to U+2581, the text split into UTF-8
 * characters, then the adjacent pair whose concatenation is the best-scoring token is merged
 * repeatedly (max-heap on score, ties to the leftmost pair); leftover symbols that are not
 * tokens become byte tokens <0xXX>. Whitespace runs are kept (no normalizer).
 * Cost: O(n log n) in the fragment length; scratch is per call, so calls run concurrently.
 */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- SPM ---------------------------------------------------------------------------------- */

static bool spm_try_add(const inf_tokenizer *t, const char *s, const inf__sym *sym, int32_t l,
                        int32_t r, inf__bigram_heap *h) {
    if (l < 0 || r < 0) return true;
    uint32_t size = sym[l].n + sym[r].n;
    int32_t id = inf__smap_get(&t->tok_map, s + sym[l].off, size);
    if (id < 0) return true;
    /* higher score first: the queue pops the lowest prio */
    inf__bigram b = {l, r, size, -(double)t->score[id]};
    return inf__bigram_push(h, b);
}

static void spm_emit_bytes(const inf_tokenizer *t, const char *s, size_t n, inf__ids *out) {
    for (size_t j = 0; j < n; j++) {
        int32_t id = inf__tok_byte_token(t, (uint8_t)s[j]);
        if (id < 0) id = t->unk; /* llama.cpp would throw here */
        if (id >= 0) inf__ids_push(out, id);
    }
}

int inf__spm_encode(const inf_tokenizer *t, const char *s, size_t len, inf__ids *out) {
    if (len == 0) return 0;
    if (len >= INT32_MAX) return inf__err(INF_ERANGE, "tokenizer: text of %zu bytes", len);
    int64_t n = 0;
    inf__sym *sym = inf__calloc(len, sizeof *sym);
    inf__bigram_heap h = {0};
    if (!sym) return inf__err(INF_ENOMEM, "tokenizer: out of memory");
    for (size_t off = 0; off < len; n++) {
        size_t cl = inf__tok_sym_len(s + off, len - off);
        sym[n].off = (uint32_t)off;
        sym[n].n = (uint32_t)cl;
        sym[n].prev = (int32_t)n - 1;
        off += cl;
        sym[n].next = off == len ? -1 : (int32_t)n + 1;
    }
    bool ok = true;
    for (int64_t i = 1; i < n && ok; i++)
        ok = spm_try_add(t, s, sym, (int32_t)i - 1, (int32_t)i, &h);
    while (ok && h.n > 0) {
        inf__bigram b = inf__bigram_pop(&h);
        inf__sym *L = &sym[b.left], *R = &sym[b.right];
        if (L->n == 0 || R->n == 0 || L->n + R->n != b.size) continue;
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) sym[R->next].prev = b.left;
        ok = spm_try_add(t, s, sym, L->prev, b.left, &h) &&
             spm_try_add(t, s, sym, b.left, L->next, &h);
    }
    if (ok) {
        for (int32_t i = 0; i != -1; i = sym[i].next) {
            int32_t id = inf__smap_get(&t->tok_map, s + sym[i].off, sym[i].n);
            if (id >= 0)
                inf__ids_push(out, id);
            else
                spm_emit_bytes(t, s + sym[i].off, sym[i].n, out);
        }
    }
    free(sym);
    free(h.v);
    if (!ok || out->oom) return inf__err(INF_ENOMEM, "tokenizer: out of memory");
    return 0;
}

/* Escapes a fragment for SPM (optional leading space, ' ' -> U+2581) and encodes it. */
static int spm_fragment(const inf_tokenizer *t, const char *s, size_t len, bool prefix,
                        inf__ids *out) {
    size_t cap;
    if (inf__mul_overflow(len + 1, 3, &cap)) return inf__err(INF_ERANGE, "tokenizer: too long");
    char *buf = inf__malloc(cap);
    if (!buf) return inf__err(INF_ENOMEM, "tokenizer: out of memory");
    size_t n = 0;
    if (prefix) memcpy(buf, "\xe2\x96\x81", 3), n = 3;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ') {
            memcpy(buf + n, "\xe2\x96\x81", 3);
            n += 3;
        } else {
            buf[n++] = s[i];
        }
    }
    int rc = inf__spm_encode(t, buf, n, out);
    free(buf);
    return rc;
}

/* ---- special-token partition -------------------------------------------------------------- */

typedef struct frag {
    int32_t token; /* -1: raw text [off, off + len) */
    size_t off, len;
} frag;

typedef struct frags {
    frag *v;
    int64_t n, cap;
    bool oom;
} frags;

static void frags_push(frags *f, int32_t token, size_t off, size_t len) {
    if (f->oom) return;
    if (f->n == f->cap) {
        int64_t nc = f->cap ? f->cap * 2 : 16;
        frag *nv = inf__realloc_array(f->v, (size_t)nc, sizeof *nv);
        if (!nv) {
            f->oom = true;
            return;
        }
        f->v = nv, f->cap = nc;
    }
    f->v[f->n++] = (frag){token, off, len};
}

static const char *find_bytes(const char *hay, size_t n, const char *pat, size_t m) {
    const char *end = hay + n;
    while ((size_t)(end - hay) >= m) {
        const char *p = memchr(hay, pat[0], (size_t)(end - hay) - m + 1);
        if (!p) return NULL;
        if (!memcmp(p, pat, m)) return p;
        hay = p + 1;
    }
    return NULL;
}

static bool c_isspace(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Splits every raw fragment of *in at each occurrence of special token id into *out. */
static void split_on(const inf_tokenizer *t, const char *text, const frags *in, int32_t id,
                     frags *out) {
    const char *pat = t->text[id];
    size_t plen = t->len[id];
    uint32_t attr = t->attr[id];
    out->n = 0;
    for (int64_t k = 0; k < in->n; k++) {
        frag f = in->v[k];
        if (f.token >= 0 || f.len < plen) {
            frags_push(out, f.token, f.off, f.len);
            continue;
        }
        size_t base = f.off, blen = f.len;
        for (;;) {
            const char *m = blen >= plen ? find_bytes(text + base, blen, pat, plen) : NULL;
            if (!m) {
                if (blen > 0) frags_push(out, -1, base, blen);
                break;
            }
            size_t mpos = (size_t)(m - text);
            size_t left = mpos - base;
            if (attr & INF_TATTR_LSTRIP)
                while (left > 0 && c_isspace(text[base + left - 1]))
                    left--;
            if (left > 0) frags_push(out, -1, base, left);
            frags_push(out, id, 0, 0);
            size_t roff = mpos + plen, rlen = base + blen - roff;
            if (attr & INF_TATTR_RSTRIP)
                while (rlen > 0 && c_isspace(text[roff]))
                    roff++, rlen--;
            base = roff, blen = rlen;
            if (blen == 0) break;
        }
    }
}

int inf_tokenizer_encode(const inf_tokenizer *t, const char *text, size_t len, bool add_special,
                         bool parse_special, int32_t **out_ids, int64_t *n_out) {
    *out_ids = NULL;
    *n_out = 0;
    if (!text && len) return inf__err(INF_EINVAL, "tokenize: NULL text");
    inf__ids out = {0};
    frags a = {0}, b = {0};
    int rc = 0;

    if (len > 0) {
        frags_push(&a, -1, 0, len);
        /* Which bytes occur at all: a token whose first byte is absent cannot match. */
        bool present[256] = {false};
        for (size_t i = 0; i < len; i++)
            present[(unsigned char)text[i]] = true;
        for (int64_t s = 0; s < t->n_special && !a.oom && !b.oom; s++) {
            int32_t id = t->special[s];
            if (!parse_special && (t->attr[id] & (INF_TATTR_CONTROL | INF_TATTR_UNKNOWN))) continue;
            if (t->len[id] > len || !present[(unsigned char)t->text[id][0]]) continue;
            split_on(t, text, &a, id, &b);
            frags tmp = a;
            a = b;
            b = tmp;
        }
        if (a.oom || b.oom) {
            rc = inf__err(INF_ENOMEM, "tokenizer: out of memory");
            goto done;
        }
    }

    bool wpm = t->kind == INF_TOK_WPM;
    /* WPM: llama.cpp asserts that both ids exist; we leave out a missing one */
    if (add_special && (wpm ? t->bos >= 0 : t->add_bos)) inf__ids_push(&out, t->bos);
    bool prev_special = true; /* SPM: a fragment at the start gets the space prefix */
    for (int64_t k = 0; k < a.n; k++) {
        frag f = a.v[k];
        if (f.token >= 0) {
            inf__ids_push(&out, f.token);
            prev_special = true;
            continue;
        }
        if (t->kind == INF_TOK_SPM)
            rc = spm_fragment(t, text + f.off, f.len, t->add_space_prefix && prev_special, &out);
        else if (wpm)
            rc = inf__wpm_encode(t, text + f.off, f.len, &out);
        else
            rc = inf__bpe_encode(t, text + f.off, f.len, &out);
        if (rc < 0) goto done;
        prev_special = false;
    }
    if (add_special && wpm && t->sep >= 0) inf__ids_push(&out, t->sep);
    if (add_special && !wpm && t->add_eos) inf__ids_push(&out, t->eos);
    if (out.oom) {
        rc = inf__err(INF_ENOMEM, "tokenizer: out of memory");
        goto done;
    }
    if (!out.v) out.v = inf__malloc(sizeof *out.v); /* callers get a non-NULL array */
    if (!out.v) {
        rc = inf__err(INF_ENOMEM, "tokenizer: out of memory");
        goto done;
    }
    *out_ids = out.v;
    *n_out = out.n;
    out.v = NULL;
done:
    free(out.v);
    free(a.v);
    free(b.v);
    return rc;
}
