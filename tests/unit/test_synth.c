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
    const int types[] = {INF_TYPE_F32,    INF_TYPE_F16,   INF_TYPE_Q4_0, INF_TYPE_Q8_0,
                         INF_TYPE_BF16,   INF_TYPE_Q4_1,  INF_TYPE_Q5_0, INF_TYPE_Q5_1,
                         INF_TYPE_IQ4_NL, INF_TYPE_Q2_K,  INF_TYPE_Q3_K, INF_TYPE_Q4_K,
                         INF_TYPE_Q5_K,   INF_TYPE_Q6_K,  INF_TYPE_IQ4_XS};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        char path[256];
        tmp_path(path, sizeof path, "t");
        inf_synth_params p = small(types[i]);
        if (inf_type_traits_get(types[i])->blck_size == 256) { /* K-quant super-blocks */
            p.n_embd = 256;
            p.n_ff = 512;
        }
        int err = inf_synth_write(path, &p);
        if (err) fail_msg("%s", inf_last_error());
        check_file(path, &p);
        unlink(path);
    }
}

/* llama-quantize's _M mixtures: per-tensor types for 8 layers ("more bits" layers 0, 3, 6, 7). */
static void test_mixtures(void **state) {
    (void)state;
    const struct {
        int base, embd, q, v[8], out, down[8], file_type;
    } want[] = {
        {INF_TYPE_Q4_K, INF_TYPE_Q4_K, INF_TYPE_Q4_K, {14, 12, 12, 14, 12, 12, 14, 14},
         INF_TYPE_Q4_K, {14, 12, 12, 14, 12, 12, 14, 14}, 15},
        {INF_TYPE_Q5_K, INF_TYPE_Q5_K, INF_TYPE_Q5_K, {14, 13, 13, 14, 13, 13, 14, 14},
         INF_TYPE_Q5_K, {14, 13, 13, 14, 13, 13, 14, 14}, 17},
        {INF_TYPE_Q3_K, INF_TYPE_Q3_K, INF_TYPE_Q3_K, {13, 13, 12, 12, 12, 12, 12, 12},
         INF_TYPE_Q4_K, {12, 12, 12, 12, 12, 12, 12, 12}, 12},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char path[256];
        tmp_path(path, sizeof path, "mix");
        inf_synth_params p = small(want[i].base);
        p.n_embd = 256;
        p.n_ff = 512;
        p.n_layer = 8;
        p.mix = INF_SYNTH_MIX_M;
        if (inf_synth_write(path, &p)) fail_msg("%s", inf_last_error());
        inf_gguf *g;
        assert_int_equal(inf_gguf_open(path, &g), 0);
        uint32_t ft;
        assert_int_equal(inf_gguf_get_u32(g, "general.file_type", &ft), 0);
        assert_int_equal(ft, want[i].file_type);
        assert_int_equal(inf_gguf_find_tensor(g, "token_embd.weight")->type, want[i].embd);
        assert_int_equal(inf_gguf_find_tensor(g, "output.weight")->type, INF_TYPE_Q6_K);
        for (int l = 0; l < 8; l++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.attn_q.weight", l);
            assert_int_equal(inf_gguf_find_tensor(g, name)->type, want[i].q);
            snprintf(name, sizeof name, "blk.%d.attn_v.weight", l);
            assert_int_equal(inf_gguf_find_tensor(g, name)->type, want[i].v[l]);
            snprintf(name, sizeof name, "blk.%d.attn_output.weight", l);
            assert_int_equal(inf_gguf_find_tensor(g, name)->type, want[i].out);
            snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l);
            assert_int_equal(inf_gguf_find_tensor(g, name)->type, want[i].down[l]);
        }
        inf_gguf_close(g);
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
    p = small(INF_TYPE_Q6_K); /* n_embd 64: not a multiple of the 256 super-block */
    assert_int_equal(inf_synth_write(path, &p), INF_EINVAL);
    p = small(INF_TYPE_Q8_K); /* an activation type, not offered */
    p.n_embd = 256;
    p.n_ff = 512;
    assert_int_equal(inf_synth_write(path, &p), INF_EINVAL);
    p.type = INF_TYPE_Q6_K; /* the _M mixture exists for q3_K/q4_K/q5_K only */
    p.mix = INF_SYNTH_MIX_M;
    assert_int_equal(inf_synth_write(path, &p), INF_EINVAL);
    assert_int_equal(access(path, F_OK), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_mixtures),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_bad_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
