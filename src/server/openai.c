/*
 * openai.c — the OpenAI schema: one request validator (JSON body → inf__oa_req) and one response
 * formatter (engine events → chunk / response objects), used by both REST/SSE and WebSocket;
 * the transports only frame what this file builds.
 *
 * Validation policy: every field is type- and range-checked; null means absent; a field we do
 * not know, or know but cannot honour (tools, response_format json, logit_bias, …), is a 400 —
 * never silently ignored. Duplicate keys are rejected (ambiguous input). Limits bound what a
 * request may allocate: choices (n × prompts), stop strings, message counts are all capped, and
 * the body itself is capped by the transport.
 * Threads: I/O thread only.
 */
#include "server/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OA_MAX_STOP_LEN 1024
#define OA_MAX_LOGPROBS 20

int inf__oa_fail(inf__oa_err *e, int status, const char *type, const char *code, const char *param,
                 const char *fmt, ...) {
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

static int bad(inf__oa_err *e, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(inf__oa_err *e, const char *param, const char *fmt, ...) {
    e->status = 400;
    e->type = "invalid_request_error";
    e->code = "invalid_value";
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

static int wrong_type(inf__oa_err *e, const char *param, const char *want) {
    bad(e, param, "'%s' must be %s", param, want);
    e->code = "invalid_type";
    return -1;
}

static int unsupported(inf__oa_err *e, const char *param, const char *why) {
    bad(e, param, "'%s' is not supported by this server%s%s", param, why ? ": " : "",
        why ? why : "");
    e->code = "unsupported_parameter";
    return -1;
}

/* The tree's one UTF-8 rule (base: each maximal ill-formed subpart becomes one U+FFFD), for
 * generated text, token pieces, /detokenize and error messages alike. */
json_t *inf__oa_jstr_lossy(const char *s, size_t n) {
    json_t *j = json_stringn(s, n);
    if (j) return j;
    inf_sb sb = {0};
    inf__utf8_sanitize(&sb, s, n, NULL);
    j = sb.oom ? NULL : json_stringn(sb.data ? sb.data : "", sb.len);
    inf__sb_free(&sb);
    return j ? j : json_string("");
}

char *inf__oa_dump(json_t *obj, size_t *len) {
    char *s = obj ? json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    *len = s ? strlen(s) : 0;
    return s;
}

json_t *inf__oa_error_json(const inf__oa_err *e) {
    json_t *err = json_object();
    /* messages quote client input and may have been cut inside a UTF-8 sequence */
    const char *msg = e->message[0] ? e->message : "error";
    json_object_set_new(err, "message", inf__oa_jstr_lossy(msg, strlen(msg)));
    json_object_set_new(err, "type", json_string(e->type ? e->type : "invalid_request_error"));
    json_object_set_new(err, "param",
                        e->param[0] ? inf__oa_jstr_lossy(e->param, strlen(e->param)) : json_null());
    json_object_set_new(err, "code", e->code ? json_string(e->code) : json_null());
    json_t *o = json_object();
    json_object_set_new(o, "error", err);
    return o;
}

json_t *inf__oa_load_json(const char *data, size_t len, inf__oa_err *err) {
    json_error_t je;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        bad(err, NULL, "Invalid JSON body at line %d, column %d: %s", je.line, je.column, je.text);
        err->code = "invalid_json";
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        bad(err, NULL, "The request body must be a JSON object");
        err->code = "invalid_json";
        return NULL;
    }
    return root;
}

/* ---- field helpers (null = absent) ---------------------------------------------------------- */

static json_t *field(json_t *root, const char *key) {
    json_t *v = json_object_get(root, key);
    return json_is_null(v) ? NULL : v;
}

static int get_bool(json_t *root, const char *key, bool *out, inf__oa_err *e) {
    json_t *v = field(root, key);
    if (!v) return 0;
    if (!json_is_boolean(v)) return wrong_type(e, key, "a boolean");
    *out = json_is_true(v);
    return 1;
}

static int get_num(json_t *root, const char *key, double lo, double hi, bool lo_open, float *out,
                   inf__oa_err *e) {
    json_t *v = field(root, key);
    if (!v) return 0;
    if (!json_is_number(v)) return wrong_type(e, key, "a number");
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi || (lo_open && d == lo))
        return bad(e, key, "'%s' must be in %s%g, %g], got %g", key, lo_open ? "(" : "[", lo, hi,
                   d);
    *out = (float)d;
    return 1;
}

static int get_int(json_t *root, const char *key, int64_t lo, int64_t hi, int64_t *out,
                   inf__oa_err *e) {
    json_t *v = field(root, key);
    if (!v) return 0;
    if (!json_is_integer(v)) return wrong_type(e, key, "an integer");
    json_int_t i = json_integer_value(v);
    if (i < lo || i > hi)
        return bad(e, key, "'%s' must be in [%lld, %lld], got %lld", key, (long long)lo,
                   (long long)hi, (long long)i);
    *out = (int64_t)i;
    return 1;
}

static bool in_list(const char *key, const char *const *list) {
    for (int i = 0; list[i]; i++)
        if (!strcmp(key, list[i])) return true;
    return false;
}

static int check_known(json_t *root, const char *const *known, inf__oa_err *e) {
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!in_list(key, known)) {
            bad(e, key, "Unrecognized request argument supplied: %s", key);
            e->code = "unknown_parameter";
            return -1;
        }
    }
    return 0;
}

