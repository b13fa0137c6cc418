/*
 * http.c — the HTTP transport: routing, request headers and bodies (Content-Length or chunked,
 * decoded here: lws 4.1 passes chunked bodies through undecoded), responses with
 * Content-Length (keep-alive) and SSE streams (no length; the connection closes at the end),
 * and the transport table dispatch.c uses for calls on an HTTP connection.
 *
 * Errors decided from the headers of a request that has a body are sent after the body has
 * been read (so the connection stays usable). A body declared over --max-body is answered 413
 * at once, then the rest of the body is read and discarded for a bounded time and size before
 * the connection closes (a lingering close, as nginx does), so clients that send the whole body
 * before reading still get the 413 instead of a reset. HEAD is answered on the GET routes with
 * the GET headers and no body. Oversized request headers get 431 by way of the lws log hook
 * (see inf__http_note_header_overflow); methods lws does not route get 405 or 501.
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
    R_READY,
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
    {"/ready", R_READY, LWSHUMETH_GET, 0},
    {"/v1/models", R_MODELS, LWSHUMETH_GET, 0},
    {"/v1/completions", R_COMPLETIONS, LWSHUMETH_POST, INF__EP_COMPLETION},
    {"/v1/chat/completions", R_CHAT, LWSHUMETH_POST, INF__EP_CHAT},
    {"/v1/embeddings", R_EMBEDDINGS, LWSHUMETH_POST, INF__EP_EMBEDDING},
    {"/tokenize", R_TOKENIZE, LWSHUMETH_POST, 0},
    {"/detokenize", R_DETOKENIZE, LWSHUMETH_POST, 0},
    {"/metrics", R_METRICS, LWSHUMETH_GET, 0},
};

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

static void http_reset(inf__conn *c) {
    free(c->http.body);
    memset(&c->http, 0, sizeof c->http);
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
    /* a client that backs off: a second for a full queue or rate limit, five while the server
     * loads or drains (a replica behind a balancer is usually replaced by then) */
    if ((status == 429 || status == 503) &&
        add_header(c, "retry-after:", status == 429 ? "1" : "5", &p, end))
        return -1;
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

