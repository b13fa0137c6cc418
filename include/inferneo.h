/*
 * inferneo.h — the public API of the Inferneo library.
 *
 * Layers above the engine (server/, app/) see the library only through this header.
 * Conventions: functions return int, 0 = ok, negative = INF_E* error, positive = retry later.
 * On failure a one-line detail is available from inf_last_error() (thread-local).
 * The library never prints and never exits; logs go through the callback set by inf_set_log().
 */
#ifndef INFERNEO_H
#define INFERNEO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ------------------------------------------------------------------------------ */

/* X(name, value, text) */
#define INF_ERROR_TABLE(X)                                                                        \
    X(INF_OK, 0, "ok")                                                                            \
    X(INF_EINVAL, -1, "invalid argument")                                                         \
    X(INF_ENOMEM, -2, "out of memory")                                                            \
    X(INF_EIO, -3, "input/output error")                                                          \
    X(INF_EFORMAT, -4, "invalid file format")                                                     \
    X(INF_EUNSUPPORTED, -5, "unsupported")                                                        \
    X(INF_ERANGE, -6, "value out of range")                                                       \
    X(INF_ECONTEXT, -7, "context length exceeded")                                                \
    X(INF_EFULL, -8, "queue full")                                                                \
    X(INF_ENOTFOUND, -9, "not found")                                                             \
    X(INF_ESHUTDOWN, -10, "shutting down")                                                        \
    X(INF_EINTERNAL, -11, "internal error")

enum inf_error {
#define INF_X_ENUM(name, value, text) name = value,
    INF_ERROR_TABLE(INF_X_ENUM)
#undef INF_X_ENUM
};

/* Static text for an error code ("unknown error" for codes not in the table). */
const char *inf_strerror(int err);
/* Symbolic name ("INF_EFORMAT"). */
const char *inf_error_name(int err);
/* Detail of the last failure on this thread; never NULL (may be ""). Borrowed, valid until the
 * next failing call on this thread. */
const char *inf_last_error(void);

/* ---- logging ----------------------------------------------------------------------------- */

enum inf_log_level { INF_LOG_DEBUG = 0, INF_LOG_INFO = 1, INF_LOG_WARN = 2, INF_LOG_ERROR = 3 };
typedef void (*inf_log_fn)(int level, const char *msg, void *user);
/* Sets the process-wide log sink (NULL = discard). Not thread-safe against concurrent logging:
 * call it once at start. */
void inf_set_log(inf_log_fn fn, void *user);

/* Release memory returned by the library (token arrays, strings). NULL is fine. */
void inf_free(void *p);

/* ---- model ------------------------------------------------------------------------------- */

typedef struct inf_model inf_model;

typedef struct inf_model_params {
    int n_threads;   /* compute workers for the forward pass; <= 0 means number of cores */
    bool vocab_only; /* load metadata + tokenizer only (no weights needed in the file) */
    /* Optional: called on the loading thread as the load advances (done in [0, 1]; 1 once at
     * the end of a successful load), mostly while weights are read and repacked. */
    void (*progress)(float done, void *user);
    void *progress_user;
} inf_model_params;

inf_model_params inf_model_params_default(void);

/* Loads a GGUF model (weights mmapped, validated) and its tokenizer. On success *out is a new
 * model, free with inf_model_free(). */
int inf_model_load(const char *path, const inf_model_params *params, inf_model **out);
void inf_model_free(inf_model *model);

typedef struct inf_model_info {
    const char *arch;          /* general.architecture: "llama", "qwen3", "gemma3", ... (borrowed) */
    const char *name;          /* general.name or NULL */
    const char *chat_template; /* tokenizer.chat_template or NULL */
    const char *tokenizer;     /* "llama" (SPM) or "gpt2" (BPE) */
    const char *pre;           /* tokenizer.ggml.pre or NULL */
    int64_t n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff;
    float rope_freq_base, rope_freq_scale, rms_eps;
    int rope_neox;             /* 1 when RoPE rotates halves (NeoX), 0 for adjacent pairs */
    int32_t bos, eos, eot;     /* -1 when absent */
    bool add_bos, add_eos;
    int64_t n_tensors;
    int64_t n_tensors_by_type[64]; /* indexed by GGUF tensor type id */
    uint64_t n_params;
    uint64_t weight_bytes;     /* bytes of tensor data */
    /* Bytes of weights one decoded token reads: weight_bytes less the experts it is not routed
     * to (a token uses n_expert_used of n_expert experts per layer); = weight_bytes when dense. */
    uint64_t weight_bytes_per_token;
    int64_t n_rot;                   /* rotated dims per head (partial RoPE when < head_dim) */
    int64_t n_expert, n_expert_used; /* mixture of experts (0: dense) */
    int64_t n_ff_exp;                /* rows of one expert's gate/up */
    int64_t n_swa, swa_pattern;      /* sliding window and its layer period (0: none) */
    float rope_freq_base_swa, rope_freq_scale_swa; /* RoPE of sliding layers */
    float attn_softcap, final_softcap;             /* logit soft-capping (0: none) */
    float rope_attn_factor;                        /* LongRoPE magnitude (1: none) */
    int64_t n_ctx_orig;          /* LongRoPE: long factors above this context (0: none) */
} inf_model_info;

