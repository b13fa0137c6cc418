/*
 * gen_seeds.c — writes the GGUF seed corpus of fuzz_gguf with the project's own writer:
 *
 *   build-fuzz/fuzz/gen_fuzz_seeds tests/fuzz/corpus/gguf     (`make fuzz-seeds`)
 *
 * Three tiny models, each a few KiB, covering every tokenizer kind and both architectures so the
 * fuzzer starts from files that get all the way through tokenizer construction and tensor
 * binding: llama + SentencePiece vocab (byte tokens, scores, token types, chat template); qwen2 +
 * byte-level BPE (merges, tied embeddings, biases, F16 weights); a vocab-only WordPiece file.
 * The output is deterministic, so regenerating leaves the committed files unchanged.
 */
#include "format/gguf.h"
#include "kernels/types.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(x)                                                                                  \
    do {                                                                                          \
        if ((x) < 0) {                                                                            \
            fprintf(stderr, "gen_seeds: %s failed: %s\n", #x, inf_last_error());                  \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

enum { E = 8, HEADS = 2, FF = 16 };

static void set_arch(inf_gguf_writer *w, const char *arch) {
    char key[96];
    CHECK(inf_gguf_writer_set_str(w, "general.architecture", arch));
    CHECK(inf_gguf_writer_set_str(w, "general.name", "fuzz seed"));
    snprintf(key, sizeof key, "%s.context_length", arch);
    CHECK(inf_gguf_writer_set_u32(w, key, 64));
    snprintf(key, sizeof key, "%s.embedding_length", arch);
    CHECK(inf_gguf_writer_set_u32(w, key, E));
    snprintf(key, sizeof key, "%s.block_count", arch);
    CHECK(inf_gguf_writer_set_u32(w, key, 1));
    snprintf(key, sizeof key, "%s.feed_forward_length", arch);
    CHECK(inf_gguf_writer_set_u32(w, key, FF));
    snprintf(key, sizeof key, "%s.attention.head_count", arch);
    CHECK(inf_gguf_writer_set_u32(w, key, HEADS));
    snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
    CHECK(inf_gguf_writer_set_u32(w, key, 1));
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    CHECK(inf_gguf_writer_set_f32(w, key, 1e-5f));
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    CHECK(inf_gguf_writer_set_f32(w, key, 10000.0f));
}

/* Tensors of one layer plus embeddings (data: zeros, written by the writer). */
static void add_tensors(inf_gguf_writer *w, int type, int64_t n_vocab, bool tied, bool bias) {
    const int64_t kv = E / HEADS;
    struct {
        const char *name;
        int64_t ne0, ne1;
        bool matmul;
    } t[] = {
        {"token_embd.weight", E, n_vocab, true},  {"output_norm.weight", E, 1, false},
        {"output.weight", E, n_vocab, true},      {"blk.0.attn_norm.weight", E, 1, false},
        {"blk.0.attn_q.weight", E, E, true},      {"blk.0.attn_k.weight", E, kv, true},
        {"blk.0.attn_v.weight", E, kv, true},     {"blk.0.attn_output.weight", E, E, true},
        {"blk.0.ffn_norm.weight", E, 1, false},   {"blk.0.ffn_gate.weight", E, FF, true},
        {"blk.0.ffn_up.weight", E, FF, true},     {"blk.0.ffn_down.weight", FF, E, true},
        {"blk.0.attn_q.bias", E, 1, false},       {"blk.0.attn_k.bias", kv, 1, false},
        {"blk.0.attn_v.bias", kv, 1, false},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (tied && !strcmp(t[i].name, "output.weight")) continue;
        if (!bias && strstr(t[i].name, ".bias")) continue;
        int64_t ne[2] = {t[i].ne0, t[i].ne1};
        CHECK(inf_gguf_writer_add_tensor(w, t[i].name, t[i].matmul ? type : INF_TYPE_F32,
                                         t[i].ne1 == 1 ? 1 : 2, ne, NULL));
    }
}

static void write_file(inf_gguf_writer *w, const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK(inf_gguf_writer_write(w, path));
    inf_gguf_writer_free(w);
}

static void spm_llama(const char *dir) {
    static const char *const toks[] = {"<unk>", "<s>",  "</s>", "<0x0A>", "<0xE2>", "\u2581",
                                       "a",     "b",    "\u2581a", "ab", "[INST]",
                                       "\u2581ab"};
    enum { N = sizeof toks / sizeof toks[0] };
    float scores[N];
    int32_t types[N];
    for (int i = 0; i < N; i++) {
        scores[i] = -(float)i;
        types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 5 ? 6 : i == 10 ? 4 : 1;
    }
    inf_gguf_writer *w = inf_gguf_writer_new();
    if (!w) exit(1);
    set_arch(w, "llama");
    CHECK(inf_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama"));
    CHECK(inf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, N));
    CHECK(inf_gguf_writer_set_arr(w, "tokenizer.ggml.scores", INF_GGUF_FLOAT32, scores, N));
    CHECK(inf_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", INF_GGUF_INT32, types, N));
    CHECK(inf_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1));
    CHECK(inf_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2));
    CHECK(inf_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0));
    CHECK(inf_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true));
    CHECK(inf_gguf_writer_set_str(w, "tokenizer.chat_template",
                                  "{% for m in messages %}[INST] {{ m['content'] }}{% endfor %}"));
    add_tensors(w, INF_TYPE_F32, N, false, false);
    write_file(w, dir, "seed_llama_spm.gguf");
}

