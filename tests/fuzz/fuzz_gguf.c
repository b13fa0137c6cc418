/*
 * fuzz_gguf.c — libFuzzer harness for the GGUF reader (not part of the CMake build).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
 *         tools/fuzz_gguf.c src/format/gguf.c src/base/error.c src/base/util.c -o fuzz_gguf
 *   ./fuzz_gguf -max_len=4096 -max_total_time=60 CORPUS_DIR
 *
 * Seed the corpus with small files written by the writer (e.g. the unit test's) or the first
 * kilobytes of a fixture. Any successfully opened file is walked through every accessor so
 * out-of-bounds views are caught by ASan.
 */
#include "format/gguf.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    inf_gguf *g = NULL;
    if (inf_gguf_open_buffer(data, size, &g) != 0) return 0;
    volatile unsigned sink = 0;
    for (int64_t i = 0; i < inf_gguf_n_kv(g); i++) {
        const char *key = inf_gguf_key_name(g, i);
        int et;
        int64_t n;
        const char *s;
        size_t len;
        const void *d;
        if (inf_gguf_get_str(g, key, &s, &len) == 0 && len) sink += (unsigned char)s[len - 1];
        if (inf_gguf_get_arr(g, key, &et, &n) == 0) {
            if (et == INF_GGUF_STRING)
                for (int64_t k = 0; k < n; k++)
                    if (inf_gguf_get_arr_str(g, key, k, &s, &len) == 0 && len)
                        sink += (unsigned char)s[len - 1];
            if (inf_gguf_get_arr_data(g, key, &d) == 0 && n) sink += *(const uint8_t *)d;
        }
        int64_t v;
        float f;
        (void)inf_gguf_get_i64(g, key, &v);
        (void)inf_gguf_get_f32(g, key, &f);
    }
    for (int64_t i = 0; i < inf_gguf_n_tensors(g); i++) {
        const inf_gguf_tensor *t = inf_gguf_tensor_at(g, i);
        const uint8_t *p = t->data;
        sink += p[0] + p[t->nbytes - 1];
        if (inf_gguf_find_tensor(g, t->name) != t) abort();
    }
    (void)sink;
    inf_gguf_close(g);
    return 0;
}
