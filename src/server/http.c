/*
 * http.c — the libwebsockets callback (one protocol serves HTTP and WebSocket on one port),
 * connection objects, output queues, HTTP routing and the REST endpoints that do not go through
 * the engine (health, models, metrics, tokenize, detokenize), and SSE framing.
 *
 * Connections: an inf__conn is attached to its wsi with lws_set_opaque_user_data (so it survives
 * protocol re-binding on upgrade) and freed at LWS_CALLBACK_WSI_DESTROY; calls still running
 * then are cancelled and become orphans (dispatch.c).
 * Output: every response goes through the connection's queue of buffers (each with LWS_PRE
 * headroom) and is written in HTTP/SERVER_WRITEABLE callbacks, one lws_write per callback
 * (consecutive small body buffers are coalesced). Complete responses carry Content-Length and
 * keep the connection; SSE streams have no length and close the connection at the end.
 * Errors decided from the headers of a request that has a body are sent after the body has been
 * read (so the connection stays usable); a body over --max-body is answered 413 at once and the
 * connection closed after the response. Chunked request bodies are decoded here (lws 4.1 passes
 * them through undecoded) and the connection closes after their response. HEAD is answered on
 * the GET routes with the GET headers and no body. Oversized request headers get 431 by way of
 * the lws log hook (see inf__http_note_header_overflow).
 * Known lws 4.1 limits left as they are: a request with a body pipelined behind another one on
 * a keep-alive connection closes the connection (replayed_request_line), and input pipelined
 * behind a request makes lws's service loop spin until that request's response is complete.
 * Threads: I/O thread only.
 */
#include "server/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

enum {
    R_NONE = 0,
    R_HEALTH,
    R_MODELS,
    R_MODEL,
    R_COMPLETIONS,
    R_CHAT,
    R_EMBEDDINGS,
    R_TOKENIZE,
    R_DETOKENIZE,
    R_METRICS
};

static const struct route {
    const char *path;
    int id;
    int method; /* LWSHUMETH_GET / LWSHUMETH_POST */
    int ep;
} routes[] = {
    {"/health", R_HEALTH, LWSHUMETH_GET, 0},
    {"/v1/models", R_MODELS, LWSHUMETH_GET, 0},
    {"/v1/completions", R_COMPLETIONS, LWSHUMETH_POST, INF__EP_COMPLETION},
    {"/v1/chat/completions", R_CHAT, LWSHUMETH_POST, INF__EP_CHAT},
    {"/v1/embeddings", R_EMBEDDINGS, LWSHUMETH_POST, INF__EP_EMBEDDING},
    {"/tokenize", R_TOKENIZE, LWSHUMETH_POST, 0},
    {"/detokenize", R_DETOKENIZE, LWSHUMETH_POST, 0},
    {"/metrics", R_METRICS, LWSHUMETH_GET, 0},
};

#define WRITE_CHUNK 65536
#define HDR_BUF 4096

static const struct route *find_route(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    for (size_t i = 0; i < INF_ARRAY_LEN(routes); i++)
        if (strlen(routes[i].path) == n && !strncmp(routes[i].path, path, n)) return &routes[i];
    static const struct route model_route = {"/v1/models/{id}", R_MODEL, LWSHUMETH_GET, 0};
    if (!strncmp(path, "/v1/models/", 11) && path[11]) return &model_route;
    return NULL;
}

static const char *method_name(int m) {
    static const char *names[] = {"GET",   "POST",   "OPTIONS", "PUT",
                                  "PATCH", "DELETE", "CONNECT", "HEAD"};
    return m >= 0 && m < (int)INF_ARRAY_LEN(names) ? names[m] : "?";
}

/* ---- connections ---------------------------------------------------------------------------- */

static inf__conn *get_conn(inf_server *srv, struct lws *wsi) {
    inf__conn *c = lws_get_opaque_user_data(wsi);
    if (c) return c;
    c = inf__calloc(1, sizeof *c);
    if (!c) return NULL;
    c->wsi = wsi;
    c->srv = srv;
    c->rate_key = -1;
    lws_get_peer_simple(wsi, c->peer, sizeof c->peer);
    c->all_next = srv->conns;
    if (srv->conns) srv->conns->all_prev = c;
    srv->conns = c;
    srv->n_conns++;
    lws_set_opaque_user_data(wsi, c);
    return c;
}

static void out_free_all(inf__conn *c) {
    while (c->out_head) {
        inf__out *o = c->out_head;
        c->out_head = o->next;
        free(o);
    }
    c->out_tail = NULL;
    c->out_bytes = 0;
}

static void conn_destroy(inf_server *srv, struct lws *wsi) {
    inf__conn *c = lws_get_opaque_user_data(wsi);
    if (!c) return;
    lws_set_opaque_user_data(wsi, NULL);
    inf__calls_detach(c);
    out_free_all(c);
    free(c->http.body);
    free(c->ws.msg);
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        srv->conns = c->all_next;
    if (c->all_next) c->all_next->all_prev = c->all_prev;
    srv->n_conns--;
    free(c);
}

int inf__conn_queue(inf__conn *c, int kind, const void *data, size_t len, bool last) {
    inf__out *o = malloc(sizeof *o + LWS_PRE + len + 1);
    if (!o) return INF_ENOMEM;
    o->next = NULL;
    o->kind = kind;
    o->last = last;
    o->len = len;
    o->off = 0;
    o->data = (unsigned char *)(o + 1);
    if (len) memcpy(o->data + LWS_PRE, data, len);
    if (c->out_tail)
        c->out_tail->next = o;
    else
        c->out_head = o;
    c->out_tail = o;
    c->out_bytes += len;
    lws_callback_on_writable(c->wsi);
    return 0;
}

