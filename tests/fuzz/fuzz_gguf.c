/*
 * fuzz_gguf.c — libFuzzer target: the GGUF reader on hostile bytes, then everything that is
 * built from an opened file without running the model: the tokenizer (vocab, merges, specials
 * from hostile metadata, plus a short encode/decode with it), the hyperparameters and the tensor
 * binding of the model layer (views into the buffer, shapes and types validated).
 *
 * Any successfully opened file is walked through every accessor, so out-of-bounds views are
 * caught by ASan. Seeds: tests/fuzz/corpus/gguf (written by tests/fuzz/gen_seeds.c).
 */
#include "format/gguf.h"
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

static volatile unsigned sink;

static void walk_metadata(const inf_gguf *g) {
    for (int64_t i = 0; i < inf_gguf_n_kv(g); i++) {
        const char *key = inf_gguf_key_name(g, i);
        if (inf_gguf_find_key(g, key) < 0) abort(); /* a stored key must be found */
        int et;
        int64_t n;
        const char *s;
        size_t len;
        const void *d;
        char *dup = NULL;
        if (inf_gguf_get_str(g, key, &s, &len) == 0 && len) sink += (unsigned char)s[len - 1];
        if (inf_gguf_get_strdup(g, key, &dup) == 0) sink += (unsigned char)dup[0];
        free(dup);
        if (inf_gguf_get_arr(g, key, &et, &n) == 0) {
            if (et == INF_GGUF_STRING)
                for (int64_t k = 0; k < n; k++)
                    if (inf_gguf_get_arr_str(g, key, k, &s, &len) == 0 && len)
                        sink += (unsigned char)s[len - 1];
            if (inf_gguf_get_arr_data(g, key, &d) == 0 && n) sink += *(const uint8_t *)d;
        }
        int64_t v;
        uint32_t u;
        float f;
        bool b;
        (void)inf_gguf_get_i64(g, key, &v);
        (void)inf_gguf_get_u32(g, key, &u);
        (void)inf_gguf_get_f32(g, key, &f);
        (void)inf_gguf_get_bool(g, key, &b);
    }
}

static void walk_tensors(const inf_gguf *g) {
    for (int64_t i = 0; i < inf_gguf_n_tensors(g); i++) {
        const inf_gguf_tensor *t = inf_gguf_tensor_at(g, i);
        const uint8_t *p = t->data;
        sink += p[0] + p[t->nbytes - 1];
        /* names may repeat only if the reader allows it; the first match must carry the name */
        const inf_gguf_tensor *f = inf_gguf_find_tensor(g, t->name);
        if (!f || strcmp(f->name, t->name)) abort();
    }
}

/* Tokenizer from the file's metadata: construction, then a short round through it. */
static void tokenizer(const inf_gguf *g) {
    inf_tokenizer *t = NULL;
    if (inf_tokenizer_load(g, &t) < 0) return;
    static const char text[] = "Hello world! <|im_start|> \xe2\x96\x81 caf\xc3\xa9 \xff 123\n";
    int32_t *ids = NULL;
    int64_t n = 0;
    if (inf_tokenizer_encode(t, text, sizeof text - 1, true, true, &ids, &n) == 0) {
        char *out = NULL;
        size_t len = 0;
        for (int64_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= inf_tokenizer_n_vocab(t)) abort();
        if (inf_tokenizer_decode(t, ids, n, true, &out, &len) == 0) sink += (unsigned)len;
        free(out);
    }
    free(ids);
    char piece[64];
    for (int32_t id = 0; id < inf_tokenizer_n_vocab(t) && id < 64; id++)
        sink += (unsigned)inf_tokenizer_piece(t, id, true, piece, sizeof piece);
    inf_tokenizer_free(t);
}

/* Hyperparameters and tensor binding (no compute, no repacking). */
static void model(inf_gguf *g) {
    inf_model m;
    memset(&m, 0, sizeof m);
    m.gguf = g;
    if (inf__model_load_hparams(g, &m.hp) == 0 && inf__model_bind_tensors(&m) == 0)
        sink += (unsigned)m.hp.n_vocab;
    free(m.layers);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    return inf_kernels_init() < 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    inf_gguf *g = NULL;
    if (inf_gguf_open_buffer(data, size, &g) != 0) return 0;
    walk_metadata(g);
    walk_tensors(g);
    tokenizer(g);
    model(g);
    inf_gguf_close(g);
    return 0;
}