static void bpe_qwen2(const char *dir) {
    /* byte-level BPE: U+0120 stands for a space */
    static const char *const toks[] = {"a", "b", "c", "\u0120", "ab", "\u0120a",
                                       "abc", "<|im_start|>", "<|im_end|>", "<|endoftext|>"};
    static const char *const merges[] = {"a b", "\u0120 a", "ab c"};
    enum { N = sizeof toks / sizeof toks[0] };
    int32_t types[N];
    for (int i = 0; i < N; i++)
        types[i] = i >= 7 ? 3 : 1;
    inf_gguf_writer *w = inf_gguf_writer_new();
    if (!w) exit(1);
    set_arch(w, "qwen2");
    CHECK(inf_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2"));
    CHECK(inf_gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen2"));
    CHECK(inf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, N));
    CHECK(inf_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", INF_GGUF_INT32, types, N));
    CHECK(inf_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 3));
    CHECK(inf_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 9));
    CHECK(inf_gguf_writer_set_u32(w, "tokenizer.ggml.eot_token_id", 8));
    CHECK(inf_gguf_writer_set_str(w, "tokenizer.chat_template",
                                  "{% for m in messages %}<|im_start|>{{ m.role }}\n"
                                  "{{ m.content }}<|im_end|>\n{% endfor %}"));
    add_tensors(w, INF_TYPE_F16, N, true, true);
    write_file(w, dir, "seed_qwen2_bpe.gguf");
}

static void wpm_vocab(const char *dir) {
    static const char *const toks[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
                                       "\u2581hello", "\u2581world", "##s", "!"};
    enum { N = sizeof toks / sizeof toks[0] };
    int32_t types[N];
    for (int i = 0; i < N; i++)
        types[i] = i < 5 ? 3 : 1;
    inf_gguf_writer *w = inf_gguf_writer_new();
    if (!w) exit(1);
    CHECK(inf_gguf_writer_set_str(w, "general.architecture", "bert"));
    CHECK(inf_gguf_writer_set_str(w, "tokenizer.ggml.model", "bert"));
    CHECK(inf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, N));
    CHECK(inf_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", INF_GGUF_INT32, types, N));
    CHECK(inf_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 1));
    CHECK(inf_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 2));
    CHECK(inf_gguf_writer_set_u32(w, "tokenizer.ggml.seperator_token_id", 3));
    CHECK(inf_gguf_writer_set_bool(w, "tokenizer.ggml.normalizer.lowercase", true));
    write_file(w, dir, "seed_bert_wpm.gguf");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
        return 2;
    }
    spm_llama(argv[1]);
    bpe_qwen2(argv[1]);
    wpm_vocab(argv[1]);
    return 0;
}
