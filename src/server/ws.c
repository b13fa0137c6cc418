/*
 * ws.c — the WebSocket API (seed/websocket-api.md, DESIGN.md §8) on the same lws context and
 * port as REST: upgrades on /v1/chat/completions and /v1/completions; every frame is one JSON
 * text message. A request frame is the REST body plus an optional request_id and goes through
 * the same validator and formatter as REST (openai.c, dispatch.c); this file only frames.
 * The socket's URL picks the endpoint, as in REST (a prompt frame on a chat socket is an error
 * frame that names the right URL). Streams end with the chunk that carries finish_reason;
 * stream_options.include_usage puts "usage" on that last chunk (not on a separate
 * "choices": [] frame as SSE does: the seed's clients index choices[0] of every frame and stop
 * reading at finish_reason, so a frame after it would break them).
 *
 * Protocol: auth by ?token=, Authorization: Bearer on the upgrade, or a first message
 * {"type":"auth","api_key":…} (answered {"type":"auth","status":"ok"}); a wrong key gets an
 * authentication_error frame and close 1008. {"type":"ping"} → {"type":"pong"};
 * {"type":"cancel","request_id":…} ends that request (finish_reason "cancelled"). A bad frame
 * gets an error frame (with request_id when known) and the socket stays open; an oversized
 * message closes with 1009; server shutdown closes with 1001 once the socket's requests are done.
 * Several requests may be in flight on one socket (up to --ws-max-inflight).
 * Threads: I/O thread only.
 */
#include "server/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { WS_ROUTE_CHAT = 1, WS_ROUTE_COMPLETION };

/* Queues one JSON text message with the request's id at top level (takes obj). */
static void send_json(inf__conn *c, json_t *obj, json_t *request_id) {
    if (!obj) return;
    if (c->closing) {
        json_decref(obj);
        return;
    }
    if (request_id) json_object_set(obj, "request_id", request_id);
    char *s = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(obj);
    if (!s) return;
    inf__conn_queue(c, INF__OUT_WS_TEXT, s, strlen(s), false);
    free(s);
}

void inf__ws_close(inf__conn *c, int code, const char *reason) {
    if (c->closing) return;
    c->ws.close_code = code;
    snprintf(c->ws.close_reason, sizeof c->ws.close_reason, "%s", reason ? reason : "");
    for (inf__call *call = c->calls; call; call = call->next) {
        inf__call_cancel(call);
        call->dead = true;
    }
    inf__conn_queue(c, INF__OUT_WS_CLOSE, NULL, 0, false);
    c->closing = true;
}

static void send_err(inf__conn *c, const inf__oa_err *e, json_t *request_id) {
    send_json(c, inf__oa_error_json(e), request_id);
}

/* ---- the transport table (dispatch.c's view of a WebSocket) ---- */

static void tp_attach(inf__call *call) {
    if (!call->request_id) call->request_id = json_string(call->id);
}

static void tp_refuse(inf__conn *c, json_t *request_id, const inf__oa_err *e) {
    send_err(c, e, request_id);
}

static void tp_send_object(inf__call *call, int status, json_t *obj) {
    (void)status; /* errors are frames of their own kind */
    send_json(call->conn, obj, call->request_id);
}

static void tp_stream_chunk(inf__call *call, json_t *obj) {
    send_json(call->conn, obj, call->request_id);
}

static void tp_send_error(inf__call *call, const inf__oa_err *e) {
    send_err(call->conn, e, call->request_id);
}

static void tp_stream_begin(inf__call *call) {
    (void)call; /* frames need no preamble */
}

/* The chunk with finish_reason ends the request, so usage rides on it (a separate frame after
 * it would break clients that stop reading at finish_reason). */
static void tp_stream_end(inf__call *call, json_t *last) {
    if (!last) return;
    if (call->req.include_usage) json_object_set_new(last, "usage", inf__oa_usage(call));
    send_json(call->conn, last, call->request_id);
}