/* Fields that must be absent/null/empty, else unsupported_parameter. */
static int check_unsupported(json_t *root, inf__oa_err *e) {
    static const char *const never[] = {"functions",  "function_call",    "audio",
                                        "prediction", "reasoning_effort", "web_search_options",
                                        NULL};
    for (int i = 0; never[i]; i++)
        if (field(root, never[i])) return unsupported(e, never[i], NULL);
    json_t *v;
    if ((v = field(root, "tools"))) {
        if (!json_is_array(v)) return wrong_type(e, "tools", "an array");
        if (json_array_size(v)) return unsupported(e, "tools", "tool calling is not implemented");
    }
    if ((v = field(root, "tool_choice"))) {
        if (!json_is_string(v) ||
            (strcmp(json_string_value(v), "none") && strcmp(json_string_value(v), "auto")))
            return unsupported(e, "tool_choice", "tool calling is not implemented");
    }
    if ((v = field(root, "parallel_tool_calls")) && !json_is_boolean(v))
        return wrong_type(e, "parallel_tool_calls", "a boolean");
    if ((v = field(root, "response_format"))) {
        json_t *t = json_is_object(v) ? json_object_get(v, "type") : NULL;
        if (!json_is_string(t)) return wrong_type(e, "response_format", "an object with a type");
        const char *ts = json_string_value(t);
        if (!strcmp(ts, "json_object") || !strcmp(ts, "json_schema"))
            return unsupported(e, "response_format", "structured output is not implemented");
        if (strcmp(ts, "text")) return bad(e, "response_format", "unknown response_format type");
    }
    if ((v = field(root, "logit_bias"))) {
        if (!json_is_object(v)) return wrong_type(e, "logit_bias", "an object");
        if (json_object_size(v)) return unsupported(e, "logit_bias", NULL);
    }
    if ((v = field(root, "suffix"))) {
        if (!json_is_string(v)) return wrong_type(e, "suffix", "a string");
        if (json_string_length(v)) return unsupported(e, "suffix", NULL);
    }
    if ((v = field(root, "modalities"))) {
        if (!json_is_array(v)) return wrong_type(e, "modalities", "an array");
        size_t i;
        json_t *m;
        json_array_foreach(v, i,
                           m) if (!json_is_string(m) ||
                                  strcmp(json_string_value(m),
                                         "text")) return unsupported(e, "modalities",
                                                                     "only text is supported");
    }
    if ((v = field(root, "user")) && !json_is_string(v)) return wrong_type(e, "user", "a string");
    if ((v = field(root, "metadata")) && !json_is_object(v))
        return wrong_type(e, "metadata", "an object");
    if ((v = field(root, "store")) && !json_is_boolean(v))
        return wrong_type(e, "store", "a boolean");
    if ((v = field(root, "service_tier")) && !json_is_string(v))
        return wrong_type(e, "service_tier", "a string");
    return 0;
}

static int check_model(inf_server *srv, json_t *root, inf__oa_req *r, inf__oa_err *e) {
    json_t *v = field(root, "model");
    const char *name = srv->names[0];
    if (v) {
        if (!json_is_string(v)) return wrong_type(e, "model", "a string");
        const char *want = json_string_value(v);
        int found = -1;
        for (int i = 0; i < srv->n_names; i++)
            if (!strcmp(want, srv->names[i])) found = i;
        if (found < 0)
            return inf__oa_fail(e, 404, "invalid_request_error", "model_not_found", "model",
                                "The model '%.200s' does not exist", want);
        name = srv->names[found];
    }
    snprintf(r->model, sizeof r->model, "%s", name);
    return 0;
}

