/*
 * bpe.c — byte-level BPE (GGUF tokenizer.ggml.model "gpt2"), following llama.cpp:
 *   1. the fragment is cut into its well-formed UTF-8 runs and its ill-formed bytes (base's
 *      UTF-8 rule: each maximal ill-formed subpart is one piece). Ill-formed pieces skip the
 *      regexes and become words of their own, so every input byte reaches step 3 unchanged and
 *      decoding gives the exact input back. (llama.cpp instead reads such bytes as U+FFFD and
 *      tokenizes the three bytes EF BF BD: its ids differ from ours only on ill-formed input);
 *   2. the pre-tokenizer named by tokenizer.ggml.pre splits each well-formed run: each regex of
 *      the list splits every piece left by the previous one into matches and the gaps between
 *      them (both kept); PCRE2 (UTF + UCP) runs the regexes on each piece as its own subject,
 *      like llama.cpp's std::regex over [start, end), so lookaheads stop at the piece's end;
 *   3. each word is mapped byte by byte through GPT-2's bytes_to_unicode table, which covers all
 *      256 byte values;
 *   4. adjacent symbols are merged by merge rank (min-heap, ties to the leftmost pair);
 *      symbols that are not tokens fall back to single-byte tokens when those exist.
 * The regex lists are llama.cpp's (llm_tokenizer_bpe); the code is ours.
 * Threads: compiled patterns are shared read-only; match data is per call.
 */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- pre-tokenizer table ------------------------------------------------------------------ */

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_CONTRACT "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3                                                                                  \
    RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"       \
                "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"            \
                "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_CJK "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"
#define RE_PORO " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+"
#define RE_UPPER_LOWER "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+"
#define RE_UPPER_LOWER2 "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*"
/* deepseek-llm's letter class: the cased letters of Unicode, as code point ranges */
#define RE_DS_LETTERS                                                                              \
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"            \
    "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}"         \
    "\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}"                  \
    "\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}"    \
    "\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}"                 \
    "\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"                 \
    "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}"         \
    "\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}"        \
    "\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}"                 \
    "\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}"         \
    "\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}"         \
    "\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}"                   \
    "\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}"                  \
    "\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}"                 \
    "\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}"                 \
    "\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}"             \
    "\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}"         \
    "\\x{1E900}-\\x{1E943}]+"

typedef struct pre_def {
    const char *names; /* '|'-separated tokenizer.ggml.pre values */
    int flags;
    const char *re[7];
} pre_def;