/* Sends a complete JSON response (takes obj). */
static void send_json(inf__conn *c, int status, json_t *obj) {
    size_t len;
    char *s = inf__oa_dump(obj, &len);
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

/* SSE: one "data:" event (takes obj; NULL: "[DONE]"). */
static void sse_event(inf__conn *c, json_t *obj) {
    if (c->http.state != INF__HTTP_STREAM) {
        json_decref(obj);
        return;
    }
    size_t len = 0;
    char *s = obj ? inf__oa_dump(obj, &len) : NULL;
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

/* "[DONE]" and the end of the response (the connection closes after it). */
static void sse_done(inf__conn *c) {
    if (c->http.state != INF__HTTP_STREAM) return;
    sse_event(c, NULL);
    inf__conn_queue(c, INF__OUT_HTTP_BODY, "", 0, true);
}

/* Answers a request handled entirely here: response, then its record (metric + log line). */
static void finish_local(inf__conn *c, int status, const char *ctype, const char *body, size_t len,
                         const char *allow, const char *reason) {
    respond(c, status, ctype, body, len, allow);
    const struct route *r = find_route(c->http.path);
    inf__record(c->srv, method_name(c->http.method), c->http.path, r ? r->path : "other", status,
                -1, -1, c->http.t_start, reason);
}

static void local_json(inf__conn *c, int status, json_t *obj) {
    const char *allow = NULL;
    const struct route *r = find_route(c->http.path);
    if (status == 405 && r)
        allow = r->method == LWSHUMETH_GET ? "GET, HEAD, OPTIONS" : "POST, OPTIONS";
    size_t len;
    char why[200] = "";
    if (status >= 400) inf__err_reason(NULL, obj, why, sizeof why);
    char *s = inf__oa_dump(obj, &len);
    json_decref(obj);
    if (!s) {
        finish_local(c, 500, "application/json", "{}", 2, NULL, "server_error: out of memory");
        return;
    }
    finish_local(c, status, "application/json", s, len, allow, why);
    free(s);
}

static void local_error(inf__conn *c, const inf__oa_err *e) {
    local_json(c, e->status, inf__oa_error_json(e));
}

/* ---- the transport table (dispatch.c's view of an HTTP connection) ---- */

static void tp_attach(inf__call *call) {
    call->conn->http.state = INF__HTTP_WAIT;
}

static void tp_refuse(inf__conn *c, json_t *request_id, const inf__oa_err *e) {
    (void)request_id;
    send_json(c, e->status, inf__oa_error_json(e));
}

static void tp_send_object(inf__call *call, int status, json_t *obj) {
    send_json(call->conn, status, obj);
}

static void tp_send_error(inf__call *call, const inf__oa_err *e) {
    inf__conn *c = call->conn;
    if (c->http.headers_sent) { /* mid-stream: an error event, then the end */
        sse_event(c, inf__oa_error_json(e));
        sse_done(c);
    } else {
        send_json(c, e->status, inf__oa_error_json(e));
    }
}

static void tp_stream_begin(inf__call *call) {
    inf__conn *c = call->conn;
    c->http.state = INF__HTTP_STREAM;
    if (queue_headers(c, 200, "text/event-stream", -1, NULL) < 0) c->close_after = true;
}

static void tp_stream_chunk(inf__call *call, json_t *obj) {
    sse_event(call->conn, obj);
}

/* The last chunk, the usage chunk ("choices": []) when asked for, then [DONE]. */
static void tp_stream_end(inf__call *call, json_t *last) {
    inf__conn *c = call->conn;
    if (last) sse_event(c, last);
    if (call->req.include_usage) sse_event(c, inf__oa_usage_chunk(call));
    sse_done(c);
}

/* A slow reader: one HTTP response per connection, so the connection goes. */
static void tp_abort(inf__call *call, const inf__oa_err *e) {
    (void)e;
    inf__conn_kill(call->conn);
}

static void tp_going_away(inf__conn *c) {
    (void)c; /* each response closes or keeps its connection as usual */
}

static int tp_response_done(inf__conn *c) {
    if (c->http.linger) { /* the rest of the refused body is read and dropped, then we close */
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, 5);
        return c->http.state == INF__HTTP_LINGER ? 0 : -1;
    }
    if (c->close_after || c->http.state == INF__HTTP_STREAM) return -1;
    http_reset(c);
    c->n_txn++;
    return lws_http_transaction_completed(c->wsi) ? -1 : 0;
}

const inf__transport inf__http_transport = {
    .method = "POST",
    .attach = tp_attach,
    .refuse = tp_refuse,
    .send_object = tp_send_object,
    .send_error = tp_send_error,
    .stream_begin = tp_stream_begin,
    .stream_chunk = tp_stream_chunk,
    .stream_end = tp_stream_end,
    .abort = tp_abort,
    .going_away = tp_going_away,
    .response_done = tp_response_done,
};

/* ---- local endpoints ------------------------------------------------------------------------ */

static void handle_get(inf__conn *c, int route) {
    inf_server *srv = c->srv;
    int status = 500;
    json_t *o = NULL;
    switch (route) {
    case R_HEALTH: o = inf__ep_health(srv, &status); break;
    case R_READY: o = inf__ep_ready(srv, &status); break;
    case R_MODELS: o = inf__ep_models(srv, &status); break;
    case R_MODEL: o = inf__ep_model(srv, c->http.path + 11, &status); break;
    case R_METRICS: {
        size_t len = 0;
        char *text = inf__metrics_render(srv->metrics, srv->engine, &len);
        if (!text) {
            finish_local(c, 500, "text/plain", "out of memory\n", 14, NULL,
                         "server_error: out of memory");
            return;
        }
        finish_local(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, NULL, NULL);
        free(text);
        return;
    }
    default: break;
    }
    local_json(c, status, o);
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
    if (route == R_TOKENIZE || route == R_DETOKENIZE) { /* computed off the I/O thread */
        inf__call_local(c, r->path, route == R_TOKENIZE ? inf__ep_tokenize : inf__ep_detokenize,
                        root);
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
    const struct route *r = find_route(c->http.path);
    inf__record(c->srv, "OPTIONS", c->http.path, r ? r->path : "other", 204, -1, -1,
                c->http.t_start, NULL);
}

int inf__http_request(inf__conn *c, const char *path) {
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
        /* the body cannot be delimited (or is refused unread): answer, then close; a body of a
         * declared length is read and dropped first (lingering close, bounded in time and size)
         * so a client still sending it reads the answer instead of a reset */
        c->close_after = true;
        c->http.discard = true;
        c->http.state = INF__HTTP_BODY;
        if (te == 0 && clen >= 0) {
            c->http.linger = true;
            c->http.state = INF__HTTP_LINGER;
        }
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
        if (c->http.linger) {
            c->http.state = INF__HTTP_LINGER;
            lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, 10);
        }
        return 0;
    }
    if (m < 0 || m == LWSHUMETH_CONNECT || m == LWSHUMETH_COLON_PATH) {
        inf__oa_fail(&e, 501, "invalid_request_error", "method_not_implemented", NULL,
                     "Method not implemented");
        c->close_after = true;
    } else if (!r) {
        inf__oa_fail(&e, 404, "invalid_request_error", "unknown_url", NULL,
                     "Invalid URL (%s %.100s)", method_name(m), c->http.path);
    } else if (m == LWSHUMETH_OPTIONS) {
        preflight(c);
        return 0;
    } else if (m != r->method && !(m == LWSHUMETH_HEAD && r->method == LWSHUMETH_GET)) {
        inf__oa_fail(&e, 405, "invalid_request_error", "method_not_allowed", NULL,
                     "Method %s is not allowed for %s", method_name(m), r->path);
    } else if (r->id != R_HEALTH && r->id != R_READY) {
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
static int body_store(void *user, const unsigned char *p, size_t n) {
    inf__conn *c = user;
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

/* Framing overhead is bounded (extensions, trailers, tiny chunks) relative to the data limit. */
int inf__chunked_feed(inf__chunked *d, const unsigned char *in, size_t len, size_t *used,
                      int (*sink)(void *user, const unsigned char *p, size_t n), void *user) {
    size_t max_framing = ((size_t)64 << 10) + 4 * INF_MIN(d->max_data, SIZE_MAX / 8);
    size_t i = 0;
    int rc = d->failed; /* a decoder that failed stays failed */
    while (i < len && !rc) {
        int st = d->state;
        if (st == CH_DONE) {
            rc = 1;
            break;
        }
        if (st == CH_DATA) {
            size_t n = (size_t)INF_MIN((uint64_t)(len - i), d->remain);
            if (n > d->max_data - d->data || sink(user, in + i, n) < 0) {
                rc = -2;
                break;
            }
            d->data += n;
            i += n;
            d->remain -= n;
            if (!d->remain) d->state = CH_DATA_CR;
            continue;
        }
        unsigned char ch = in[i++];
        if (++d->framing > max_framing) {
            rc = -1;
            break;
        }
        switch (st) {
        case CH_SIZE: {
            int v = ch >= '0' && ch <= '9'   ? ch - '0'
                    : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                    : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                             : -1;
            if (v >= 0) {
                if (++d->n > 15) rc = -1;
                d->remain = d->remain * 16 + (uint64_t)v;
                if (!rc && d->remain > d->max_data) rc = -2;
                break;
            }
            if (!d->n)
                rc = -1;
            else if (ch == ';' || ch == ' ' || ch == '\t')
                d->state = CH_EXT;
            else if (ch == '\r')
                d->state = CH_SIZE_LF;
            else
                rc = -1;
            break;
        }
        case CH_EXT:
            if (ch == '\r')
                d->state = CH_SIZE_LF;
            else if (ch == '\n' || ch == 0)
                rc = -1;
            break;
        case CH_SIZE_LF:
            if (ch != '\n') {
                rc = -1;
                break;
            }
            d->n = 0;
            d->state = d->remain ? CH_DATA : CH_TRAILER;
            break;
        case CH_DATA_CR:
            if (ch != '\r') rc = -1;
            d->state = CH_DATA_LF;
            break;
        case CH_DATA_LF:
            if (ch != '\n') rc = -1;
            d->state = CH_SIZE;
            break;
        case CH_TRAILER:
            if (ch == '\r')
                d->state = CH_TRAILER_LF;
            else if (ch == '\n' || ch == 0)
                rc = -1;
            else
                d->n++;
            break;
        case CH_TRAILER_LF:
            if (ch != '\n') {
                rc = -1;
                break;
            }
            if (!d->n) {
                d->state = CH_DONE;
                rc = 1;
                break;
            }
            d->n = 0;
            d->state = CH_TRAILER;
            break;
        default: rc = -1; break;
        }
    }
    if (rc < 0) d->failed = rc;
    if (used) *used = i;
    return rc;
}

static int http_body_chunked(inf__conn *c, const void *in, size_t len) {
    c->http.body_seen = true;
    c->http.ch.max_data = c->srv->cfg.max_body;
    int rc = inf__chunked_feed(&c->http.ch, in, len, NULL, body_store, c);
    if (rc == 1) return inf__http_body_done(c); /* what follows is ignored: the connection closes */
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

/* A refused body of declared length is read and dropped (at most 64 MiB, within the timeout
 * set when the answer was queued); once it is all in, the connection closes. */
static int http_linger(inf__conn *c, size_t len) {
    c->http.body_len += len;
    if (c->http.body_len > ((size_t)64 << 20)) return -1;
    if ((int64_t)c->http.body_len < c->http.content_length) return 0;
    c->http.state = INF__HTTP_DONE;
    return c->out_head ? 0 : -1; /* the answer is out: close now, else after it (response_done) */
}

int inf__http_body(inf__conn *c, const void *in, size_t len) {
    if (c->http.state == INF__HTTP_LINGER) return http_linger(c, len);
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

int inf__http_body_done(inf__conn *c) {
    /* Once per request. libwebsockets 4.1 repeats the call while input pipelined behind this
     * request waits in its buffer (until the response completes); the repeats are ignored. */
    if (++c->http.body_done_seen > 1) return 0;
    if (c->http.state == INF__HTTP_LINGER) return http_linger(c, 0);
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
static bool headers_in_progress(inf__conn *c) {
    if (c->tp != &inf__http_transport || c->closing || c->http.active || c->out_head || c->n_calls) return false;
    char *uri = NULL;
    int ulen = 0;
    return lws_http_get_uri_and_method(c->wsi, &uri, &ulen) >= 0;
}

/* Writes a short complete error response straight to the socket, for the cases where lws has
 * taken the connection out of its HTTP handling (plain HTTP, no TLS; between responses the
 * socket's send buffer is empty, so it goes out whole or not at all). */
static void raw_answer(struct lws *wsi, const char *status_line, const char *extra,
                       const inf__oa_err *e) {
    int fd = (int)lws_get_socket_fd(wsi);
    json_t *obj = inf__oa_error_json(e);
    size_t blen = 0;
    char *body = inf__oa_dump(obj, &blen);
    json_decref(obj);
    char msg[1024];
    int n = body ? snprintf(msg, sizeof msg,
                            "HTTP/1.1 %s\r\nserver: inferneo\r\n%s"
                            "content-type: application/json\r\ncontent-length: %zu\r\n"
                            "connection: close\r\n\r\n%s",
                            status_line, extra ? extra : "", blen, body)
                 : -1;
    free(body);
    if (fd >= 0 && n > 0 && n < (int)sizeof msg)
        (void)!send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

int inf__http_raw_adopted(inf_server *srv, struct lws *wsi) {
    inf__oa_err e;
    inf__oa_fail(&e, 405, "invalid_request_error", "method_not_allowed", NULL,
                 "Method CONNECT is not allowed: this is not a proxy");
    raw_answer(wsi, "405 Method Not Allowed", "allow: GET, HEAD, POST, OPTIONS\r\n", &e);
    char why[200];
    inf__record(srv, "CONNECT", "?", "other", 405, -1, -1, inf__time_s(),
                inf__err_reason(&e, NULL, why, sizeof why));
    return -1;
}

void inf__http_bad_method(inf_server *srv, struct lws *wsi, const char *method) {
    inf__oa_err e;
    inf__oa_fail(&e, 405, "invalid_request_error", "method_not_allowed", NULL,
                 "Method '%s' is not allowed", method);
    raw_answer(wsi, "405 Method Not Allowed", "allow: GET, HEAD, POST, OPTIONS\r\n", &e);
    char why[200];
    inf__record(srv, method, "?", "other", 405, -1, -1, inf__time_s(),
                inf__err_reason(&e, NULL, why, sizeof why));
}

void inf__http_note_header_overflow(inf_server *srv) {
    if (!srv) return;
    inf__conn *hit = NULL;
    int n_hits = 0;
    for (inf__conn *c = srv->conns; c; c = c->all_next)
        if (headers_in_progress(c)) {
            hit = c;
            n_hits++;
        }
    if (n_hits != 1) {
        inf__record(srv, "?", "?", "other", 431, -1, -1, inf__time_s(),
                    "request_header_fields_too_large: headers over the limit");
        return;
    }
    inf__oa_err e;
    inf__oa_fail(&e, 431, "invalid_request_error", "request_header_fields_too_large", NULL,
                 "The request headers are too large (limit: %d bytes)", INF__MAX_HEADER_DATA);
    raw_answer(hit->wsi, "431 Request Header Fields Too Large", NULL, &e);
    hit->close_after = true;
    char *uri = NULL;
    int ulen = 0;
    int m = lws_http_get_uri_and_method(hit->wsi, &uri, &ulen);
    char path[64];
    snprintf(path, sizeof path, "%.*s", INF_MIN(ulen, 48), uri ? uri : "?");
    inf__record(srv, method_name(m), path, "other", 431, -1, -1, inf__time_s(),
                "request_header_fields_too_large: headers over the limit");
}