/* Sampling, length, stop and stream options shared by chat and completions. */
static int parse_common(inf_server *srv, json_t *root, inf__oa_req *r, inf__oa_err *e) {
    inf_sampling_params *s = &r->params.sampling;
    s->temperature = 1.0f;
    s->top_p = 1.0f;
    s->top_k = 0;
    s->min_p = 0.0f;
    s->frequency_penalty = 0.0f;
    s->presence_penalty = 0.0f;
    s->repetition_penalty = 1.0f;
    if (get_num(root, "temperature", 0, 2, false, &s->temperature, e) < 0) return -1;
    if (get_num(root, "top_p", 0, 1, false, &s->top_p, e) < 0) return -1;
    if (s->top_p == 0) { /* only the most likely token survives */
        s->top_p = 1.0f;
        s->temperature = 0.0f;
    }
    int64_t k;
    int rc = get_int(root, "top_k", -1, INT32_MAX, &k, e);
    if (rc < 0) return -1;
    if (rc) s->top_k = k > 0 ? (int32_t)k : 0;
    if (get_num(root, "min_p", 0, 1, false, &s->min_p, e) < 0) return -1;
    if (get_num(root, "frequency_penalty", -2, 2, false, &s->frequency_penalty, e) < 0) return -1;
    if (get_num(root, "presence_penalty", -2, 2, false, &s->presence_penalty, e) < 0) return -1;
    if (get_num(root, "repetition_penalty", 0, 10, true, &s->repetition_penalty, e) < 0) return -1;
    json_t *sv = field(root, "seed");
    if (sv) {
        if (!json_is_integer(sv)) return wrong_type(e, "seed", "an integer");
        s->seed = (uint64_t)json_integer_value(sv);
        r->seed_set = true;
    }
    int64_t n = 1;
    if (get_int(root, "n", 1, srv->cfg.max_choices, &n, e) < 0) return -1;
    r->n = (int)n;
    json_t *bo = field(root, "best_of");
    if (bo) {
        if (!json_is_integer(bo)) return wrong_type(e, "best_of", "an integer");
        if (json_integer_value(bo) != n) return unsupported(e, "best_of", "best_of must equal n");
    }
    if (get_bool(root, "ignore_eos", &r->params.ignore_eos, e) < 0) return -1;

    /* stop: a string or up to INF_MAX_STOP strings */
    json_t *st = field(root, "stop");
    if (st) {
        int ns = 0;
        if (json_is_string(st)) {
            if (!json_string_length(st)) return bad(e, "stop", "stop strings must not be empty");
            if (json_string_length(st) > OA_MAX_STOP_LEN)
                return bad(e, "stop", "stop strings are limited to %d bytes", OA_MAX_STOP_LEN);
            r->params.stop[ns++] = json_string_value(st);
        } else if (json_is_array(st)) {
            if (json_array_size(st) > INF_MAX_STOP)
                return bad(e, "stop", "at most %d stop strings are allowed, got %zu", INF_MAX_STOP,
                           json_array_size(st));
            size_t i;
            json_t *x;
            json_array_foreach(st, i, x) {
                if (!json_is_string(x))
                    return wrong_type(e, "stop", "a string or array of strings");
                if (!json_string_length(x)) return bad(e, "stop", "stop strings must not be empty");
                if (json_string_length(x) > OA_MAX_STOP_LEN)
                    return bad(e, "stop", "stop strings are limited to %d bytes", OA_MAX_STOP_LEN);
                r->params.stop[ns++] = json_string_value(x);
            }
        } else {
            return wrong_type(e, "stop", "a string or array of strings");
        }
    }

    if (get_bool(root, "stream", &r->stream, e) < 0) return -1;
    json_t *so = field(root, "stream_options");
    if (so) {
        if (!json_is_object(so)) return wrong_type(e, "stream_options", "an object");
        if (!r->stream)
            return bad(e, "stream_options",
                       "'stream_options' is only allowed when 'stream' is true");
        const char *key;
        json_t *v;
        json_object_foreach(so, key, v) {
            if (strcmp(key, "include_usage"))
                return bad(e, "stream_options", "unknown stream option '%.64s'", key);
        }
        if (get_bool(so, "include_usage", &r->include_usage, e) < 0) return -1;
    }
    return check_unsupported(root, e);
}

static int parse_max_tokens(json_t *root, const char *key, inf__oa_req *r, inf__oa_err *e) {
    int64_t mt;
    int rc = get_int(root, key, 1, INT32_MAX, &mt, e);
    if (rc > 0) {
        r->params.max_tokens = mt;
        r->max_tokens_given = true;
    }
    return rc;
}

/* ---- prompts -------------------------------------------------------------------------------- */

static int add_text_prompt(inf__oa_req *r, const char *s, size_t len) {
    inf__prompt *p = &r->prompts[r->n_prompts++];
    p->text = inf__strndup(s, len);
    return p->text ? 0 : -1;
}

static int token_array(inf_server *srv, json_t *arr, const char *param, inf__prompt *p,
                       inf__oa_err *e) {
    size_t n = json_array_size(arr);
    if (!n) return bad(e, param, "a token prompt must not be empty");
    p->tokens = inf__calloc(n, sizeof *p->tokens);
    if (!p->tokens) return inf__oa_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x) {
        if (!json_is_integer(x)) return wrong_type(e, param, "an array of token ids");
        json_int_t t = json_integer_value(x);
        if (t < 0 || t >= srv->n_vocab)
            return bad(e, param, "token id %lld is outside the vocabulary [0, %lld)", (long long)t,
                       (long long)srv->n_vocab);
        p->tokens[i] = (int32_t)t;
    }
    p->n_tokens = (int64_t)n;
    return 0;
}

