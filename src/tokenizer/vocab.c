/*
 * vocab.c — builds an inf_tokenizer from GGUF tokenizer.* metadata, the way llama.cpp's
 * llama_vocab::load does (it is the oracle): token texts/scores/types, BPE merges, special token
 * ids with llama.cpp's defaults (SPM: bos 1, eos 2, unk 0; BPE: bos = eos = 11; WPM ("bert"):
 * bos 101 [CLS], unk 100, sep 102, pad 0, no eos; out-of-range defaults disabled),
 * add_bos/add_eos/add_sep/add_space_prefix defaults, the WPM normalizer flags, the text-based
 * detection of EOT/EOM/FIM tokens (which forces them to CONTROL), the end-of-generation set, the
 * special-token cache used by the partition step, and the per-model RSTRIP/LSTRIP quirks.
 *
 * Invariants after load: n_vocab >= 1; every id field is -1 or in [0, n_vocab); text[i] is
 * NUL-terminated and never empty (llama.cpp renames empty tokens "[EMPTY_i]").
 * Threads: the result is immutable and may be shared by any number of threads.
 */
#include "tokenizer/tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- metadata helpers --------------------------------------------------------------------- */

/* Optional bool: *v unchanged when absent. */
static int opt_bool(const inf_gguf *g, const char *key, bool *v) {
    bool b;
    int rc = inf_gguf_get_bool(g, key, &b);
    if (rc == INF_ENOTFOUND) return 0;
    if (rc < 0) return rc;
    *v = b;
    return 0;
}

/* Optional token id: kept when absent or out of range (llama.cpp warns and keeps its default). */
static int opt_id(const inf_gguf *g, const char *key, int64_t n_vocab, int32_t *id) {
    int64_t k = inf_gguf_find_key(g, key);
    if (k < 0) return 0;
    int ty = inf_gguf_kv_type(g, k);
    bool is_int = ty == INF_GGUF_UINT8 || ty == INF_GGUF_INT8 || ty == INF_GGUF_UINT16 ||
                  ty == INF_GGUF_INT16 || ty == INF_GGUF_UINT32 || ty == INF_GGUF_INT32 ||
                  ty == INF_GGUF_UINT64 || ty == INF_GGUF_INT64;
    if (!is_int) return inf__err(INF_EFORMAT, "metadata key '%s': expected an integer", key);
    int64_t v;
    if (inf_gguf_get_i64(g, key, &v) < 0) return 0; /* above INT64_MAX: out of range */
    if (v >= 0 && v < n_vocab) *id = (int32_t)v;
    return 0;
}

static int32_t find_text(const inf_tokenizer *t, const char *s) {
    return inf__smap_get(&t->tok_map, s, strlen(s));
}

/* llama.cpp sets a special id from a list of texts when the metadata gave none, and makes that
 * token CONTROL. Lowest matching id wins (llama.cpp takes whichever its hash map yields first). */
static void detect_by_text(inf_tokenizer *t, int32_t *id, const char *const *texts, size_t n) {
    if (*id >= 0) return;
    int32_t best = -1;
    for (size_t i = 0; i < n; i++) {
        int32_t v = find_text(t, texts[i]);
        if (v >= 0 && (best < 0 || v < best)) best = v;
    }
    if (best >= 0) {
        *id = best;
        t->attr[best] |= INF_TATTR_CONTROL;
    }
}

static void set_eog(inf_tokenizer *t, int32_t id) {
    if (id >= 0 && id < t->n_vocab) t->attr[id] |= INF_TATTR_EOG;
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const inf_tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->len[x] != t->len[y]) return t->len[x] > t->len[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Merge sort (the order is total: ids break ties), O(n log n) without qsort_r. */
static void sort_special(inf_tokenizer *t, int32_t *v, int32_t *tmp, int64_t n) {
    if (n < 2) return;
    int64_t h = n / 2;
    sort_special(t, v, tmp, h);
    sort_special(t, v + h, tmp, n - h);
    int64_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = cmp_special(&v[i], &v[j], t) <= 0 ? v[i++] : v[j++];
    while (i < h)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, (size_t)n * sizeof *v);
}