/* The model's weight types, most tensors first, as users name files: "q8_0", "q4_K+q6_K" (a
 * mixture); "f32" when everything is f32. Writes at most cap bytes (NUL included). */
void inf_model_format_name(const inf_model_info *info, char *buf, size_t cap);

/* Fills *info with borrowed views valid while the model lives. */
void inf_model_get_info(const inf_model *model, inf_model_info *info);
/* Name of a GGUF tensor type id ("q4_0") or NULL. */
const char *inf_type_name(int type);
/* Measures this machine's memory read bandwidth in GB/s with the model's compute pool threads
 * (~0.3 s, briefly allocates 512 MiB; for `bench`). 0 when the model has no pool (vocab_only) or
 * the measurement buffer cannot be allocated. */
double inf_model_measure_read_bw(inf_model *model);

/* ---- synthetic models (benchmarks, tests) ------------------------------------------------ */

enum { INF_SYNTH_PURE = 0, INF_SYNTH_MIX_M = 1 };

/* Shape and type of a random-weight llama model written by inf_synth_write(). */
typedef struct inf_synth_params {
    int64_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab;
    int64_t n_ctx;    /* llama.context_length (2048) */
    int type;         /* weight type id (GGUF's): F32 0, F16 1, BF16 30, Q4_0 2, Q4_1 3, Q5_0 6,
                         Q5_1 7, Q8_0 8, Q2_K 10, Q3_K 11, Q4_K 12, Q5_K 13, Q6_K 14, IQ4_NL 20,
                         IQ4_XS 23 (norms are always F32) */
    int mix;          /* INF_SYNTH_PURE: every matrix in `type`; INF_SYNTH_MIX_M: llama-quantize's
                         Q3_K_M / Q4_K_M / Q5_K_M rules with `type` (Q3_K, Q4_K, Q5_K) as base */
    uint64_t seed;    /* same seed => same file */
    const char *name; /* general.name (borrowed; NULL: "synth") */
    /* Mixtral-style mixture of experts when n_expert > 0: n_expert experts of n_ff rows per
     * layer (3-D ffn_{gate,up,down}_exps), n_expert_used routed per token, an F32 router. */
    int64_t n_expert, n_expert_used;
} inf_synth_params;

inf_synth_params inf_synth_params_default(void);
/* Writes a llama GGUF with random weights (std ~0.02, norms 1.0) and a synthetic SPM vocabulary
 * (<unk>, <s>, </s>, 256 byte tokens, then pieces) to path. Streams one tensor at a time, so
 * memory stays bounded by the largest tensor. INF_EINVAL on an impossible shape. */
int inf_synth_write(const char *path, const inf_synth_params *params);

/* ---- tokenizer --------------------------------------------------------------------------- */

/* Tokenizes len bytes of text: any bytes, invalid UTF-8 and NUL included. add_special: add
 * BOS/EOS as the model's metadata says. parse_special: recognise special-token text
 * ("<|im_start|>") as those tokens. inf_detokenize gives the same bytes back (no U+FFFD) for
 * every byte the vocabulary has a token for (byte-level BPE: its 256 byte stand-ins; SPM: its
 * <0xXX> tokens), with one exception: an SPM vocabulary writes spaces as U+2581 "▁", so a "▁" in
 * text comes back as a space. On valid UTF-8 the ids are llama.cpp's.
 * On success *tokens is a new array of *n_tokens ids (free with inf_free). */
int inf_tokenize(const inf_model *model, const char *text, size_t len, bool add_special,
                 bool parse_special, int32_t **tokens, int64_t *n_tokens);
/* Text of a sequence of tokens (special tokens rendered as their text unless skip_special): raw
 * bytes, which may be invalid UTF-8 (byte tokens). *text is new and NUL-terminated (free with
 * inf_free); *len excludes the NUL. */
int inf_detokenize(const inf_model *model, const int32_t *tokens, int64_t n_tokens,
                   bool skip_special, char **text, size_t *len);
/* True for end-of-generation tokens (EOS, EOT, <|im_end|>, …). */
bool inf_token_is_eog(const inf_model *model, int32_t token);
/* The text of one token as it appears inside generated text (SPM "▁" -> " ", byte tokens ->
 * their byte, special tokens -> "" unless render_special), with no leading-space removal (unlike
 * inf_detokenize of a one-token sequence). Copies up to cap bytes to buf (no NUL) and returns the
 * full length, like snprintf; negative INF_E* for an invalid token. */
