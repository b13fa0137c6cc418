/*
 * chat_api.c — inf_chat_format: renders a conversation with the model's tokenizer.chat_template
 * (src/chat/), or a ChatML-like fallback when the model has none.
 *
 * bos_token / eos_token are the vocabulary texts of the model's BOS / EOS tokens. Templates
 * often start with {{ bos_token }}; the formatted prompt is later tokenized with add_special,
 * which adds BOS itself when the vocabulary says so, so a leading BOS text is removed here to
 * avoid a doubled BOS (llama.cpp does the same).
 * Threads: reentrant; the model is only read.
 */
#include "chat/chat.h"
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

static char *token_text(const inf_model *m, int32_t id) {
    if (!m->tok || id < 0) return inf__strdup("");
    size_t len = 0;
    const char *s = inf_tokenizer_text(m->tok, id, &len);
    return s ? inf__strndup(s, len) : inf__strdup("");
}

int inf_chat_format(const inf_model *model, const inf_chat_message *msgs, size_t n_msgs,
                    bool add_generation_prompt, char **out) {
    if (!out) return inf__err(INF_EINVAL, "chat format: NULL output");
    *out = NULL;
    if (!model || (n_msgs && !msgs)) return inf__err(INF_EINVAL, "chat format: NULL argument");
    int32_t bos = model->tok ? inf_tokenizer_bos(model->tok) : -1;
    int32_t eos = model->tok ? inf_tokenizer_eos(model->tok) : -1;
    char *bos_text = token_text(model, bos), *eos_text = token_text(model, eos);
    if (!bos_text || !eos_text) {
        free(bos_text);
        free(eos_text);
        return inf__err(INF_ENOMEM, "chat format");
    }
    char *s = NULL;
    int rc = inf_chat_template_apply(model->chat_template, msgs, n_msgs, add_generation_prompt,
                                     bos_text, eos_text, &s);
    if (rc == 0 && bos_text[0] && model->tok && inf_tokenizer_add_bos(model->tok)) {
        size_t bl = strlen(bos_text);
        if (!strncmp(s, bos_text, bl)) memmove(s, s + bl, strlen(s + bl) + 1);
    }
    free(bos_text);
    free(eos_text);
    if (rc < 0) return rc;
    *out = s;
    return 0;
}
