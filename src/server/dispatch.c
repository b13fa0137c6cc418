/*
 * dispatch.c — calls in flight: turns a validated request into engine requests (one per prompt
 * and choice), routes the engine's events back to the call by engine id, formats them with the
 * one formatter (openai.c) and hands the objects to the connection's transport table
 * (inf__transport: SSE or WebSocket), never asking which one it is.
 *
 * Start: a validated request becomes a call that first goes to prep.c's worker (rendering,
 * tokenizing, context checks) and comes back through inf__call_prepared, which submits it.
 * Lifetime: a call belongs to its connection until it completes; when the connection goes
 * first, its calls are cancelled in the engine (which finishes them at its next step) and kept
 * as orphans until their FINISH events arrive, so engine ids never dangle. Every engine id in
 * flight is in the id map; an event whose id is not there (a call failed half-way through
 * submission and was freed) is dropped.
 * Threads: I/O thread only (events are drained after lws_cancel_service wakes the loop).
 */
#include "server/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- call lifetime -------------------------------------------------------------------------- */

static void call_unlink(inf__call *call) {
    inf_server *srv = call->srv;
    inf__call **head = call->conn ? &call->conn->calls : &srv->orphans;
    if (call->prev)
        call->prev->next = call->next;
    else
        *head = call->next;
    if (call->next) call->next->prev = call->prev;
    call->next = call->prev = NULL;
    if (call->conn) {
        call->conn->n_calls--;
        srv->n_live_calls--;
    } else {
        srv->n_orphans--;
    }
}

static void call_link(inf__call *call, inf__conn *c) {
    inf_server *srv = call->srv;
    inf__call **head = c ? &c->calls : &srv->orphans;
    call->conn = c;
    call->prev = NULL;
    call->next = *head;
    if (*head) (*head)->prev = call;
    *head = call;
    if (c) {
        c->n_calls++;
        srv->n_live_calls++;
    } else {
        srv->n_orphans++;
    }
}

static void call_free(inf__call *call) {
    if (!call) return;
    for (int i = 0; i < call->n_subs; i++) {
        inf__sub *s = &call->subs[i];
        if (s->eid && !s->finished) inf__hmap_del(&call->srv->idmap, s->eid);
        inf__sb_free(&s->text);
        json_decref(s->lp);
        free(s->embedding);
        free(s->error_msg);
    }
    free(call->subs);
    json_decref(call->local_in);
    json_decref(call->local_out);
    inf__oa_req_free(&call->req);
    json_decref(call->request_id);
    free(call);
}

/* Ends a call whose client has gone or was already answered: recorded once (with the error it
 * got, else 499) and freed. */
static void call_drop(inf__call *call) {
    if (!call->counted) {
        call->counted = true;
        inf__record(call->srv, call->method, call->path, call->path,
                    call->err_status ? call->err_status : 499, 0, 0, call->t_start,
                    call->err_reason[0] ? call->err_reason : NULL);
    }
    call_unlink(call);
    call_free(call);
}

void inf__call_cancel(inf__call *call) {
    call->cancel_requested = true; /* while preparing: cancelled once submitted */
    for (int i = 0; i < call->n_subs; i++) {
        inf__sub *s = &call->subs[i];
        if (s->eid && !s->finished && call->srv->engine)
            inf_engine_cancel(call->srv->engine, s->eid);
    }
}

void inf__calls_detach(inf__conn *c) {
    while (c->calls) {
        inf__call *call = c->calls;
        inf__call_cancel(call);
        call_unlink(call);
        call->dead = true;
        if (!call->err_status) { /* logged with its tokens at FINISH */
            call->err_status = 499;
            snprintf(call->err_reason, sizeof call->err_reason,
                     "client_closed: the client went away");
        }
        call_link(call, NULL);
    }
}

void inf__calls_free_all(inf_server *srv) {
    while (srv->orphans)
        call_drop(srv->orphans);
}

/* ---- output ------------------------------------------------------------------------------- */

static void slow_reader(inf__conn *c);

/* Hands one stream chunk to the call's transport (takes obj). */
static void emit(inf__call *call, json_t *obj) {
    inf__conn *c = call->conn;
    if (!c || call->dead || !obj) {
        json_decref(obj);
        return;
    }
    c->tp->stream_chunk(call, obj);
    if (c->out_bytes > call->srv->cfg.max_send_buffer) slow_reader(c);
}

static void set_err(inf__call *call, const inf__oa_err *e) {
    call->err_status = e->status;
    inf__err_reason(e, NULL, call->err_reason, sizeof call->err_reason);
}