static bool contains_ci(const char *hay, size_t n, const char *needle) {
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++) {
        size_t k = 0;
        while (k < m) {
            char c = hay[i + k];
            if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
            if (c != needle[k]) break;
            k++;
        }
        if (k == m) return true;
    }
    return false;
}

/* ---- load --------------------------------------------------------------------------------- */

static int load_tokens(inf_tokenizer *t, const inf_gguf *g) {
    int et, rc;
    int64_t n;
    if ((rc = inf_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n)) < 0) {
        if (rc == INF_ENOTFOUND) return inf__err(INF_EFORMAT, "missing tokenizer.ggml.tokens");
        return rc;
    }
    if (et != INF_GGUF_STRING)
        return inf__err(INF_EFORMAT, "tokenizer.ggml.tokens: not an array of strings");
    if (n < 1 || n >= INT32_MAX)
        return inf__err(INF_EFORMAT, "tokenizer.ggml.tokens: bad vocabulary size %lld",
                        (long long)n);
    t->n_vocab = n;

    /* Pass 1: pool size. */
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        const char *s;
        size_t l;
        if ((rc = inf_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &s, &l)) < 0) return rc;
        if (l == 0) l = 32; /* "[EMPTY_<id>]" */
        if (l >= UINT32_MAX || inf__add_overflow(total, l + 1, &total))
            return inf__err(INF_EFORMAT, "tokenizer.ggml.tokens: texts too large");
    }
    t->pool = inf__malloc(total);
    t->text = inf__calloc((size_t)n, sizeof *t->text);
    t->len = inf__calloc((size_t)n, sizeof *t->len);
    t->score = inf__calloc((size_t)n, sizeof *t->score);
    t->attr = inf__calloc((size_t)n, sizeof *t->attr);
    if (!t->pool || !t->text || !t->len || !t->score || !t->attr)
        return inf__err(INF_ENOMEM, "tokenizer: out of memory for %lld tokens", (long long)n);
    size_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        const char *s;
        size_t l;
        inf_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &s, &l);
        char *dst = t->pool + off;
        if (l == 0) {
            l = (size_t)snprintf(dst, 32, "[EMPTY_%lld]", (long long)i);
        } else {
            memcpy(dst, s, l);
            dst[l] = 0;
        }
        t->text[i] = dst;
        t->len[i] = (uint32_t)l;
        if (l > t->max_token_len) t->max_token_len = (uint32_t)l;
        off += l + 1;
    }

    /* Scores: float32 or int32, at least n entries. */
    const void *data;
    rc = inf_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &n);
    if (rc == 0) {
        if (et != INF_GGUF_FLOAT32 && et != INF_GGUF_INT32)
            return inf__err(INF_EFORMAT, "tokenizer.ggml.scores: expected float32 or int32 array");
        if (n < t->n_vocab)
            return inf__err(INF_EFORMAT, "tokenizer.ggml.scores: %lld entries for %lld tokens",
                            (long long)n, (long long)t->n_vocab);
        if ((rc = inf_gguf_get_arr_data(g, "tokenizer.ggml.scores", &data)) < 0) return rc;
        for (int64_t i = 0; i < t->n_vocab; i++) {
            if (et == INF_GGUF_FLOAT32) {
                memcpy(&t->score[i], (const char *)data + 4 * i, 4);
            } else {
                int32_t v;
                memcpy(&v, (const char *)data + 4 * i, 4);
                t->score[i] = (float)v;
            }
        }
    } else if (rc != INF_ENOTFOUND) {
        return rc;
    }

    /* Token types -> attributes (all NORMAL when absent). */
    rc = inf_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &n);
    if (rc == 0) {
        if (et != INF_GGUF_INT32)
            return inf__err(INF_EFORMAT, "tokenizer.ggml.token_type: expected int32 array");
        if (n < t->n_vocab)
            return inf__err(INF_EFORMAT, "tokenizer.ggml.token_type: %lld entries for %lld tokens",
                            (long long)n, (long long)t->n_vocab);
        if ((rc = inf_gguf_get_arr_data(g, "tokenizer.ggml.token_type", &data)) < 0) return rc;
        for (int64_t i = 0; i < t->n_vocab; i++) {
            int32_t v;
            memcpy(&v, (const char *)data + 4 * i, 4);
            static const uint32_t map[] = {
                INF_TATTR_UNDEFINED,    INF_TATTR_NORMAL, INF_TATTR_UNKNOWN, INF_TATTR_CONTROL,
                INF_TATTR_USER_DEFINED, INF_TATTR_UNUSED, INF_TATTR_BYTE,
            };
            t->attr[i] = v >= 0 && v < (int32_t)INF_ARRAY_LEN(map) ? map[v] : INF_TATTR_UNDEFINED;
        }
    } else if (rc == INF_ENOTFOUND) {
        for (int64_t i = 0; i < t->n_vocab; i++)
            t->attr[i] = INF_TATTR_NORMAL;
    } else {
        return rc;
    }

    return inf__smap_build(&t->tok_map, (const char *const *)t->text, t->len, t->n_vocab);
}

