/*
 * tok_internal.h — shared by the tokenizer's .c files only (vocab.c, encode.c, bpe.c, decode.c,
 * wpm.c, detok.c, tok_util.c).
 *
 * The tokenizer is immutable after inf_tokenizer_load(): every field below is written once during
 * load and only read afterwards, so one tokenizer serves any number of threads at once (each
 * encode call allocates its own scratch and PCRE2 match data).
 */
#ifndef INF_TOK_INTERNAL_H
#define INF_TOK_INTERNAL_H

#include "tokenizer/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* Token attributes: a bit set, as llama.cpp's llama_token_attr (GGUF token_type maps onto it). */
enum {
    INF_TATTR_UNDEFINED = 0,
    INF_TATTR_UNKNOWN = 1u << 0,
    INF_TATTR_UNUSED = 1u << 1,
    INF_TATTR_NORMAL = 1u << 2,
    INF_TATTR_CONTROL = 1u << 3,
    INF_TATTR_USER_DEFINED = 1u << 4,
    INF_TATTR_BYTE = 1u << 5,
    INF_TATTR_LSTRIP = 1u << 7,
    INF_TATTR_RSTRIP = 1u << 8,
    INF_TATTR_EOG = 1u << 16, /* ours: member of the end-of-generation set */
};

/* Map from byte strings to int32 values 0..n-1 (tok_util.c). The keys are not stored in the map:
 * it maps the 64-bit hash of a key to its value v, and the key of v is keys[v] / lens[v] (arrays
 * owned elsewhere), so a lookup walks the values under the hash and compares those bytes. */
typedef struct inf__smap {
    inf_hmap map; /* key hash -> value */
    const char *const *keys;
    const uint32_t *lens;
} inf__smap;

/* Builds the map over keys[0..n). With duplicates the lowest value wins. */
int inf__smap_build(inf__smap *m, const char *const *keys, const uint32_t *lens, int64_t n);
void inf__smap_free(inf__smap *m);
/* Value of key or -1. */
int32_t inf__smap_get(const inf__smap *m, const char *key, size_t len);

enum inf__pre_flags {
    INF__PRE_IGNORE_MERGES = 1, /* a word that is a whole token skips the merges (llama3) */
    INF__PRE_ADD_BOS = 2,       /* add_bos defaults to true */
    INF__PRE_NO_BOS = 4,        /* no default BOS id (chatglm) */
};
/* Flags of a pre-tokenizer name (unknown names: those of "default"). */
int inf__bpe_pre_flags(const char *pre);
/* Whether the pre-tokenizer name is one we implement (llama.cpp rejects unknown names). */
bool inf__bpe_pre_known(const char *pre);

/* WPM: byte trie over every token text, for the longest-match search. Edges live in a hash map
 * keyed by node << 8 | byte (value: the child node); node 0 is the root. */
typedef struct inf__wpm_trie {
    inf_hmap edges;
    int32_t *tok; /* [n_nodes] token whose text ends at the node, or -1 */
    size_t n_nodes, nodes_cap;
} inf__wpm_trie;

struct inf_tokenizer {
    int kind; /* INF_TOK_SPM / INF_TOK_BPE / INF_TOK_WPM */
    int64_t n_vocab;

    /* token texts: text[i] (NUL-terminated copy, len[i] bytes) inside pool */
    char *pool;
    const char **text; /* [n_vocab] */
    uint32_t *len;     /* [n_vocab] */
    float *score;      /* [n_vocab] */
    uint32_t *attr;    /* [n_vocab] INF_TATTR_* */
    inf__smap tok_map; /* text -> id */
    uint32_t max_token_len;

    /* pieces rendered with special tokens shown (llama.cpp's token_to_piece cache) */
    char *piece_pool;
    const char **piece;  /* [n_vocab] */
    uint32_t *piece_len; /* [n_vocab] */

    /* BPE merges "left right" -> rank */
    char *merge_pool;
    const char **merge;  /* [n_merges] */
    uint32_t *merge_len; /* [n_merges] */
    int64_t n_merges;
    inf__smap merge_map;

    /* control / user-defined / unknown tokens, longest text first (ties: lower id first) */
    int32_t *special;
    int64_t n_special;