static void send_error(inf__call *call, const inf__oa_err *e) {
    inf__conn *c = call->conn;
    if (!c || call->dead) return;
    call->dead = true;
    set_err(call, e);
    c->tp->send_error(call, e);
}

/* A reader that does not keep up: its requests are cancelled (memory stays bounded). */
static void slow_reader(inf__conn *c) {
    inf__oa_err e;
    inf__oa_fail(&e, 500, "server_error", "slow_consumer", NULL,
                 "the client does not read fast enough; request cancelled");
    for (inf__call *call = c->calls; call; call = call->next) {
        if (call->dead) continue;
        inf__call_cancel(call);
        call->dead = true;
        set_err(call, &e);
        c->tp->abort(call, &e);
    }
}

void inf__calls_end_shutdown(inf__conn *c) {
    inf__oa_err e;
    inf__oa_fail(&e, 503, "server_error", "shutting_down", NULL,
                 "The server is shutting down; the request was ended before it finished");
    while (c->calls) {
        inf__call *call = c->calls;
        inf__call_cancel(call);
        if (!call->dead && call->stream_begun) {
            /* every choice still running gets its final chunk, then the stream its end */
            json_t *last = NULL;
            for (int i = 0; i < call->n_subs; i++) {
                inf__sub *s = &call->subs[i];
                if (s->finished) continue;
                if (last) emit(call, last);
                last = inf__oa_chunk(call, s, "", 0, NULL, false, INF_FINISH_CANCELLED);
            }
            if (!call->dead) c->tp->stream_end(call, last);
            else json_decref(last);
            call->dead = true;
            set_err(call, &e);
        } else {
            send_error(call, &e);
        }
        call_unlink(call); /* its FINISH events still come: it waits for them as an orphan */
        call_link(call, NULL);
    }
}

static void map_submit_error(int rc, inf__oa_err *e) {
    switch (rc) {
    case INF_EFULL:
        inf__oa_fail(e, 429, "rate_limit_error", "queue_full", NULL,
                     "The server is busy (request queue full); retry later");
        break;
    case INF_ECONTEXT:
        inf__oa_fail(e, 400, "invalid_request_error", "context_length_exceeded", NULL, "%s",
                     inf_last_error());
        break;
    case INF_ESHUTDOWN:
        inf__oa_fail(e, 503, "server_error", "shutting_down", NULL, "The server is shutting down");
        break;
    case INF_EINVAL:
    case INF_ERANGE:
        inf__oa_fail(e, 400, "invalid_request_error", "invalid_value", NULL, "%s",
                     inf_last_error());
        break;
    default:
        inf__oa_fail(e, 500, "server_error", NULL, NULL, "%s: %s", inf_strerror(rc),
                     inf_last_error());
    }
}