static void http_reset(inf__conn *c) {
    free(c->http.body);
    memset(&c->http, 0, sizeof c->http);
}

/* One lws_write per callback. Returns -1 to close the connection. */
static int conn_write(inf__conn *c) {
    inf__out *o = c->out_head;
    if (!o) return c->close_after && !c->is_ws ? -1 : 0;
    struct lws *wsi = c->wsi;
    if (o->kind == INF__OUT_WS_CLOSE) {
        lws_close_reason(wsi, (enum lws_close_status)c->ws.close_code,
                         (unsigned char *)c->ws.close_reason, strlen(c->ws.close_reason));
        return -1;
    }
    if (o->kind == INF__OUT_HTTP_BODY && !o->off && o->next &&
        o->next->kind == INF__OUT_HTTP_BODY && o->len < WRITE_CHUNK) {
        /* coalesce whole small body buffers into the first one's successor-free copy */
        size_t total = 0;
        int count = 0;
        bool last = false;
        for (inf__out *q = o;
             q && q->kind == INF__OUT_HTTP_BODY && !q->off && total + q->len <= WRITE_CHUNK;
             q = q->next) {
            total += q->len;
            count++;
            if (q->last) {
                last = true;
                break;
            }
        }
        if (count > 1) {
            inf__out *m = malloc(sizeof *m + LWS_PRE + total + 1);
            if (!m) return -1;
            m->kind = INF__OUT_HTTP_BODY;
            m->last = last;
            m->len = total;
            m->off = 0;
            m->data = (unsigned char *)(m + 1);
            size_t at = 0;
            for (int i = 0; i < count; i++) {
                inf__out *q = c->out_head;
                memcpy(m->data + LWS_PRE + at, q->data + LWS_PRE, q->len);
                at += q->len;
                c->out_head = q->next;
                free(q);
            }
            m->next = c->out_head;
            c->out_head = m;
            if (!m->next) c->out_tail = m;
            o = m;
        }
    }
    size_t remain = o->len - o->off, chunk = remain;
    int wp;
    switch (o->kind) {
    case INF__OUT_HTTP_HEADERS: wp = LWS_WRITE_HTTP_HEADERS; break;
    case INF__OUT_HTTP_BODY:
        if (chunk > WRITE_CHUNK) chunk = WRITE_CHUNK;
        wp = o->last && chunk == remain ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP;
        break;
    default: /* WS text message, fragmented when large */
        if (chunk > WRITE_CHUNK) chunk = WRITE_CHUNK;
        wp = o->off ? LWS_WRITE_CONTINUATION : LWS_WRITE_TEXT;
        if (chunk < remain) wp |= LWS_WRITE_NO_FIN;
        break;
    }
    /* For o->off > 0 the LWS_PRE bytes before the chunk are payload already sent: free for the
     * frame header. */
    int n = lws_write(wsi, o->data + LWS_PRE + o->off, chunk, (enum lws_write_protocol)wp);
    if (n < 0) return -1;
    o->off += chunk;
    c->out_bytes -= chunk;
    if (o->off == o->len) {
        bool end = o->last && o->kind != INF__OUT_WS_TEXT;
        c->out_head = o->next;
        if (!c->out_head) c->out_tail = NULL;
        free(o);
        if (end) { /* an HTTP response is complete */
            if (c->close_after || c->http.state == INF__HTTP_STREAM) return -1;
            http_reset(c);
            c->n_txn++;
            if (lws_http_transaction_completed(wsi)) return -1;
            return 0;
        }
    }
    if (c->out_head) lws_callback_on_writable(wsi);
    return 0;
}

/* ---- responses ------------------------------------------------------------------------------ */