/* A slow reader's request ends with an error frame; the socket stays open. */
static void tp_abort(inf__call *call, const inf__oa_err *e) {
    send_err(call->conn, e, call->request_id);
}

static void tp_going_away(inf__conn *c) {
    inf__ws_close(c, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
}

static int tp_response_done(inf__conn *c) {
    (void)c; /* no HTTP responses on an upgraded connection */
    return 0;
}

const inf__transport inf__ws_transport = {
    .method = "WS",
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

static void auth_fail(inf__conn *c, json_t *request_id) {
    inf__oa_err e;
    inf__oa_fail(&e, 401, "authentication_error", "invalid_api_key", NULL,
                 "Incorrect or missing API key");
    send_err(c, &e, request_id);
    inf__ws_close(c, 1008, "invalid api key");
}

int inf__ws_filter(inf__conn *c, struct lws *wsi) {
    inf_server *srv = c->srv;
    char path[128] = "";
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI);
    if (n <= 0 || n >= (int)sizeof path) return 1;
    lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI);
    size_t pl = strlen(path);
    while (pl > 1 && path[pl - 1] == '/')
        path[--pl] = 0;
    if (!strcmp(path, "/v1/chat/completions"))
        c->ws.route = WS_ROUTE_CHAT;
    else if (!strcmp(path, "/v1/completions"))
        c->ws.route = WS_ROUTE_COMPLETION;
    else
        return 1;
    if (srv->shutting_down) return 1;
    c->ws.authed = srv->n_keys == 0;
    if (!c->ws.authed) {
        char buf[1024];
        const char *tok = NULL;
        size_t tlen = 0;
        const char *arg = lws_get_urlarg_by_name(wsi, "token=", buf, sizeof buf);
        if (arg) {
            if (*arg == '=') arg++; /* lws versions differ on whether '=' is included */
            tok = arg;
            tlen = strlen(arg);
        } else {
            int alen = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
            if (alen > 0 && alen < (int)sizeof buf &&
                lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_HTTP_AUTHORIZATION) >= 0)
                tok = inf__auth_bearer(buf, &tlen);
        }
        if (tok) {
            /* a wrong key is answered on the socket (error frame, close 1008) */
            c->ws.authed = inf__auth_check(srv, tok, tlen, &c->rate_key);
            if (!c->ws.authed) c->ws.close_code = 1008;
        }
    }
    return 0;
}

void inf__ws_established(inf__conn *c) {
    c->tp = &inf__ws_transport;
    c->ws.last_rx = inf__time_s();
    if (c->ws.close_code == 1008) {
        c->ws.close_code = 0;
        auth_fail(c, NULL);
    }
}

void inf__ws_protocol_error(inf_server *srv, struct lws *wsi) {
    (void)srv;
    /* lws is inside its read of this socket and about to see end of stream: the close frame
     * (1002, RFC 6455 §5.1) goes straight to the socket unless a frame is half written */
    static const uint8_t close_1002[] = {0x88, 0x10, 0x03, 0xea, 'u', 'n', 'm', 'a', 's', 'k',
                                         'e', 'd', ' ', 'f', 'r', 'a', 'm', 'e'};
    int fd = (int)lws_get_socket_fd(wsi);
    if (fd >= 0 && !lws_partial_buffered(wsi))
        (void)!send(fd, close_1002, sizeof close_1002, MSG_NOSIGNAL | MSG_DONTWAIT);
    inf__log(INF_LOG_WARN, "websocket: client sent an unmasked frame: closed with 1002");
}

bool inf__ws_rid_equal(json_t *a, json_t *b) {
    if (!a || !b) return false;
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    return json_equal(a, b);
}

static int find_call(inf__conn *c, json_t *request_id, inf__call **out) {
    for (inf__call *call = c->calls; call; call = call->next)
        if (inf__ws_rid_equal(call->request_id, request_id)) {
            *out = call;
            return 1;
        }
    return 0;
}

