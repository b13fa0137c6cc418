/*
 * conn.c — connection objects and their output queues.
 *
 * An inf__conn is attached to its wsi with lws_set_opaque_user_data (so it survives protocol
 * re-binding on the WebSocket upgrade) and freed at LWS_CALLBACK_WSI_DESTROY, after server.c has
 * detached its calls (dispatch.c). server.c creates it with the HTTP transport; ws.c switches it
 * to the WebSocket one when the upgrade completes.
 * Output: every response goes through the connection's queue of buffers (each with LWS_PRE
 * headroom) and is written in writeable callbacks, one lws_write per callback; consecutive
 * small HTTP body buffers are coalesced, large WebSocket messages fragmented. When a buffer
 * marked last (an HTTP response's end) has been written, the transport's response_done decides
 * whether the connection stays (keep-alive) or closes.
 * Threads: I/O thread only.
 */
#include "server/internal.h"

#include <stdlib.h>
#include <string.h>

#define WRITE_CHUNK 65536

inf__conn *inf__conn_get(inf_server *srv, struct lws *wsi, const inf__transport *tp) {
    inf__conn *c = lws_get_opaque_user_data(wsi);
    if (c) return c;
    c = inf__calloc(1, sizeof *c);
    if (!c) return NULL;
    c->wsi = wsi;
    c->srv = srv;
    c->tp = tp;
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

void inf__conn_destroy(inf_server *srv, struct lws *wsi) {
    inf__conn *c = lws_get_opaque_user_data(wsi);
    if (!c) return;
    INF_ASSERT(!c->calls);
    lws_set_opaque_user_data(wsi, NULL);
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

void inf__conn_kill(inf__conn *c) {
    c->close_after = true;
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
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
    if (c->wsi) lws_callback_on_writable(c->wsi); /* none: a connection of a test or fuzz target */
    return 0;
}

/* Merges whole small HTTP body buffers at the head of the queue into one. Returns the head, or
 * NULL when out of memory. */
static inf__out *coalesce(inf__conn *c) {
    inf__out *o = c->out_head;
    if (o->kind != INF__OUT_HTTP_BODY || o->off || !o->next ||
        o->next->kind != INF__OUT_HTTP_BODY || o->len >= WRITE_CHUNK)
        return o;
    size_t total = 0;
    int count = 0;
    bool last = false;
    for (inf__out *q = o; q && q->kind == INF__OUT_HTTP_BODY && !q->off && total + q->len <= WRITE_CHUNK;
         q = q->next) {
        total += q->len;
        count++;
        if (q->last) {
            last = true;
            break;
        }
    }
    if (count < 2) return o;
    inf__out *m = malloc(sizeof *m + LWS_PRE + total + 1);
    if (!m) return NULL;
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
    return m;
}

int inf__conn_write(inf__conn *c) {
    inf__out *o = c->out_head;
    if (!o) return c->close_after ? -1 : 0; /* WebSockets close through INF__OUT_WS_CLOSE */
    struct lws *wsi = c->wsi;
    if (o->kind == INF__OUT_WS_CLOSE) {
        lws_close_reason(wsi, (enum lws_close_status)c->ws.close_code,
                         (unsigned char *)c->ws.close_reason, strlen(c->ws.close_reason));
        return -1;
    }
    if (!(o = coalesce(c))) return -1;
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
        if (end && c->tp->response_done(c) < 0) return -1;
    }
    if (c->out_head) lws_callback_on_writable(wsi);
    return 0;
}