static int add_header(inf__conn *c, const char *name, const char *value, unsigned char **p,
                      unsigned char *end) {
    return lws_add_http_header_by_name(c->wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

/* Queues the status line and headers. length < 0: unknown (stream, connection closes). */
static int queue_headers(inf__conn *c, int status, const char *ctype, int64_t length,
                         const char *allow) {
    unsigned char buf[LWS_PRE + HDR_BUF], *start = buf + LWS_PRE, *p = start,
                                          *end = buf + sizeof buf - 1;
    struct lws *wsi = c->wsi;
    c->http.status = status;
    c->http.headers_sent = true;
    if (lws_add_http_common_headers(
            wsi, (unsigned)status, ctype,
            length < 0 ? LWS_ILLEGAL_HTTP_CONTENT_LEN : (lws_filepos_t)length, &p, end))
        return -1;
    if (length >= 0 && c->close_after && add_header(c, "connection:", "close", &p, end)) return -1;
    if (c->http.cors) {
        if (add_header(c, "access-control-allow-origin:", c->http.origin, &p, end) ||
            add_header(c, "vary:", "Origin", &p, end))
            return -1;
    }
    if (allow && add_header(c, "allow:", allow, &p, end)) return -1;
    if (status == 401 && add_header(c, "www-authenticate:", "Bearer", &p, end)) return -1;
    if (length < 0 && (add_header(c, "cache-control:", "no-cache", &p, end) ||
                       add_header(c, "x-accel-buffering:", "no", &p, end)))
        return -1;
    if (lws_finalize_http_header(wsi, &p, end)) return -1;
    return inf__conn_queue(c, INF__OUT_HTTP_HEADERS, start, (size_t)(p - start), false);
}

static void respond(inf__conn *c, int status, const char *ctype, const char *body, size_t len,
                    const char *allow) {
    if (c->http.headers_sent) return;
    c->http.state = INF__HTTP_DONE;
    if (c->http.method == LWSHUMETH_HEAD) { /* the GET headers (Content-Length too), no body */
        if (queue_headers(c, status, ctype, (int64_t)len, allow) < 0) {
            c->close_after = true;
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        } else {
            c->out_tail->last = true;
        }
        return;
    }
    if (queue_headers(c, status, ctype, (int64_t)len, allow) < 0 ||
        inf__conn_queue(c, INF__OUT_HTTP_BODY, body, len, true) < 0) {
        c->close_after = true;
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

static char *dump(json_t *obj, size_t *len) {
    char *s = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(9));
    *len = s ? strlen(s) : 0;
    return s;
}

void inf__http_send_json(inf__conn *c, int status, json_t *obj) {
    size_t len;
    char *s = obj ? dump(obj, &len) : NULL;
    json_decref(obj);
    if (!s) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":"
                                  "\"server_error\",\"param\":null,\"code\":null}}";
        respond(c, 500, "application/json", oom, sizeof oom - 1, NULL);
        return;
    }
    respond(c, status, "application/json", s, len, NULL);
    free(s);
}

void inf__http_send_error(inf__conn *c, const inf__oa_err *e) {
    inf__http_send_json(c, e->status, inf__oa_error_json(e));
}

void inf__http_stream_begin(inf__conn *c) {
    c->http.state = INF__HTTP_STREAM;
    if (queue_headers(c, 200, "text/event-stream", -1, NULL) < 0) c->close_after = true;
}

void inf__http_stream_event(inf__conn *c, json_t *obj) {
    if (c->http.state != INF__HTTP_STREAM) {
        json_decref(obj);
        return;
    }
    size_t len = 0;
    char *s = obj ? dump(obj, &len) : NULL;
    json_decref(obj);
    if (obj && !s) return;
    inf_sb sb = {0};
    inf__sb_puts(&sb, "data: ");
    inf__sb_append(&sb, s ? s : "[DONE]", s ? len : 6);
    inf__sb_puts(&sb, "\n\n");
    free(s);
    if (!sb.oom) inf__conn_queue(c, INF__OUT_HTTP_BODY, sb.data, sb.len, false);
    inf__sb_free(&sb);
}

void inf__http_stream_end(inf__conn *c) {
    if (c->http.state != INF__HTTP_STREAM) return;
    inf__conn_queue(c, INF__OUT_HTTP_BODY, "", 0, true);
}

/* Answers a request handled entirely here: response, metrics, log line. */
static void finish_local(inf__conn *c, int status, const char *ctype, const char *body, size_t len,
                         const char *allow) {
    respond(c, status, ctype, body, len, allow);
    const struct route *r = find_route(c->http.path);
    inf__metrics_request(c->srv->metrics, r ? r->path : "other", status);
    inf__srv_log_request(c->srv, method_name(c->http.method), c->http.path, status, -1, -1,
                         c->http.t_start);
}

static void local_json(inf__conn *c, int status, json_t *obj) {
    size_t len;
    char *s = obj ? dump(obj, &len) : NULL;
    json_decref(obj);
    if (!s) {
        finish_local(c, 500, "application/json", "{}", 2, NULL);
        return;
    }
    finish_local(c, status, "application/json", s, len, NULL);
    free(s);
}

static void local_error(inf__conn *c, const inf__oa_err *e) {
    const struct route *r = find_route(c->http.path);
    const char *allow = NULL;
    if (e->status == 405 && r)
        allow = r->method == LWSHUMETH_GET ? "GET, HEAD, OPTIONS" : "POST, OPTIONS";
    size_t len;
    json_t *obj = inf__oa_error_json(e);
    char *s = dump(obj, &len);
    json_decref(obj);
    finish_local(c, e->status, "application/json", s ? s : "{}", s ? len : 2, allow);
    free(s);
}

/* ---- endpoints ------------------------------------------------------------------------------ */

static json_t *model_object(inf_server *srv, const char *name) {
    json_t *m = json_object();
    json_object_set_new(m, "id", json_string(name));
    json_object_set_new(m, "object", json_string("model"));
    json_object_set_new(m, "created", json_integer(srv->created));
    json_object_set_new(m, "owned_by", json_string("inferneo"));
    json_object_set_new(m, "max_model_len", json_integer(srv->n_ctx));
    return m;
}

static void handle_get(inf__conn *c, int route) {
    inf_server *srv = c->srv;
    if (route == R_HEALTH) {
        bool ready = inf__srv_ready(srv);
        const char *st = srv->shutting_down ? "shutting_down" : ready ? "ok" : "loading";
        json_t *o = json_object();
        json_object_set_new(o, "status", json_string(st));
        local_json(c, ready && !srv->shutting_down ? 200 : 503, o);
    } else if (route == R_MODELS) {
        json_t *o = json_object(), *data = json_array();
        json_object_set_new(o, "object", json_string("list"));
        for (int i = 0; i < srv->n_names; i++)
            json_array_append_new(data, model_object(srv, srv->names[i]));
        json_object_set_new(o, "data", data);
        local_json(c, 200, o);
    } else if (route == R_MODEL) {
        const char *id = c->http.path + 11;
        for (int i = 0; i < srv->n_names; i++)
            if (!strcmp(srv->names[i], id)) {
                local_json(c, 200, model_object(srv, srv->names[i]));
                return;
            }
        inf__oa_err e;
        inf__oa_fail(&e, 404, "invalid_request_error", "model_not_found", "model",
                     "The model '%.200s' does not exist", id);
        local_error(c, &e);
    } else if (route == R_METRICS) {
        size_t len = 0;
        char *text = inf__metrics_render(srv->metrics, srv->engine, &len);
        if (!text) {
            finish_local(c, 500, "text/plain", "out of memory\n", 14, NULL);
            return;
        }
        finish_local(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, NULL);
        free(text);
    }
}

static void handle_tokenize(inf__conn *c, json_t *root, bool detok) {
    inf_server *srv = c->srv;
    inf__oa_err e;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        bool ok = !strcmp(key, "model") ||
                  (detok ? !strcmp(key, "tokens")
                         : !strcmp(key, "content") || !strcmp(key, "add_special") ||
                               !strcmp(key, "parse_special"));
        if (!ok) {
            inf__oa_fail(&e, 400, "invalid_request_error", "unknown_parameter", key,
                         "Unrecognized request argument supplied: %s", key);
            local_error(c, &e);
            return;
        }
    }
    json_t *model = json_object_get(root, "model");
    if (model && !json_is_null(model)) {
        bool found = false;
        for (int i = 0; json_is_string(model) && i < srv->n_names; i++)
            found |= !strcmp(srv->names[i], json_string_value(model));
        if (!found) {
            inf__oa_fail(&e, 404, "invalid_request_error", "model_not_found", "model",
                         "The model does not exist");
            local_error(c, &e);
            return;
        }
    }
    if (!detok) {
        json_t *content = json_object_get(root, "content");
        json_t *as = json_object_get(root, "add_special"),
               *ps = json_object_get(root, "parse_special");
        if (!json_is_string(content) || (as && !json_is_boolean(as) && !json_is_null(as)) ||
            (ps && !json_is_boolean(ps) && !json_is_null(ps))) {
            inf__oa_fail(&e, 400, "invalid_request_error", "invalid_type",
                         json_is_string(content) ? "add_special" : "content",
                         "'content' must be a string; 'add_special' and 'parse_special' booleans");
            local_error(c, &e);
            return;
        }
        int32_t *toks = NULL;
        int64_t n = 0;
        int rc = inf_tokenize(srv->model, json_string_value(content), json_string_length(content),
                              json_is_true(as), ps ? !json_is_false(ps) : true, &toks, &n);
        if (rc < 0) {
            inf__oa_fail(&e, 400, "invalid_request_error", "invalid_value", "content",
                         "tokenization failed: %s", inf_last_error());
            local_error(c, &e);
            return;
        }
        json_t *arr = json_array();
        for (int64_t i = 0; i < n; i++)
            json_array_append_new(arr, json_integer(toks[i]));
        inf_free(toks);
        json_t *o = json_object();
        json_object_set_new(o, "tokens", arr);
        local_json(c, 200, o);
        return;
    }
    json_t *tokens = json_object_get(root, "tokens");
    if (!json_is_array(tokens)) {
        inf__oa_fail(&e, 400, "invalid_request_error", "invalid_type", "tokens",
                     "'tokens' must be an array of token ids");
        local_error(c, &e);
        return;
    }
    size_t n = json_array_size(tokens), i;
    int32_t *ids = inf__calloc(n ? n : 1, sizeof *ids);
    json_t *x;
    if (!ids) {
        inf__oa_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        local_error(c, &e);
        return;
    }
    json_array_foreach(tokens, i, x) {
        if (!json_is_integer(x) || json_integer_value(x) < 0 ||
            json_integer_value(x) >= srv->n_vocab) {
            free(ids);
            inf__oa_fail(&e, 400, "invalid_request_error", "invalid_value", "tokens",
                         "tokens[%zu] is not a token id in [0, %lld)", i, (long long)srv->n_vocab);
            local_error(c, &e);
            return;
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
        local_error(c, &e);
        return;
    }
    json_t *o = json_object();
    json_t *js = json_stringn(text, len);
    if (!js) { /* pieces that do not form valid UTF-8 */
        inf_sb sb = {0};
        for (size_t k = 0; k < len; k++) {
            unsigned char ch = (unsigned char)text[k];
            if (ch < 0x80 && ch)
                inf__sb_putc(&sb, (char)ch);
            else
                inf__sb_puts(&sb, "\xef\xbf\xbd");
        }
        js = json_stringn(sb.data ? sb.data : "", sb.len);
        inf__sb_free(&sb);
    }
    inf_free(text);
    json_object_set_new(o, "content", js ? js : json_string(""));
    local_json(c, 200, o);
}

static void handle_post(inf__conn *c, int route) {
    inf_server *srv = c->srv;
    inf__oa_err e;
    json_t *root = inf__oa_load_json(c->http.body ? c->http.body : "", c->http.body_len, &e);
    free(c->http.body);
    c->http.body = NULL;
    if (!root) {
        local_error(c, &e);
        return;
    }
    const struct route *r = find_route(c->http.path);
    if (route == R_TOKENIZE || route == R_DETOKENIZE) {
        handle_tokenize(c, root, route == R_DETOKENIZE);
        json_decref(root);
        return;
    }
    inf__oa_req req;
    int rc = inf__oa_parse(srv, r->ep, root, &req, &e);
    json_decref(root);
    if (rc < 0) {
        inf__oa_req_free(&req);
        local_error(c, &e);
        return;
    }
    c->http.state = INF__HTTP_WAIT;
    inf__call_start(c, r->ep, r->path, &req, NULL);
}

/* ---- request lifecycle ---------------------------------------------------------------------- */

/* A decimal header value: -1 when absent, -2 when not a plain non-negative decimal (a repeated
 * header arrives joined with ','), INT64_MAX when too large. */
static int64_t header_int(struct lws *wsi, enum lws_token_indexes h) {
    char buf[32];
    int n = lws_hdr_total_length(wsi, h);
    if (n <= 0) return -1;
    if (n >= (int)sizeof buf) {
        char *big = malloc((size_t)n + 1);
        bool digits = big && lws_hdr_copy(wsi, big, n + 1, h) >= 0;
        for (int i = 0; digits && big[i]; i++)
            digits = big[i] >= '0' && big[i] <= '9';
        free(big);
        return digits ? INT64_MAX : -2;
    }
    if (lws_hdr_copy(wsi, buf, sizeof buf, h) < 0) return -2;
    int64_t v = 0;
    if (!buf[0]) return -2;
    for (char *p = buf; *p; p++) {
        if (*p < '0' || *p > '9') return -2;
        if (v > (INT64_MAX - 9) / 10) return INT64_MAX;
        v = v * 10 + (*p - '0');
    }
    return v;
}

/* Transfer-Encoding: 0 absent, 1 exactly "chunked", -1 anything else. */
static int transfer_encoding(struct lws *wsi) {
    char buf[32];
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING);
    if (n <= 0) return 0;
    if (n >= (int)sizeof buf ||
        lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_HTTP_TRANSFER_ENCODING) < 0)
        return -1;
    char *p = buf, *q = buf + strlen(buf);
    while (*p == ' ' || *p == '\t')
        p++;
    while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
        q--;
    return q - p == 7 && !strncasecmp(p, "chunked", 7) ? 1 : -1;
}

