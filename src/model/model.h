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

enum inf_arch {
    INF_ARCH_LLAMA = 0,
    INF_ARCH_QWEN2 = 1,
    INF_ARCH_QWEN3 = 2,
    INF_ARCH_QWEN3MOE = 3,
    INF_ARCH_GEMMA2 = 4,
    INF_ARCH_GEMMA3 = 5,
    INF_ARCH_PHI3 = 6,
};

/* Options of an architecture (inf_hparams.flags), set by the architecture table in model.c and
 * interpreted by the one forward pass. */
enum {
    INF_AF_QKV_BIAS = 1u << 0,     /* attn_{q,k,v}.bias required */
    INF_AF_QK_NORM = 1u << 1,      /* per-head RMS norm of Q and K (attn_{q,k}_norm) before RoPE */
    INF_AF_POST_NORM = 1u << 2,    /* post_attention_norm and post_ffw_norm on sublayer outputs */
    INF_AF_EMBD_SCALE = 1u << 3,   /* embeddings scaled by sqrt(n_embd) */
    INF_AF_GELU = 1u << 4,         /* FFN activation GELU (tanh) instead of SiLU */
    INF_AF_FUSED_QKV = 1u << 5,    /* one attn_qkv matrix: rows [Q | K | V] */
    INF_AF_FUSED_UP = 1u << 6,     /* ffn_up holds rows [gate | up], no ffn_gate */
    INF_AF_MOE = 1u << 7,          /* mixture-of-experts FFN required */
    INF_AF_MOE_OPT = 1u << 8,      /* mixture-of-experts FFN when expert_count > 0 (Mixtral) */
    INF_AF_ROPE_FACTORS = 1u << 9, /* LongRoPE: rope_factors_{long,short} + attn_factor */
    INF_AF_SOFTCAP = 1u << 10,     /* attention/final logit soft-capping keys */
    INF_AF_SWA = 1u << 11,         /* attention.sliding_window on a layer pattern */
    INF_AF_SWA_PATTERN = 1u << 12, /* pattern read from attention.sliding_window_pattern */
    INF_AF_SWA_ROPE = 1u << 13,    /* sliding layers: rope.freq_base_swa, no RoPE scaling */
    INF_AF_Q_PRESCALE = 1u << 14,  /* Q scaled by 1/sqrt(head_dim) before its f16 rounding (as
                                    * llama.cpp's graph for the family does), not the scores */
};

typedef struct inf_hparams {
    int arch;
    uint32_t flags; /* INF_AF_* */
    int64_t n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff;
    float rms_eps, rope_base, rope_scale; /* rope_scale: position multiplier (1/linear factor) */
    int rope_neox;
    int64_t n_rot; /* rotated dims per head (<= head_dim, even) — added by the model layer */
    /* Mixture of experts (n_expert 0: dense FFN). n_ff_exp: rows of one expert's gate/up. */
    int64_t n_expert, n_expert_used, n_ff_exp;
    /* Sliding window: layer l is sliding when n_swa > 0 and l % swa_pattern < swa_pattern - 1;
     * there a query at position i sees keys at positions j with i - j < n_swa. */
    int64_t n_swa, swa_pattern;
    float rope_base_swa, rope_scale_swa; /* RoPE of sliding layers */
    float attn_softcap, final_softcap;   /* 0: none; else c * tanh(x / c) */
    float embd_scale;                    /* multiplier of the embedding rows (1: none) */
    float rope_attn_factor;              /* multiplies RoPE's cos/sin (LongRoPE; else 1) */
    int64_t n_ctx_orig;                  /* LongRoPE: long factors for contexts above this */
} inf_hparams;

/* Whether layer l uses the sliding window. */
static inline bool inf_hparams_swa_layer(const inf_hparams *hp, int64_t l) {
    return hp->n_swa > 0 && hp->swa_pattern > 0 && l % hp->swa_pattern < hp->swa_pattern - 1;
}

typedef struct inf_layer {
    inf_tensor attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
    inf_tensor bq, bk, bv;         /* qwen2 biases (data NULL when absent) */
    inf_tensor q_norm, k_norm;     /* [head_dim] (INF_AF_QK_NORM) */
    inf_tensor post_attn_norm, post_ffn_norm; /* [n_embd] (INF_AF_POST_NORM) */
    /* Mixture of experts: router [n_embd] -> [n_expert] (f32 in practice) and per-expert 2-D
     * views of the 3-D expert tensors: exps[0][e] gate, exps[1][e] up, exps[2][e] down. */
    inf_tensor gate_inp;
    inf_tensor *exps[3]; /* [n_expert] each (one allocation at exps[0]); NULL when dense */
} inf_layer;

struct inf_model {
    inf_gguf *gguf;
    inf_hparams hp;
    inf_tensor tok_embd, output_norm, output; /* output may alias tok_embd (tied) */
    inf_tensor rope_long, rope_short;         /* LongRoPE factors [n_rot / 2] (phi3) */
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
    uint64_t expert_bytes; /* bytes of the 3-D expert tensors in the file (MoE) */
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