/* prompt / input: a string, an array of strings, an array of token ids, or an array of arrays
 * of token ids. */
static int parse_prompts(inf_server *srv, json_t *root, const char *key, inf__oa_req *r,
                         inf__oa_err *e) {
    json_t *v = field(root, key);
    if (!v) return bad(e, key, "'%s' is required", key);
    size_t count = json_is_array(v) ? json_array_size(v) : 1;
    if (json_is_array(v) && count && json_is_integer(json_array_get(v, 0))) count = 1;
    if (!json_is_string(v) && !json_is_array(v))
        return wrong_type(e, key, "a string or an array of strings or token ids");
    if (!count) return bad(e, key, "'%s' must not be empty", key);
    int per = r->ep == INF__EP_EMBEDDING ? 1 : r->n;
    if (count > (size_t)srv->cfg.max_choices / (size_t)per)
        return bad(e, key, "too many prompts: %zu × n=%d exceeds the limit of %d", count, per,
                   (int)srv->cfg.max_choices);
    r->prompts = inf__calloc(count, sizeof *r->prompts);
    if (!r->prompts) return inf__oa_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    if (json_is_string(v)) {
        if (r->ep == INF__EP_EMBEDDING && !json_string_length(v))
            return bad(e, key, "'%s' must not be an empty string", key);
        if (add_text_prompt(r, json_string_value(v), json_string_length(v)) < 0)
            return inf__oa_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        return 0;
    }
    json_t *first = json_array_get(v, 0);
    if (json_is_integer(first)) {
        r->n_prompts = 1;
        return token_array(srv, v, key, &r->prompts[0], e);
    }
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        char param[64];
        snprintf(param, sizeof param, "%s[%zu]", key, i);
        if (json_is_string(x) && json_is_string(first)) {
            if (r->ep == INF__EP_EMBEDDING && !json_string_length(x))
                return bad(e, param, "inputs must not be empty strings");
            if (add_text_prompt(r, json_string_value(x), json_string_length(x)) < 0)
                return inf__oa_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        } else if (json_is_array(x) && json_is_array(first)) {
            if (token_array(srv, x, param, &r->prompts[r->n_prompts], e) < 0) {
                r->n_prompts++;
                return -1;
            }
            r->n_prompts++;
        } else {
            return wrong_type(e, param,
                              "of the same kind as the first element (string or token "
                              "array)");
        }
    }
    return 0;
}

/* ---- chat ----------------------------------------------------------------------------------- */

static int parse_messages(inf_server *srv, json_t *root, inf__oa_req *r, inf__oa_err *e) {
    json_t *msgs = field(root, "messages");
    if (!msgs) return bad(e, "messages", "'messages' is required");
    if (!json_is_array(msgs)) return wrong_type(e, "messages", "an array");
    size_t n = json_array_size(msgs);
    if (!n) return bad(e, "messages", "'messages' must not be empty");
    inf_chat_message *cm = inf__calloc(n, sizeof *cm);
    char **owned = inf__calloc(n, sizeof *owned);
    int rc = -1;
    if (!cm || !owned) {
        inf__oa_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        goto done;
    }
    static const char *const known[] = {"role", "content", "name", "refusal", "tool_calls", NULL};
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        char param[96];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(m)) {
            wrong_type(e, param, "an object");
            goto done;
        }
        const char *key;
        json_t *fv;
        json_object_foreach(m, key, fv) {
            if (!in_list(key, known)) {
                snprintf(param, sizeof param, "messages[%zu].%.40s", i, key);
                if (!strcmp(key, "tool_call_id"))
                    unsupported(e, param, NULL);
                else
                    bad(e, param, "Unrecognized message field: %.40s", key);
                goto done;
            }
        }
        json_t *tc = field(m, "tool_calls");
        if (tc && (!json_is_array(tc) || json_array_size(tc))) {
            snprintf(param, sizeof param, "messages[%zu].tool_calls", i);
            unsupported(e, param, "tool calling is not implemented");
            goto done;
        }
        json_t *role = json_object_get(m, "role");
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!json_is_string(role)) {
            wrong_type(e, param, "a string");
            goto done;
        }
        const char *rs = json_string_value(role);
        if (!strcmp(rs, "developer")) rs = "system";
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant")) {
            if (!strcmp(rs, "tool") || !strcmp(rs, "function"))
                unsupported(e, param, NULL);
            else
                bad(e, param, "unknown role '%.40s' (system, user or assistant)", rs);
            goto done;
        }
        cm[i].role = rs;
        json_t *content = field(m, "content");
        snprintf(param, sizeof param, "messages[%zu].content", i);
        if (!content) {
            if (strcmp(rs, "assistant")) {
                bad(e, param, "'content' is required for %s messages", rs);
                goto done;
            }
            cm[i].content = "";
        } else if (json_is_string(content)) {
            cm[i].content = json_string_value(content);
        } else if (json_is_array(content)) {
            inf_sb sb = {0};
            size_t j;
            json_t *part;
            json_array_foreach(content, j, part) {
                char pp[128];
                snprintf(pp, sizeof pp, "messages[%zu].content[%zu]", i, j);
                json_t *type = json_is_object(part) ? json_object_get(part, "type") : NULL;
                json_t *text = json_is_object(part) ? json_object_get(part, "text") : NULL;
                if (!json_is_string(type)) {
                    inf__sb_free(&sb);
                    wrong_type(e, pp, "an object with a type");
                    goto done;
                }
                if (strcmp(json_string_value(type), "text")) {
                    inf__sb_free(&sb);
                    unsupported(e, pp, "only text content parts are supported");
                    goto done;
                }
                if (!json_is_string(text)) {
                    inf__sb_free(&sb);
                    wrong_type(e, pp, "a text part with a string 'text'");
                    goto done;
                }
                if (j) inf__sb_putc(&sb, '\n');
                inf__sb_append(&sb, json_string_value(text), json_string_length(text));
            }
            if (sb.oom) {
                inf__sb_free(&sb);
                inf__oa_fail(e, 500, "server_error", NULL, NULL, "out of memory");
                goto done;
            }
            owned[i] = sb.data ? inf__sb_take(&sb) : inf__strdup("");
            cm[i].content = owned[i];
        } else {
            wrong_type(e, param, "a string or an array of content parts");
            goto done;
        }
    }
    r->prompts = inf__calloc(1, sizeof *r->prompts);
    if (!r->prompts) {
        inf__oa_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        goto done;
    }
    /* rendered with the model's template off the I/O thread (prep.c) */
    r->n_prompts = 1;
    r->chat = cm;
    r->chat_owned = owned;
    r->n_chat = n;
    cm = NULL;
    owned = NULL;
    rc = 0;
