/*
 * decode.c — token pieces and whole-sequence decoding (llama.cpp's token_to_piece/detokenize).
 *
 * Piece of a token (computed once at load with special tokens shown, like llama.cpp's cache):
 *   control / unknown / user-defined: the raw text; control and unknown become "" unless
 *   render_special;
 *   SPM and WPM normal: U+2581 -> ' '; byte tokens <0xXX>: that byte (SPM);
 *   BPE normal: each code point mapped back through GPT-2's bytes_to_unicode (a code point
 *   outside the table gives llama.cpp's "[UNK_BYTE_0x..]" text);
 *   unused / undefined: "".
 * Decoding concatenates pieces; with add_space_prefix (SPM) the leading space of the first piece
 * is dropped when the sequence starts there or right after a leading BOS, so that decoding what
 * encode produced gives the input back. WPM (every word carries the "▁" prefix) drops the
 * leading space of whatever starts the output text. llama.cpp's clean_up_tokenization_spaces
 * pass (" ," -> ",", on for BPE and WPM there) is not applied: it breaks the round trip and makes
 * a stream differ from the whole.
 */
#include "tokenizer/tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Code point -> byte of GPT-2's table, -1 when outside it. */
static int byte_of_cpt(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7e) || (cp >= 0xa1 && cp <= 0xac) || (cp >= 0xae && cp <= 0xff))
        return (int)cp;
    if (cp < 256 || cp >= 256 + 68) return -1;
    int k = 0;
    for (int b = 0; b < 256; b++) {
        bool self = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
        if (self) continue;
        if ((uint32_t)(256 + k) == cp) return b;
        k++;
    }
    return -1;
}

static void piece_of(const inf_tokenizer *t, int32_t id, inf_sb *sb) {
    uint32_t a = t->attr[id];
    const char *s = t->text[id];
    size_t n = t->len[id];
    if (a & (INF_TATTR_UNKNOWN | INF_TATTR_CONTROL | INF_TATTR_USER_DEFINED)) {
        inf__sb_append(sb, s, n);
    } else if (a & INF_TATTR_NORMAL) {
        if (t->kind != INF_TOK_BPE) {
            for (size_t i = 0; i < n;) {
                if (i + 3 <= n && !memcmp(s + i, "\xe2\x96\x81", 3)) {
                    inf__sb_putc(sb, ' ');
                    i += 3;
                } else {
                    inf__sb_putc(sb, s[i++]);
                }
            }
        } else {
            const unsigned char *u = (const unsigned char *)s;
            for (size_t i = 0; i < n;) {
                uint32_t cp = inf__tok_utf8_next(u, n, &i);
                int b = byte_of_cpt(cp);
                if (b >= 0) {
                    inf__sb_putc(sb, (char)b);
                    continue;
                }
                /* llama.cpp's llama_decode_text fallback, byte for byte */
                char u8[4];
                size_t u8n = inf__utf8_put(cp, u8);
                inf__sb_puts(sb, "[UNK_BYTE_0x");
                for (size_t k = 0; k < u8n; k++)
                    inf__sb_printf(sb, "%02x", (unsigned char)u8[k]);
                inf__sb_append(sb, s, n);
                inf__sb_putc(sb, ']');
            }
        }
    } else if (a & INF_TATTR_BYTE) {
        inf__sb_putc(sb, (char)inf__tok_byte_value(t, id));
    }
}

int inf__tok_build_pieces(inf_tokenizer *t) {
    inf_sb sb = {0};
    size_t *off = inf__calloc((size_t)t->n_vocab, sizeof *off);
    t->piece = inf__calloc((size_t)t->n_vocab, sizeof *t->piece);
    t->piece_len = inf__calloc((size_t)t->n_vocab, sizeof *t->piece_len);
    if (!off || !t->piece || !t->piece_len) goto oom;
    for (int64_t i = 0; i < t->n_vocab; i++) {
        off[i] = sb.len;
        piece_of(t, (int32_t)i, &sb);
        if (sb.oom) goto oom;
        if (sb.len - off[i] >= UINT32_MAX) {
            inf__sb_free(&sb);
            free(off);
            return inf__err(INF_EFORMAT, "token %lld: piece too long", (long long)i);
        }
        t->piece_len[i] = (uint32_t)(sb.len - off[i]);
    }
    inf__sb_putc(&sb, 0);
    if (sb.oom) goto oom;
    t->piece_pool = inf__sb_take(&sb);
    for (int64_t i = 0; i < t->n_vocab; i++)
        t->piece[i] = t->piece_pool + off[i];
    free(off);
    return 0;
oom:
    inf__sb_free(&sb);
    free(off);
    return inf__err(INF_ENOMEM, "tokenizer: out of memory for token pieces");
}

int64_t inf_tokenizer_piece(const inf_tokenizer *t, int32_t tok, bool render_special, char *buf,
                            size_t cap) {
    if (tok < 0 || tok >= t->n_vocab)
        return inf__err(INF_EINVAL, "token id %d outside the vocabulary (0..%lld)", (int)tok,
                        (long long)t->n_vocab - 1);
    if (!render_special && (t->attr[tok] & (INF_TATTR_UNKNOWN | INF_TATTR_CONTROL))) return 0;
    size_t n = t->piece_len[tok];
    if (buf && cap) memcpy(buf, t->piece[tok], INF_MIN(n, cap));
    return (int64_t)n;
}

int inf_tokenizer_decode(const inf_tokenizer *t, const int32_t *toks, int64_t n,
                         bool render_special, char **out, size_t *len) {
    *out = NULL;
    if (len) *len = 0;
    if (n < 0 || (n > 0 && !toks)) return inf__err(INF_EINVAL, "detokenize: bad token array");
    inf_sb sb = {0};
    bool strip = t->add_space_prefix;
    bool wpm = t->kind == INF_TOK_WPM;
    int64_t i = 0;
    if (n > 0 && t->bos >= 0 && toks[0] == t->bos) {
        if (render_special || !(t->attr[t->bos] & (INF_TATTR_UNKNOWN | INF_TATTR_CONTROL)))
            inf__sb_append(&sb, t->piece[t->bos], t->piece_len[t->bos]);
        i = 1;
    }
    for (; i < n; i++) {
        int32_t id = toks[i];
        if (id < 0 || id >= t->n_vocab) {
            inf__sb_free(&sb);
            return inf__err(INF_EINVAL, "detokenize: token %lld: id %d outside 0..%lld",
                            (long long)i, (int)id, (long long)t->n_vocab - 1);
        }
        if (!render_special && (t->attr[id] & (INF_TATTR_UNKNOWN | INF_TATTR_CONTROL))) {
            strip = false;
            continue;
        }
        const char *p = t->piece[id];
        size_t pl = t->piece_len[id];
        if ((strip || (wpm && sb.len == 0)) && pl > 0 && p[0] == ' ') p++, pl--;
        strip = false;
        inf__sb_append(&sb, p, pl);
    }
    if (!sb.data) inf__sb_append(&sb, "", 0);
    size_t l = sb.len;
    char *s = inf__sb_take(&sb);
    if (!s) return inf__err(INF_ENOMEM, "detokenize: out of memory");
    *out = s;
    if (len) *len = l;
    return 0;
}
