/*
 * tokenize_api.c — the public tokenizer entry points of inferneo.h that need the model
 * (inf_tokenize, inf_detokenize, inf_token_is_eog, inf_token_to_piece, inf_detok_new): thin
 * checks over model->tok. The streaming detokenizer lives in src/tokenizer/detok.c.
 * Threads: reentrant; the model's tokenizer is shared read-only.
 */
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

static int need_tok(const inf_model *model, const char *what) {
    if (!model) return inf__err(INF_EINVAL, "%s: NULL model", what);
    if (!model->tok) return inf__err(INF_EINVAL, "%s: the model has no tokenizer", what);
    return 0;
}

int inf_tokenize(const inf_model *model, const char *text, size_t len, bool add_special,
                 bool parse_special, int32_t **tokens, int64_t *n_tokens) {
    if (!tokens || !n_tokens) return inf__err(INF_EINVAL, "tokenize: NULL output");
    *tokens = NULL;
    *n_tokens = 0;
    int rc = need_tok(model, "tokenize");
    if (rc < 0) return rc;
    return inf_tokenizer_encode(model->tok, text, len, add_special, parse_special, tokens,
                                n_tokens);
}

int inf_detokenize(const inf_model *model, const int32_t *tokens, int64_t n_tokens,
                   bool skip_special, char **text, size_t *len) {
    if (!text) return inf__err(INF_EINVAL, "detokenize: NULL output");
    *text = NULL;
    if (len) *len = 0;
    int rc = need_tok(model, "detokenize");
    if (rc < 0) return rc;
    return inf_tokenizer_decode(model->tok, tokens, n_tokens, !skip_special, text, len);
}

bool inf_token_is_eog(const inf_model *model, int32_t token) {
    return model && model->tok && inf_tokenizer_is_eog(model->tok, token);
}

int64_t inf_token_to_piece(const inf_model *model, int32_t token, bool render_special, char *buf,
                           size_t cap) {
    int rc = need_tok(model, "token piece");
    if (rc < 0) return rc;
    if (!buf) cap = 0;
    return inf_tokenizer_piece(model->tok, token, render_special, buf, cap);
}

/* ---- streaming (the detokenizer itself is src/tokenizer/detok.c) ------------------------- */

int inf_detok_new(const inf_model *model, inf_detok **out) {
    if (!out) return inf__err(INF_EINVAL, "detok: NULL output");
    *out = NULL;
    int rc = need_tok(model, "detok");
    if (rc < 0) return rc;
    return inf_tokenizer_detok_new(model->tok, out);
}
