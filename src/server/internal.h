/*
 * internal.h — types shared by the server's files (not part of any public API).
 *
 *   server.c    lws context and its callback switch, service loop, wakeup, model loading,
 *               shutdown (the only file that sees every other one)
 *   http.c      HTTP transport: routing, request bodies (chunked decoder), responses, SSE
 *   ws.c        WebSocket transport: frames, auth, multiplexing, cancel, ping
 *   dispatch.c  calls in flight: engine submission, event routing, completion; talks to the
 *               client only through the connection's transport table (never asks which)
 *   endpoints.c the local REST endpoints (health, ready, models, tokenize, detokenize) as pure
 *               functions from request to status + JSON
 *   conn.c      connection objects and their output queues (written in writeable callbacks)
 *   prep.c      the compute side of the submit path: a worker thread that renders chat
 *               templates, tokenizes, checks contexts and runs /tokenize and /detokenize, so
 *               the I/O thread never computes; the token piece table for logprobs
 *   openai.c    the one request validator and the one response/chunk formatter (REST and WS)
 *   metrics.c   Prometheus counters, gauges and histograms; the request record (log + metric)
 *   auth.c      API keys, per-key rate limits, CORS origins
 * Calls go downwards only: server -> http, ws -> dispatch -> endpoints, openai, conn,
 * metrics, auth (dispatch reaches http/ws only through inf__transport function pointers).
 *
 * Threads: everything here runs on the I/O thread (the lws service loop), except the engine's
 * on_event callback and inf_server_stop, which only call lws_cancel_service() and set atomics.
 */
#ifndef INF_SERVER_INTERNAL_H
#define INF_SERVER_INTERNAL_H

#include "base/base.h"
#include "server/server.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <stdatomic.h>

/* lws max_http_header_data: request headers beyond it are answered 431 */
#define INF__MAX_HEADER_DATA 16384

enum { INF__EP_CHAT = 1, INF__EP_COMPLETION, INF__EP_EMBEDDING };

/* ---- errors (OpenAI shape) ----------------------------------------------------------------- */

typedef struct inf__oa_err {
    int status;       /* HTTP status */
    const char *type; /* invalid_request_error, authentication_error, rate_limit_error, … */
    const char *code; /* model_not_found, … or NULL */
    char param[96];   /* "" for null */
    char message[512];
} inf__oa_err;

