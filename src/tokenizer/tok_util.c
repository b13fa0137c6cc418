/*
 * tok_util.c — helpers every tokenizer file shares and that depend on nothing else in
 * src/tokenizer/: the string map (token text -> id, merge -> rank) over base's hash map, the
 * growable id list, llama.cpp-compatible UTF-8 stepping, the merge queue of the SPM and BPE
 * encoders, and the byte <-> byte-token mapping.
 * Keeping them here (not in vocab.c or decode.c) makes the calls among the tokenizer's files a
 * tree: vocab.c -> {bpe, wpm, decode} -> tok_util, encode.c -> {bpe, wpm} -> tok_util, and
 * detok.c -> decode.c; nothing calls back up.
 * Threads: the maps are read-only after load; an id list belongs to one call.
 */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- string map --------------------------------------------------------------------------- */

static uint64_t smap_hash(const char *s, size_t n) {
    return inf__hash64(s, n, 0x9e3779b97f4a7c15ull);
}

int inf__smap_build(inf__smap *m, const char *const *keys, const uint32_t *lens, int64_t n) {
    memset(m, 0, sizeof *m);
    if (n < 0 || (uint64_t)n > UINT32_MAX)
        return inf__err(INF_ERANGE, "tokenizer: map of %lld keys", (long long)n);
    int rc = inf__hmap_init(&m->map, (size_t)n);
    if (rc < 0) return inf__err_prefix(rc, "tokenizer: map of %lld keys", (long long)n);
    m->keys = keys;
    m->lens = lens;
    for (int64_t v = 0; v < n; v++) {
        if (inf__smap_get(m, keys[v], lens[v]) >= 0) continue; /* keep the first (lowest) value */
        if ((rc = inf__hmap_add(&m->map, smap_hash(keys[v], lens[v]), (uint64_t)v)) < 0) {
            inf__smap_free(m);
            return rc;
        }
    }
    return 0;
}

void inf__smap_free(inf__smap *m) {
    inf__hmap_free(&m->map);
    memset(m, 0, sizeof *m);
}

int32_t inf__smap_get(const inf__smap *m, const char *key, size_t len) {
    uint64_t h = smap_hash(key, len), v;
    for (size_t it = 0; inf__hmap_next(&m->map, h, &it, &v);)
        if (m->lens[v] == len && !memcmp(m->keys[v], key, len)) return (int32_t)v;
    return -1;
}

/* ---- id list ------------------------------------------------------------------------------ */

void inf__ids_push(inf__ids *o, int32_t id) {
    if (o->oom) return;
    if (o->n == o->cap) {
        int64_t nc = o->cap ? o->cap * 2 : 64;
        int32_t *nv = inf__realloc_array(o->v, (size_t)nc, sizeof *nv);
        if (!nv) {
            o->oom = true;
            return;
        }
        o->v = nv;
        o->cap = nc;
    }
    o->v[o->n++] = id;
}

/* ---- UTF-8 stepping ----------------------------------------------------------------------- */

uint32_t inf__tok_utf8_next(const unsigned char *s, size_t n, size_t *i) {
    unsigned char c = s[*i];
    if (!(c & 0x80)) {
        (*i)++;
        return c;
    }
    size_t need = !(c & 0x40) ? 0 : !(c & 0x20) ? 2 : !(c & 0x10) ? 3 : !(c & 0x08) ? 4 : 0;
    bool ok = need && *i + need <= n;
    for (size_t k = 1; ok && k < need; k++)
        ok = (s[*i + k] & 0xc0) == 0x80;
    if (!ok) {
        (*i)++;
        return 0xfffd;
    }
    uint32_t v = need == 2 ? (c & 0x1fu) : need == 3 ? (c & 0x0fu) : (c & 0x07u);
    for (size_t k = 1; k < need; k++)
        v = (v << 6) | (s[*i + k] & 0x3fu);
    *i += need;
    return v;
}

size_t inf__tok_sym_len(const char *s, size_t n) {
    int r = inf__utf8_seq(s, n);
    return r > 0 ? (size_t)r : 1;
}

/* ---- merge queue ------------------------------------------------------------------------- */

static bool bigram_before(const inf__bigram *a, const inf__bigram *b) {
    return a->prio < b->prio || (a->prio == b->prio && a->left < b->left);
}

bool inf__bigram_push(inf__bigram_heap *h, inf__bigram b) {
    if (h->n == h->cap) {
        int64_t nc = h->cap ? h->cap * 2 : 64;
        inf__bigram *nv = inf__realloc_array(h->v, (size_t)nc, sizeof *nv);
        if (!nv) return false;
        h->v = nv, h->cap = nc;
    }
    int64_t i = h->n++;
    while (i > 0) {
        int64_t p = (i - 1) / 2;
        if (!bigram_before(&b, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = b;
    return true;
}

inf__bigram inf__bigram_pop(inf__bigram_heap *h) {
    inf__bigram top = h->v[0], last = h->v[--h->n];
    int64_t i = 0;
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && bigram_before(&h->v[c + 1], &h->v[c])) c++;
        if (!bigram_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0) h->v[i] = last;
    return top;
}

/* ---- byte tokens -------------------------------------------------------------------------- */

uint8_t inf__tok_byte_value(const inf_tokenizer *t, int32_t id) {
    /* llama.cpp: strtol(text.substr(3, 2), 16) */
    char buf[3] = {0};
    if (t->len[id] > 3) buf[0] = t->text[id][3];
    if (t->len[id] > 4) buf[1] = t->text[id][4];
    return (uint8_t)strtol(buf, NULL, 16);
}

int32_t inf__tok_byte_token(const inf_tokenizer *t, uint8_t byte) {
    if (t->kind == INF_TOK_SPM) {
        static const char hex[] = "0123456789ABCDEF";
        char buf[6] = {'<', '0', 'x', hex[byte >> 4], hex[byte & 15], '>'};
        int32_t id = inf__smap_get(&t->tok_map, buf, 6);
        if (id >= 0) return id;
        char c = (char)byte;
        return inf__smap_get(&t->tok_map, &c, 1);
    }
    return inf__smap_get(&t->tok_map, t->byte_enc[byte], t->byte_enc_len[byte]);
}
