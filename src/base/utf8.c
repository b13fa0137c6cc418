/*
 * utf8.c — the one UTF-8 validity rule of the tree (Unicode Table 3-7 well-formedness; each
 * maximal subpart of an ill-formed sequence becomes one U+FFFD, as WHATWG's decoder does), and
 * the stream helpers built on it. Whatever replaces bad bytes — the streaming detokenizer,
 * JSON output, the CLI — goes through inf__utf8_seq, so one byte string is repaired the same way
 * everywhere.
 * Threads: pure functions.
 */
#include "base.h"

int inf__utf8_len(unsigned char c) {
    if (c < 0x80) return 1;
    if (c < 0xc0) return 0;
    if (c < 0xe0) return 2;
    if (c < 0xf0) return 3;
    if (c < 0xf8) return 4;
    return 0;
}

int inf__utf8_seq(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    int need;
    /* the allowed range of the second byte: this is where overlongs, surrogates and values
     * above U+10FFFF are excluded (Table 3-7) */
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
        return -1; /* continuation byte, C0, C1, F5..FF */
    }
    for (int k = 1; k < need; k++) {
        if ((size_t)k >= n) return 0;
        unsigned char b = s[k];
        if (k == 1 ? (b < lo || b > hi) : (b & 0xc0) != 0x80) return -k;
    }
    return need;
}

bool inf__utf8_valid(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        int r = inf__utf8_seq(s + i, n - i);
        if (r <= 0) return false;
        i += (size_t)r;
    }
    return true;
}

size_t inf__utf8_sanitize(inf_sb *sb, const char *s, size_t n, size_t *held) {
    size_t i = 0, run = 0, bad = 0;
    if (held) *held = 0;
    while (i < n) {
        int r = inf__utf8_seq(s + i, n - i);
        if (r > 0) {
            i += (size_t)r;
            continue;
        }
        inf__sb_append(sb, s + run, i - run); /* the well-formed run before */
        if (r == 0 && held) {
            *held = n - i;
            return bad;
        }
        inf__sb_append(sb, INF_UTF8_REPLACEMENT, 3);
        bad++;
        i += r < 0 ? (size_t)-r : n - i;
        run = i;
    }
    inf__sb_append(sb, s + run, n - run);
    return bad;
}

size_t inf__utf8_complete_prefix(const char *s, size_t n) {
    /* Only a lead byte in the last 3 bytes can start an incomplete character; a lead byte is
     * always a character start (it never continues an earlier sequence). */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = (unsigned char)s[n - back];
        if ((c & 0xc0) == 0x80) continue;
        return inf__utf8_seq(s + n - back, back) == 0 ? n - back : n;
    }
    return n;
}

size_t inf__utf8_put(uint32_t cp, char out[4]) {
    if (cp <= 0x7f) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp <= 0x7ff) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp <= 0xffff) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | ((cp >> 18) & 7));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}