/* Fills e and returns -1 (so validators can `return oa_fail(...)`). */
int inf__oa_fail(inf__oa_err *e, int status, const char *type, const char *code, const char *param,
                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* {"error":{"message","type","param","code"}} as a new object. */
json_t *inf__oa_error_json(const inf__oa_err *e);

/* ---- validated requests --------------------------------------------------------------------- */

typedef struct inf__prompt {
    char *text;      /* owned; NULL when given as tokens (or as chat messages, until rendered) */
    int32_t *tokens; /* owned; NULL when given as text, until tokenized (prep.c) */
    int64_t n_tokens;
    char *echo; /* owned: the prompt's text for echo (prep.c), NULL unless asked for */
} inf__prompt;

typedef struct inf__oa_req {
    int ep;
    json_t *root;    /* owned; borrowed strings (stop, model) point into it */
    char model[256]; /* the name to report */
    bool stream, include_usage, echo;
    int n; /* choices per prompt */
    int n_prompts;
    inf__prompt *prompts; /* [n_prompts] */
    inf_chat_message *chat; /* [n_chat] chat messages (strings borrowed from root or chat_owned),
                             * rendered into prompts[0] by prep.c; NULL for completions */
    char **chat_owned;      /* [n_chat] content joined from parts (owned), or NULL */
    size_t n_chat;
    int logprobs;         /* -1: none; else top alternatives per token (0..20) */
    bool embed_base64;
    bool seed_set;
    bool max_tokens_given;     /* explicit max_tokens: prompt + max_tokens must fit the context */
    inf_request_params params; /* sampling, max_tokens, stop; prompt fields unused */
} inf__oa_req;

struct inf_server;
/* Parses and validates a request body of endpoint ep. root is borrowed (a reference is kept).
 * Chat messages are kept for prep.c to render. Returns 0 or -1 with *err. Does no computing
 * beyond checking the JSON (the I/O thread calls it). */
int inf__oa_parse(struct inf_server *srv, int ep, json_t *root, inf__oa_req *out, inf__oa_err *err);
void inf__oa_req_free(inf__oa_req *r);
/* Parses JSON text; on failure fills err (400 with line/column) and returns NULL. */
json_t *inf__oa_load_json(const char *data, size_t len, inf__oa_err *err);

/* ---- calls in flight ------------------------------------------------------------------------ */

typedef struct inf__call inf__call;

typedef struct inf__sub {
    inf__call *call;
    uint64_t eid; /* engine request id; 0 when not submitted */
    int index;    /* choice index */
    int prompt_idx;
    bool finished, started;
    int finish_reason;
    int error;
    char *error_msg;
    inf_usage usage;
    inf_sb text;         /* non-stream: accumulated text */
    json_t *lp;          /* logprob accumulator (non-stream) */
    int64_t text_offset; /* completions logprobs text_offset */
    float *embedding;    /* embeddings: [n_embd] (owned) */
    int64_t n_embd;
} inf__sub;

typedef struct inf__conn inf__conn;

struct inf__call {
    struct inf__call *next, *prev; /* in the owning connection's list */
    struct inf_server *srv;
    inf__conn *conn; /* NULL once the client has gone (orphan) */
    inf__oa_req req;
    char id[48]; /* chatcmpl-…, cmpl-…, embd-… */
    int64_t created;
    int n_subs, n_done;
    inf__sub *subs;
    json_t *request_id; /* WebSocket: echoed in every frame */
    bool dead;          /* an error was already delivered: drop further events */
    bool counted;       /* metrics/log line done */
    const char *method; /* the transport's name for the log line ("POST", "WS") */
    int err_status;     /* status of an error already delivered (or 499: client gone) */
    char err_reason[160]; /* its "code: message", for the log line */
    double t_start;
    const char *path; /* for logs and metrics */
    /* prep.c: while preparing is set the worker owns req and the local_* fields; the I/O thread
     * touches only the list links, conn and the flags below it */
    struct inf__call *prep_next;
    bool preparing;
    bool cancel_requested; /* cancelled while preparing: cancelled again once submitted */
    bool stream_begun;
    inf__oa_err prep_err; /* status 0: prepared */
    /* a local endpoint run by the worker instead of the engine (ep 0) */
    json_t *(*local_fn)(const inf_server *srv, json_t *root, int *status);
    json_t *local_in, *local_out;
    int local_status;
};

/* ---- transports ----------------------------------------------------------------------------- */

/* What a connection's protocol does with a call's output. dispatch.c only calls these; http.c
 * (HTTP + SSE) and ws.c (WebSocket) each define one table. "Takes" = ownership of the JSON. */
typedef struct inf__transport {
    const char *method; /* for the log line */
    /* A call was created on this connection (WebSocket: the server-made request_id). */
    void (*attach)(inf__call *call);
    /* A request refused before (or instead of) becoming a call: an error response / frame. */
    void (*refuse)(inf__conn *c, json_t *request_id, const inf__oa_err *e);
    /* The call's one complete response object with its HTTP status (takes obj). */
    void (*send_object)(inf__call *call, int status, json_t *obj);
    /* The call ends in error: before any output an error response, mid-stream an error event
     * and the end of the stream (SSE) or an error frame (WebSocket). */
    void (*send_error)(inf__call *call, const inf__oa_err *e);
    void (*stream_begin)(inf__call *call);
    void (*stream_chunk)(inf__call *call, json_t *obj); /* takes obj */
    /* The stream's last chunk (takes; the transport adds usage as it frames it) and its end. */
    void (*stream_end)(inf__call *call, json_t *last);
    /* The client does not read fast enough: the call is cancelled; e says why. */
    void (*abort)(inf__call *call, const inf__oa_err *e);
    /* Server shutdown: the connection has no calls left (WebSocket: close 1001). */
    void (*going_away)(inf__conn *c);
    /* An HTTP response buffer marked last has been written: -1 closes the connection. */
    int (*response_done)(inf__conn *c);
} inf__transport;

extern const inf__transport inf__http_transport, inf__ws_transport;

/* ---- connections and output ----------------------------------------------------------------- */

enum { INF__OUT_HTTP_HEADERS = 1, INF__OUT_HTTP_BODY, INF__OUT_WS_TEXT, INF__OUT_WS_CLOSE };

typedef struct inf__out {
    struct inf__out *next;
    int kind;
    bool last;           /* HTTP: the response ends after this buffer */
    size_t len, off;     /* payload bytes and bytes written so far */
    unsigned char *data; /* LWS_PRE bytes of headroom precede data */
} inf__out;

enum {
    INF__HTTP_IDLE = 0,
    INF__HTTP_BODY,
    INF__HTTP_WAIT,
    INF__HTTP_STREAM,
    INF__HTTP_DONE,
    INF__HTTP_LINGER /* answered; reading and discarding the rest of the body before closing */
};

/* Chunked transfer decoding (RFC 9112 7.1) as a pure state machine (http.c). */
typedef struct inf__chunked {
    int state;
    uint64_t remain;  /* data bytes left in the current chunk */
    size_t n;         /* hex digits of the size line / bytes of the current trailer line */
    size_t framing;   /* framing bytes seen (size lines, extensions, trailers) */
    size_t max_data;  /* data bytes allowed in all */
    size_t data;      /* data bytes so far */
    int failed;       /* the error code once failed (sticky) */
} inf__chunked;

/* Feeds len bytes. Data bytes go to sink(user, p, n) (which returns 0, or -1 to stop with -2).
 * Returns 1 once the last chunk and trailers are read (*used: bytes consumed), 0 when more is
 * needed, -1 on malformed framing, -2 when the data outgrow max_data. */
int inf__chunked_feed(inf__chunked *d, const unsigned char *in, size_t len, size_t *used,
                      int (*sink)(void *user, const unsigned char *p, size_t n), void *user);

struct inf__conn {
    struct lws *wsi;
    struct inf_server *srv;
    const inf__transport *tp;              /* HTTP until the WebSocket upgrade */
    struct inf__conn *all_next, *all_prev; /* every connection of the server */
    bool close_after; /* close once the output queue is written */
    bool closing;
    inf__out *out_head, *out_tail;
    size_t out_bytes;
    inf__call *calls; /* calls owned by this connection */
    int n_calls;
    char peer[64];
    int rate_key; /* index of the API key used, -1 when none */
    int n_txn;    /* HTTP transactions completed on this connection (keep-alive) */
    struct {
        int state;
        int method; /* LWSHUMETH_* */
        int route;
        char path[128];
        int64_t content_length;
        size_t body_len, body_cap;
        char *body;
        bool discard;       /* ignore body bytes (response already decided) */
        int pending_status; /* error decided at header time, sent at body completion */
        inf__oa_err pending_err;
        bool cors; /* the Origin is allowed: add CORS headers */
        char origin[256];
        double t_start;
        int status; /* status of the response in progress */
        bool headers_sent;
        bool active;       /* LWS_CALLBACK_HTTP seen: this request's headers are complete */
        bool chunked;      /* Transfer-Encoding: chunked, decoded here (lws 4.1 does not) */
        inf__chunked ch;   /* its decoder */
        bool body_seen;    /* a body chunk has arrived for this request */
        int body_done_seen; /* LWS_CALLBACK_HTTP_BODY_COMPLETION calls for this request */
        bool linger;       /* after the response: discard the body, then close */
    } http;
    struct {
        bool authed;
        char *msg; /* message being reassembled */
        size_t msg_len, msg_cap;
        bool msg_too_big;
        int close_code;
        char close_reason[64];
        int route;
        double last_rx;
    } ws;
};

/* ---- the server ----------------------------------------------------------------------------- */

typedef struct inf__metrics inf__metrics;
typedef struct inf__ratelimit inf__ratelimit;

/* Every token's text piece, made once at load: blob[off[t] .. off[t + 1]). */
typedef struct inf__pieces {
    char *blob;
    uint32_t *off; /* [n + 1] */
    int32_t n;
} inf__pieces;

typedef struct inf__prep {
    pthread_t thread;
    bool started;
    pthread_mutex_t mu; /* guards the lists and stop; never held while calling out */
    pthread_cond_t cv;
    inf__call *head, *tail; /* waiting for the worker */
    inf__call *done;        /* prepared, waiting for the I/O thread */
    bool stop;
} inf__prep;

struct inf_server {
    inf_server_config cfg;
    char **names; /* served names (owned) */
    int n_names;
    char **keys; /* API keys (owned) */
    int n_keys;
    char **origins;
    int n_origins;
    char host[128];

    struct lws_context *ctx;
    struct lws_vhost *vhost;
    lws_retry_bo_t retry; /* WebSocket ping / hangup policy (from cfg.ws_ping_s) */
    int port;

    pthread_t loader;
    bool loader_started;
    atomic_int load_state; /* 0 loading, 1 ready, -1 failed */
    int load_error;
    char load_msg[512];
    bool ready_announced;
    inf_model *model;
    inf_engine *engine;
    int64_t n_vocab, n_ctx, n_embd;
    int64_t created; /* unix time the server started (model "created") */

    atomic_int stop_requested;
    bool shutting_down;
    double shutdown_deadline;
    bool shutdown_expired; /* the drain time is over: what is left has been ended */
    bool exit_loop;
    int exit_code;
    pthread_t ticker;
    bool ticker_started;
    atomic_int ticker_stop;

    inf__conn *conns; /* every live connection */
    int n_conns;
    int n_live_calls; /* calls with a connection */
    int n_orphans;    /* calls whose connection has gone */
    inf__call *orphans;

    inf_hmap idmap; /* engine request id -> its inf__sub (dispatch.c) */
    inf__pieces pieces; /* made by the loader thread before load_state is published */
    inf__prep prep;

    inf__metrics *metrics;
    inf__ratelimit *rl;
    inf_rng rng;
    uint64_t id_counter;
};

/* The model is loaded and the server announced it (I/O thread). */
static inline bool inf__srv_ready(const inf_server *srv) {
    return srv->ready_announced && srv->n_names > 0;
}

/* ---- conn.c ---- */
/* The connection of wsi, created with transport tp on first use. */
inf__conn *inf__conn_get(inf_server *srv, struct lws *wsi, const inf__transport *tp);
/* Frees the connection of wsi (its calls must have been detached). */
void inf__conn_destroy(inf_server *srv, struct lws *wsi);
/* Output queue: appends a payload (copied) and asks for a writeable callback. */
int inf__conn_queue(inf__conn *c, int kind, const void *data, size_t len, bool last);
/* Writes from the queue (one lws_write per callback). Returns -1 to close the connection. */
int inf__conn_write(inf__conn *c);
/* Closes the connection from the next service pass (after the current callback). */
void inf__conn_kill(inf__conn *c);

/* ---- http.c ---- */
int inf__http_request(inf__conn *c, const char *path);
int inf__http_body(inf__conn *c, const void *in, size_t len);
int inf__http_body_done(inf__conn *c);
/* Called by the lws log hook (on the I/O thread) when lws gives up on a request's headers
 * (over max_http_header_data): the connection lws is about to close is answered 431. */
void inf__http_note_header_overflow(inf_server *srv);
/* lws 4.1 turns a CONNECT request into a raw socket (LWS_CALLBACK_RAW_ADOPT): it is answered
 * 405 and closed. Returns -1 (close). */
int inf__http_raw_adopted(inf_server *srv, struct lws *wsi);
/* Answers a request line whose method lws does not know with 405 (guard.c). */
void inf__http_bad_method(inf_server *srv, struct lws *wsi, const char *method);

/* ---- ws.c ---- */
/* A client broke the framing rules (guard.c): close 1002 on the socket. */
void inf__ws_protocol_error(inf_server *srv, struct lws *wsi);
int inf__ws_filter(inf__conn *c, struct lws *wsi);
void inf__ws_established(inf__conn *c);
int inf__ws_receive(inf__conn *c, const void *in, size_t len);
/* Handles one complete text message (a request, auth, ping or cancel) of c. */
void inf__ws_message(inf__conn *c, const char *data, size_t len);
void inf__ws_close(inf__conn *c, int code, const char *reason);
/* request_id equality: strings by bytes, numbers by value (1 and 1.0 are the same id). */
bool inf__ws_rid_equal(json_t *a, json_t *b);

/* ---- dispatch.c ---- */
/* Starts a validated request on behalf of c (takes req and request_id): it goes to prep.c,
 * then to the engine. On failure the error has been sent through c's transport. */
void inf__call_start(inf__conn *c, int ep, const char *path, inf__oa_req *req, json_t *request_id);
/* Runs a local endpoint on the worker for c (takes root); the response follows when it is done.
 * endpoint: the route's path for the metric label. */
void inf__call_local(inf__conn *c, const char *endpoint,
                     json_t *(*fn)(const inf_server *, json_t *, int *), json_t *root);
/* A call is back from prep.c (I/O thread): submits it, or ends it with its error. */
void inf__call_prepared(inf__call *call);
void inf__dispatch_events(inf_server *srv);
/* The connection is going: cancels its calls and keeps them as orphans until they finish. */
void inf__calls_detach(inf__conn *c);
/* Cancels the engine requests of one call (WS cancel / slow reader). */
void inf__call_cancel(inf__call *call);
/* The drain time is over: every call of c gets its proper end now (streams: a final chunk
 * with finish_reason "cancelled" and the stream's end; others: 503 shutting_down). */
void inf__calls_end_shutdown(inf__conn *c);
void inf__calls_free_all(inf_server *srv);

/* ---- prep.c ---- */
int inf__prep_start(inf_server *srv);
/* Stops and joins the worker; calls it still held are left in their lists (freed by the
 * caller with the rest). */
void inf__prep_stop(inf_server *srv);
/* Hands a call to the worker (I/O thread). */
void inf__prep_push(inf_server *srv, inf__call *call);
/* Takes back one prepared call, oldest first (I/O thread); NULL when none is done. */
inf__call *inf__prep_take(inf_server *srv);
int inf__pieces_build(const inf_model *model, inf__pieces *out);
void inf__pieces_free(inf__pieces *p);

/* ---- endpoints.c: local REST endpoints, pure functions of (server state, request) ---- */
/* Each returns the response object (new) and sets *status. */
json_t *inf__ep_health(const inf_server *srv, int *status);
json_t *inf__ep_ready(const inf_server *srv, int *status);
json_t *inf__ep_models(const inf_server *srv, int *status);
json_t *inf__ep_model(const inf_server *srv, const char *id, int *status);
/* root: the parsed request body (borrowed). */
json_t *inf__ep_tokenize(const inf_server *srv, json_t *root, int *status);
json_t *inf__ep_detokenize(const inf_server *srv, json_t *root, int *status);

/* ---- openai.c formatter ---- */
json_t *inf__oa_chunk(inf__call *call, inf__sub *s, const char *text, size_t len,
                      const inf_event *ev, bool role, int finish_reason);
json_t *inf__oa_usage_chunk(inf__call *call);
json_t *inf__oa_response(inf__call *call);
json_t *inf__oa_usage(inf__call *call);
/* Appends one DELTA's logprobs to a non-stream accumulator (created on demand). */
void inf__oa_lp_accumulate(inf__call *call, inf__sub *s, const inf_event *ev);
const char *inf__oa_finish_str(int reason);
/* A JSON string from bytes that may not be valid UTF-8: invalid bytes become U+FFFD. */
json_t *inf__oa_jstr_lossy(const char *s, size_t n);
/* Compact JSON text (floats with 9 significant digits); *len its length. NULL when out of
 * memory. Free with free(). */
char *inf__oa_dump(json_t *obj, size_t *len);

/* ---- metrics.c ---- */
inf__metrics *inf__metrics_new(void);
void inf__metrics_free(inf__metrics *m);
void inf__metrics_latency(inf__metrics *m, double ttft_s, double tpot_s);
char *inf__metrics_render(inf__metrics *m, inf_engine *engine, size_t *len);
/* One finished request: counts it (endpoint label, status) and writes its log line (method,
 * path as sent, status, tokens when prompt_tokens >= 0, time since t_start, and for a status
 * >= 400 the reason: "code: message", NULL when unknown). */
void inf__record(inf_server *srv, const char *method, const char *path, const char *endpoint,
                 int status, int64_t prompt_tokens, int64_t completion_tokens, double t_start,
                 const char *reason);
/* "code: message" of an error (e) or of an OpenAI error object (obj), into buf. */
const char *inf__err_reason(const inf__oa_err *e, json_t *obj, char *buf, size_t n);

/* ---- guard.c: the byte-level check in front of lws (unknown methods, unmasked frames) ---- */
enum { INF__GUARD_METHOD, INF__GUARD_HEADERS, INF__GUARD_BODY, INF__GUARD_WS, INF__GUARD_OFF };
enum { INF__GUARD_BAD_METHOD = 1, INF__GUARD_UNMASKED = 2 };
typedef struct inf__guard_scan {
    int mode;      /* INF__GUARD_METHOD (zero: a fresh scanner) .. INF__GUARD_OFF */
    char method[16];
    int n_method;
    uint32_t tail; /* last header bytes, for the blank line */
    int ws_state;  /* 0 first byte, 1 mask+length, 2 extended length, 3 key, 4 payload */
    int n_len, n_key;
    uint64_t remaining;
} inf__guard_scan;
/* Scans n more bytes; returns 0 or a verdict (INF__GUARD_BAD_METHOD / _UNMASKED). *used: bytes
 * consumed (in mode INF__GUARD_BODY it stops: the rest is the caller's to keep). */
int inf__guard_feed(inf__guard_scan *s, const uint8_t *p, size_t n, size_t *used);
/* hook(ctx, wsi, verdict, method as sent) answers a violation (called from inside lws' read, I/O thread). */
void inf__guard_set_hook(void (*fn)(void *ctx, struct lws *wsi, int verdict, const char *method),
                         void *ctx);
void inf__guard_track(struct lws *wsi);  /* a new client connection */
void inf__guard_http(struct lws *wsi);   /* its request is plain HTTP: stop watching */
int inf__guard_ws(struct lws *wsi);      /* it became a WebSocket: verdict of the kept bytes */
void inf__guard_forget(struct lws *wsi); /* the connection is gone */

/* ---- auth.c ---- */
/* 1: authorised (or no keys configured), 0: not. *key_index: which key (or -1). */
int inf__auth_check(inf_server *srv, const char *token, size_t len, int *key_index);
/* Extracts the bearer token of an Authorization header value; NULL when absent/malformed. */
const char *inf__auth_bearer(const char *value, size_t *len);
inf__ratelimit *inf__ratelimit_new(int per_minute);
void inf__ratelimit_free(inf__ratelimit *rl);
/* true when a request of this client may proceed (and consumes one token). */
bool inf__ratelimit_take(inf__ratelimit *rl, int key_index, const char *peer);
/* true when origin is allowed by --cors-origin. */
bool inf__cors_allowed(inf_server *srv, const char *origin);

#endif