int64_t inf_token_to_piece(const inf_model *model, int32_t token, bool render_special, char *buf,
                           size_t cap);

/* Streaming detokenizer: releases only well-formed UTF-8, at character boundaries; each maximal
 * invalid subpart becomes one U+FFFD (the same rule as everywhere in the server). */
typedef struct inf_detok inf_detok;
int inf_detok_new(const inf_model *model, inf_detok **out);
/* Appends token's bytes; copies the complete-character prefix of pending bytes to *text (borrowed,
 * valid until the next call) / *len. */
int inf_detok_push(inf_detok *d, int32_t token, const char **text, size_t *len);
/* Releases whatever is pending (an incomplete trailing character as one U+FFFD). */
int inf_detok_flush(inf_detok *d, const char **text, size_t *len);
void inf_detok_free(inf_detok *d);

/* Chat formatting with the model's tokenizer.chat_template (Jinja subset), or a ChatML-like
 * fallback when the model has none. *out is new (free with inf_free). */
typedef struct inf_chat_message {
    const char *role;    /* "system", "user", "assistant" */
    const char *content; /* UTF-8 */
} inf_chat_message;
int inf_chat_format(const inf_model *model, const inf_chat_message *msgs, size_t n_msgs,
                    bool add_generation_prompt, char **out);

/* ---- single-sequence evaluation (CLI logits/bench, tests) --------------------------------- */

typedef struct inf_context inf_context;

/* A context holding the KV cache of one sequence of up to n_ctx tokens (<= 0: the model's
 * trained context). Free with inf_context_free(). */
int inf_context_new(inf_model *model, int64_t n_ctx, inf_context **out);
void inf_context_free(inf_context *ctx);
/* Appends n tokens at the current position in one batched forward pass. logits may be NULL,
 * else receives [n][n_vocab] (all = true) or [n_vocab] for the last token (all = false). */
int inf_context_eval(inf_context *ctx, const int32_t *tokens, int64_t n, bool all, float *logits);
/* Drops all cached tokens. */
void inf_context_reset(inf_context *ctx);
/* Keeps the first n_keep positions of the sequence (0 <= n_keep <= the current position) and
 * drops the rest: the next eval continues at n_keep (bench --depth reuses a prefilled prefix).
 * INF_EINVAL when n_keep is out of range. */
int inf_context_truncate(inf_context *ctx, int64_t n_keep);
int64_t inf_context_pos(const inf_context *ctx);

/* ---- sampling ---------------------------------------------------------------------------- */

#define INF_MAX_STOP 8

typedef struct inf_sampling_params {
    float temperature;        /* 0 = greedy */
    int32_t top_k;            /* <= 0: off */
    float top_p;              /* 1: off */
    float min_p;              /* 0: off */
    float repetition_penalty; /* 1: off (llama.cpp style, over the last repeat_last_n tokens) */
    float frequency_penalty;  /* 0: off (OpenAI style) */
    float presence_penalty;   /* 0: off */
    int32_t repeat_last_n;    /* window for the penalties; -1: whole context */
    uint64_t seed;            /* same seed => same output */
} inf_sampling_params;

inf_sampling_params inf_sampling_params_default(void);

typedef struct inf_sampler inf_sampler;
int inf_sampler_new(const inf_sampling_params *params, int64_t n_vocab, inf_sampler **out);
void inf_sampler_free(inf_sampler *s);
/* Records a token of the sequence (prompt or generated) for the penalties. */
void inf_sampler_accept(inf_sampler *s, int32_t token);
/* Picks the next token from logits [n_vocab] (modified in place). */
int32_t inf_sampler_sample(inf_sampler *s, float *logits);

/* ---- engine ------------------------------------------------------------------------------ */

typedef struct inf_engine inf_engine;

typedef struct inf_engine_params {
    size_t kv_mem_bytes;      /* KV cache budget; 0: max_seqs * (min(n_ctx, 2048) + page_tokens)
                                 tokens, capped at 1 GiB (but at least one such sequence) */
    int32_t page_tokens;      /* tokens per KV page (16) */
    int32_t max_seqs;         /* running sequences at once (64) */
    int32_t max_batch_tokens; /* tokens per forward step (512) */
    int32_t max_queue;        /* queued requests before submit fails with INF_EFULL (1024) */
    int64_t n_ctx;            /* per-sequence context limit; <= 0: the model's trained context */
    bool prefix_cache;        /* share full pages across requests (true) */
    /* Called from the engine thread whenever events become available (e.g. to wake a loop). */
    void (*on_event)(void *user);
    void *on_event_user;
} inf_engine_params;

inf_engine_params inf_engine_params_default(void);