static int load_merges(inf_tokenizer *t, const inf_gguf *g) {
    int et, rc;
    int64_t n;
    rc = inf_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &n);
    if (rc == INF_ENOTFOUND) return inf__err(INF_EFORMAT, "BPE vocabulary without merges");
    if (rc < 0) return rc;
    if (et != INF_GGUF_STRING)
        return inf__err(INF_EFORMAT, "tokenizer.ggml.merges: not an array of strings");
    if (n < 0 || n >= INT32_MAX)
        return inf__err(INF_EFORMAT, "tokenizer.ggml.merges: bad size %lld", (long long)n);
    size_t total = 1;
    for (int64_t i = 0; i < n; i++) {
        const char *s;
        size_t l;
        if ((rc = inf_gguf_get_arr_str(g, "tokenizer.ggml.merges", i, &s, &l)) < 0) return rc;
        if (l >= UINT32_MAX || inf__add_overflow(total, l + 1, &total))
            return inf__err(INF_EFORMAT, "tokenizer.ggml.merges: texts too large");
    }
    t->merge_pool = inf__malloc(total);
    t->merge = inf__calloc((size_t)n + 1, sizeof *t->merge);
    t->merge_len = inf__calloc((size_t)n + 1, sizeof *t->merge_len);
    if (!t->merge_pool || !t->merge || !t->merge_len)
        return inf__err(INF_ENOMEM, "tokenizer: out of memory for %lld merges", (long long)n);
    size_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        const char *s;
        size_t l;
        inf_gguf_get_arr_str(g, "tokenizer.ggml.merges", i, &s, &l);
        /* llama.cpp splits at the first space after position 0; a merge without one can never
         * match (it becomes the pair ("", "")). Keep the raw "left right" text as the key: a
         * lookup key always has exactly one space, between two space-free halves. */
        const char *sp = l > 1 ? memchr(s + 1, ' ', l - 1) : NULL;
        char *dst = t->merge_pool + off;
        if (!sp) l = 0;
        memcpy(dst, s, l);
        dst[l] = 0;
        t->merge[i] = dst;
        t->merge_len[i] = (uint32_t)l;
        off += l + 1;
    }
    t->n_merges = n;
    return inf__smap_build(&t->merge_map, (const char *const *)t->merge, t->merge_len, n);
}