done:
    if (owned)
        for (size_t k = 0; k < n; k++)
            free(owned[k]);
    free(owned);
    free(cm);
    return rc;
}

int inf__oa_parse(inf_server *srv, int ep, json_t *root, inf__oa_req *r, inf__oa_err *e) {
    memset(r, 0, sizeof *r);
    r->ep = ep;
    r->root = json_incref(root);
    r->params = inf_request_params_default();
    r->logprobs = -1;
    r->n = 1;
    static const char *const common[] = {"model",
                                         "temperature",
                                         "top_p",
                                         "top_k",
                                         "min_p",
                                         "frequency_penalty",
                                         "presence_penalty",
                                         "repetition_penalty",
                                         "seed",
                                         "n",
                                         "stop",
                                         "stream",
                                         "stream_options",
                                         "user",
                                         "best_of",
                                         "logit_bias",
                                         "ignore_eos",
                                         "max_tokens",
                                         "tools",
                                         "tool_choice",
                                         "parallel_tool_calls",
                                         "response_format",
                                         "functions",
                                         "function_call",
                                         "metadata",
                                         "store",
                                         "service_tier",
                                         "modalities",
                                         "audio",
                                         "prediction",
                                         "reasoning_effort",
                                         "web_search_options",
                                         NULL};
    if (check_model(srv, root, r, e) < 0) return -1;
    if (ep == INF__EP_EMBEDDING) {
        static const char *const known[] = {"model",      "input", "encoding_format",
                                            "dimensions", "user",  NULL};
        if (check_known(root, known, e) < 0) return -1;
        if (field(root, "dimensions")) return unsupported(e, "dimensions", NULL);
        json_t *fmt = field(root, "encoding_format");
        if (fmt) {
            if (!json_is_string(fmt)) return wrong_type(e, "encoding_format", "a string");
            const char *f = json_string_value(fmt);
            if (!strcmp(f, "base64"))
                r->embed_base64 = true;
            else if (strcmp(f, "float"))
                return bad(e, "encoding_format", "'encoding_format' must be float or base64");
        }
        json_t *u = field(root, "user");
        if (u && !json_is_string(u)) return wrong_type(e, "user", "a string");
        r->params.embed = true;
        return parse_prompts(srv, root, "input", r, e);
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        bool ok = in_list(key, common);
        if (ep == INF__EP_CHAT)
            ok = ok || !strcmp(key, "messages") || !strcmp(key, "max_completion_tokens") ||
                 !strcmp(key, "logprobs") || !strcmp(key, "top_logprobs");
        else
            ok = ok || !strcmp(key, "prompt") || !strcmp(key, "logprobs") || !strcmp(key, "echo") ||
                 !strcmp(key, "suffix");
        if (!ok) {
            bad(e, key, "Unrecognized request argument supplied: %s", key);
            e->code = "unknown_parameter";
            return -1;
        }
    }
    if (parse_common(srv, root, r, e) < 0) return -1;
    if (ep == INF__EP_CHAT) {
        if (parse_max_tokens(root, "max_tokens", r, e) < 0) return -1;
        if (parse_max_tokens(root, "max_completion_tokens", r, e) < 0) return -1;
        bool lp = false;
        if (get_bool(root, "logprobs", &lp, e) < 0) return -1;
        int64_t top = 0;
        int rc = get_int(root, "top_logprobs", 0, OA_MAX_LOGPROBS, &top, e);
        if (rc < 0) return -1;
        if (rc && !lp) return bad(e, "top_logprobs", "'top_logprobs' requires 'logprobs': true");
        r->logprobs = lp ? (int)top : -1;
        if (parse_messages(srv, root, r, e) < 0) return -1;
    } else {
        r->params.max_tokens = 16; /* the OpenAI default for completions */
        if (parse_max_tokens(root, "max_tokens", r, e) < 0) return -1;
        int64_t lp;
        int rc = get_int(root, "logprobs", 0, OA_MAX_LOGPROBS, &lp, e);
        if (rc < 0) return -1;
        if (rc) r->logprobs = (int)lp;
        if (get_bool(root, "echo", &r->echo, e) < 0) return -1;
        if (parse_prompts(srv, root, "prompt", r, e) < 0) return -1;
        if (r->echo && r->logprobs >= 0)
            return unsupported(e, "echo",
                               "echo with logprobs (prompt logprobs) is not implemented");
    }
    r->params.n_logprobs = r->logprobs < 0 ? 0 : r->logprobs > 0 ? r->logprobs : 1;
    return 0;
}