typedef struct inf_request_params {
    const int32_t *prompt;    /* prompt tokens (copied); or NULL to tokenize prompt_text */
    int64_t n_prompt;
    const char *prompt_text;  /* tokenized with add_special = true, parse_special = true */
    inf_sampling_params sampling;
    int64_t max_tokens;       /* generated tokens; <= 0: up to the context length */
    const char *stop[INF_MAX_STOP]; /* stop strings (copied), NULL-terminated if fewer */
    bool ignore_eos;
    int32_t n_logprobs;       /* 0: none; 1..20: every DELTA carries the chosen token's logprob
                                 and the top n_logprobs tokens (n_top = n_logprobs), log-softmax
                                 of the raw logits (before penalties and temperature) */
    bool embed;               /* compute a mean-pooled L2-normalised embedding instead */
    uint64_t user_tag;        /* echoed in every event */
} inf_request_params;

inf_request_params inf_request_params_default(void);

enum inf_finish_reason {
    INF_FINISH_NONE = 0,
    INF_FINISH_STOP,      /* EOS/EOT or a stop string */
    INF_FINISH_LENGTH,    /* max_tokens or context length */
    INF_FINISH_CANCELLED, /* inf_engine_cancel */
    INF_FINISH_ERROR,     /* see event.error */
};
const char *inf_finish_reason_str(int reason); /* "stop", "length", "cancelled", "error" */

enum inf_event_type { INF_EVENT_DELTA = 1, INF_EVENT_FINISH = 2 };

typedef struct inf_token_logprob {
    int32_t token;
    float logprob;
} inf_token_logprob;

typedef struct inf_usage {
    int64_t prompt_tokens, completion_tokens, cached_tokens;
} inf_usage;

typedef struct inf_event {
    int type;             /* inf_event_type */
    uint64_t id;          /* request id from inf_engine_submit */
    uint64_t user_tag;
    /* DELTA: text released at a UTF-8 boundary (may be empty when held back by a stop-string
     * prefix), the tokens behind it, and, when requested, per token the chosen token's logprob
     * followed by the top alternatives: logprobs[i * n_top .. (i+1) * n_top). */
    char *text;
    size_t text_len;
    int32_t *tokens;
    int64_t n_tokens;
    inf_token_logprob *chosen;  /* [n_tokens] or NULL */
    inf_token_logprob *top;     /* [n_tokens][n_top] or NULL */
    int32_t n_top;
    /* FINISH */
    int finish_reason;
    int error;            /* INF_E* when finish_reason == INF_FINISH_ERROR */
    char *error_msg;
    inf_usage usage;
    float *embedding;     /* [n_embd] for embed requests */
    int64_t n_embd;
    double t_first_token_s; /* seconds from submit to first token (FINISH) */
    double t_total_s;       /* seconds from submit to finish (FINISH) */
} inf_event;

/* Starts the engine thread. The model must outlive the engine. *out: free with
 * inf_engine_destroy(), which cancels everything and joins the thread. */
int inf_engine_create(inf_model *model, const inf_engine_params *params, inf_engine **out);
void inf_engine_destroy(inf_engine *engine);
/* Thread-safe. Validates and queues a request. Returns 0 and *id, INF_EFULL when the queue is
 * full, INF_ECONTEXT when the prompt does not fit the context, INF_EINVAL on bad params. */
int inf_engine_submit(inf_engine *engine, const inf_request_params *req, uint64_t *id);
/* Thread-safe. The request finishes with INF_FINISH_CANCELLED at the next step (no-op if it has
 * already finished; INF_ENOTFOUND for an id that submit never returned). */
int inf_engine_cancel(inf_engine *engine, uint64_t id);
/* Thread-safe, non-blocking. Returns 1 and fills *ev (release with inf_event_clear) when an event
 * was waiting, 0 when none. */
int inf_engine_poll(inf_engine *engine, inf_event *ev);
/* Blocks up to timeout_ms (-1: forever) for an event; returns 1 / 0 like inf_engine_poll. */
int inf_engine_wait(inf_engine *engine, inf_event *ev, int timeout_ms);
void inf_event_clear(inf_event *ev);

typedef struct inf_engine_stats {
    int64_t running, queued;
    int64_t pages_total, pages_used, pages_cached, pages_free;
    int64_t prefix_hit_tokens; /* cumulative prompt tokens served from the prefix cache */
    int64_t prompt_tokens, generated_tokens; /* cumulative */
    int64_t steps, preemptions;
} inf_engine_stats;

/* Thread-safe snapshot. */
void inf_engine_get_stats(inf_engine *engine, inf_engine_stats *stats);
/* The context one request may use: the n_ctx asked for (or the model's), bounded by what the
 * KV pool can hold. A request whose prompt + max_tokens exceeds it is refused at submit. */
int64_t inf_engine_n_ctx(const inf_engine *engine);

#ifdef __cplusplus
}
#endif
#endif