void inf__ws_message(inf__conn *c, const char *data, size_t len) {
    inf_server *srv = c->srv;
    inf__oa_err e;
    json_t *root = inf__oa_load_json(data, len, &e);
    if (!root) {
        send_err(c, &e, NULL);
        return;
    }
    json_t *rid = json_object_get(root, "request_id");
    if (rid && !json_is_string(rid) && !json_is_integer(rid) && !json_is_real(rid)) {
        inf__oa_fail(&e, 400, "invalid_request_error", "invalid_type", "request_id",
                     "'request_id' must be a string or a number");
        send_err(c, &e, NULL);
        json_decref(root);
        return;
    }
    if (rid) json_incref(rid);
    json_t *type = json_object_get(root, "type");
    const char *ts = json_is_string(type) ? json_string_value(type) : NULL;
    if (type && !ts) {
        inf__oa_fail(&e, 400, "invalid_request_error", "invalid_type", "type",
                     "'type' must be a string");
        send_err(c, &e, rid);
        goto done;
    }
    if (ts && !strcmp(ts, "auth")) {
        json_t *key = json_object_get(root, "api_key");
        int idx = -1;
        if (srv->n_keys &&
            (!json_is_string(key) ||
             !inf__auth_check(srv, json_string_value(key), json_string_length(key), &idx))) {
            auth_fail(c, rid);
            goto done;
        }
        c->ws.authed = true;
        c->rate_key = idx;
        json_t *ok = json_object();
        json_object_set_new(ok, "type", json_string("auth"));
        json_object_set_new(ok, "status", json_string("ok"));
        send_json(c, ok, rid);
        goto done;
    }
    if (!c->ws.authed) {
        auth_fail(c, rid);
        goto done;
    }
    if (ts && !strcmp(ts, "ping")) {
        json_t *pong = json_object();
        json_object_set_new(pong, "type", json_string("pong"));
        send_json(c, pong, rid);
        goto done;
    }
    if (ts && !strcmp(ts, "cancel")) {
        inf__call *call = NULL;
        if (!rid || !find_call(c, rid, &call)) {
            inf__oa_fail(&e, 404, "invalid_request_error", "request_not_found", "request_id",
                         "no request with this request_id is in flight on this socket");
            send_err(c, &e, rid);
        } else {
            inf__call_cancel(call); /* its FINISH (cancelled) ends it for the client */
        }
        goto done;
    }
    if (ts) {
        inf__oa_err u;
        inf__oa_fail(&u, 400, "invalid_request_error", "unknown_message_type", "type",
                     "unknown message type '%.64s' (auth, ping, cancel, or a request)", ts);
        send_err(c, &u, rid);
        goto done;
    }
    /* a request */
    if (srv->shutting_down || !inf__srv_ready(srv)) {
        inf__oa_fail(
            &e, 503, "server_error", srv->shutting_down ? "shutting_down" : "model_loading", NULL,
            srv->shutting_down ? "The server is shutting down" : "The model is still loading");
        send_err(c, &e, rid);
        goto done;
    }
    inf__call *dup;
    if (rid && find_call(c, rid, &dup)) {
        inf__oa_fail(&e, 400, "invalid_request_error", "duplicate_request_id", "request_id",
                     "a request with this request_id is already in flight on this socket");
        send_err(c, &e, rid);
        goto done;
    }
    if (c->n_calls >= srv->cfg.ws_max_inflight) {
        inf__oa_fail(&e, 429, "rate_limit_error", "too_many_requests", NULL,
                     "at most %d requests may be in flight on one socket",
                     (int)srv->cfg.ws_max_inflight);
        send_err(c, &e, rid);
        goto done;
    }
    if (!inf__ratelimit_take(srv->rl, c->rate_key, c->peer)) {
        inf__oa_fail(&e, 429, "rate_limit_error", "rate_limit_exceeded", NULL,
                     "Rate limit reached: %d requests per minute", (int)srv->cfg.rate_limit);
        send_err(c, &e, rid);
        goto done;
    }
    json_object_del(root, "request_id");
    /* The URL picks the endpoint, as in REST: a chat socket takes chat requests, a completions
     * socket completion requests (a frame of the other kind gets an error that says where to
     * send it). */
    int ep = c->ws.route == WS_ROUTE_CHAT ? INF__EP_CHAT : INF__EP_COMPLETION;
    const char *other = ep == INF__EP_CHAT ? "prompt" : "messages";
    const char *mine = ep == INF__EP_CHAT ? "messages" : "prompt";
    if (json_object_get(root, other) && !json_object_get(root, mine)) {
        inf__oa_fail(&e, 400, "invalid_request_error", "invalid_value", mine,
                     "'%s' is required: this socket is %s; send '%s' requests on a socket "
                     "opened at %s",
                     mine, ep == INF__EP_CHAT ? "/v1/chat/completions" : "/v1/completions", other,
                     ep == INF__EP_CHAT ? "/v1/completions" : "/v1/chat/completions");
        send_err(c, &e, rid);
        const char *p = ep == INF__EP_CHAT ? "/v1/chat/completions" : "/v1/completions";
        char why[200];
        inf__record(srv, "WS", p, p, e.status, -1, -1, inf__time_s(),
                    inf__err_reason(&e, NULL, why, sizeof why));
        goto done;
    }
    const char *path = ep == INF__EP_CHAT ? "/v1/chat/completions" : "/v1/completions";
    inf__oa_req req;
    if (inf__oa_parse(srv, ep, root, &req, &e) < 0) {
        inf__oa_req_free(&req);
        send_err(c, &e, rid);
        char why[200];
        inf__record(srv, "WS", path, path, e.status, -1, -1, inf__time_s(),
                    inf__err_reason(&e, NULL, why, sizeof why));
        goto done;
    }
    inf__call_start(c, ep, path, &req, rid);
    rid = NULL; /* the call owns it */
done:
    json_decref(rid);
    json_decref(root);
}