static const pre_def pre_table[] = {
    {"default", 0, {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2",
     INF__PRE_IGNORE_MERGES | INF__PRE_ADD_BOS,
     {RE_LLAMA3}},
    {"dbrx|smaug-bpe", 0, {RE_LLAMA3}},
    {"chatglm-bpe|glm4", INF__PRE_NO_BOS, {RE_LLAMA3}},
    {"deepseek-llm",
     0,
     {"[\r\n]", RE_DS_LETTERS,
      "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
      /* llama.cpp's "\\s+$"; the lookbehind and possessive form matches the same spans
       * without quadratic backtracking on long inner whitespace runs */
      "(?<!\\s)\\s++$", RE_CJK, "\\p{N}+"}},
    {"deepseek-coder", 0, {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}"}},
    {"deepseek-v3|hunyuan-dense",
     0,
     {"\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
      "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"}},
    {"falcon", 0, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", 0, {"\\p{N}", RE_GPT2}},
    {"gpt-2|gpt2|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-de|a.x-4.0|mellum|"
     "modern-bert|jina-v1-en|jina-v2-code|roberta-bpe|exaone4|mpt|olmo|jais|trillion|"
     "granite-docling",
     0,
     {RE_GPT2}},
    {"qwen2|deepseek-r1-qwen|megrez|kormo|stablelm2|hunyuan|grok-2", 0, {RE_QWEN2}},
    {"poro-chat|bloom|gpt3-finnish", 0, {RE_PORO}},
    {"viking", 0, {RE_PORO, "\\p{N}"}},
    {"tekken",
     INF__PRE_IGNORE_MERGES | INF__PRE_ADD_BOS,
     {RE_UPPER_LOWER "|" RE_UPPER_LOWER2 "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|"
                     "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"chameleon",
     INF__PRE_ADD_BOS,
     {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
      "[\\p{P}!-/:-@\\[-`{-~]", RE_GPT2}},
    {"gpt-4o|llama4|minimax-m2",
     0,
     {RE_UPPER_LOWER RE_CONTRACT
      "?|" RE_UPPER_LOWER2 RE_CONTRACT
      "?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"bailingmoe|bailingmoe2|llada-moe",
     0,
     {"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
      " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"}},
    {"seed-coder",
     0,
     {RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|"
                  "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
};

static bool name_in(const char *names, const char *name) {
    size_t n = strlen(name);
    for (const char *p = names;;) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == n && !memcmp(p, name, n)) return true;
        if (!bar) return false;
        p = bar + 1;
    }
}

/* NULL for a name llama.cpp does not know (it refuses such a vocabulary). */
static const pre_def *pre_find(const char *name) {
    for (size_t i = 0; i < INF_ARRAY_LEN(pre_table); i++)
        if (name && name_in(pre_table[i].names, name)) return &pre_table[i];
    return NULL;
}

static const pre_def *pre_lookup(const char *name) {
    const pre_def *d = pre_find(name);
    return d ? d : &pre_table[0];
}

bool inf__bpe_pre_known(const char *pre) {
    return pre_find(pre) != NULL;
}

int inf__bpe_pre_flags(const char *pre) {
    return pre_lookup(pre)->flags;
}

int inf__bpe_init(inf_tokenizer *t) {
    /* GPT-2 bytes_to_unicode: printable bytes stand for themselves, the rest for 256 + k. */
    int k = 0;
    for (int b = 0; b < 256; b++) {
        bool self = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
        uint32_t cp = self ? (uint32_t)b : 256u + (uint32_t)k++;
        if (cp < 0x80) {
            t->byte_enc[b][0] = (char)cp;
            t->byte_enc_len[b] = 1;
        } else {
            t->byte_enc[b][0] = (char)(0xc0 | (cp >> 6));
            t->byte_enc[b][1] = (char)(0x80 | (cp & 0x3f));
            t->byte_enc_len[b] = 2;
        }
    }
    const pre_def *d = pre_lookup(t->pre_name);
    t->n_re = 0;
    for (int i = 0; i < (int)INF_ARRAY_LEN(d->re) && d->re[i]; i++) {
        int errcode;
        PCRE2_SIZE erroff;
        pcre2_code *re =
            pcre2_compile((PCRE2_SPTR)d->re[i], PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &errcode, &erroff, NULL);
        if (!re) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(errcode, msg, sizeof msg);
            return inf__err(INF_EINTERNAL, "pre-tokenizer '%s': regex %d: %s at %zu", t->pre_name,
                            i, (const char *)msg, (size_t)erroff);
        }
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
        t->re[t->n_re++] = re;
    }
    return 0;
}

void inf__bpe_free(inf_tokenizer *t) {
    for (int i = 0; i < t->n_re; i++)
        pcre2_code_free(t->re[i]);
    t->n_re = 0;
}

/* ---- regex split -------------------------------------------------------------------------- */

typedef struct span {
    size_t off, len;
    bool raw; /* ill-formed UTF-8 bytes: a word as they are, never a regex subject */
} span;

typedef struct spans {
    span *v;
    int64_t n, cap;
    bool oom;
} spans;

static void spans_push(spans *s, size_t off, size_t len, bool raw) {
    if (s->oom || len == 0) return;
    if (s->n == s->cap) {
        int64_t nc = s->cap ? s->cap * 2 : 64;
        span *nv = inf__realloc_array(s->v, (size_t)nc, sizeof *nv);
        if (!nv) {
            s->oom = true;
            return;
        }
        s->v = nv, s->cap = nc;
    }
    s->v[s->n++] = (span){off, len, raw};
}

static int re_match(const pcre2_code *re, const char *subj, size_t len, size_t start, uint32_t opts,
                    pcre2_match_data *md) {
    int rc = pcre2_match(re, (PCRE2_SPTR)subj, len, start, opts | PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
        rc = pcre2_match(re, (PCRE2_SPTR)subj, len, start, opts | PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                         md, NULL);
    return rc;
}

/* Splits the pieces of *in (byte spans of text) with one regex into matches and gaps. */
static int split_regex(const pcre2_code *re, const char *text, const spans *in, spans *out,
                       pcre2_match_data *md) {
    out->n = 0;
    for (int64_t k = 0; k < in->n; k++) {
        if (in->v[k].raw) {
            spans_push(out, in->v[k].off, in->v[k].len, true);
            continue;
        }
        const char *subj = text + in->v[k].off;
        size_t len = in->v[k].len, prev = 0, pos = 0;
        uint32_t opts = 0;
        for (;;) {
            int rc = re_match(re, subj, len, pos, opts, md);
            if (rc == PCRE2_ERROR_NOMATCH) {
                if (!opts || pos >= len) break;
                /* nothing non-empty where the empty match was: search on from the next char */
                opts = 0;
                pos++;
                while (pos < len && ((unsigned char)subj[pos] & 0xc0) == 0x80)
                    pos++;
                continue;
            }
            if (rc < 0) return inf__err(INF_EINTERNAL, "pre-tokenizer: regex error %d", rc);
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (ms < pos || me < ms || me > len)
                return inf__err(INF_EINTERNAL, "pre-tokenizer: bad match offsets");
            if (ms > prev) spans_push(out, in->v[k].off + prev, ms - prev, false);
            spans_push(out, in->v[k].off + ms, me - ms, false);
            prev = me;
            pos = me;
            /* after an empty match, first try a non-empty one at the same place (as
             * std::regex_iterator does), else move on */
            opts = me == ms ? PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED : 0;
        }
        if (prev < len) spans_push(out, in->v[k].off + prev, len - prev, false);
    }
    return out->oom ? inf__err(INF_ENOMEM, "tokenizer: out of memory") : 0;
}

/* ---- merges ------------------------------------------------------------------------------- */

typedef struct bpe_work {
    const inf_tokenizer *t;
    const char *w; /* the byte-encoded word */
    inf__sym *sym;
    int64_t cap_sym;
    inf__bigram_heap heap;
    char *key; /* "left right" scratch */
    size_t key_cap;
} bpe_work;

static bool bpe_try_add(bpe_work *k, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return true;
    const inf__sym *L = &k->sym[l], *R = &k->sym[r];
    size_t need = (size_t)L->n + R->n + 1;
    if (need > k->key_cap) {
        char *nk = realloc(k->key, need * 2);
        if (!nk) return false;
        k->key = nk, k->key_cap = need * 2;
    }
    memcpy(k->key, k->w + L->off, L->n);
    k->key[L->n] = ' ';
    memcpy(k->key + L->n + 1, k->w + R->off, R->n);
    int32_t rank = inf__smap_get(&k->t->merge_map, k->key, need);
    if (rank < 0) return true;
    inf__bigram b = {l, r, L->n + R->n, (double)rank};
    return inf__bigram_push(&k->heap, b);
}

/* Merges one byte-encoded word and appends its tokens. */
static int bpe_word(bpe_work *k, const char *w, size_t wlen, inf__ids *out) {
    const inf_tokenizer *t = k->t;
    if (t->pre_flags & INF__PRE_IGNORE_MERGES) {
        int32_t id = inf__smap_get(&t->tok_map, w, wlen);
        if (id >= 0) {
            inf__ids_push(out, id);
            return 0;
        }
    }
    if ((int64_t)wlen > k->cap_sym) {
        inf__sym *ns = inf__realloc_array(k->sym, wlen, sizeof *ns);
        if (!ns) return inf__err(INF_ENOMEM, "tokenizer: out of memory");
        k->sym = ns, k->cap_sym = (int64_t)wlen;
    }
    k->w = w;
    k->heap.n = 0;
    int64_t n = 0;
    for (size_t off = 0; off < wlen; n++) {
        size_t cl = inf__tok_sym_len(w + off, wlen - off);
        k->sym[n] = (inf__sym){(int32_t)n - 1, -1, (uint32_t)off, (uint32_t)cl};
        off += cl;
        if (off < wlen) k->sym[n].next = (int32_t)n + 1;
    }
    for (int64_t i = 1; i < n; i++)
        if (!bpe_try_add(k, (int32_t)i - 1, (int32_t)i))
            return inf__err(INF_ENOMEM, "tokenizer: out of memory");
    while (k->heap.n > 0) {
        inf__bigram b = inf__bigram_pop(&k->heap);
        inf__sym *L = &k->sym[b.left], *R = &k->sym[b.right];
        if (L->n == 0 || R->n == 0 || L->n + R->n != b.size) continue; /* outdated */
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) k->sym[R->next].prev = b.left;
        if (!bpe_try_add(k, L->prev, b.left) || !bpe_try_add(k, b.left, L->next))
            return inf__err(INF_ENOMEM, "tokenizer: out of memory");
    }
    for (int32_t i = 0; n > 0 && i != -1; i = k->sym[i].next) {
        const inf__sym *s = &k->sym[i];
        int32_t id = inf__smap_get(&t->tok_map, w + s->off, s->n);
        if (id >= 0) {
            inf__ids_push(out, id);
            continue;
        }
        /* llama.cpp: each byte of the symbol's text as a one-byte token, if there is one */
        for (uint32_t j = 0; j < s->n; j++) {
            id = inf__smap_get(&t->tok_map, w + s->off + j, 1);
            if (id >= 0) inf__ids_push(out, id);
        }
    }
    return out->oom ? inf__err(INF_ENOMEM, "tokenizer: out of memory") : 0;
}

/* The first pieces of a fragment: its well-formed UTF-8 runs and, as raw pieces, its maximal
 * ill-formed subparts (an incomplete character at the end is one too). */
static void split_utf8(const char *text, size_t len, spans *out) {
    size_t run = 0;
    for (size_t i = 0; i < len;) {
        int r = inf__utf8_seq(text + i, len - i);
        if (r > 0) {
            i += (size_t)r;
            continue;
        }
        size_t bad = r < 0 ? (size_t)-r : len - i;
        spans_push(out, run, i - run, false);
        spans_push(out, i, bad, true);
        i += bad;
        run = i;
    }
    spans_push(out, run, len - run, false);
}

int inf__bpe_encode(const inf_tokenizer *t, const char *text, size_t len, inf__ids *out) {
    if (len == 0) return 0;
    char *enc = NULL;
    spans a = {0}, b = {0};
    bpe_work k = {.t = t};
    pcre2_match_data *md = NULL;
    int rc = 0;
    split_utf8(text, len, &a);
    if (t->n_re > 0) {
        md = pcre2_match_data_create(8, NULL);
        if (!md) {
            rc = inf__err(INF_ENOMEM, "tokenizer: out of memory");
            goto done;
        }
    }
    for (int i = 0; i < t->n_re && !a.oom; i++) {
        if ((rc = split_regex(t->re[i], text, &a, &b, md)) < 0) goto done;
        spans tmp = a;
        a = b;
        b = tmp;
    }
    if (a.oom) {
        rc = inf__err(INF_ENOMEM, "tokenizer: out of memory");
        goto done;
    }
    /* Byte-encoded words: at most 2 bytes per byte. */
    size_t cap;
    if (inf__mul_overflow(len, 2, &cap)) {
        rc = inf__err(INF_ERANGE, "tokenizer: text too long");
        goto done;
    }
    if (!(enc = inf__malloc(cap))) {
        rc = inf__err(INF_ENOMEM, "tokenizer: out of memory");
        goto done;
    }
    for (int64_t w = 0; w < a.n; w++) {
        size_t wl = 0;
        for (size_t i = a.v[w].off; i < a.v[w].off + a.v[w].len; i++) {
            unsigned char c = (unsigned char)text[i];
            memcpy(enc + wl, t->byte_enc[c], t->byte_enc_len[c]);
            wl += t->byte_enc_len[c];
        }
        if ((rc = bpe_word(&k, enc, wl, out)) < 0) goto done;
    }
done:
    pcre2_match_data_free(md);
    free(enc);
    free(a.v);
    free(b.v);
    free(k.sym);
    free(k.heap.v);
    free(k.key);
    return rc;
}