static void preflight(inf__conn *c) {
    unsigned char buf[LWS_PRE + HDR_BUF], *start = buf + LWS_PRE, *p = start,
                                          *end = buf + sizeof buf - 1;
    struct lws *wsi = c->wsi;
    char req_headers[512] = "authorization, content-type";
    int n = lws_hdr_custom_length(wsi, "access-control-request-headers:", 31);
    if (n > 0 && n < (int)sizeof req_headers)
        lws_hdr_custom_copy(wsi, req_headers, sizeof req_headers,
                            "access-control-request-headers:", 31);
    c->http.state = INF__HTTP_DONE;
    c->http.status = 204;
    c->http.headers_sent = true;
    int bad = lws_add_http_common_headers(wsi, 204, "text/plain", 0, &p, end);
    if (!bad && c->http.cors)
        bad = add_header(c, "access-control-allow-origin:", c->http.origin, &p, end) ||
              add_header(c, "access-control-allow-methods:", "GET, HEAD, POST, OPTIONS", &p, end) ||
              add_header(c, "access-control-allow-headers:", req_headers, &p, end) ||
              add_header(c, "access-control-max-age:", "600", &p, end) ||
              add_header(c, "vary:", "Origin", &p, end);
    if (!bad) bad = lws_finalize_http_header(wsi, &p, end);
    if (bad || inf__conn_queue(c, INF__OUT_HTTP_HEADERS, start, (size_t)(p - start), false) < 0 ||
        inf__conn_queue(c, INF__OUT_HTTP_BODY, "", 0, true) < 0) {
        c->close_after = true;
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
    inf__srv_log_request(c->srv, "OPTIONS", c->http.path, 204, -1, -1, c->http.t_start);
}

static int http_request(inf__conn *c, const char *path) {
    inf_server *srv = c->srv;
    struct lws *wsi = c->wsi;
    http_reset(c);
    c->http.active = true;
    c->close_after = false;
    c->http.t_start = inf__time_s();
    c->http.state = INF__HTTP_IDLE;
    char *uri = NULL;
    int ulen = 0;
    c->http.method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
    snprintf(c->http.path, sizeof c->http.path, "%s", path ? path : "/");
    bool path_too_long = path && strlen(path) >= sizeof c->http.path;
    int olen = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (olen > 0 && olen < (int)sizeof c->http.origin) {
        lws_hdr_copy(wsi, c->http.origin, sizeof c->http.origin, WSI_TOKEN_ORIGIN);
        c->http.cors = inf__cors_allowed(srv, c->http.origin);
    }
    const struct route *r = path_too_long ? NULL : find_route(c->http.path);
    c->http.route = r ? r->id : R_NONE;
    int64_t clen = header_int(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    int te = transfer_encoding(wsi);
    c->http.content_length = clen;
    inf__oa_err e = {0};
    int m = c->http.method;

    if (clen == -2 || clen > (int64_t)srv->cfg.max_body || te < 0 || (te > 0 && clen >= 0)) {
        /* the body cannot be delimited (or is refused unread): answer, then close */
        c->close_after = true;
        c->http.discard = true;
        c->http.state = INF__HTTP_BODY;
        if (te < 0)
            inf__oa_fail(&e, 501, "invalid_request_error", "unsupported_transfer_encoding", NULL,
                         "Only Transfer-Encoding: chunked is supported");
        else if (te > 0)
            inf__oa_fail(&e, 400, "invalid_request_error", "invalid_content_length", NULL,
                         "Content-Length and Transfer-Encoding must not both be given");
        else if (clen == -2)
            inf__oa_fail(&e, 400, "invalid_request_error", "invalid_content_length", NULL,
                         "The Content-Length header is not a valid length");
        else
            inf__oa_fail(&e, 413, "invalid_request_error", "request_too_large", NULL,
                         "The request body (%lld bytes) exceeds the limit of %zu bytes",
                         (long long)clen, srv->cfg.max_body);
        local_error(c, &e);
        return 0;
    }
    if (!r) {
        inf__oa_fail(&e, 404, "invalid_request_error", "unknown_url", NULL,
                     "Invalid URL (%s %.100s)", method_name(m), c->http.path);
    } else if (m == LWSHUMETH_OPTIONS) {
        preflight(c);
        return 0;
    } else if (m != r->method && !(m == LWSHUMETH_HEAD && r->method == LWSHUMETH_GET)) {
        inf__oa_fail(&e, 405, "invalid_request_error", "method_not_allowed", NULL,
                     "Method %s is not allowed for %s", method_name(m), r->path);
    } else if (r->id != R_HEALTH) {
        char auth[1024];
        const char *tok = NULL;
        size_t tlen = 0;
        int alen = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
        if (alen > 0 && alen < (int)sizeof auth &&
            lws_hdr_copy(wsi, auth, sizeof auth, WSI_TOKEN_HTTP_AUTHORIZATION) >= 0)
            tok = inf__auth_bearer(auth, &tlen);
        if (!inf__auth_check(srv, tok, tlen, &c->rate_key)) {
            inf__oa_fail(&e, 401, "authentication_error", "invalid_api_key", NULL,
                         tok ? "Incorrect API key provided"
                             : "Missing API key (Authorization: Bearer <key>)");
        } else if (srv->shutting_down) {
            inf__oa_fail(&e, 503, "server_error", "shutting_down", NULL,
                         "The server is shutting down");
            c->close_after = true;
        } else if (!inf__srv_ready(srv) && r->id != R_METRICS) {
            inf__oa_fail(&e, 503, "server_error", "model_loading", NULL,
                         "The model is still loading");
        } else if (r->ep && !inf__ratelimit_take(srv->rl, c->rate_key, c->peer)) {
            inf__oa_fail(&e, 429, "rate_limit_error", "rate_limit_exceeded", NULL,
                         "Rate limit reached: %d requests per minute", (int)srv->cfg.rate_limit);
        }
    }
    if (te > 0) {
        /* lws 4.1 hands a chunked body over undecoded and never completes it: it is decoded in
         * http_body, and the connection closes after the response (lws would take whatever
         * follows the body for more body) */
        c->http.chunked = true;
        c->close_after = true;
    }
    bool has_body = clen > 0 || te > 0;
    if (e.status) {
        if (has_body) { /* answer once the body has been read, so the connection stays usable */
            c->http.discard = true;
            c->http.pending_status = e.status;
            c->http.pending_err = e;
            c->http.state = INF__HTTP_BODY;
            return 0;
        }
        local_error(c, &e);
        return 0;
    }
    if (m == LWSHUMETH_GET || m == LWSHUMETH_HEAD) {
        if (has_body) { /* answered once the (ignored) body has been read */
            c->http.discard = true;
            c->http.state = INF__HTTP_BODY;
            return 0;
        }
        handle_get(c, r->id);
        return 0;
    }
    if (!has_body) {
        handle_post(c, r->id);
        return 0;
    }
    if (te > 0) { /* the buffer grows as chunks arrive */
        c->http.state = INF__HTTP_BODY;
        return 0;
    }
    c->http.body = malloc((size_t)clen + 1);
    if (!c->http.body) {
        c->close_after = true;
        c->http.discard = true;
        inf__oa_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        local_error(c, &e);
        return 0;
    }
    c->http.body_cap = (size_t)clen;
    c->http.state = INF__HTTP_BODY;
    return 0;
}

/* libwebsockets 4.1 mishandles a request with a body that was pipelined behind an earlier one
 * on a keep-alive connection: replaying its buffered input it hands the request's own header
 * bytes over as the body, then repeats LWS_CALLBACK_HTTP_BODY_COMPLETION forever (the service
 * loop spins and every other client stalls). Such a "body" starts with the request line; it
 * can never be a valid JSON body, so the connection is closed instead (the earlier responses
 * have been written; an HTTP client retries on a new connection). */
static bool replayed_request_line(inf__conn *c, const char *in, size_t len) {
    if (c->http.body_seen || !c->n_txn) return false;
    char line[16]; /* "POST " (the path as sent may differ from the decoded one) */
    int n = snprintf(line, sizeof line, "%s ", method_name(c->http.method));
    if (n <= 0) return false;
    size_t m = INF_MIN((size_t)n, len);
    return m >= 2 && !memcmp(in, line, m);
}

/* Stores decoded body bytes. Returns 0, or -1 when the body outgrows --max-body. */
static int body_store(inf__conn *c, const unsigned char *p, size_t n) {
    size_t max = c->srv->cfg.max_body;
    if (n > max - INF_MIN(max, c->http.body_len)) return -1;
    if (c->http.discard) {
        c->http.body_len += n;
        return 0;
    }
    if (n > c->http.body_cap - c->http.body_len) {
        size_t cap = c->http.body_cap ? c->http.body_cap : 4096;
        while (cap < c->http.body_len + n)
            cap = cap > max / 2 ? max : cap * 2;
        char *b = realloc(c->http.body, cap + 1);
        if (!b) return -1;
        c->http.body = b;
        c->http.body_cap = cap;
    }
    memcpy(c->http.body + c->http.body_len, p, n);
    c->http.body_len += n;
    return 0;
}

enum {
    CH_SIZE = 0,
    CH_EXT,
    CH_SIZE_LF,
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    CH_TRAILER,
    CH_TRAILER_LF,
    CH_DONE
};

/* Decodes chunked framing (RFC 9112 7.1; CRLF line ends). Returns 1 once the last chunk and the
 * trailers have been read, 0 when more is needed, -1 on malformed framing, -2 when the body
 * outgrows --max-body. Framing overhead is bounded (extensions, trailers, tiny chunks). */
static int chunk_feed(inf__conn *c, const unsigned char *in, size_t len) {
    size_t max_framing = ((size_t)64 << 10) + 4 * INF_MIN(c->srv->cfg.max_body, SIZE_MAX / 8);
    for (size_t i = 0; i < len;) {
        int st = c->http.ch_state;
        if (st == CH_DATA) {
            size_t n = (size_t)INF_MIN((uint64_t)(len - i), c->http.ch_remain);
            if (body_store(c, in + i, n) < 0) return -2;
            i += n;
            c->http.ch_remain -= n;
            if (!c->http.ch_remain) c->http.ch_state = CH_DATA_CR;
            continue;
        }
        unsigned char ch = in[i++];
        if (++c->http.ch_framing > max_framing) return -1;
        switch (st) {
        case CH_SIZE: {
            int v = ch >= '0' && ch <= '9'   ? ch - '0'
                    : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                             : -1;
            if (v >= 0) {
                if (++c->http.ch_n > 15) return -1;
                c->http.ch_remain = c->http.ch_remain * 16 + (uint64_t)v;
                if (c->http.ch_remain > c->srv->cfg.max_body) return -2;
                break;
            }
            if (!c->http.ch_n) return -1;
            if (ch == ';' || ch == ' ' || ch == '\t')
                c->http.ch_state = CH_EXT;
            else if (ch == '\r')
                c->http.ch_state = CH_SIZE_LF;
            else
                return -1;
            break;
        }
        case CH_EXT:
            if (ch == '\r')
                c->http.ch_state = CH_SIZE_LF;
            else if (ch == '\n' || ch == 0)
                return -1;
            break;
        case CH_SIZE_LF:
            if (ch != '\n') return -1;
            c->http.ch_n = 0;
            c->http.ch_state = c->http.ch_remain ? CH_DATA : CH_TRAILER;
            break;
        case CH_DATA_CR:
            if (ch != '\r') return -1;
            c->http.ch_state = CH_DATA_LF;
            break;
        case CH_DATA_LF:
            if (ch != '\n') return -1;
            c->http.ch_state = CH_SIZE;
            break;
        case CH_TRAILER:
            if (ch == '\r')
                c->http.ch_state = CH_TRAILER_LF;
            else if (ch == '\n' || ch == 0)
                return -1;
            else
                c->http.ch_n++;
            break;
        case CH_TRAILER_LF:
            if (ch != '\n') return -1;
            if (!c->http.ch_n) {
                c->http.ch_state = CH_DONE;
                return 1; /* whatever follows is ignored: the connection closes */
            }
            c->http.ch_n = 0;
            c->http.ch_state = CH_TRAILER;
            break;
        default: return 0;
        }
    }
    return 0;
}

static int http_body_done(inf__conn *c);

static int http_body_chunked(inf__conn *c, const void *in, size_t len) {
    c->http.body_seen = true;
    int rc = chunk_feed(c, in, len);
    if (rc == 1) return http_body_done(c);
    if (rc == 0) return 0;
    inf__oa_err e;
    if (rc == -2)
        inf__oa_fail(&e, 413, "invalid_request_error", "request_too_large", NULL,
                     "The request body exceeds the limit of %zu bytes", c->srv->cfg.max_body);
    else
        inf__oa_fail(&e, 400, "invalid_request_error", "invalid_chunked_body", NULL,
                     "The chunked request body is malformed");
    c->http.state = INF__HTTP_DONE; /* further input is ignored; the connection closes */
    c->close_after = true;
    local_error(c, &e);
    return 0;
}

static int http_body(inf__conn *c, const void *in, size_t len) {
    if (c->http.state != INF__HTTP_BODY) return 0;
    if (c->http.chunked) return http_body_chunked(c, in, len);
    if (replayed_request_line(c, in, len)) {
        inf__log(INF_LOG_WARN, "%s %s: pipelined request body cannot be read; closing",
                 method_name(c->http.method), c->http.path);
        return -1;
    }
    c->http.body_seen = true;
    if (c->http.discard) {
        c->http.body_len += len;
        /* a client that keeps sending after a 413 is cut off */
        return c->http.body_len > c->srv->cfg.max_body + ((size_t)64 << 20) ? -1 : 0;
    }
    if (len > c->http.body_cap - c->http.body_len) return -1; /* more than Content-Length */
    memcpy(c->http.body + c->http.body_len, in, len);
    c->http.body_len += len;
    return 0;
}

static int http_body_done(inf__conn *c) {
    /* Once per request. libwebsockets 4.1 repeats the call while input pipelined behind this
     * request waits in its buffer (until the response completes); the repeats are ignored. */
    if (++c->http.body_done_seen > 1) return 0;
    if (c->http.state != INF__HTTP_BODY) return 0;
    if (c->http.discard) {
        if (c->http.pending_status)
            local_error(c, &c->http.pending_err);
        else if ((c->http.method == LWSHUMETH_GET || c->http.method == LWSHUMETH_HEAD) &&
                 !c->http.headers_sent)
            handle_get(c, c->http.route);
        return 0;
    }
    if (c->http.body) c->http.body[c->http.body_len] = 0;
    handle_post(c, c->http.route);
    return 0;
}

/* ---- oversized request headers ------------------------------------------------------------ */

/* libwebsockets 4.1 has no callback for a request whose headers overflow max_http_header_data:
 * its parser logs "Ran out of header data space" and shuts the connection down (the socket's
 * write side is already shut by the time LWS_CALLBACK_CLOSED_HTTP arrives). The log hook of
 * server.c calls inf__http_note_header_overflow synchronously from inside that parser, before
 * the shutdown, and the response is written there, directly on the socket. Which connection
 * overflowed is not passed along, so it is inferred: the one connection whose request line has
 * been received but whose headers are not complete (LWS_CALLBACK_HTTP not yet seen). When more
 * than one connection is in that state the request is only logged and closed as before.
 * The server speaks plain HTTP (no TLS), so the bytes can go to the socket as they are.
 * Between responses the socket's send buffer is empty, so the short response goes out whole
 * (or not at all); lws then shuts the write side and closes once the client has gone. */
static _Thread_local inf_server *service_srv; /* the server this I/O thread serves */

static bool headers_in_progress(inf__conn *c) {
    if (c->is_ws || c->closing || c->http.active || c->out_head || c->n_calls) return false;
    char *uri = NULL;
    int ulen = 0;
    return lws_http_get_uri_and_method(c->wsi, &uri, &ulen) >= 0;
}

void inf__http_note_header_overflow(void) {
    inf_server *srv = service_srv;
    if (!srv) return;
    inf__conn *hit = NULL;
    int n_hits = 0;
    for (inf__conn *c = srv->conns; c; c = c->all_next)
        if (headers_in_progress(c)) {
            hit = c;
            n_hits++;
        }
    inf__metrics_request(srv->metrics, "other", 431);
    if (n_hits != 1) {
        inf__log(INF_LOG_WARN, "request headers over %d bytes: connection closed",
                 INF__MAX_HEADER_DATA);
        return;
    }
    int fd = (int)lws_get_socket_fd(hit->wsi);
    inf__oa_err e;
    inf__oa_fail(&e, 431, "invalid_request_error", "request_header_fields_too_large", NULL,
                 "The request headers are too large (limit: %d bytes)", INF__MAX_HEADER_DATA);
    json_t *obj = inf__oa_error_json(&e);
    size_t blen = 0;
    char *body = obj ? dump(obj, &blen) : NULL;
    json_decref(obj);
    char msg[1024];
    int n = body ? snprintf(msg, sizeof msg,
                            "HTTP/1.1 431 Request Header Fields Too Large\r\nserver: inferneo\r\n"
                            "content-type: application/json\r\ncontent-length: %zu\r\n"
                            "connection: close\r\n\r\n%s",
                            blen, body)
                 : -1;
    free(body);
    if (fd >= 0 && n > 0 && n < (int)sizeof msg)
        (void)!send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    hit->close_after = true;
    char *uri = NULL;
    int ulen = 0;
    int m = lws_http_get_uri_and_method(hit->wsi, &uri, &ulen);
    char path[64];
    snprintf(path, sizeof path, "%.*s", INF_MIN(ulen, 48), uri ? uri : "?");
    inf__srv_log_request(srv, method_name(m), path, 431, -1, -1, inf__time_s());
}

/* ---- the callback --------------------------------------------------------------------------- */

int inf__lws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len) {
    (void)user;
    struct lws_context *ctx = lws_get_context(wsi);
    inf_server *srv = ctx ? lws_context_user(ctx) : NULL;
    if (!srv) return 0;
    service_srv = srv;
    inf__conn *c;
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED: inf__srv_wakeup(srv); return 0;
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED: /* tracked from the start (431) */
        return get_conn(srv, wsi) ? 0 : -1;
    case LWS_CALLBACK_HTTP:
        if (!(c = get_conn(srv, wsi))) return -1;
        return http_request(c, (const char *)in);
    case LWS_CALLBACK_HTTP_BODY:
        if (!(c = lws_get_opaque_user_data(wsi))) return -1;
        return http_body(c, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (!(c = lws_get_opaque_user_data(wsi))) return -1;
        return http_body_done(c);
    case LWS_CALLBACK_HTTP_WRITEABLE:
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!(c = lws_get_opaque_user_data(wsi))) return 0;
        return conn_write(c);
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        if (!(c = get_conn(srv, wsi))) return -1;
        return inf__ws_filter(c, wsi);
    case LWS_CALLBACK_ESTABLISHED:
        if (!(c = get_conn(srv, wsi))) return -1;
        inf__ws_established(c);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (!(c = lws_get_opaque_user_data(wsi))) return -1;
        return inf__ws_receive(c, in, len);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* lws echoes the peer's close payload; a close without a status gets 1000 instead of
         * an empty (1005) echo */
        if (len < 2) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
            return -1;
        }
        return 0;
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_CLOSED:
        if ((c = lws_get_opaque_user_data(wsi))) inf__calls_detach(c);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY: conn_destroy(srv, wsi); return 0;
    default: return 0;
    }
}
