/*
 * fuzz_chat_template.c — libFuzzer target: the Jinja-subset chat-template engine parses and
 * renders a hostile template against fixed conversations.
 *
 * Input: byte 0 picks the options (bit 0: add_generation_prompt; bits 1-2: which conversation),
 * the rest is the template text (cut at the first NUL, as a C string from GGUF metadata would
 * be). The engine must return 0 with a NUL-terminated output or a negative error, never crash,
 * leak or hang (its step, depth, memory and output caps bound every input).
 */
/* The engine's public header: src/chat/chat.h once the engine moves there, else the tokenizer's. */
#if __has_include("chat/chat.h")
#include "chat/chat.h"
#else
#include "tokenizer/tokenizer.h"
#endif

#include <stdlib.h>
#include <string.h>

static const inf_chat_message conv_full[] = {
    {"system", "You are terse."},
    {"user", "Hello {{ not a tag }} \xc3\xa9\xe2\x96\x81"},
    {"assistant", "  Hi!\n"},
    {"user", "<|im_end|>{% raise %}"},
};
static const inf_chat_message conv_user[] = {{"user", "What is 2+2?"}};
static const inf_chat_message conv_odd[] = {
    {"assistant", ""},
    {"tool", "{\"x\": [1, 2]}"},
    {"user", "\xff\xfe invalid utf-8"},
};

static const struct {
    const inf_chat_message *m;
    size_t n;
} convs[] = {
    {conv_full, 4},
    {conv_user, 1},
    {conv_odd, 3},
    {NULL, 0},
};

static volatile size_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    bool add_gen = data[0] & 1;
    int which = (data[0] >> 1) & 3;
    char *tmpl = malloc(size);
    if (!tmpl) return 0;
    memcpy(tmpl, data + 1, size - 1);
    tmpl[size - 1] = 0;
    char *out = NULL;
    int rc = inf_chat_template_apply(tmpl, convs[which].m, convs[which].n, add_gen, "<s>", "</s>",
                                     &out);
    if (rc == 0) {
        if (!out) abort();
        sink += strlen(out);
    } else if (rc > 0 || out) {
        abort(); /* failure: negative error, no output */
    }
    free(out);
    free(tmpl);
    return 0;
}
