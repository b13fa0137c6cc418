/*
 * test_synth.c — inf_synth_write: shapes, metadata, vocabulary and weight statistics of the
 * written file, determinism per seed, and rejection of impossible shapes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the headers above first */
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/gguf.h"
#include "kernels/kernels.h"

static void tmp_path(char *buf, size_t cap, const char *tag) {
    snprintf(buf, cap, "/tmp/test_synth_%ld_%s.gguf", (long)getpid(), tag);
}

static inf_synth_params small(int type) {
    inf_synth_params p = inf_synth_params_default();
    p.n_embd = 64;
    p.n_layer = 2;
    p.n_head = 4;
    p.n_head_kv = 2;
    p.n_ff = 160;
    p.n_vocab = 700;
    p.type = type;
    p.seed = 7;
    p.name = "small";
    return p;
}

static void check_file(const char *path, const inf_synth_params *p) {
    inf_gguf *g;
    int err = inf_gguf_open(path, &g);
    if (err) fail_msg("%s", inf_last_error());
    uint32_t u;
    const char *s;
    size_t sl;
    assert_int_equal(inf_gguf_get_str(g, "general.architecture", &s, &sl), 0);
    assert_true(sl == 5 && !memcmp(s, "llama", 5));
    assert_int_equal(inf_gguf_get_u32(g, "llama.embedding_length", &u), 0);
    assert_int_equal(u, p->n_embd);
    assert_int_equal(inf_gguf_get_u32(g, "llama.block_count", &u), 0);
    assert_int_equal(u, p->n_layer);
    assert_int_equal(inf_gguf_get_u32(g, "llama.attention.head_count_kv", &u), 0);
    assert_int_equal(u, p->n_head_kv);
    assert_int_equal(inf_gguf_get_u32(g, "llama.feed_forward_length", &u), 0);
    assert_int_equal(u, p->n_ff);
    assert_int_equal(inf_gguf_get_u32(g, "llama.context_length", &u), 0);
    assert_int_equal(u, 2048);
    float f;
    assert_int_equal(inf_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f), 0);
    assert_true(f == 1e-5f);
    assert_int_equal(inf_gguf_get_str(g, "tokenizer.ggml.model", &s, &sl), 0);
    assert_true(sl == 5 && !memcmp(s, "llama", 5));
    int et;
    int64_t n;
    assert_int_equal(inf_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n), 0);
    assert_int_equal(n, p->n_vocab);
    assert_int_equal(inf_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 1, &s, &sl), 0);
    assert_true(sl == 3 && !memcmp(s, "<s>", 3));
    assert_int_equal(inf_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 3 + 0x41, &s, &sl), 0);
    assert_true(sl == 6 && !memcmp(s, "<0x41>", 6));
    /* tokens are unique */
    for (int64_t i = 1; i < n; i++) {
        const char *a, *b;
        size_t al, bl;
        inf_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i - 1, &a, &al);
        inf_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &b, &bl);
        assert_false(al == bl && !memcmp(a, b, al));
    }
    assert_int_equal(inf_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &n), 0);
    assert_int_equal(et, INF_GGUF_INT32);
    assert_int_equal(n, p->n_vocab);
    assert_int_equal(inf_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &n), 0);
    assert_int_equal(et, INF_GGUF_FLOAT32);

    assert_int_equal(inf_gguf_n_tensors(g), 3 + 9 * p->n_layer);
    const inf_gguf_tensor *t = inf_gguf_find_tensor(g, "blk.1.ffn_down.weight");
    assert_non_null(t);
    assert_int_equal(t->type, p->type);
    assert_int_equal(t->ne[0], p->n_ff);
    assert_int_equal(t->ne[1], p->n_embd);
    t = inf_gguf_find_tensor(g, "blk.0.attn_k.weight");
    assert_int_equal(t->ne[0], p->n_embd);
    assert_int_equal(t->ne[1], p->n_head_kv * (p->n_embd / p->n_head));
    t = inf_gguf_find_tensor(g, "blk.0.attn_norm.weight");
    assert_int_equal(t->type, 0);
    float one;
    memcpy(&one, t->data, 4);
    assert_true(one == 1.0f);
    /* weight statistics of token_embd after dequantization */
    t = inf_gguf_find_tensor(g, "token_embd.weight");
    assert_int_equal(t->ne[1], p->n_vocab);
    const inf_type_traits *tr = inf_type_traits_get(t->type);
    assert_non_null(tr);
    int64_t nel = t->ne[0] * t->ne[1];
    float *x = malloc((size_t)nel * sizeof *x);
    tr->to_float(t->data, x, nel);
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < nel; i++) {
        sum += x[i];
        sq += (double)x[i] * x[i];
    }
    double mean = sum / (double)nel, sd = sqrt(sq / (double)nel - mean * mean);
    assert_true(fabs(mean) < 1e-3);
    assert_true(sd > 0.017 && sd < 0.023);
    free(x);
    inf_gguf_close(g);
}

static void test_types(void **state) {
    (void)state;
    assert_int_equal(inf_kernels_init(), 0);
    int types[] = {0, 1, 2, 8};
    for (size_t i = 0; i < 4; i++) {
        char path[256];
        tmp_path(path, sizeof path, "t");
        inf_synth_params p = small(types[i]);
        int err = inf_synth_write(path, &p);
        if (err) fail_msg("%s", inf_last_error());
        check_file(path, &p);
        unlink(path);
    }
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void test_deterministic(void **state) {
    (void)state;
    char a[256], b[256];
    tmp_path(a, sizeof a, "a");
    tmp_path(b, sizeof b, "b");
    inf_synth_params p = small(8);
    assert_int_equal(inf_synth_write(a, &p), 0);
    assert_int_equal(inf_synth_write(b, &p), 0);
    size_t na, nb;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(x, y, na);
    free(y);
    p.seed = 8;
    assert_int_equal(inf_synth_write(b, &p), 0);
    y = slurp(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_not_equal(x, y, na);
    free(x);
    free(y);
    unlink(a);
    unlink(b);
}

static void test_bad_shapes(void **state) {
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "bad");
    inf_synth_params p = small(2);
    p.n_embd = 48; /* not a multiple of 32 for q4_0 */
    p.n_head = 4;
    assert_int_equal(inf_synth_write(path, &p), INF_EINVAL);
    p = small(1);
    p.n_head_kv = 3;
    assert_int_equal(inf_synth_write(path, &p), INF_EINVAL);
    p = small(1);
    p.n_vocab = 100;
    assert_int_equal(inf_synth_write(path, &p), INF_EINVAL);
    p = small(1);
    p.n_layer = 0;
    assert_int_equal(inf_synth_write(path, &p), INF_EINVAL);
    p = small(14); /* q6_K not offered */
    assert_int_equal(inf_synth_write(path, &p), INF_EINVAL);
    assert_int_equal(access(path, F_OK), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_bad_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
