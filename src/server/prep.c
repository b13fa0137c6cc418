/*
 * prep.c — the compute side of the submit path (DESIGN §3: the I/O thread never computes).
 *
 * One worker thread takes calls from the I/O thread and does everything about a request that
 * costs time in proportion to its size before the engine sees it: renders chat messages with
 * the model's template, tokenizes text prompts, checks every prompt against the engine's
 * effective context (with OpenAI's wording), makes the prompt text for echo, and runs the local
 * /tokenize and /detokenize endpoints. The prepared call goes back on the done list and the I/O
 * thread is woken (lws_cancel_service, the one thread-safe lws call), takes it back with
 * inf__prep_take and hands it to dispatch.c, which submits it to the engine (on the I/O thread, so every engine id is in the
 * id map before its first event can be routed).
 *
 * Ownership: while call->preparing is set the worker owns call->req and the call's local_* and
 * prep_err fields; the I/O thread only moves the call between lists (its client may go: it is
 * detached as usual and finished when it comes back) and sets cancel_requested.
 * Lock order: prep.mu only; it is never held while rendering, tokenizing or calling lws.
 *
 * Also here: the token piece table (every token's bytes as they appear in text, for logprobs),
 * made once by the loader thread so formatting a logprob is a lookup.
 */
#include "server/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- worker side ----------------------------------------------------------------------------- */

static const char *prompt_param(int ep) {
    return ep == INF__EP_CHAT ? "messages" : ep == INF__EP_EMBEDDING ? "input" : "prompt";
}

