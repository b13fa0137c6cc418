/*
 * tokenizer.h — vocabulary from GGUF metadata; SentencePiece (llama), byte-level BPE (gpt2)
 * with the pre-tokenizers named by tokenizer.ggml.pre and WordPiece (bert); special tokens;
 * token pieces.
 */
#ifndef INF_TOKENIZER_H
#define INF_TOKENIZER_H

#include "format/gguf.h"

typedef struct inf_tokenizer inf_tokenizer;

enum inf_tok_kind { INF_TOK_SPM = 1, INF_TOK_BPE = 2, INF_TOK_WPM = 3 /* WordPiece ("bert") */ };

/* Builds the tokenizer from tokenizer.* metadata (validated: sizes, ids in range). */
int inf_tokenizer_load(const inf_gguf *g, inf_tokenizer **out);
void inf_tokenizer_free(inf_tokenizer *t);

int inf_tokenizer_kind(const inf_tokenizer *t);
int64_t inf_tokenizer_n_vocab(const inf_tokenizer *t);
int32_t inf_tokenizer_bos(const inf_tokenizer *t); /* -1 when absent */
int32_t inf_tokenizer_eos(const inf_tokenizer *t);
int32_t inf_tokenizer_eot(const inf_tokenizer *t);
bool inf_tokenizer_add_bos(const inf_tokenizer *t);
bool inf_tokenizer_add_eos(const inf_tokenizer *t);
bool inf_tokenizer_is_eog(const inf_tokenizer *t, int32_t tok);
bool inf_tokenizer_is_control(const inf_tokenizer *t, int32_t tok);
const char *inf_tokenizer_pre(const inf_tokenizer *t); /* tokenizer.ggml.pre or "default" */
/* SPM: a space is put before the text (and dropped again from the first piece when decoding). */
bool inf_tokenizer_add_space_prefix(const inf_tokenizer *t);
/* Raw vocabulary text of a token (borrowed, NUL-terminated), NULL for an invalid id. */
const char *inf_tokenizer_text(const inf_tokenizer *t, int32_t tok, size_t *len);
/* Finds the id of an exact token text, -1 when absent. */
int32_t inf_tokenizer_find(const inf_tokenizer *t, const char *text, size_t len);

/* Encodes text. *out: new array (free with free()), *n_out entries. */
int inf_tokenizer_encode(const inf_tokenizer *t, const char *text, size_t len, bool add_special,
                         bool parse_special, int32_t **out, int64_t *n_out);
/* The bytes a token stands for in output text (SPM, WPM: "▁"→" "; SPM <0xXX> → byte; BPE:
 * byte-level decode; control tokens → "" unless render_special). Writes up to cap bytes, returns
 * the full length (like snprintf, no NUL), or a negative error for an invalid id. */
int64_t inf_tokenizer_piece(const inf_tokenizer *t, int32_t tok, bool render_special, char *buf,
                            size_t cap);
/* Decodes a token sequence: the pieces concatenated (control tokens rendered only with
 * render_special). With add_space_prefix (SPM) the leading space of the first piece is dropped
 * when that piece starts the sequence or directly follows a leading BOS, so decode(encode(x))
 * == x. WPM: the leading space of the output text is dropped (words are lowercased and split at
 * punctuation, so no round trip). llama.cpp's clean-up of spaces before punctuation is not applied.
 * Raw bytes: may be invalid UTF-8 (byte tokens). *out new (free with free()), NUL-terminated, *len
 * excludes it. */
int inf_tokenizer_decode(const inf_tokenizer *t, const int32_t *toks, int64_t n,
                         bool render_special, char **out, size_t *len);

/* Chat template (Jinja subset) — chat_template.c. tmpl NULL: ChatML-like fallback.
 * *out: new NUL-terminated string (free with free()). */
int inf_chat_template_apply(const char *tmpl, const inf_chat_message *msgs, size_t n,
                            bool add_generation_prompt, const char *bos_text, const char *eos_text,
                            char **out);

#endif