void inf__oa_req_free(inf__oa_req *r) {
    if (!r) return;
    for (int i = 0; i < r->n_prompts; i++) {
        free(r->prompts[i].text);
        free(r->prompts[i].tokens);
        free(r->prompts[i].echo);
    }
    free(r->prompts);
    r->prompts = NULL;
    r->n_prompts = 0;
    for (size_t i = 0; r->chat_owned && i < r->n_chat; i++)
        free(r->chat_owned[i]);
    free(r->chat_owned);
    free(r->chat);
    r->chat = NULL;
    r->chat_owned = NULL;
    r->n_chat = 0;
    json_decref(r->root);
    r->root = NULL;
}

/* ---- formatter ------------------------------------------------------------------------------ */

const char *inf__oa_finish_str(int reason) {
    switch (reason) {
    case INF_FINISH_STOP: return "stop";
    case INF_FINISH_LENGTH: return "length";
    case INF_FINISH_CANCELLED: return "cancelled";
    case INF_FINISH_ERROR: return "error";
    default: return NULL;
    }
}

static double lp_value(float lp) {
    return isfinite(lp) ? lp : -9999.0;
}

typedef struct piece {
    const char *s; /* borrowed from the server's piece table */
    size_t n;
} piece;

/* The bytes a token adds to a text, from the table made at load (prep.c). */
static piece token_piece(inf__call *call, int32_t tok) {
    const inf__pieces *t = &call->srv->pieces;
    piece p = {"", 0};
    if (tok >= 0 && tok < t->n && t->off) {
        p.s = t->blob + t->off[tok];
        p.n = t->off[tok + 1] - t->off[tok];
    }
    return p;
}

static json_t *bytes_array(const piece *p) {
    json_t *a = json_array();
    for (size_t i = 0; i < p->n; i++)
        json_array_append_new(a, json_integer((unsigned char)p->s[i]));
    return a;
}

/* Chat logprobs entries ({"token","logprob","bytes","top_logprobs"}) for an event's tokens. */
static void chat_lp_entries(inf__call *call, const inf_event *ev, json_t *content) {
    int k = call->req.logprobs;
    for (int64_t i = 0; i < ev->n_tokens && ev->chosen; i++) {
        json_t *ent = json_object();
        piece p = token_piece(call, ev->chosen[i].token);
        json_object_set_new(ent, "token", inf__oa_jstr_lossy(p.s ? p.s : "", p.n));
        json_object_set_new(ent, "logprob", json_real(lp_value(ev->chosen[i].logprob)));
        json_object_set_new(ent, "bytes", bytes_array(&p));
        json_t *tops = json_array();
        for (int j = 0; ev->top && j < ev->n_top && j < k; j++) {
            const inf_token_logprob *t = &ev->top[i * ev->n_top + j];
            if (t->token < 0) continue;
            json_t *te = json_object();
            piece q = token_piece(call, t->token);
            json_object_set_new(te, "token", inf__oa_jstr_lossy(q.s ? q.s : "", q.n));
            json_object_set_new(te, "logprob", json_real(lp_value(t->logprob)));
            json_object_set_new(te, "bytes", bytes_array(&q));
            json_array_append_new(tops, te);
        }
        json_object_set_new(ent, "top_logprobs", tops);
        json_array_append_new(content, ent);
    }
}

