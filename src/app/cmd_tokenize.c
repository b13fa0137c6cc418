/*
 * cmd_tokenize.c — `inferneo tokenize`: prints the token ids of a text on one line, space-
 * separated; with --decode, reads token ids instead and writes their text. Loads the model
 * vocab-only (weights are not needed). Public API only.
 *
 * -f reads the file's bytes exactly (no newline handling); -p takes the argument's bytes. Any
 * bytes tokenize, invalid UTF-8 included, and --decode writes the decoded bytes unchanged (no
 * U+FFFD), so `tokenize -f F` then `--decode` gives F back (see inf_tokenize for the limits).
 * --separator runs many texts through one process (one output line each): the vocabulary
 * conformance tests use it to avoid loading the vocabulary once per string.
 * Exit status: 0 ok, 1 load/tokenize failure (one line on stderr), 2 bad command line.
 */
#include "app.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void tokenize_usage(FILE *f) {
    fprintf(f,
            "usage: inferneo tokenize -m MODEL [options] (-p TEXT | -f FILE)\n"
            "\n"
            "Prints the token ids of TEXT (or of FILE's bytes) on one line, space-separated.\n"
            "\n"
            "  -m, --model PATH     GGUF model or vocabulary-only file\n"
            "  -p, --prompt TEXT    text to tokenize\n"
            "  -f, --file PATH      read the text from a file (bytes taken exactly)\n"
            "      --no-add-special do not add BOS/EOS (default: as the model's metadata says)\n"
            "      --parse-special  recognise special-token text (\"<|im_start|>\") as tokens\n"
            "      --decode         the input is token ids (space/comma separated): write their\n"
            "                       text to stdout exactly, without a trailing newline\n"
            "      --skip-special   with --decode: leave control tokens (BOS, EOS, ...) out\n"
            "      --separator SEP  the input holds several texts separated by SEP (exact bytes):\n"
            "                       each is tokenized alone and printed on its own line (with\n"
            "                       --decode: the decoded texts are written separated by SEP)\n"
            "  -h, --help           this help\n");
}

/* Parses whitespace/comma separated token ids. Returns false (message printed) when invalid. */
static bool parse_ids(const char *s, size_t len, int32_t **out, int64_t *n_out) {
    int64_t n = 0, cap = 0;
    int32_t *v = NULL;
    size_t i = 0;
    while (i < len) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',') {
            i++;
            continue;
        }
        char num[24];
        size_t k = 0;
        while (i < len && k < sizeof num - 1 && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' &&
               s[i] != '\r' && s[i] != ',')
            num[k++] = s[i++];
        num[k] = 0;
        int64_t id;
        if (!inf_app_parse_i64("token id", num, 0, INT32_MAX, &id)) {
            free(v);
            return false;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            int32_t *nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) {
                free(v);
                fprintf(stderr, "inferneo tokenize: out of memory\n");
                return false;
            }
            v = nv;
        }
        v[n++] = (int32_t)id;
    }
    *out = v;
    *n_out = n;
    return true;
}

/* Tokenizes one text and prints its ids on one line. Returns an exit status. */
static int run_encode(inf_model *model, const char *text, size_t len, bool add_special,
                      bool parse_special) {
    int32_t *ids = NULL;
    int64_t n = 0;
    int rc = inf_tokenize(model, text, len, add_special, parse_special, &ids, &n);
    if (rc < 0) {
        inf_app_fail("tokenize", rc);
        return 1;
    }
    for (int64_t i = 0; i < n; i++)
        printf(i ? " %d" : "%d", (int)ids[i]);
    putchar('\n');
    inf_free(ids);
    return 0;
}

/* Decodes one list of ids and writes the text. Returns an exit status. */
static int run_decode(inf_model *model, const char *text, size_t len, bool skip_special) {
    int32_t *ids = NULL;
    int64_t n = 0;
    if (!parse_ids(text, len, &ids, &n)) return 2;
    char *out = NULL;
    size_t olen = 0;
    int rc = inf_detokenize(model, ids, n, skip_special, &out, &olen);
    free(ids);
    if (rc < 0) {
        inf_app_fail("detokenize", rc);
        return 1;
    }
    size_t w = olen ? fwrite(out, 1, olen, stdout) : 0;
    inf_free(out);
    if (w != olen) {
        fprintf(stderr, "inferneo tokenize: write failed: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

int inf_cmd_tokenize(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL, *file = NULL, *sep = NULL;
    bool add_special = true, parse_special = false, decode = false, skip_special = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            tokenize_usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has_val) {
            model_path = argv[++i];
        } else if ((!strcmp(a, "-p") || !strcmp(a, "--prompt")) && has_val) {
            prompt = argv[++i];
        } else if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && has_val) {
            file = argv[++i];
        } else if (!strcmp(a, "--separator") && has_val) {
            sep = argv[++i];
            if (!*sep) {
                fprintf(stderr, "inferneo tokenize: --separator must not be empty\n");
                return 2;
            }
        } else if (!strcmp(a, "--no-add-special")) {
            add_special = false;
        } else if (!strcmp(a, "--parse-special")) {
            parse_special = true;
        } else if (!strcmp(a, "--decode")) {
            decode = true;
        } else if (!strcmp(a, "--skip-special")) {
            skip_special = true;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model") || !strcmp(a, "-p") ||
                   !strcmp(a, "--prompt") || !strcmp(a, "-f") || !strcmp(a, "--file") ||
                   !strcmp(a, "--separator")) {
            fprintf(stderr, "inferneo tokenize: option '%s' needs a value\n", a);
            return 2;
        } else {
            fprintf(stderr, "inferneo tokenize: unknown argument '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!model_path) {
        fprintf(stderr, "inferneo tokenize: no model given (-m MODEL)\n");
        return 2;
    }
    if (!!prompt == !!file) {
        fprintf(stderr, "inferneo tokenize: give exactly one of -p TEXT and -f FILE\n");
        return 2;
    }

    char *text_buf = NULL;
    const char *text = prompt;
    size_t len = prompt ? strlen(prompt) : 0;
    if (file) {
        text_buf = inf_app_read_file(file, &len);
        if (!text_buf) return 1;
        text = text_buf;
    }

    int status = 1;
    inf_model *model = NULL;
    inf_model_params mp = inf_model_params_default();
    mp.vocab_only = true;
    mp.n_threads = 1;
    int rc = inf_model_load(model_path, &mp, &model);
    if (rc < 0) {
        inf_app_fail(model_path, rc);
        goto done;
    }
    size_t sep_len = sep ? strlen(sep) : 0;
    for (size_t pos = 0, k = 0;; k++) {
        /* the next chunk: up to the separator, or everything when there is none */
        const char *hit = NULL;
        if (sep)
            for (size_t i = pos; i + sep_len <= len && !hit; i++)
                if (!memcmp(text + i, sep, sep_len)) hit = text + i;
        size_t clen = hit ? (size_t)(hit - (text + pos)) : len - pos;
        if (decode && k > 0 && fwrite(sep, 1, sep_len, stdout) != sep_len) goto write_fail;
        int r = decode ? run_decode(model, text + pos, clen, skip_special)
                       : run_encode(model, text + pos, clen, add_special, parse_special);
        if (r) {
            status = r;
            goto done;
        }
        if (!hit) break;
        pos += clen + sep_len;
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "inferneo tokenize: write failed: %s\n", strerror(errno));
        goto done;
    }
    status = 0;
    goto done;
write_fail:
    fprintf(stderr, "inferneo tokenize: write failed: %s\n", strerror(errno));
done:
    inf_model_free(model);
    free(text_buf);
    return status;
}