    int32_t bos, eos, eot, eom, unk, sep, pad;
    int32_t fim_pad, fim_rep, fim_sep;
    bool add_bos, add_eos, add_space_prefix;
    bool add_sep; /* WPM: SEP at the end (add_special always adds it, as llama.cpp) */
    bool lowercase, strip_accents; /* WPM normalizer (tokenizer.ggml.normalizer.*) */
    int pre_flags;
    inf__wpm_trie wpm;

    char *pre_name; /* tokenizer.ggml.pre, or "default" */
    pcre2_code *re[8];
    int n_re;
    /* byte-level BPE: byte -> UTF-8 of its printable stand-in (1 or 2 bytes) */
    char byte_enc[256][3];
    uint8_t byte_enc_len[256];
};

/* Compiles the pre-tokenizer regexes for t->pre_name (bpe.c). */
int inf__bpe_init(inf_tokenizer *t);
void inf__bpe_free(inf_tokenizer *t);

/* Growable int32 output used by the encoders (tok_util.c). */
typedef struct inf__ids {
    int32_t *v;
    int64_t n, cap;
    bool oom;
} inf__ids;
void inf__ids_push(inf__ids *o, int32_t id);

/* Encoders over one raw-text fragment (no special tokens inside). */
int inf__spm_encode(const inf_tokenizer *t, const char *text, size_t len, inf__ids *out);
int inf__bpe_encode(const inf_tokenizer *t, const char *text, size_t len, inf__ids *out);
int inf__wpm_encode(const inf_tokenizer *t, const char *text, size_t len, inf__ids *out);

/* Builds / frees the WPM trie (wpm.c). */
int inf__wpm_init(inf_tokenizer *t);
void inf__wpm_free(inf_tokenizer *t);

/* Reads one code point the way llama.cpp's unicode_cpts_from_utf8 does: no check for overlong
 * forms or surrogates, values up to 0x1FFFFF; an invalid or truncated sequence gives U+FFFD and
 * consumes one byte (tok_util.c). Matching llama.cpp's reading is what keeps token ids equal to
 * its own; text that leaves the tokenizer is repaired with base's inf__utf8_sanitize instead. */
uint32_t inf__tok_utf8_next(const unsigned char *s, size_t n, size_t *i);
/* Bytes of the merge symbol at s[0..n), n > 0, when text is split into characters before the
 * BPE / SPM merges: a well-formed character, else one byte (base's UTF-8 rule). On well-formed
 * text this is llama.cpp's split; an ill-formed byte stays a symbol of its own, so it reaches
 * the byte fallback intact and decodes back to itself. */
size_t inf__tok_sym_len(const char *s, size_t n);

/* Merge symbols and the merge queue shared by the SPM (encode.c) and BPE (bpe.c) encoders: a
 * symbol is a byte span of the text linked to its neighbours; a bigram is a candidate merge of
 * two adjacent symbols, popped lowest prio first, ties to the leftmost (llama.cpp's order: BPE
 * uses the merge rank, SPM the negated token score). A popped bigram whose symbols changed since
 * it was pushed (size no longer matches) is stale and skipped by the caller. */
typedef struct inf__sym {
    int32_t prev, next;
    uint32_t off, n; /* bytes of the text; n == 0 once merged away */
} inf__sym;
typedef struct inf__bigram {
    int32_t left, right;
    uint32_t size;
    double prio;
} inf__bigram;
typedef struct inf__bigram_heap {
    inf__bigram *v;
    int64_t n, cap;
} inf__bigram_heap;
/* false when out of memory. */
bool inf__bigram_push(inf__bigram_heap *h, inf__bigram b);
/* h->n > 0. */
inf__bigram inf__bigram_pop(inf__bigram_heap *h);

/* Byte of a <0xXX> token (as llama.cpp: strtol of text[3..5)) (tok_util.c). */
uint8_t inf__tok_byte_value(const inf_tokenizer *t, int32_t id);
/* Token of a raw byte: "<0xXX>" for SPM, its stand-in character for BPE; -1 when absent. */
int32_t inf__tok_byte_token(const inf_tokenizer *t, uint8_t byte);

/* Fills t->piece* (decode.c). */
int inf__tok_build_pieces(inf_tokenizer *t);

#endif