static int load_specials(inf_tokenizer *t, const inf_gguf *g) {
    int64_t n = t->n_vocab;
    int rc;
    t->eot = t->eom = t->sep = t->pad = -1;
    if (t->kind == INF_TOK_SPM) {
        t->bos = 1, t->eos = 2, t->unk = 0;
    } else if (t->kind == INF_TOK_WPM) {
        t->bos = 101, t->eos = -1, t->unk = 100, t->sep = 102, t->pad = 0;
    } else {
        t->bos = 11, t->eos = 11, t->unk = -1;
        if (inf__bpe_pre_flags(t->pre_name) & INF__PRE_NO_BOS) t->bos = -1;
    }
    t->fim_pad = t->fim_rep = t->fim_sep = -1;
    int32_t fim_pre = -1, fim_suf = -1, fim_mid = -1;
    int32_t *ids[] = {&t->bos, &t->eos, &t->unk, &t->sep, &t->pad};
    for (size_t i = 0; i < INF_ARRAY_LEN(ids); i++)
        if (*ids[i] >= n) *ids[i] = -1;

    static const struct {
        const char *key;
        size_t field;
    } keys[] = {
        {"tokenizer.ggml.bos_token_id", offsetof(inf_tokenizer, bos)},
        {"tokenizer.ggml.eos_token_id", offsetof(inf_tokenizer, eos)},
        {"tokenizer.ggml.eot_token_id", offsetof(inf_tokenizer, eot)},
        {"tokenizer.ggml.eom_token_id", offsetof(inf_tokenizer, eom)},
        {"tokenizer.ggml.unknown_token_id", offsetof(inf_tokenizer, unk)},
        {"tokenizer.ggml.seperator_token_id", offsetof(inf_tokenizer, sep)},
        {"tokenizer.ggml.padding_token_id", offsetof(inf_tokenizer, pad)},
        {"tokenizer.ggml.fim_pad_token_id", offsetof(inf_tokenizer, fim_pad)},
        {"tokenizer.ggml.fim_rep_token_id", offsetof(inf_tokenizer, fim_rep)},
        {"tokenizer.ggml.fim_sep_token_id", offsetof(inf_tokenizer, fim_sep)},
    };
    for (size_t i = 0; i < INF_ARRAY_LEN(keys); i++)
        if ((rc = opt_id(g, keys[i].key, n, (int32_t *)((char *)t + keys[i].field))) < 0) return rc;
    if ((rc = opt_id(g, "tokenizer.ggml.fim_pre_token_id", n, &fim_pre)) < 0 ||
        (rc = opt_id(g, "tokenizer.ggml.fim_suf_token_id", n, &fim_suf)) < 0 ||
        (rc = opt_id(g, "tokenizer.ggml.fim_mid_token_id", n, &fim_mid)) < 0)
        return rc;

    int pflags = t->kind == INF_TOK_BPE ? inf__bpe_pre_flags(t->pre_name) : 0;
    t->add_bos = t->kind == INF_TOK_SPM || t->kind == INF_TOK_WPM || (pflags & INF__PRE_ADD_BOS);
    t->add_eos = false;
    t->add_sep = t->kind == INF_TOK_WPM;
    t->add_space_prefix = t->kind == INF_TOK_SPM;
    t->lowercase = true;
    if ((rc = opt_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos)) < 0 ||
        (rc = opt_bool(g, "tokenizer.ggml.add_eos_token", &t->add_eos)) < 0 ||
        (rc = opt_bool(g, "tokenizer.ggml.add_sep_token", &t->add_sep)) < 0 ||
        (rc = opt_bool(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix)) < 0 ||
        (rc = opt_bool(g, "tokenizer.ggml.normalizer.lowercase", &t->lowercase)) < 0)
        return rc;
    /* HF's BertNormalizer: strip_accents follows lowercase unless given */
    t->strip_accents = t->lowercase;
    if ((rc = opt_bool(g, "tokenizer.ggml.normalizer.strip_accents", &t->strip_accents)) < 0)
        return rc;
    if (t->add_bos && t->bos < 0)
        return inf__err(INF_EFORMAT, "tokenizer.ggml.add_bos_token is true, but there is no BOS");
    if (t->add_eos && t->eos < 0)
        return inf__err(INF_EFORMAT, "tokenizer.ggml.add_eos_token is true, but there is no EOS");
    if (t->add_sep && t->sep < 0)
        return inf__err(INF_EFORMAT,
                        "tokenizer.ggml.add_sep_token is true, but there is no separator token");

    /* Text-based detection (llama.cpp: "auto-detect special tokens by text"). */
    static const char *const eot_texts[] = {
        "<|eot_id|>",
        "<|im_end|>",
        "<|end|>",
        "<end_of_turn>",
        "<|endoftext|>",
        "<|end_of_text|>",
        "<EOT>",
        "_<EOT>",
        "[EOT]",
        ("<\xef\xbd\x9c"
         "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"),
        "<end_of_utterance>",
    };
    static const char *const eom_texts[] = {"<|eom_id|>"};
    static const char *const pre_texts[] = {
        "<|fim_prefix|>",
        "<fim-prefix>",
        "<fim_prefix>",
        "<\xef\xbd\x9c"
        "fim\xe2\x96\x81"
        "begin\xef\xbd\x9c>",
        "<PRE>",
        "\xe2\x96\x81<PRE>",
        "<|code_prefix|>",
    };
    static const char *const suf_texts[] = {
        "<|fim_suffix|>",
        "<fim-suffix>",
        "<fim_suffix>",
        "<\xef\xbd\x9c"
        "fim\xe2\x96\x81"
        "hole\xef\xbd\x9c>",
        "<SUF>",
        "\xe2\x96\x81<SUF>",
        "<|code_suffix|>",
    };
    static const char *const mid_texts[] = {
        "<|fim_middle|>",
        "<fim-middle>",
        "<fim_middle>",
        "<\xef\xbd\x9c"
        "fim\xe2\x96\x81"
        "end\xef\xbd\x9c>",
        "<MID>",
        "\xe2\x96\x81<MID>",
        "<|code_middle|>",
    };
    static const char *const pad_texts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>",
                                            "[PAD]"};
    static const char *const rep_texts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
                                            "<reponame>"};
    static const char *const sep_texts[] = {"<|file_sep|>"};
    detect_by_text(t, &t->eot, eot_texts, INF_ARRAY_LEN(eot_texts));
    detect_by_text(t, &t->eom, eom_texts, INF_ARRAY_LEN(eom_texts));
    detect_by_text(t, &fim_pre, pre_texts, INF_ARRAY_LEN(pre_texts));
    detect_by_text(t, &fim_suf, suf_texts, INF_ARRAY_LEN(suf_texts));
    detect_by_text(t, &fim_mid, mid_texts, INF_ARRAY_LEN(mid_texts));
    detect_by_text(t, &t->fim_pad, pad_texts, INF_ARRAY_LEN(pad_texts));
    detect_by_text(t, &t->fim_rep, rep_texts, INF_ARRAY_LEN(rep_texts));
    detect_by_text(t, &t->fim_sep, sep_texts, INF_ARRAY_LEN(sep_texts));

    /* End-of-generation set. */
    set_eog(t, t->fim_pad);
    set_eog(t, t->fim_rep);
    set_eog(t, t->fim_sep);
    static const char *const eog_texts[] = {
        "<|eot_id|>",      "<|im_end|>",
        "<|end|>",         "<|return|>",
        "<|call|>",        "<end_of_turn>",
        "<|endoftext|>",   "<|eom_id|>",
        "<EOT>",           "_<EOT>",
        "[EOT]",           "[EOS]",
        "<|end_of_text|>", "<end_of_utterance>",
    };
    for (size_t i = 0; i < INF_ARRAY_LEN(eog_texts); i++) {
        int32_t id = find_text(t, eog_texts[i]);
        if (id < 0) continue;
        t->attr[id] |= INF_TATTR_EOG | INF_TATTR_CONTROL;
    }
    /* gpt-oss: these are always rendered (llama.cpp makes them USER_DEFINED). */
    static const char *const ud_texts[] = {"<|channel|>", "<|message|>", "<|start|>",
                                           "<|constrain|>"};
    for (size_t i = 0; i < INF_ARRAY_LEN(ud_texts); i++) {
        int32_t id = find_text(t, ud_texts[i]);
        if (id >= 0) t->attr[id] = INF_TATTR_USER_DEFINED | (t->attr[id] & INF_TATTR_EOG);
    }
    set_eog(t, t->eos);
    set_eog(t, t->eot);
    set_eog(t, t->eom);
    /* o200k_harmony: with <|return|> and <|call|> both EOG, <|end|> is not. */
    int32_t r = find_text(t, "<|return|>"), c = find_text(t, "<|call|>"),
            e = find_text(t, "<|end|>");
    if (r >= 0 && c >= 0 && e >= 0 && (t->attr[e] & INF_TATTR_EOG)) {
        t->attr[e] = INF_TATTR_USER_DEFINED;
    }
    return 0;
}