/* Completions logprobs: parallel arrays tokens / token_logprobs / top_logprobs / text_offset. */
static json_t *cmpl_lp_new(void) {
    json_t *o = json_object();
    json_object_set_new(o, "tokens", json_array());
    json_object_set_new(o, "token_logprobs", json_array());
    json_object_set_new(o, "top_logprobs", json_array());
    json_object_set_new(o, "text_offset", json_array());
    return o;
}

static void cmpl_lp_append(inf__call *call, inf__sub *s, const inf_event *ev, json_t *o) {
    int k = call->req.logprobs;
    for (int64_t i = 0; i < ev->n_tokens && ev->chosen; i++) {
        piece p = token_piece(call, ev->chosen[i].token);
        json_array_append_new(json_object_get(o, "tokens"), inf__oa_jstr_lossy(p.s ? p.s : "", p.n));
        json_array_append_new(json_object_get(o, "token_logprobs"),
                              json_real(lp_value(ev->chosen[i].logprob)));
        json_array_append_new(json_object_get(o, "text_offset"), json_integer(s->text_offset));
        s->text_offset += (int64_t)p.n;
        json_t *tops = json_object();
        for (int j = 0; ev->top && j < ev->n_top && j < k; j++) {
            const inf_token_logprob *t = &ev->top[i * ev->n_top + j];
            if (t->token < 0) continue;
            piece q = token_piece(call, t->token);
            json_t *key = inf__oa_jstr_lossy(q.s ? q.s : "", q.n);
            if (!json_object_get(tops, json_string_value(key)))
                json_object_set_new(tops, json_string_value(key), json_real(lp_value(t->logprob)));
            json_decref(key);
        }
        json_array_append_new(json_object_get(o, "top_logprobs"), tops);
    }
}

void inf__oa_lp_accumulate(inf__call *call, inf__sub *s, const inf_event *ev) {
    if (call->req.logprobs < 0 || !ev->chosen) return;
    if (call->req.ep == INF__EP_CHAT) {
        if (!s->lp) {
            s->lp = json_object();
            json_object_set_new(s->lp, "content", json_array());
        }
        chat_lp_entries(call, ev, json_object_get(s->lp, "content"));
    } else {
        if (!s->lp) s->lp = cmpl_lp_new();
        cmpl_lp_append(call, s, ev, s->lp);
    }
}

static json_t *base_object(inf__call *call, const char *object) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(call->id));
    json_object_set_new(o, "object", json_string(object));
    json_object_set_new(o, "created", json_integer(call->created));
    json_object_set_new(o, "model", json_string(call->req.model));
    return o;
}

json_t *inf__oa_usage(inf__call *call) {
    int64_t pt = 0, ct = 0, cached = 0;
    for (int i = 0; i < call->n_subs; i++) {
        inf__sub *s = &call->subs[i];
        ct += s->usage.completion_tokens;
        /* the prompt is counted once per prompt, not once per choice */
        if (call->req.ep == INF__EP_EMBEDDING || s->index % call->req.n == 0) {
            pt += s->usage.prompt_tokens;
            cached += s->usage.cached_tokens;
        }
    }
    json_t *u = json_object();
    json_object_set_new(u, "prompt_tokens", json_integer(pt));
    if (call->req.ep != INF__EP_EMBEDDING)
        json_object_set_new(u, "completion_tokens", json_integer(ct));
    json_object_set_new(u, "total_tokens", json_integer(pt + ct));
    if (call->req.ep != INF__EP_EMBEDDING) {
        json_t *d = json_object();
        json_object_set_new(d, "cached_tokens", json_integer(cached));
        json_object_set_new(u, "prompt_tokens_details", d);
    }
    return u;
}

json_t *inf__oa_chunk(inf__call *call, inf__sub *s, const char *text, size_t len,
                      const inf_event *ev, bool role, int finish_reason) {
    bool chat = call->req.ep == INF__EP_CHAT;
    json_t *o = base_object(call, chat ? "chat.completion.chunk" : "text_completion");
    json_t *choice = json_object();
    json_object_set_new(choice, "index", json_integer(s->index));
    json_t *lp = json_null();
    if (ev && call->req.logprobs >= 0 && ev->chosen) {
        if (chat) {
            lp = json_object();
            json_t *content = json_array();
            chat_lp_entries(call, ev, content);
            json_object_set_new(lp, "content", content);
        } else {
            lp = cmpl_lp_new();
            cmpl_lp_append(call, s, ev, lp);
        }
    }
    const char *fr = inf__oa_finish_str(finish_reason);
    if (chat) {
        json_t *delta = json_object();
        if (role) json_object_set_new(delta, "role", json_string("assistant"));
        if (role || len || ev)
            json_object_set_new(delta, "content", inf__oa_jstr_lossy(text ? text : "", len));
        json_object_set_new(choice, "delta", delta);
        json_object_set_new(choice, "logprobs", lp);
    } else {
        json_object_set_new(choice, "text", inf__oa_jstr_lossy(text ? text : "", len));
        json_object_set_new(choice, "logprobs", lp);
    }
    json_object_set_new(choice, "finish_reason", fr ? json_string(fr) : json_null());
    json_t *choices = json_array();
    json_array_append_new(choices, choice);
    json_object_set_new(o, "choices", choices);
    if (call->req.include_usage) json_object_set_new(o, "usage", json_null());
    return o;
}

