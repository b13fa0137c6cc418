/*
 * endpoints.c — the REST endpoints answered without the engine's scheduler: /health, /ready,
 * /v1/models, /v1/models/{id}, /tokenize and /detokenize. Each is a pure function from the
 * server's published state (names, context, model) and the request to a status and a JSON
 * body; http.c frames the result and writes the log line. Tested directly by
 * tests/unit/test_endpoints.c.
 * Threads: health/ready/models on the I/O thread (lookups); tokenize/detokenize on prep.c's
 * worker (they compute). Both read only state published before the server was ready.
 */
#include "server/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *fail(int *status, const inf__oa_err *e) {
    *status = e->status;
    return inf__oa_error_json(e);
}

static json_t *state_object(const char *st) {
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string(st));
    return o;
}

json_t *inf__ep_health(const inf_server *srv, int *status) {
    bool ready = inf__srv_ready(srv);
    *status = ready && !srv->shutting_down ? 200 : 503;
    return state_object(srv->shutting_down ? "shutting_down" : ready ? "ok" : "loading");
}

json_t *inf__ep_ready(const inf_server *srv, int *status) {
    return inf__ep_health(srv, status);
}

static json_t *model_object(const inf_server *srv, const char *name) {
    json_t *m = json_object();
    json_object_set_new(m, "id", json_string(name));
    json_object_set_new(m, "object", json_string("model"));
    json_object_set_new(m, "created", json_integer(srv->created));
    json_object_set_new(m, "owned_by", json_string("inferneo"));
    json_object_set_new(m, "max_model_len", json_integer(srv->n_ctx));
    if (srv->model) { /* the model card: what a client needs to know about the weights */
        inf_model_info info;
        inf_model_get_info(srv->model, &info);
        char fmt[128];
        inf_model_format_name(&info, fmt, sizeof fmt);
        json_object_set_new(m, "architecture", json_string(info.arch ? info.arch : "?"));
        json_object_set_new(m, "n_params", json_integer((json_int_t)info.n_params));
        json_object_set_new(m, "format", json_string(fmt));
        json_object_set_new(m, "n_ctx_train", json_integer(info.n_ctx_train));
        if (info.n_expert) {
            json_object_set_new(m, "n_expert", json_integer(info.n_expert));
            json_object_set_new(m, "n_expert_used", json_integer(info.n_expert_used));
        }
    }
    return m;
}

json_t *inf__ep_models(const inf_server *srv, int *status) {
    json_t *o = json_object(), *data = json_array();
    json_object_set_new(o, "object", json_string("list"));
    for (int i = 0; i < srv->n_names; i++)
        json_array_append_new(data, model_object(srv, srv->names[i]));
    json_object_set_new(o, "data", data);
    *status = 200;
    return o;
}

json_t *inf__ep_model(const inf_server *srv, const char *id, int *status) {
    for (int i = 0; i < srv->n_names; i++)
        if (!strcmp(srv->names[i], id)) {
            *status = 200;
            return model_object(srv, srv->names[i]);
        }
    inf__oa_err e;
    inf__oa_fail(&e, 404, "invalid_request_error", "model_not_found", "model",
                 "The model '%.200s' does not exist", id);
    return fail(status, &e);
}

/* Rejects unknown fields and a model that is not served. Returns 0 or -1 with *e. */
static int check_fields(const inf_server *srv, json_t *root, const char *const *allowed,
                        inf__oa_err *e) {
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        bool ok = !strcmp(key, "model");
        for (int i = 0; !ok && allowed[i]; i++)
            ok = !strcmp(key, allowed[i]);
        if (!ok)
            return inf__oa_fail(e, 400, "invalid_request_error", "unknown_parameter", key,
                                "Unrecognized request argument supplied: %s", key);
    }
    json_t *model = json_object_get(root, "model");
    if (model && !json_is_null(model)) {
        bool found = false;
        for (int i = 0; json_is_string(model) && i < srv->n_names; i++)
            found |= !strcmp(srv->names[i], json_string_value(model));
        if (!found)
            return inf__oa_fail(e, 404, "invalid_request_error", "model_not_found", "model",
                                "The model does not exist");
    }
    return 0;
}

json_t *inf__ep_tokenize(const inf_server *srv, json_t *root, int *status) {
    static const char *const allowed[] = {"content", "add_special", "parse_special", NULL};
    inf__oa_err e;
    if (check_fields(srv, root, allowed, &e) < 0) return fail(status, &e);
    json_t *content = json_object_get(root, "content");
    json_t *as = json_object_get(root, "add_special"), *ps = json_object_get(root, "parse_special");
    if (!json_is_string(content) || (as && !json_is_boolean(as) && !json_is_null(as)) ||
        (ps && !json_is_boolean(ps) && !json_is_null(ps))) {
        inf__oa_fail(&e, 400, "invalid_request_error", "invalid_type",
                     json_is_string(content) ? "add_special" : "content",
                     "'content' must be a string; 'add_special' and 'parse_special' booleans");
        return fail(status, &e);
    }
    int32_t *toks = NULL;
    int64_t n = 0;
    int rc = inf_tokenize(srv->model, json_string_value(content), json_string_length(content),
                          json_is_true(as), ps ? !json_is_false(ps) : true, &toks, &n);
    if (rc < 0) {
        inf__oa_fail(&e, 400, "invalid_request_error", "invalid_value", "content",
                     "tokenization failed: %s", inf_last_error());
        return fail(status, &e);
    }
    json_t *arr = json_array();
    for (int64_t i = 0; i < n; i++)
        json_array_append_new(arr, json_integer(toks[i]));
    inf_free(toks);
    json_t *o = json_object();
    json_object_set_new(o, "tokens", arr);
    *status = 200;
    return o;
}

json_t *inf__ep_detokenize(const inf_server *srv, json_t *root, int *status) {
    static const char *const allowed[] = {"tokens", NULL};
    inf__oa_err e;
    if (check_fields(srv, root, allowed, &e) < 0) return fail(status, &e);
    json_t *tokens = json_object_get(root, "tokens");
    if (!json_is_array(tokens)) {
        inf__oa_fail(&e, 400, "invalid_request_error", "invalid_type", "tokens",
                     "'tokens' must be an array of token ids");
        return fail(status, &e);
    }
    size_t n = json_array_size(tokens), i;
    int32_t *ids = inf__calloc(n ? n : 1, sizeof *ids);
    if (!ids) {
        inf__oa_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        return fail(status, &e);
    }
    json_t *x;
    json_array_foreach(tokens, i, x) {
        if (!json_is_integer(x) || json_integer_value(x) < 0 ||
            json_integer_value(x) >= srv->n_vocab) {
            free(ids);
            inf__oa_fail(&e, 400, "invalid_request_error", "invalid_value", "tokens",
                         "tokens[%zu] is not a token id in [0, %lld)", i, (long long)srv->n_vocab);
            return fail(status, &e);
        }
        ids[i] = (int32_t)json_integer_value(x);
    }
    char *text = NULL;
    size_t len = 0;
    int rc = inf_detokenize(srv->model, ids, (int64_t)n, false, &text, &len);
    free(ids);
    if (rc < 0) {
        inf__oa_fail(&e, 400, "invalid_request_error", "invalid_value", "tokens", "%s",
                     inf_last_error());
        return fail(status, &e);
    }
    /* pieces that do not form valid UTF-8 follow the same rule as generated text */
    json_t *o = json_object();
    json_object_set_new(o, "content", inf__oa_jstr_lossy(text ? text : "", len));
    inf_free(text);
    *status = 200;
    return o;
}