static void make_id(inf_server *srv, const char *prefix, char *out, size_t cap) {
    static const char al[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    size_t n = (size_t)snprintf(out, cap, "%s", prefix);
    for (int i = 0; i < 24 && n + 1 < cap; i++)
        out[n++] = al[inf__rng_next(&srv->rng) % 62];
    out[n] = 0;
}

/* Creates a call on c's lists (takes req and request_id); NULL when refused (error sent). */
static inf__call *call_new(inf__conn *c, int ep, const char *path, inf__oa_req *req,
                           json_t *request_id) {
    inf_server *srv = c->srv;
    inf__oa_err e;
    inf__call *call = srv->engine ? inf__calloc(1, sizeof *call) : NULL;
    if (!call) {
        inf__oa_req_free(req);
        if (!srv->engine)
            inf__oa_fail(&e, 503, "server_error", "model_loading", NULL, "The model is not loaded");
        else
            inf__oa_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        c->tp->refuse(c, request_id, &e);
        json_decref(request_id);
        return NULL;
    }
    call->srv = srv;
    if (req) {
        call->req = *req;
        memset(req, 0, sizeof *req);
    }
    call->req.ep = ep;
    call->request_id = request_id;
    call->t_start = inf__time_s();
    call->created = (int64_t)time(NULL);
    call->path = path;
    call->method = c->tp->method;
    make_id(srv,
            ep == INF__EP_CHAT         ? "chatcmpl-"
            : ep == INF__EP_COMPLETION ? "cmpl-"
                                       : "embd-",
            call->id, sizeof call->id);
    call_link(call, c);
    c->tp->attach(call);
    return call;
}

/* Ends a call that never reached the client with its error: recorded, sent, freed. */
static void call_fail(inf__call *call, const inf__oa_err *e) {
    /* submitted parts are cancelled and their events dropped (their ids leave the map with the
     * call) */
    inf__call_cancel(call);
    if (!call->counted) {
        call->counted = true;
        char why[200];
        inf__record(call->srv, call->method, call->path, call->path, e->status, 0, 0,
                    call->t_start, inf__err_reason(e, NULL, why, sizeof why));
    }
    send_error(call, e);
    call_unlink(call);
    call_free(call);
}

void inf__call_start(inf__conn *c, int ep, const char *path, inf__oa_req *req, json_t *request_id) {
    inf__call *call = call_new(c, ep, path, req, request_id);
    if (!call) return;
    inf__oa_req *r = &call->req;
    int per = ep == INF__EP_EMBEDDING ? 1 : r->n;
    call->n_subs = r->n_prompts * per;
    call->subs = inf__calloc((size_t)call->n_subs, sizeof *call->subs);
    if (!call->subs) {
        inf__oa_err e;
        inf__oa_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        call_fail(call, &e);
        return;
    }
    for (int i = 0; i < call->n_subs; i++) {
        call->subs[i].index = i;
        call->subs[i].call = call;
        call->subs[i].prompt_idx = i / per;
    }
    inf__prep_push(call->srv, call); /* rendering and tokenizing happen there */
}

void inf__call_local(inf__conn *c, const char *endpoint,
                     json_t *(*fn)(const inf_server *, json_t *, int *), json_t *root) {
    inf__call *call = call_new(c, 0, endpoint, NULL, NULL);
    if (!call) {
        json_decref(root);
        return;
    }
    call->local_fn = fn;
    call->local_in = root;
    inf__prep_push(call->srv, call);
}

/* A local endpoint's result is back: its response and record. */
static void local_done(inf__call *call) {
    inf__conn *c = call->conn;
    int status = call->local_out ? call->local_status : 500;
    char why[200] = "server_error: out of memory";
    if (call->local_out && status >= 400) inf__err_reason(NULL, call->local_out, why, sizeof why);
    if (c && !call->dead) {
        if (call->local_out)
            c->tp->send_object(call, status, call->local_out);
        else
            c->tp->send_object(call, 500, json_object());
        call->local_out = NULL;
    }
    const char *reason = why;
    if (call->err_status && status < 400) {
        status = call->err_status;
        reason = call->err_reason;
    }
    inf__record(call->srv, call->method, call->path, call->path, status, -1, -1, call->t_start,
                reason);
    call->counted = true;
    call_unlink(call);
    call_free(call);
}

void inf__call_prepared(inf__call *call) {
    inf_server *srv = call->srv;
    inf__conn *c = call->conn;
    if (call->local_fn) {
        local_done(call);
        return;
    }
    if (!c || call->dead) { /* the client went (or was answered) while it was prepared */
        call_drop(call);
        return;
    }
    inf__oa_err e = call->prep_err;
    if (e.status) {
        call_fail(call, &e);
        return;
    }
    inf__oa_req *r = &call->req;
    int per = r->ep == INF__EP_EMBEDDING ? 1 : r->n;
    uint64_t base_seed = r->seed_set ? r->params.sampling.seed : inf__rng_next(&srv->rng);
    for (int i = 0; i < call->n_subs; i++) {
        inf__sub *s = &call->subs[i];
        inf_request_params p = r->params;
        p.prompt = r->prompts[s->prompt_idx].tokens;
        p.n_prompt = r->prompts[s->prompt_idx].n_tokens;
        p.prompt_text = NULL;
        p.sampling.seed = base_seed + (uint64_t)(i % per);
        if (r->ep == INF__EP_EMBEDDING) p.max_tokens = 0;
        int rc = inf_engine_submit(srv->engine, &p, &s->eid);
        if (rc < 0) {
            map_submit_error(rc, &e);
            s->eid = 0;
            call_fail(call, &e);
            return;
        }
        if (inf__hmap_put(&srv->idmap, s->eid, (uint64_t)(uintptr_t)s) < 0) {
            inf_engine_cancel(srv->engine, s->eid);
            s->eid = 0;
            inf__oa_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
            call_fail(call, &e);
            return;
        }
    }
    if (call->cancel_requested) inf__call_cancel(call);
    /* Started. Streams open now; echo and the assistant role go first. */
    if (r->stream) {
        c->tp->stream_begin(call);
        call->stream_begun = true;
        for (int i = 0; i < call->n_subs; i++) {
            inf__sub *s = &call->subs[i];
            /* the first chunk acknowledges the request at once, even while it is queued:
             * chat sends the assistant role, completions an empty text (or the echo) */
            const char *t = r->prompts[s->prompt_idx].echo;
            if (r->ep == INF__EP_CHAT)
                emit(call, inf__oa_chunk(call, s, "", 0, NULL, true, 0));
            else
                emit(call, inf__oa_chunk(call, s, t ? t : "", t ? strlen(t) : 0, NULL, false, 0));
        }
    } else if (r->echo) {
        for (int i = 0; i < call->n_subs; i++) {
            const char *t = r->prompts[call->subs[i].prompt_idx].echo;
            if (t) inf__sb_puts(&call->subs[i].text, t);
        }
    }
}

/* ---- events --------------------------------------------------------------------------------- */

/* All choices have finished: the response, or the stream's end with its last chunk (last, taken;
 * NULL when not streaming). */
static void complete(inf__call *call, json_t *last) {
    inf_server *srv = call->srv;
    inf__conn *c = call->conn;
    int64_t pt = 0, ctok = 0;
    int status = 200;
    inf__oa_err e = {0};
    for (int i = 0; i < call->n_subs; i++) {
        inf__sub *s = &call->subs[i];
        ctok += s->usage.completion_tokens;
        if (call->req.ep == INF__EP_EMBEDDING || s->index % call->req.n == 0)
            pt += s->usage.prompt_tokens;
        if (s->finish_reason == INF_FINISH_ERROR && status == 200) {
            map_submit_error(s->error ? s->error : INF_EINTERNAL, &e);
            if (s->error_msg) snprintf(e.message, sizeof e.message, "%s", s->error_msg);
            status = e.status;
        }
    }
    if (c && !call->dead) {
        if (status != 200) {
            send_error(call, &e);
        } else if (call->req.stream) {
            c->tp->stream_end(call, last);
            last = NULL;
        } else {
            c->tp->send_object(call, 200, inf__oa_response(call));
        }
    }
    json_decref(last);
    if (status == 200 && call->err_status) status = call->err_status;
    if (!call->counted) {
        call->counted = true;
        inf__record(srv, call->method, call->path, call->path, status, pt, ctok, call->t_start,
                    call->err_reason);
    }
    call_unlink(call);
    call_free(call);
}

static void on_finish(inf__call *call, inf__sub *s, inf_event *ev) {
    inf_server *srv = call->srv;
    json_t *last = NULL;
    s->finished = true;
    s->finish_reason = ev->finish_reason;
    s->usage = ev->usage;
    s->error = ev->error;
    if (ev->error_msg) s->error_msg = inf__strdup(ev->error_msg);
    if (ev->embedding) {
        s->embedding = ev->embedding;
        s->n_embd = ev->n_embd;
        ev->embedding = NULL;
    }
    inf__hmap_del(&srv->idmap, s->eid);
    call->n_done++;
    if (ev->finish_reason != INF_FINISH_ERROR && ev->finish_reason != INF_FINISH_CANCELLED &&
        ev->usage.completion_tokens > 0) {
        double tpot =
            ev->usage.completion_tokens > 1
                ? (ev->t_total_s - ev->t_first_token_s) / (double)(ev->usage.completion_tokens - 1)
                : -1;
        inf__metrics_latency(srv->metrics, ev->t_first_token_s, tpot);
    }
    if (call->conn && !call->dead && call->req.stream && ev->finish_reason != INF_FINISH_ERROR) {
        json_t *chunk = inf__oa_chunk(call, s, "", 0, NULL, false, ev->finish_reason);
        if (call->n_done == call->n_subs)
            last = chunk; /* ends the stream, unless an error does */
        else
            emit(call, chunk);
    }
    if (call->n_done == call->n_subs) complete(call, last);
}

static void on_delta(inf__call *call, inf__sub *s, inf_event *ev) {
    if (!call->conn || call->dead) return;
    if (call->req.stream) {
        bool lp = call->req.logprobs >= 0 && ev->chosen;
        if (!ev->text_len && !lp) return;
        emit(call, inf__oa_chunk(call, s, ev->text, ev->text_len, ev, false, 0));
    } else {
        inf__sb_append(&s->text, ev->text, ev->text_len);
        inf__oa_lp_accumulate(call, s, ev);
    }
}

void inf__dispatch_events(inf_server *srv) {
    if (!srv->engine) return;
    inf_event ev;
    int budget = 4096; /* keep the loop responsive; the rest comes on the next wakeup */
    while (budget-- > 0 && inf_engine_poll(srv->engine, &ev) == 1) {
        uint64_t v;
        if (inf__hmap_get(&srv->idmap, ev.id, &v)) {
            inf__sub *s = (inf__sub *)(uintptr_t)v;
            inf__call *call = s->call;
            if (ev.type == INF_EVENT_DELTA)
                on_delta(call, s, &ev);
            else if (ev.type == INF_EVENT_FINISH)
                on_finish(call, s, &ev);
        }
        inf_event_clear(&ev);
    }
    if (budget < 0) lws_cancel_service(srv->ctx);
}