json_t *inf__oa_usage_chunk(inf__call *call) {
    bool chat = call->req.ep == INF__EP_CHAT;
    json_t *o = base_object(call, chat ? "chat.completion.chunk" : "text_completion");
    json_object_set_new(o, "choices", json_array());
    json_object_set_new(o, "usage", inf__oa_usage(call));
    return o;
}

static const char b64tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static json_t *embedding_base64(const float *v, int64_t n) {
    size_t bytes = (size_t)n * 4, outlen = (bytes + 2) / 3 * 4;
    unsigned char *raw = malloc(bytes ? bytes : 1);
    char *out = malloc(outlen + 1);
    json_t *j = NULL;
    if (raw && out) {
        for (int64_t i = 0; i < n; i++) { /* little-endian float32 */
            uint32_t u;
            memcpy(&u, &v[i], 4);
            for (int b = 0; b < 4; b++)
                raw[i * 4 + b] = (unsigned char)(u >> (8 * b));
        }
        size_t o = 0;
        for (size_t i = 0; i < bytes; i += 3) {
            uint32_t w = (uint32_t)raw[i] << 16;
            if (i + 1 < bytes) w |= (uint32_t)raw[i + 1] << 8;
            if (i + 2 < bytes) w |= raw[i + 2];
            out[o++] = b64tab[(w >> 18) & 63];
            out[o++] = b64tab[(w >> 12) & 63];
            out[o++] = i + 1 < bytes ? b64tab[(w >> 6) & 63] : '=';
            out[o++] = i + 2 < bytes ? b64tab[w & 63] : '=';
        }
        out[o] = 0;
        j = json_stringn(out, o);
    }
    free(raw);
    free(out);
    return j ? j : json_string("");
}

json_t *inf__oa_response(inf__call *call) {
    int ep = call->req.ep;
    if (ep == INF__EP_EMBEDDING) {
        json_t *o = json_object();
        json_object_set_new(o, "object", json_string("list"));
        json_t *data = json_array();
        for (int i = 0; i < call->n_subs; i++) {
            inf__sub *s = &call->subs[i];
            json_t *d = json_object();
            json_object_set_new(d, "object", json_string("embedding"));
            json_object_set_new(d, "index", json_integer(s->index));
            if (call->req.embed_base64) {
                json_object_set_new(d, "embedding", embedding_base64(s->embedding, s->n_embd));
            } else {
                json_t *vec = json_array();
                for (int64_t k = 0; k < s->n_embd; k++)
                    json_array_append_new(
                        vec, json_real(isfinite(s->embedding[k]) ? s->embedding[k] : 0.0));
                json_object_set_new(d, "embedding", vec);
            }
            json_array_append_new(data, d);
        }
        json_object_set_new(o, "data", data);
        json_object_set_new(o, "model", json_string(call->req.model));
        json_object_set_new(o, "usage", inf__oa_usage(call));
        return o;
    }
    bool chat = ep == INF__EP_CHAT;
    json_t *o = base_object(call, chat ? "chat.completion" : "text_completion");
    json_t *choices = json_array();
    for (int i = 0; i < call->n_subs; i++) {
        inf__sub *s = &call->subs[i];
        json_t *c = json_object();
        json_object_set_new(c, "index", json_integer(s->index));
        json_t *text = inf__oa_jstr_lossy(s->text.data ? s->text.data : "", s->text.len);
        if (chat) {
            json_t *msg = json_object();
            json_object_set_new(msg, "role", json_string("assistant"));
            json_object_set_new(msg, "content", text);
            json_object_set_new(c, "message", msg);
        } else {
            json_object_set_new(c, "text", text);
        }
        json_t *lp = s->lp ? json_incref(s->lp) : json_null();
        if (!s->lp && call->req.logprobs >= 0) {
            lp = chat ? json_object() : cmpl_lp_new();
            if (chat) json_object_set_new(lp, "content", json_array());
        }
        json_object_set_new(c, "logprobs", lp);
        const char *fr = inf__oa_finish_str(s->finish_reason);
        json_object_set_new(c, "finish_reason", fr ? json_string(fr) : json_null());
        json_array_append_new(choices, c);
    }
    json_object_set_new(o, "choices", choices);
    json_object_set_new(o, "usage", inf__oa_usage(call));
    return o;
}
