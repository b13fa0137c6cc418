/*
 * cmd_batch.c — `inferneo batch`: runs a JSONL file of completion requests concurrently through
 * the engine (continuous batching, paged KV, prefix cache) and prints one JSON line per request,
 * in input order.
 *
 * Input line: {"id": any JSON value (default: the 0-based request index), "prompt": string
 * (required), "max_tokens": int >= 1 (default 128, like `generate -n`), "temperature",
 * "top_k", "top_p", "min_p", "repetition_penalty", "frequency_penalty", "presence_penalty",
 * "seed" (int >= 0), "stop": string or array of up to 8 strings, "ignore_eos": bool}.
 * Absent sampling fields take the library defaults, the same as `generate` (temperature 0.8,
 * top_k 40, top_p 0.95, min_p 0.05, seed 0), so a request gives the same text here as
 * `generate` with the same options. Unknown fields are an error (nothing is silently ignored).
 * Prompts are tokenized as `generate` does (special tokens per the model's metadata; "" is BOS).
 *
 * Output line: {"id", "text", "tokens": [generated token ids, the end-of-generation token
 * included when one ended the request], "finish_reason": "stop"|"length"|"error",
 * "prompt_tokens", "completion_tokens", "cached_tokens"} plus "error" (message) for a request
 * the engine refused or failed. Exit status: 0 when every request ran (even if some of them
 * finished with an error), 1 on a runtime failure, 2 on a bad command line or input file.
 */
#include "app.h"

#include "base/base.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void batch_usage(FILE *f) {
    fprintf(f,
            "usage: inferneo batch -m MODEL -f REQUESTS.jsonl [options]\n"
            "\n"
            "  -m, --model PATH          GGUF model file (required)\n"
            "  -f, --file PATH           JSONL requests, one object per line ('-': stdin)\n"
            "      --max-seqs N          sequences decoded together (default 64)\n"
            "      --max-batch-tokens N  tokens per forward step (default 512)\n"
            "      --kv-mem MiB          KV cache budget in MiB (default: enough for max-seqs\n"
            "                            sequences of min(context, 2048) tokens, at most 1 GiB)\n"
            "      --page-tokens P       tokens per KV page (default 16)\n"
            "      --no-prefix-cache     do not share KV pages between requests\n"
            "  -c, --ctx-size N          per-request context (default: the model's)\n"
            "  -t, --threads N           compute threads (default: number of cores)\n"
            "  -v, --verbose             print engine statistics to stderr\n"
            "  -h, --help                this help\n");
}

typedef struct breq {
    json_t *id;
    char *prompt;
    int64_t max_tokens;
    inf_sampling_params sp;
    char *stop[INF_MAX_STOP];
    bool ignore_eos;
    /* results */
    uint64_t engine_id;
    bool submitted, done;
    inf_sb text;
    int32_t *tokens;
    int64_t n_tokens, cap_tokens;
    int finish_reason;
    char *error;
    inf_usage usage;
} breq;

static void breq_free(breq *r) {
    json_decref(r->id);
    free(r->prompt);
    for (int i = 0; i < INF_MAX_STOP; i++)
        free(r->stop[i]);
    inf__sb_free(&r->text);
    free(r->tokens);
    free(r->error);
}

/* ---- input ---- */

static bool get_number(json_t *v, double *out) {
    if (!json_is_number(v)) return false;
    *out = json_number_value(v);
    return isfinite(*out);
}

static bool get_int(json_t *v, int64_t lo, int64_t hi, int64_t *out) {
    if (!json_is_integer(v)) return false;
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) return false;
    *out = (int64_t)x;
    return true;
}