static int build_special_cache(inf_tokenizer *t) {
    const uint32_t mask = INF_TATTR_CONTROL | INF_TATTR_USER_DEFINED | INF_TATTR_UNKNOWN;
    int64_t n = 0;
    for (int64_t i = 0; i < t->n_vocab; i++)
        if (t->attr[i] & mask) n++;
    t->special = inf__calloc((size_t)n + 1, sizeof *t->special);
    int32_t *tmp = inf__calloc((size_t)n + 1, sizeof *tmp);
    if (!t->special || !tmp) {
        free(tmp);
        return inf__err(INF_ENOMEM, "tokenizer: out of memory");
    }
    n = 0;
    for (int64_t i = 0; i < t->n_vocab; i++)
        if (t->attr[i] & mask) t->special[n++] = (int32_t)i;
    sort_special(t, t->special, tmp, n);
    free(tmp);
    t->n_special = n;
    return 0;
}

/* llama.cpp sets strip attributes by model name (general.name) or pre-tokenizer. */
static void name_quirks(inf_tokenizer *t, const inf_gguf *g) {
    const char *name = NULL;
    size_t nlen = 0;
    if (inf_gguf_get_str(g, "general.name", &name, &nlen) < 0) name = NULL, nlen = 0;
    const char *pre = t->pre_name;
    const char *arch = NULL;
    size_t alen = 0;
    if (inf_gguf_get_str(g, "general.architecture", &arch, &alen) < 0) arch = NULL, alen = 0;
    bool mask_lstrip =
        strstr(pre, "jina-v2-de") || strstr(pre, "jina-v2-es") || strstr(pre, "jina-v2-code") ||
        (arch &&
         (contains_ci(arch, alen, "nomic-bert-moe") || contains_ci(arch, alen, "jina-bert-v3")));
    if (mask_lstrip) {
        int32_t id = find_text(t, "<mask>");
        if (id >= 0) t->attr[id] |= INF_TATTR_LSTRIP;
    } else if (name && (contains_ci(name, nlen, "phi-3") || contains_ci(name, nlen, "phi3"))) {
        for (int64_t i = 0; i < t->n_special; i++)
            t->attr[t->special[i]] |= INF_TATTR_RSTRIP;
        int32_t id = find_text(t, "</s>");
        if (id >= 0) t->attr[id] |= INF_TATTR_RSTRIP;
        static const char *const off[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (size_t i = 0; i < INF_ARRAY_LEN(off); i++)
            if ((id = find_text(t, off[i])) >= 0) t->attr[id] &= ~(uint32_t)INF_TATTR_RSTRIP;
    } else if (name && contains_ci(name, nlen, "modern-bert")) {
        int32_t id = find_text(t, "[MASK]");
        if (id >= 0) t->attr[id] |= INF_TATTR_LSTRIP;
    }
}

int inf_tokenizer_load(const inf_gguf *g, inf_tokenizer **out) {
    *out = NULL;
    inf_tokenizer *t = inf__calloc(1, sizeof *t);
    if (!t) return inf__err(INF_ENOMEM, "tokenizer: out of memory");
    int rc;
    const char *model = NULL, *pre = NULL;
    size_t mlen = 0, plen = 0;
    if ((rc = inf_gguf_get_str(g, "tokenizer.ggml.model", &model, &mlen)) < 0) {
        if (rc == INF_ENOTFOUND) rc = inf__err(INF_EFORMAT, "missing tokenizer.ggml.model");
        goto fail;
    }
    if (mlen == 5 && !memcmp(model, "llama", 5)) {
        t->kind = INF_TOK_SPM;
    } else if (mlen == 4 && !memcmp(model, "gpt2", 4)) {
        t->kind = INF_TOK_BPE;
    } else if (mlen == 4 && !memcmp(model, "bert", 4)) {
        t->kind = INF_TOK_WPM;
    } else {
        char pr[96];
        inf__gguf_printable(model, mlen, pr, sizeof pr);
        rc = inf__err(INF_EUNSUPPORTED, "tokenizer model '%s' is not supported (llama, gpt2, bert)",
                      pr);
        goto fail;
    }
    rc = inf_gguf_get_str(g, "tokenizer.ggml.pre", &pre, &plen);
    if (rc == INF_ENOTFOUND || (rc == 0 && plen == 0)) {
        pre = "default", plen = 7;
    } else if (rc < 0) {
        goto fail;
    }
    if (!(t->pre_name = inf__strndup(pre, plen))) {
        rc = inf__err(INF_ENOMEM, "tokenizer: out of memory");
        goto fail;
    }
    if (t->kind == INF_TOK_BPE && !inf__bpe_pre_known(t->pre_name)) {
        /* llama.cpp refuses an unknown pre-tokenizer rather than guess one: a wrong split
         * gives plausible but different token ids. */
        char pr[96];
        rc = inf__err(INF_EUNSUPPORTED, "pre-tokenizer '%s' (tokenizer.ggml.pre) is not supported",
                      inf__gguf_printable(pre, plen, pr, sizeof pr));
        goto fail;
    }
    if ((rc = load_tokens(t, g)) < 0) goto fail;
    if (t->kind == INF_TOK_BPE && (rc = load_merges(t, g)) < 0) goto fail;
    if (t->kind == INF_TOK_WPM) {
        /* llama.cpp aborts on a byte token in a WPM vocabulary (token_to_byte has no WPM form) */
        for (int64_t i = 0; i < t->n_vocab; i++) {
            if (t->attr[i] & INF_TATTR_BYTE) {
                rc = inf__err(INF_EFORMAT, "token %lld: byte token in a WordPiece vocabulary",
                              (long long)i);
                goto fail;
            }
        }
        if ((rc = inf__wpm_init(t)) < 0) goto fail;
    }
    if ((rc = load_specials(t, g)) < 0) goto fail;
    if ((rc = build_special_cache(t)) < 0) goto fail;
    if (t->kind == INF_TOK_BPE) {
        t->pre_flags = inf__bpe_pre_flags(t->pre_name);
        if ((rc = inf__bpe_init(t)) < 0) goto fail;
    }
    if ((rc = inf__tok_build_pieces(t)) < 0) goto fail;
    name_quirks(t, g);
    *out = t;
    return 0;
fail:
    inf_tokenizer_free(t);
    return rc;
}

void inf_tokenizer_free(inf_tokenizer *t) {
    if (!t) return;
    inf__bpe_free(t);
    inf__wpm_free(t);
    inf__smap_free(&t->tok_map);
    inf__smap_free(&t->merge_map);
    free(t->pool);
    free(t->text);
    free(t->len);
    free(t->score);
    free(t->attr);
    free(t->piece_pool);
    free(t->piece);
    free(t->piece_len);
    free(t->merge_pool);
    free(t->merge);
    free(t->merge_len);
    free(t->special);
    free(t->pre_name);
    free(t);
}

/* ---- accessors ---------------------------------------------------------------------------- */

int inf_tokenizer_kind(const inf_tokenizer *t) {
    return t->kind;
}
int64_t inf_tokenizer_n_vocab(const inf_tokenizer *t) {
    return t->n_vocab;
}
int32_t inf_tokenizer_bos(const inf_tokenizer *t) {
    return t->bos;
}
int32_t inf_tokenizer_eos(const inf_tokenizer *t) {
    return t->eos;
}
int32_t inf_tokenizer_eot(const inf_tokenizer *t) {
    return t->eot;
}
bool inf_tokenizer_add_bos(const inf_tokenizer *t) {
    return t->add_bos;
}
bool inf_tokenizer_add_eos(const inf_tokenizer *t) {
    return t->add_eos;
}
bool inf_tokenizer_add_space_prefix(const inf_tokenizer *t) {
    return t->add_space_prefix;
}
const char *inf_tokenizer_pre(const inf_tokenizer *t) {
    return t->pre_name;
}

bool inf_tokenizer_is_eog(const inf_tokenizer *t, int32_t tok) {
    return tok >= 0 && tok < t->n_vocab && (t->attr[tok] & INF_TATTR_EOG);
}

bool inf_tokenizer_is_control(const inf_tokenizer *t, int32_t tok) {
    return tok >= 0 && tok < t->n_vocab && (t->attr[tok] & INF_TATTR_CONTROL);
}

int32_t inf_tokenizer_find(const inf_tokenizer *t, const char *text, size_t len) {
    return text ? inf__smap_get(&t->tok_map, text, len) : -1;
}

const char *inf_tokenizer_text(const inf_tokenizer *t, int32_t tok, size_t *len) {
    if (tok < 0 || tok >= t->n_vocab) return NULL;
    if (len) *len = t->len[tok];
    return t->text[tok];
}
