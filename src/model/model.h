/*
 * model.h — hyperparameters, weights bound to the GGUF mapping, and the batched forward pass.
 *
 * The forward pass takes a batch of entries, each (token, position, sequence, KV slot), mixing
 * prompt chunks of several sequences and single decode tokens. K/V of every entry are written
 * to its slot of the KV store; attention of an entry at position p of sequence s reads the slots
 * of positions 0..p from that sequence's slot table. A paged KV cache maps
 * slot = page * page_tokens + offset; a contiguous one uses slot = position.
 */
#ifndef INF_MODEL_H
#define INF_MODEL_H

#include "format/gguf.h"
#include "kernels/kernels.h"
#include "tokenizer/tokenizer.h"

enum inf_arch { INF_ARCH_LLAMA = 0, INF_ARCH_QWEN2 = 1 };

typedef struct inf_hparams {
    int arch;
    int64_t n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff;
    float rms_eps, rope_base, rope_scale; /* rope_scale: position multiplier (1/linear factor) */
    int rope_neox;
    int64_t n_rot; /* rotated dims per head (<= head_dim, even) — added by the model layer */
} inf_hparams;

typedef struct inf_layer {
    inf_tensor attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
    inf_tensor bq, bk, bv; /* qwen2 biases (data NULL when absent) */
} inf_layer;

struct inf_model {
    inf_gguf *gguf;
    inf_hparams hp;
    inf_tensor tok_embd, output_norm, output; /* output may alias tok_embd (tied) */
    inf_layer *layers;                        /* [n_layer]; NULL when vocab_only */
    inf_tokenizer *tok;
    inf_pool *pool;                           /* NULL when vocab_only */
    char *name, *arch_name;
    int n_threads;
    /* Added by the model layer (additive): */
    bool vocab_only;       /* metadata + tokenizer only: no hparams/weights/pool */
    bool has_hparams;      /* hp is valid (always when !vocab_only) */
    char *chat_template;   /* tokenizer.chat_template or NULL */
    char *tok_model;       /* tokenizer.ggml.model ("llama", "gpt2") or NULL */
    int64_t n_tensors;
    int64_t n_tensors_by_type[64];
    uint64_t n_params, weight_bytes;
    void **repacked;       /* [n_repacked] kernel-layout copies of matmul weights (owned) */
    int64_t n_repacked;
};

/* Reads hyperparameters of a supported architecture from GGUF metadata (no tensors). */
int inf__model_load_hparams(const inf_gguf *g, inf_hparams *hp);
/* Binds and validates every tensor of m->hp against the GGUF (allocates m->layers). */
int inf__model_bind_tensors(inf_model *m);

/* KV store: K and V of every slot for every layer as IEEE binary16 (llama.cpp's default f16
 * cache). k[l], v[l]: [n_slots][n_head_kv * head_dim]. */
typedef struct inf_kv_store {
    int64_t n_slots;
    inf_half **k, **v; /* [n_layer] */
} inf_kv_store;

/* Bytes of KV store one token (slot) takes over all layers, K and V; 0 when that overflows. */
size_t inf_kv_store_token_bytes(const inf_hparams *hp);

int inf_kv_store_init(inf_kv_store *kv, const inf_hparams *hp, int64_t n_slots);
void inf_kv_store_free(inf_kv_store *kv, const inf_hparams *hp);

typedef struct inf_batch {
    int64_t n_tokens;
    const int32_t *tokens;  /* [n_tokens] */
    const int32_t *pos;     /* [n_tokens] position within its sequence */
    const int32_t *seq;     /* [n_tokens] index into seq_slots */
    const int32_t *slot;    /* [n_tokens] KV slot written by this entry */
    const int32_t *const *seq_slots; /* [n_seqs][>= max pos + 1]: slot of each position */
    int64_t n_seqs;
    /* Which entries produce output rows (logits/hidden), in entry order. NULL: all. */
    const uint8_t *output;
} inf_batch;
/* Contract checked by inf_model_forward (INF_EINVAL / INF_ERANGE, nothing computed on failure):
 * 0 <= n_tokens <= scratch max_tokens (0: no-op), tokens < n_vocab, 0 <= seq < n_seqs,
 * 0 <= pos < scratch max_ctx, 0 <= slot < kv n_slots, seq_slots[seq][0..pos] are valid slots and
 * seq_slots[seq][pos] == slot. Entries of one sequence at smaller positions in the same batch are
 * visible to later positions (K/V are written before attention). */

/* Scratch for forward passes of up to max_tokens entries and max_ctx positions per sequence. */
typedef struct inf_forward_scratch inf_forward_scratch;
int inf_forward_scratch_new(const inf_model *m, int64_t max_tokens, int64_t max_ctx,
                            inf_forward_scratch **out);
void inf_forward_scratch_free(inf_forward_scratch *s);

/* Runs the batch. logits: [n_out][n_vocab] for the entries marked in batch->output (in order),
 * or NULL. hidden: [n_out][n_embd] final-normed hidden states, or NULL. Batch-invariant: an
 * entry's outputs do not depend on the other entries (see kernels.h). */
int inf_model_forward(inf_model *m, inf_forward_scratch *s, const inf_batch *b,
                      inf_kv_store *kv, float *logits, float *hidden);

#endif