/* Renders, tokenizes and checks one prompt. Returns 0 or -1 with *e. */
static int prepare_prompt(const inf_server *srv, inf__oa_req *r, inf__prompt *p, inf__oa_err *e) {
    const char *param = prompt_param(r->ep);
    if (r->chat && !p->text && !p->tokens) {
        char *text = NULL;
        if (inf_chat_format(srv->model, r->chat, r->n_chat, true, &text) < 0) {
            inf__oa_fail(e, 400, "invalid_request_error", "invalid_messages", "messages", "%s",
                         inf_last_error());
            return -1;
        }
        p->text = inf__strdup(text);
        inf_free(text);
        if (!p->text) return inf__oa_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    if (!p->tokens) {
        /* no token spans 256 bytes: a longer text cannot fit, whatever it tokenizes to */
        size_t bytes = strlen(p->text);
        if ((int64_t)(bytes / 256) > srv->n_ctx)
            return inf__oa_fail(e, 400, "invalid_request_error", "context_length_exceeded", param,
                                "This model's maximum context length is %lld tokens; the "
                                "prompt (%zu bytes) is far longer.",
                                (long long)srv->n_ctx, bytes);
        if (inf_tokenize(srv->model, p->text, bytes, true, true, &p->tokens, &p->n_tokens) < 0)
            return inf__oa_fail(e, 400, "invalid_request_error", "invalid_value", NULL,
                                "tokenization failed: %s", inf_last_error());
    }
    if (p->n_tokens <= 0)
        return inf__oa_fail(e, 400, "invalid_request_error", "invalid_value", param,
                            "the prompt is empty");
    int64_t limit = r->ep == INF__EP_EMBEDDING ? srv->n_ctx : srv->n_ctx - 1;
    if (r->max_tokens_given && p->n_tokens <= limit &&
        p->n_tokens + r->params.max_tokens > srv->n_ctx)
        return inf__oa_fail(e, 400, "invalid_request_error", "context_length_exceeded", param,
                            "This model's maximum context length is %lld tokens. However, "
                            "you requested %lld tokens (%lld in the prompt, %lld for the "
                            "completion). Please reduce the prompt or max_tokens.",
                            (long long)srv->n_ctx, (long long)(p->n_tokens + r->params.max_tokens),
                            (long long)p->n_tokens, (long long)r->params.max_tokens);
    if (p->n_tokens > limit)
        return inf__oa_fail(e, 400, "invalid_request_error", "context_length_exceeded", param,
                            "This model's maximum context length is %lld tokens. However, "
                            "your prompt has %lld tokens. Please reduce the length of the "
                            "prompt.",
                            (long long)srv->n_ctx, (long long)p->n_tokens);
    if (r->echo && !p->echo) {
        if (p->text) {
            p->echo = inf__strdup(p->text);
        } else {
            size_t len;
            char *t = NULL;
            if (inf_detokenize(srv->model, p->tokens, p->n_tokens, false, &t, &len) == 0) {
                p->echo = inf__strndup(t, len);
                inf_free(t);
            }
        }
        if (!p->echo) return inf__oa_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    return 0;
}

static void prepare(const inf_server *srv, inf__call *call) {
    if (call->local_fn) {
        call->local_out = call->local_fn(srv, call->local_in, &call->local_status);
        return;
    }
    inf__oa_req *r = &call->req;
    for (int i = 0; i < r->n_prompts; i++)
        if (prepare_prompt(srv, r, &r->prompts[i], &call->prep_err) < 0) return;
}

static void *worker_main(void *arg) {
    inf_server *srv = arg;
    inf__prep *q = &srv->prep;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->stop)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->stop) break;
        inf__call *call = q->head;
        q->head = call->prep_next;
        if (!q->head) q->tail = NULL;
        pthread_mutex_unlock(&q->mu);

        prepare(srv, call);

        pthread_mutex_lock(&q->mu);
        call->prep_next = q->done;
        q->done = call;
        pthread_mutex_unlock(&q->mu);
        lws_cancel_service(srv->ctx);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* ---- I/O thread side --------------------------------------------------------------------------- */

int inf__prep_start(inf_server *srv) {
    inf__prep *q = &srv->prep;
    if (pthread_mutex_init(&q->mu, NULL) != 0) return INF_EINTERNAL;
    if (pthread_cond_init(&q->cv, NULL) != 0) {
        pthread_mutex_destroy(&q->mu);
        return INF_EINTERNAL;
    }
    if (pthread_create(&q->thread, NULL, worker_main, srv) != 0) {
        pthread_cond_destroy(&q->cv);
        pthread_mutex_destroy(&q->mu);
        return INF_EINTERNAL;
    }
    q->started = true;
    return 0;
}

void inf__prep_stop(inf_server *srv) {
    inf__prep *q = &srv->prep;
    if (!q->started) return;
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    q->started = false;
    /* calls still listed here stay in their connection / orphan lists: no longer preparing */
    for (inf__call *c = q->head; c; c = c->prep_next)
        c->preparing = false;
    for (inf__call *c = q->done; c; c = c->prep_next)
        c->preparing = false;
    q->head = q->tail = q->done = NULL;
}

void inf__prep_push(inf_server *srv, inf__call *call) {
    inf__prep *q = &srv->prep;
    call->preparing = true;
    call->prep_next = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->tail)
        q->tail->prep_next = call;
    else
        q->head = call;
    q->tail = call;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

inf__call *inf__prep_take(inf_server *srv) {
    inf__prep *q = &srv->prep;
    if (!q->started) return NULL;
    pthread_mutex_lock(&q->mu);
    /* the done list is newest first: take the oldest, so requests start in arrival order */
    inf__call **pp = &q->done;
    while (*pp && (*pp)->prep_next)
        pp = &(*pp)->prep_next;
    inf__call *call = *pp;
    if (call) *pp = NULL;
    pthread_mutex_unlock(&q->mu);
    if (call) call->preparing = false;
    return call;
}

/* ---- token pieces -------------------------------------------------------------------------- */

/* Decoding a lone token may drop its leading space (SPM's first-piece rule), so a token's piece
 * is taken as decode([t, t]) minus decode([t]). */
int inf__pieces_build(const inf_model *model, inf__pieces *out) {
    memset(out, 0, sizeof *out);
    inf_model_info info;
    inf_model_get_info(model, &info);
    if (info.n_vocab <= 0 || info.n_vocab >= INT32_MAX) return INF_EINVAL;
    int32_t n = (int32_t)info.n_vocab;
    inf_sb blob = {0};
    uint32_t *off = inf__calloc((size_t)n + 1, sizeof *off);
    if (!off) return INF_ENOMEM;
    for (int32_t t = 0; t < n; t++) {
        off[t] = (uint32_t)blob.len;
        int32_t two[2] = {t, t};
        char *one = NULL, *both = NULL;
        size_t n1 = 0, n2 = 0;
        if (inf_detokenize(model, two, 1, false, &one, &n1) == 0 &&
            inf_detokenize(model, two, 2, false, &both, &n2) == 0 && n2 >= n1)
            inf__sb_append(&blob, both + n1, n2 - n1);
        inf_free(one);
        inf_free(both);
        if (blob.oom || blob.len > UINT32_MAX / 2) {
            inf__sb_free(&blob);
            free(off);
            return INF_ENOMEM;
        }
    }
    off[n] = (uint32_t)blob.len;
    out->blob = blob.data ? inf__sb_take(&blob) : inf__strdup("");
    out->off = off;
    out->n = n;
    if (!out->blob) {
        inf__pieces_free(out);
        return INF_ENOMEM;
    }
    return 0;
}

void inf__pieces_free(inf__pieces *p) {
    free(p->blob);
    free(p->off);
    memset(p, 0, sizeof *p);
}
