/*
 * fuzz_guard.c — libFuzzer target: the byte scanner in front of libwebsockets
 * (inf__guard_feed, src/server/guard.c) on hostile connections, fed in pieces whose size comes
 * from the input. Checks what the scanner promises: it never consumes more than it is given, a
 * verdict is one of the two it knows, a scanner that stopped (verdict or OFF) stays stopped, and
 * feeding the same bytes whole or in pieces gives the same verdict.
 *
 * Input: byte 0 = piece size (1..256), byte 1 bit 0 = start in WebSocket mode; the rest is fed.
 */
#include "server/internal.h"

#include <stdlib.h>

static int run(const uint8_t *p, size_t n, size_t step, bool ws) {
    inf__guard_scan s = {0};
    if (ws) s.mode = INF__GUARD_WS;
    for (size_t i = 0; i < n; i += step) {
        size_t k = n - i < step ? n - i : step, used = (size_t)-1;
        int v = inf__guard_feed(&s, p + i, k, &used);
        if (used > k) abort();
        if (v != 0 && v != INF__GUARD_BAD_METHOD && v != INF__GUARD_UNMASKED) abort();
        if (v) {
            if (s.mode != INF__GUARD_OFF) abort();
            return v;
        }
        if (s.mode == INF__GUARD_BODY) {
            if (ws) abort();
            return 0; /* the server decides what the rest is */
        }
        if (used != k && s.mode != INF__GUARD_OFF) abort();
        if (s.mode == INF__GUARD_OFF) return 0;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t step = (size_t)data[0] + 1;
    bool ws = data[1] & 1;
    data += 2;
    size -= 2;
    if (run(data, size, step, ws) != run(data, size, size ? size : 1, ws)) abort();
    return 0;
}