int inf__ws_receive(inf__conn *c, const void *in, size_t len) {
    struct lws *wsi = c->wsi;
    c->ws.last_rx = inf__time_s();
    if (c->closing) return 0;
    size_t max = c->srv->cfg.max_body;
    /* The frame header declares how much more is coming: refuse a message that will not fit as
     * soon as its header says so, instead of waiting for bytes a hostile client never sends. */
    size_t rest = lws_remaining_packet_payload(wsi);
    size_t have = INF_MIN(c->ws.msg_len, max);
    if (len > max - have || rest > max - have - len) {
        inf__ws_close(c, 1009, "message too big");
        return 0;
    }
    if (c->ws.msg_len + len + 1 > c->ws.msg_cap) {
        size_t cap = c->ws.msg_cap ? c->ws.msg_cap : 4096;
        while (cap < c->ws.msg_len + len + 1)
            cap *= 2;
        char *nb = realloc(c->ws.msg, cap);
        if (!nb) return -1;
        c->ws.msg = nb;
        c->ws.msg_cap = cap;
    }
    memcpy(c->ws.msg + c->ws.msg_len, in, len);
    c->ws.msg_len += len;
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi)) return 0;
    bool binary = lws_frame_is_binary(wsi);
    size_t n = c->ws.msg_len;
    c->ws.msg_len = 0;
    if (binary) {
        inf__oa_err e;
        inf__oa_fail(&e, 400, "invalid_request_error", "invalid_frame", NULL,
                     "binary frames are not supported: send JSON text frames");
        send_err(c, &e, NULL);
    } else {
        inf__ws_message(c, c->ws.msg, n);
    }
    if (c->ws.msg_cap > 65536) { /* do not keep a large buffer around */
        free(c->ws.msg);
        c->ws.msg = NULL;
        c->ws.msg_cap = 0;
    }
    return 0;
}
