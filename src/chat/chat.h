/*
 * chat.h — the chat-template engine (L1: depends on base only): renders a conversation with a
 * Jinja-subset template as GGUF files carry it in tokenizer.chat_template. It knows messages and
 * strings, never tokens: the caller passes the BOS/EOS token texts.
 * This is the module's one header for other layers and for fuzz targets; chat_template_int.h
 * holds the engine's internals.
 */
#ifndef INF_CHAT_H
#define INF_CHAT_H

#include "base/base.h"

/* Renders msgs[0..n) with tmpl (NULL: a ChatML-like fallback). bos_text / eos_text (NULL: "")
 * are what the template sees as bos_token / eos_token. Bounded work: nesting depth, evaluation
 * steps, memory and output size are capped, so a hostile template or message fails with an
 * error (INF_EFORMAT: the template does not parse; INF_EINVAL: it fails while rendering, e.g.
 * raise_exception), never hangs. *out: new NUL-terminated string (free with free()).
 * Threads: reentrant. */
int inf_chat_template_apply(const char *tmpl, const inf_chat_message *msgs, size_t n,
                            bool add_generation_prompt, const char *bos_text, const char *eos_text,
                            char **out);

#endif
