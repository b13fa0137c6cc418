/*
 * stop.h — stop-string matcher for streamed output text (internal to the engine and the CLI).
 *
 * Text arrives in arbitrary pieces (token pieces, which may split stop strings and UTF-8
 * characters). The matcher releases text only when it can no longer be the start of a stop
 * string and ends at a UTF-8 character boundary; when a stop string completes, the text before
 * it is released and the stop string (and anything after it) never is.
 *
 * Usage:
 *     inf_stop m;
 *     inf__stop_init(&m, stops, n);              // copies the strings
 *     for each piece: inf__stop_feed(&m, piece, len, &out, &out_len, &matched);
 *                     emit out[0..out_len); if (matched >= 0) finish
 *     at the end:     inf__stop_flush(&m, &out, &out_len); emit it
 *     inf__stop_free(&m);
 *
 * Owned by one thread at a time; no allocation per feed beyond amortised growth of the pending
 * buffer (which stays shorter than the longest stop string plus the piece being fed).
 */
#ifndef INF_STOP_H
#define INF_STOP_H

#include "inferneo.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct inf_stop {
    char *strs[INF_MAX_STOP]; /* owned copies (+ KMP failure table); empty ones dropped */
    size_t lens[INF_MAX_STOP];
    int orig_index[INF_MAX_STOP]; /* index of strs[i] in the caller's list */
    int n;
    size_t max_len;
    size_t state[INF_MAX_STOP]; /* KMP state: matched prefix length of each stop string */
    char *buf;                  /* pending text: buf[skip..len) is held back */
    size_t len, cap;
    size_t skip; /* bytes at the front released by the previous call (still readable) */
    int matched; /* index (caller's list) of the stop string that matched, or -1 */
} inf_stop;

/* Copies up to INF_MAX_STOP stop strings (stops[i] == NULL ends the list early; empty strings
 * are ignored). n may be 0 (the matcher then only aligns output to UTF-8 boundaries).
 * Returns 0, INF_EINVAL (n out of range) or INF_ENOMEM. On failure m is left freeable. */
int inf__stop_init(inf_stop *m, const char *const *stops, int n);
void inf__stop_free(inf_stop *m);

/* Appends n bytes of text. *out and *out_len receive the text that may be emitted now (borrowed,
 * valid until the next call on m). *matched is the index of the stop string that completed in
 * this call (its preceding text is in *out) or -1. After a match, further feeds release nothing
 * and report the same index. Returns 0 or INF_ENOMEM. */
int inf__stop_feed(inf_stop *m, const char *bytes, size_t n, const char **out, size_t *out_len,
                   int *matched);

/* Releases all held text (end of generation without a match; nothing after a match). Same
 * ownership of *out as inf__stop_feed. */
void inf__stop_flush(inf_stop *m, const char **out, size_t *out_len);

/* Resets to the state after init (the stop strings are kept). */
void inf__stop_reset(inf_stop *m);

#endif
