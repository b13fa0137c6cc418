/*
 * fuzz_http_chunked.c — libFuzzer target: the HTTP chunked transfer decoder (inf__chunked_feed,
 * src/server/http.c) on hostile bodies, fed in pieces whose sizes come from the input, with a
 * data limit from the input. Checks what the decoder promises: the data handed on never exceed
 * the limit, the result is one of its four codes, a completed body consumed no more than it was
 * given, and a decoder that finished or failed stays finished or failed.
 *
 * Input: byte 0 = piece size (1..256), byte 1 = limit (0..255 → 16·b bytes); the rest is fed.
 */
#include "server/internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct sink_state {
    size_t total;
} sink_state;

static int sink(void *user, const unsigned char *p, size_t n) {
    sink_state *s = user;
    (void)p;
    s->total += n;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t step = (size_t)data[0] + 1, max = (size_t)data[1] * 16;
    data += 2;
    size -= 2;
    inf__chunked d = {.max_data = max};
    sink_state s = {0};
    int rc = 0;
    for (size_t i = 0; i < size && rc == 0; i += step) {
        size_t n = size - i < step ? size - i : step, used = (size_t)-1;
        rc = inf__chunked_feed(&d, data + i, n, &used, sink, &s);
        if (rc < -2 || rc > 1 || used > n) abort();
        if (rc == 0 && used != n) abort(); /* more needed: everything was taken */
        if (s.total > max || d.data != s.total) abort();
    }
    if (rc != 0) { /* finished or failed: stays so */
        int again = inf__chunked_feed(&d, (const unsigned char *)"0\r\n\r\n", 5, NULL, sink, &s);
        if ((rc == 1) != (again == 1) && again >= 0) abort();
    }
    return 0;
}