/* Parses one request object; on error writes a message to err. */
static bool parse_request(json_t *o, int64_t index, breq *r, char *err, size_t errsz) {
    memset(r, 0, sizeof *r);
    r->max_tokens = 128;
    r->sp = inf_sampling_params_default();
    if (!json_is_object(o)) {
        snprintf(err, errsz, "expected a JSON object");
        return false;
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        double d;
        int64_t i;
        if (!strcmp(key, "id")) {
            r->id = json_incref(v);
        } else if (!strcmp(key, "prompt")) {
            if (!json_is_string(v)) goto bad_type;
            r->prompt = strdup(json_string_value(v));
        } else if (!strcmp(key, "max_tokens")) {
            if (!get_int(v, 1, INT32_MAX, &r->max_tokens)) goto bad_type;
        } else if (!strcmp(key, "temperature")) {
            if (!get_number(v, &d)) goto bad_type;
            r->sp.temperature = (float)d;
        } else if (!strcmp(key, "top_p")) {
            if (!get_number(v, &d)) goto bad_type;
            r->sp.top_p = (float)d;
        } else if (!strcmp(key, "min_p")) {
            if (!get_number(v, &d)) goto bad_type;
            r->sp.min_p = (float)d;
        } else if (!strcmp(key, "top_k")) {
            if (!get_int(v, -1, INT32_MAX, &i)) goto bad_type;
            r->sp.top_k = (int32_t)i;
        } else if (!strcmp(key, "repetition_penalty")) {
            if (!get_number(v, &d)) goto bad_type;
            r->sp.repetition_penalty = (float)d;
        } else if (!strcmp(key, "frequency_penalty")) {
            if (!get_number(v, &d)) goto bad_type;
            r->sp.frequency_penalty = (float)d;
        } else if (!strcmp(key, "presence_penalty")) {
            if (!get_number(v, &d)) goto bad_type;
            r->sp.presence_penalty = (float)d;
        } else if (!strcmp(key, "seed")) {
            if (!get_int(v, 0, INT64_MAX, &i)) goto bad_type;
            r->sp.seed = (uint64_t)i;
        } else if (!strcmp(key, "ignore_eos")) {
            if (!json_is_boolean(v)) goto bad_type;
            r->ignore_eos = json_is_true(v);
        } else if (!strcmp(key, "stop")) {
            if (json_is_string(v)) {
                r->stop[0] = strdup(json_string_value(v));
            } else if (json_is_array(v)) {
                if (json_array_size(v) > INF_MAX_STOP) {
                    snprintf(err, errsz, "\"stop\": at most %d strings", INF_MAX_STOP);
                    return false;
                }
                size_t k;
                json_t *s;
                json_array_foreach(v, k, s) {
                    if (!json_is_string(s)) goto bad_type;
                    r->stop[k] = strdup(json_string_value(s));
                }
            } else if (!json_is_null(v)) {
                goto bad_type;
            }
        } else {
            snprintf(err, errsz, "unknown field \"%s\"", key);
            return false;
        }
        continue;
    bad_type:
        snprintf(err, errsz, "field \"%s\" has an invalid value", key);
        return false;
    }
    if (!r->prompt) {
        snprintf(err, errsz, "missing \"prompt\" (a string)");
        return false;
    }
    if (!r->id) r->id = json_integer(index);
    inf_sampler *probe = NULL;
    if (inf_sampler_new(&r->sp, 1, &probe) < 0) {
        snprintf(err, errsz, "%s", inf_last_error());
        return false;
    }
    inf_sampler_free(probe);
    return true;
}

/* ---- output ---- */

/* A JSON string of text; invalid UTF-8 (which jansson rejects) gets the tree's one rule
 * (inf__utf8_sanitize: each maximal ill-formed subpart becomes U+FFFD). */
static json_t *json_text(const char *s, size_t n) {
    json_t *j = json_stringn(s, n);
    if (j) return j;
    inf_sb sb = {0};
    inf__utf8_sanitize(&sb, s, n, NULL);
    j = json_stringn(sb.data ? sb.data : "", sb.len);
    inf__sb_free(&sb);
    return j;
}

static int print_result(const breq *r) {
    json_t *o = json_object();
    if (!o) return -1;
    json_object_set(o, "id", r->id);
    json_object_set_new(o, "text", json_text(r->text.data ? r->text.data : "", r->text.len));
    json_t *toks = json_array();
    for (int64_t i = 0; i < r->n_tokens; i++)
        json_array_append_new(toks, json_integer(r->tokens[i]));
    json_object_set_new(o, "tokens", toks);
    json_object_set_new(o, "finish_reason", json_string(inf_finish_reason_str(r->finish_reason)));
    json_object_set_new(o, "prompt_tokens", json_integer(r->usage.prompt_tokens));
    json_object_set_new(o, "completion_tokens", json_integer(r->usage.completion_tokens));
    json_object_set_new(o, "cached_tokens", json_integer(r->usage.cached_tokens));
    if (r->error) json_object_set_new(o, "error", json_text(r->error, strlen(r->error)));
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!line) return -1;
    fputs(line, stdout);
    fputc('\n', stdout);
    free(line);
    return 0;
}

/* ---- main ---- */

static bool parse_mib(const char *opt, const char *s, size_t *out) {
    float v;
    if (!inf_app_parse_f32(opt, s, &v)) return false;
    if (!(v > 0) || v > 1024.0f * 1024.0f) {
        fprintf(stderr, "inferneo batch: %s: expected a size in MiB > 0, got '%s'\n", opt, s);
        return false;
    }
    *out = (size_t)((double)v * 1024.0 * 1024.0);
    return true;
}

