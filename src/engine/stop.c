/*
 * stop.c — stop-string matcher over streamed text (see stop.h for the contract).
 *
 * Each stop string runs a KMP automaton over the byte stream: state[i] is the length of the
 * longest suffix of the text so far that is a proper prefix of stop string i. A piece that
 * drives some state to the full length completes a match; among the matches completed by one
 * piece the one that starts earliest wins (llama.cpp's server rule). Without a match, the
 * longest such suffix over all stop strings is held back, and the releasable part is further
 * cut to a UTF-8 character boundary.
 *
 * Invariants: buf[skip..len) is the held text; it is shorter than max_len + 3 after every feed
 * (a partial stop-string prefix plus at most 3 bytes of an incomplete character), so searching
 * and moving it is cheap. The states only ever describe suffixes lying inside buf[skip..len).
 *
 * Threads: one owner at a time, no locking.
 */
#include "engine/stop.h"

#include "base/base.h"

#include <stdlib.h>
#include <string.h>

/* KMP failure tables and automaton states live next to the strings: one allocation per stop
 * string holding [len] failure entries, so inf_stop stays a plain struct. */
static size_t *fail_of(const inf_stop *m, int i) {
    return (size_t *)(void *)(m->strs[i] + ((m->lens[i] + 1 + 7) & ~(size_t)7));
}

int inf__stop_init(inf_stop *m, const char *const *stops, int n) {
    memset(m, 0, sizeof *m);
    m->matched = -1;
    if (n < 0 || n > INF_MAX_STOP)
        return inf__err(INF_EINVAL, "stop: %d stop strings (at most %d)", n, INF_MAX_STOP);
    if (n > 0 && !stops) return inf__err(INF_EINVAL, "stop: NULL list");
    for (int k = 0; k < n && stops[k]; k++) {
        size_t len = strlen(stops[k]);
        if (len == 0) continue;
        size_t off = (len + 1 + 7) & ~(size_t)7, bytes;
        if (off < len || inf__mul_overflow(len, sizeof(size_t), &bytes) ||
            inf__add_overflow(bytes, off, &bytes)) {
            inf__stop_free(m);
            return inf__err(INF_EINVAL, "stop: string too long");
        }
        char *s = inf__malloc(bytes);
        if (!s) {
            inf__stop_free(m);
            return inf__err(INF_ENOMEM, "stop: out of memory");
        }
        memcpy(s, stops[k], len + 1);
        int i = m->n++;
        m->strs[i] = s;
        m->lens[i] = len;
        m->orig_index[i] = k;
        if (len > m->max_len) m->max_len = len;
        /* failure function: fail[j] = length of the longest proper border of s[0..j] */
        size_t *fail = fail_of(m, i);
        fail[0] = 0;
        for (size_t j = 1, b = 0; j < len; j++) {
            while (b > 0 && s[j] != s[b])
                b = fail[b - 1];
            if (s[j] == s[b]) b++;
            fail[j] = b;
        }
    }
    return 0;
}

void inf__stop_free(inf_stop *m) {
    if (!m) return;
    for (int i = 0; i < m->n; i++)
        free(m->strs[i]);
    free(m->buf);
    memset(m, 0, sizeof *m);
    m->matched = -1;
}

void inf__stop_reset(inf_stop *m) {
    m->len = m->skip = 0;
    m->matched = -1;
    memset(m->state, 0, sizeof m->state);
}

int inf__stop_feed(inf_stop *m, const char *bytes, size_t n, const char **out, size_t *out_len,
                   int *matched) {
    *out = "";
    *out_len = 0;
    *matched = m->matched;
    if (m->matched >= 0) return 0;

    /* drop what the previous call released */
    if (m->skip) {
        memmove(m->buf, m->buf + m->skip, m->len - m->skip);
        m->len -= m->skip;
        m->skip = 0;
    }
    size_t need;
    if (inf__add_overflow(m->len, n, &need)) return inf__err(INF_ENOMEM, "stop: text too long");
    if (need > m->cap) {
        size_t cap = m->cap ? m->cap : 64;
        while (cap < need)
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        char *nb = realloc(m->buf, cap);
        if (!nb) return inf__err(INF_ENOMEM, "stop: out of memory");
        m->buf = nb;
        m->cap = cap;
    }
    if (n) memcpy(m->buf + m->len, bytes, n);
    size_t start = m->len;
    m->len += n;

    /* run every automaton over the new bytes; remember the earliest-starting completion */
    size_t best_pos = SIZE_MAX;
    int best = -1;
    for (int i = 0; i < m->n; i++) {
        const char *s = m->strs[i];
        const size_t len = m->lens[i], *fail = fail_of(m, i);
        size_t st = m->state[i];
        for (size_t j = start; j < m->len; j++) {
            char c = m->buf[j];
            while (st > 0 && c != s[st])
                st = fail[st - 1];
            if (c == s[st]) st++;
            if (st == len) {
                size_t pos = j + 1 - len;
                if (pos < best_pos) {
                    best_pos = pos;
                    best = i;
                }
                break; /* later completions of this string start later */
            }
        }
        m->state[i] = st;
    }
    if (best >= 0) {
        m->matched = m->orig_index[best];
        *matched = m->matched;
        *out = m->buf;
        *out_len = best_pos;
        m->skip = m->len; /* nothing else is ever released */
        return 0;
    }

    size_t hold = 0;
    for (int i = 0; i < m->n; i++)
        if (m->state[i] > hold) hold = m->state[i];
    size_t emit = inf__utf8_complete_prefix(m->buf, m->len - hold);
    *out = m->buf;
    *out_len = emit;
    m->skip = emit;
    return 0;
}

void inf__stop_flush(inf_stop *m, const char **out, size_t *out_len) {
    *out = "";
    *out_len = 0;
    if (m->matched >= 0 || !m->buf) return;
    *out = m->buf + m->skip;
    *out_len = m->len - m->skip;
    m->skip = m->len;
    memset(m->state, 0, sizeof m->state);
}