static int record_event(breq *reqs, int64_t n, const inf_event *ev) {
    int64_t i = (int64_t)ev->user_tag;
    if (i < 0 || i >= n) return 0;
    breq *r = &reqs[i];
    if (ev->type == INF_EVENT_DELTA) {
        inf__sb_append(&r->text, ev->text, ev->text_len);
        if (r->n_tokens + ev->n_tokens > r->cap_tokens) {
            int64_t cap = INF_MAX(2 * r->cap_tokens, r->n_tokens + ev->n_tokens + 16);
            int32_t *t = realloc(r->tokens, (size_t)cap * sizeof *t);
            if (!t) return -1;
            r->tokens = t;
            r->cap_tokens = cap;
        }
        memcpy(r->tokens + r->n_tokens, ev->tokens, (size_t)ev->n_tokens * sizeof *ev->tokens);
        r->n_tokens += ev->n_tokens;
        if (r->text.oom) return -1;
        return 0;
    }
    r->done = true;
    r->finish_reason = ev->finish_reason;
    r->usage = ev->usage;
    if (ev->finish_reason == INF_FINISH_ERROR)
        r->error = strdup(ev->error_msg ? ev->error_msg : inf_strerror(ev->error));
    return 1;
}

int inf_cmd_batch(int argc, char **argv) {
    const char *model_path = NULL, *file = NULL;
    int64_t max_seqs = 64, page_tokens = 16, n_threads = 0, n_ctx = 0, max_batch = 512;
    size_t kv_mem = 0;
    bool prefix_cache = true, verbose = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            batch_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            verbose = true;
            continue;
        }
        if (!strcmp(a, "--no-prefix-cache")) {
            prefix_cache = false;
            continue;
        }
        if (a[0] != '-') {
            fprintf(stderr, "inferneo batch: unexpected argument '%s'\n", a);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "inferneo batch: option %s needs a value (or is unknown)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            model_path = v;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            file = v;
        } else if (!strcmp(a, "--max-seqs")) {
            if (!inf_app_parse_i64(a, v, 1, 4096, &max_seqs)) return 2;
        } else if (!strcmp(a, "--max-batch-tokens")) {
            if (!inf_app_parse_i64(a, v, 1, 65536, &max_batch)) return 2;
        } else if (!strcmp(a, "--page-tokens")) {
            if (!inf_app_parse_i64(a, v, 1, 4096, &page_tokens)) return 2;
        } else if (!strcmp(a, "--kv-mem")) {
            if (!parse_mib(a, v, &kv_mem)) return 2;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (!inf_app_parse_i64(a, v, 0, 1 << 24, &n_ctx)) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!inf_app_parse_i64(a, v, 0, 4096, &n_threads)) return 2;
        } else {
            fprintf(stderr, "inferneo batch: unknown option '%s'\n", a);
            batch_usage(stderr);
            return 2;
        }
    }
    if (!model_path || !file) {
        fprintf(stderr, "inferneo batch: -m MODEL and -f REQUESTS.jsonl are required\n");
        batch_usage(stderr);
        return 2;
    }

    /* Read and validate every line before loading the model. */
    size_t len = 0;
    char *data = NULL;
    if (!strcmp(file, "-")) {
        inf_sb sb = {0};
        char buf[65536];
        size_t got;
        while (sb.len <= INF_APP_MAX_FILE && (got = fread(buf, 1, sizeof buf, stdin)) > 0)
            inf__sb_append(&sb, buf, got);
        if (sb.len > INF_APP_MAX_FILE) {
            fprintf(stderr, "inferneo batch: stdin: larger than %d MiB\n", INF_APP_MAX_FILE >> 20);
            inf__sb_free(&sb);
            return 2;
        }
        if (sb.oom) {
            fprintf(stderr, "inferneo batch: out of memory reading stdin\n");
            inf__sb_free(&sb);
            return 1;
        }
        len = sb.len;
        data = sb.data ? inf__sb_take(&sb) : strdup("");
    } else {
        data = inf_app_read_file(file, &len);
    }
    if (!data) return 2;
    int rc = 2;
    breq *reqs = NULL;
    int64_t n = 0, cap = 0, line_no = 0;
    inf_model *model = NULL;
    inf_engine *engine = NULL;
    for (char *p = data, *end = data + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        line_no++;
        char *q = p;
        while (q < le && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        if (q < le) {
            json_error_t jerr;
            json_t *o = json_loadb(p, (size_t)(le - p), JSON_REJECT_DUPLICATES, &jerr);
            if (!o) {
                fprintf(stderr, "inferneo batch: %s:%lld:%d: %s\n", file, (long long)line_no,
                        jerr.column, jerr.text);
                goto done;
            }
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                breq *nr = realloc(reqs, (size_t)cap * sizeof *nr);
                if (!nr) {
                    json_decref(o);
                    fprintf(stderr, "inferneo batch: out of memory\n");
                    goto done;
                }
                reqs = nr;
            }
            char err[512];
            bool ok = parse_request(o, n, &reqs[n], err, sizeof err);
            json_decref(o);
            n++;
            if (!ok) {
                fprintf(stderr, "inferneo batch: %s:%lld: %s\n", file, (long long)line_no, err);
                goto done;
            }
        }
        p = le + 1;
    }

    rc = 1;
    if (verbose) inf_set_log(inf_app_log_stderr, NULL);
    inf_model_params mp = inf_model_params_default();
    mp.n_threads = (int)n_threads;
    int err;
    if ((err = inf_model_load(model_path, &mp, &model))) {
        inf_app_fail(model_path, err);
        goto done;
    }
    inf_engine_params ep = inf_engine_params_default();
    ep.max_seqs = (int32_t)max_seqs;
    ep.max_batch_tokens = (int32_t)max_batch;
    ep.page_tokens = (int32_t)page_tokens;
    ep.kv_mem_bytes = kv_mem;
    ep.n_ctx = n_ctx;
    ep.prefix_cache = prefix_cache;
    ep.max_queue = (int32_t)INF_MIN(INF_MAX(n, 1), INT32_MAX);
    if ((err = inf_engine_create(model, &ep, &engine))) {
        inf_app_fail("starting the engine", err);
        goto done;
    }

    double t0 = inf__time_s();
    int64_t pending = 0;
    for (int64_t i = 0; i < n; i++) {
        breq *r = &reqs[i];
        inf_request_params rp = inf_request_params_default();
        rp.prompt_text = r->prompt;
        rp.sampling = r->sp;
        rp.max_tokens = r->max_tokens;
        for (int k = 0; k < INF_MAX_STOP; k++)
            rp.stop[k] = r->stop[k];
        rp.ignore_eos = r->ignore_eos;
        rp.user_tag = (uint64_t)i;
        err = inf_engine_submit(engine, &rp, &r->engine_id);
        if (err) {
            r->done = true;
            r->finish_reason = INF_FINISH_ERROR;
            char msg[1024];
            snprintf(msg, sizeof msg, "%s: %s", inf_strerror(err), inf_last_error());
            r->error = strdup(msg);
            continue;
        }
        r->submitted = true;
        pending++;
    }
    while (pending > 0) {
        inf_event ev;
        if (!inf_engine_wait(engine, &ev, -1)) continue;
        int got = record_event(reqs, n, &ev);
        inf_event_clear(&ev);
        if (got < 0) {
            fprintf(stderr, "inferneo batch: out of memory\n");
            goto done;
        }
        pending -= got;
    }
    double t1 = inf__time_s();
    for (int64_t i = 0; i < n; i++) {
        if (print_result(&reqs[i]) < 0) {
            fprintf(stderr, "inferneo batch: cannot format the result of request %lld\n",
                    (long long)i);
            goto done;
        }
    }
    fflush(stdout);
    if (verbose) {
        inf_engine_stats st;
        inf_engine_get_stats(engine, &st);
        fprintf(stderr,
                "[batch] %lld requests in %.3f s | prompt tokens %lld | generated %lld "
                "(%.1f tok/s) | steps %lld | preemptions %lld | prefix hit tokens %lld | "
                "pages %lld (used %lld, cached %lld, free %lld)\n",
                (long long)n, t1 - t0, (long long)st.prompt_tokens, (long long)st.generated_tokens,
                t1 > t0 ? (double)st.generated_tokens / (t1 - t0) : 0.0, (long long)st.steps,
                (long long)st.preemptions, (long long)st.prefix_hit_tokens,
                (long long)st.pages_total, (long long)st.pages_used, (long long)st.pages_cached,
                (long long)st.pages_free);
    }
    rc = 0;
done:
    inf_engine_destroy(engine);
    inf_model_free(model);
    for (int64_t i = 0; i < n; i++)
        breq_free(&reqs[i]);
    free(reqs);
    free(data);
    return rc;
}
