/*
 * server.c — the server object: configuration, the libwebsockets context (one vhost, one
 * protocol for HTTP and WebSocket on one port), background model loading, the service loop,
 * engine event wakeups and graceful shutdown.
 *
 * Threads: the caller of inf_server_run is the I/O thread and owns everything here. The loader
 * thread only loads the model and creates the engine, then publishes them with an atomic store
 * of load_state and wakes the loop (lws_cancel_service). The engine thread's on_event and
 * inf_server_stop only call lws_cancel_service (the one thread-safe lws call) and set atomics;
 * so does the ticker thread, which exists only during shutdown to wake the loop every 50 ms.
 *
 * The lws callback switch lives here, beside the wakeup: it routes each event to conn.c,
 * http.c, ws.c or dispatch.c, none of which calls back into this file.
 *
 * Shutdown: stop → new requests get 503 (WebSocket: no new sockets; idle sockets close 1001),
 * running requests get up to --drain-timeout (shutdown_grace_s) to finish, then every one left
 * gets its proper end (dispatch.c: streams a final chunk and their end, others 503
 * shutting_down), WebSockets close with 1001, queued output gets up to a second to drain, and
 * the loop exits.
 */
#include "server/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void inf_server_config_default(inf_server_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->port = 8000;
    cfg->max_body = (size_t)8 << 20;
    cfg->max_choices = 128;
    cfg->ws_max_inflight = 16;
    cfg->ws_ping_s = 30;
    cfg->rate_limit = 0;
    cfg->max_send_buffer = (size_t)8 << 20;
    cfg->shutdown_grace_s = 10.0;
    cfg->model = inf_model_params_default();
    cfg->engine = inf_engine_params_default();
}


static _Thread_local inf_server *service_srv; /* the server this I/O thread serves */

/* Set while the context is created: lws' own lines about a failed bind are replaced by one
 * sentence of ours (probe_listen). */
static bool lws_quiet;

static void lws_log(int level, const char *line) {
    /* lws 4.1 reports oversized request headers only through its log (called from inside its
     * header parser), then closes the connection without a callback: http.c answers 431 */
    if (strstr(line, "Ran out of header data space") ||
        (strstr(line, "More hdr frags than we can deal with") && !strstr(line, "dropping"))) {
        inf__http_note_header_overflow(service_srv);
        return;
    }
    if (!(level & LLL_ERR) || lws_quiet) return; /* warnings: only for the message above */
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    inf__log(level & LLL_ERR ? INF_LOG_ERROR : INF_LOG_WARN, "lws: %.*s", (int)n, line);
}

static void on_engine_event(void *user) {
    inf_server *srv = user;
    if (srv->ctx) lws_cancel_service(srv->ctx);
}

static void *loader_main(void *arg) {
    inf_server *srv = arg;
    inf_model *m = NULL;
    inf_engine *e = NULL;
    /* Testing aid: INFERNEO_LOAD_DELAY_MS (at most 60 s) holds the load back, so tests can see
     * the server's loading state (/health 503, requests refused with model_loading). */
    const char *delay = getenv("INFERNEO_LOAD_DELAY_MS");
    if (delay) {
        long ms = strtol(delay, NULL, 10);
        for (long i = 0; i < ms && i < 60000 && !atomic_load(&srv->stop_requested); i += 10) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    int rc = inf_model_load(srv->cfg.model_path, &srv->cfg.model, &m);
    if (rc == 0) {
        inf_engine_params ep = srv->cfg.engine;
        ep.on_event = on_engine_event;
        ep.on_event_user = srv;
        rc = inf_engine_create(m, &ep, &e);
        if (rc < 0) {
            snprintf(srv->load_msg, sizeof srv->load_msg, "engine: %s: %s", inf_strerror(rc),
                     inf_last_error());
            inf_model_free(m);
            m = NULL;
        }
    } else {
        snprintf(srv->load_msg, sizeof srv->load_msg, "%s: %s: %s", srv->cfg.model_path,
                 inf_strerror(rc), inf_last_error());
    }
    /* the token piece table for logprobs: computed here, never on the I/O thread */
    if (rc == 0 && (rc = inf__pieces_build(m, &srv->pieces)) < 0) {
        snprintf(srv->load_msg, sizeof srv->load_msg, "token pieces: %s", inf_strerror(rc));
        inf_engine_destroy(e);
        inf_model_free(m);
        e = NULL;
        m = NULL;
    }
    srv->model = m;
    srv->engine = e;
    srv->load_error = rc;
    atomic_store_explicit(&srv->load_state, rc == 0 ? 1 : -1, memory_order_release);
    lws_cancel_service(srv->ctx);
    return NULL;
}

static char *file_stem(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n > 5 && !strcmp(b + n - 5, ".gguf")) n -= 5;
    return inf__strndup(b, n);
}

/* Runs on the I/O thread once the loader has published the model. */
static void finish_loading(inf_server *srv) {
    inf_model_info info;
    inf_model_get_info(srv->model, &info);
    srv->n_vocab = info.n_vocab;
    srv->n_embd = info.n_embd;
    srv->n_ctx = inf_engine_n_ctx(srv->engine); /* the engine's effective context */
    if (!srv->n_names) {
        srv->names = inf__calloc(1, sizeof *srv->names);
        if (srv->names) {
            srv->names[0] =
                info.name && info.name[0] ? inf__strdup(info.name) : file_stem(srv->cfg.model_path);
            srv->n_names = srv->names[0] ? 1 : 0;
        }
    }
    srv->ready_announced = true;
    if (srv->cfg.engine.n_ctx > info.n_ctx_train && info.n_ctx_train > 0)
        inf__log(INF_LOG_WARN,
                 "the context asked for (-c %lld) exceeds the model's trained context (%lld): "
                 "output past %lld tokens may degrade",
                 (long long)srv->cfg.engine.n_ctx, (long long)info.n_ctx_train,
                 (long long)info.n_ctx_train);
    inf__log(INF_LOG_INFO, "model '%s' ready (%s, context %lld)",
             srv->n_names ? srv->names[0] : "?", info.arch ? info.arch : "?",
             (long long)srv->n_ctx);
    inf__log(INF_LOG_INFO, "listening on http://%s:%d", srv->host, srv->port);
}

static void begin_shutdown(inf_server *srv);
static void shutdown_progress(inf_server *srv);

/* While shutting down, wakes the loop every 50 ms so the deadlines are checked. */
static void *ticker_main(void *arg) {
    inf_server *srv = arg;
    while (!atomic_load(&srv->ticker_stop)) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        lws_cancel_service(srv->ctx);
    }
    return NULL;
}

static void wakeup(inf_server *srv) {
    int ls = atomic_load_explicit(&srv->load_state, memory_order_acquire);
    if (ls == 1 && !srv->ready_announced) {
        finish_loading(srv);
    } else if (ls == -1 && !srv->exit_loop) {
        inf__log(INF_LOG_ERROR, "cannot load the model: %s", srv->load_msg);
        srv->exit_code = srv->load_error ? srv->load_error : INF_EINTERNAL;
        srv->exit_loop = true;
        return;
    }
    if (atomic_load(&srv->stop_requested) && !srv->shutting_down) begin_shutdown(srv);
    inf__dispatch_events(srv);
    for (inf__call *call; (call = inf__prep_take(srv));)
        inf__call_prepared(call);
    if (srv->shutting_down) shutdown_progress(srv);
}

static void begin_shutdown(inf_server *srv) {
    srv->shutting_down = true;
    srv->shutdown_deadline = inf__time_s() + srv->cfg.shutdown_grace_s;
    inf__log(INF_LOG_INFO, "shutting down: %d request(s) still running", srv->n_live_calls);
    srv->ticker_started = pthread_create(&srv->ticker, NULL, ticker_main, srv) == 0;
}

static void shutdown_progress(inf_server *srv) {
    double now = inf__time_s();
    if (!srv->shutdown_expired && now >= srv->shutdown_deadline) {
        srv->shutdown_expired = true;
        if (srv->n_live_calls)
            inf__log(INF_LOG_INFO, "drain time over: ending %d request(s)", srv->n_live_calls);
        for (inf__conn *c = srv->conns; c; c = c->all_next)
            inf__calls_end_shutdown(c);
    }
    for (inf__conn *c = srv->conns; c; c = c->all_next)
        if (!c->closing && !c->n_calls) c->tp->going_away(c);
    if (srv->n_live_calls > 0) return;
    bool pending = false;
    for (inf__conn *c = srv->conns; c; c = c->all_next)
        pending |= c->out_head != NULL;
    if (!pending || now >= srv->shutdown_deadline + 1.0) srv->exit_loop = true;
}

/* guard.c found a request line or frame lws would take: answer it on the socket */
static void guard_violation(void *ctx, struct lws *wsi, int verdict, const char *method) {
    inf_server *srv = ctx;
    if (verdict == INF__GUARD_BAD_METHOD)
        inf__http_bad_method(srv, wsi, method);
    else
        inf__ws_protocol_error(srv, wsi);
}

/* ---- the lws callback ------------------------------------------------------------------------ */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
    (void)user;
    struct lws_context *ctx = lws_get_context(wsi);
    inf_server *srv = ctx ? lws_context_user(ctx) : NULL;
    if (!srv) return 0;
    service_srv = srv;
    inf__conn *c;
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED: wakeup(srv); return 0;
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED: /* tracked from the start (431) */
        inf__guard_track(wsi);
        return inf__conn_get(srv, wsi, &inf__http_transport) ? 0 : -1;
    case LWS_CALLBACK_HTTP:
        inf__guard_http(wsi);
        if (!(c = inf__conn_get(srv, wsi, &inf__http_transport))) return -1;
        return inf__http_request(c, (const char *)in);
    case LWS_CALLBACK_HTTP_BODY:
        if (!(c = lws_get_opaque_user_data(wsi))) return -1;
        return inf__http_body(c, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (!(c = lws_get_opaque_user_data(wsi))) return -1;
        return inf__http_body_done(c);
    case LWS_CALLBACK_HTTP_WRITEABLE:
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!(c = lws_get_opaque_user_data(wsi))) return 0;
        return inf__conn_write(c);
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        if (!(c = inf__conn_get(srv, wsi, &inf__http_transport))) return -1;
        return inf__ws_filter(c, wsi);
    case LWS_CALLBACK_ESTABLISHED:
        if (!(c = inf__conn_get(srv, wsi, &inf__http_transport))) return -1;
        if (inf__guard_ws(wsi)) { /* frames read together with the handshake */
            guard_violation(srv, wsi, INF__GUARD_UNMASKED, NULL);
            return -1;
        }
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
    case LWS_CALLBACK_RAW_ADOPT: return inf__http_raw_adopted(srv, wsi);
    case LWS_CALLBACK_WSI_DESTROY:
        inf__guard_forget(wsi);
        if ((c = lws_get_opaque_user_data(wsi))) inf__calls_detach(c);
        inf__conn_destroy(srv, wsi);
        return 0;
    default: return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"inferneo", callback, 0, 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static int dup_list(const char *const *src, int n, char ***out) {
    *out = NULL;
    if (n <= 0) return 0;
    char **l = inf__calloc((size_t)n, sizeof *l);
    if (!l) return INF_ENOMEM;
    for (int i = 0; i < n; i++)
        if (!(l[i] = inf__strdup(src[i] ? src[i] : ""))) {
            for (int k = 0; k < i; k++)
                free(l[k]);
            free(l);
            return INF_ENOMEM;
        }
    *out = l;
    return 0;
}

static void free_list(char **l, int n) {
    for (int i = 0; l && i < n; i++)
        free(l[i]);
    free(l);
}

/* Checks before anything starts that the model file can be read and the address bound, so the
 * operator gets one clear sentence (the bind is tried here, then lws binds again). */
static int preflight(const char *model_path, const char *host, int port) {
    int fd = open(model_path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) return inf__err(INF_EIO, "cannot open the model file '%s': %s", model_path,
                                strerror(errno));
    bool regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    close(fd);
    if (!regular) return inf__err(INF_EIO, "the model path '%s' is not a file", model_path);
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    bool any = !strcmp(host, "0.0.0.0") || !strcmp(host, "::");
    int gai = getaddrinfo(any ? NULL : host, ps, &hints, &res);
    if (gai != 0 || !res)
        return inf__err(INF_EIO, "cannot listen on %s:%d: unknown address (%s)", host, port,
                        gai_strerror(gai));
    int err = 0;
    int s = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        err = errno;
    } else {
        int one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(s, res->ai_addr, res->ai_addrlen) < 0) err = errno;
        close(s);
    }
    freeaddrinfo(res);
    if (err) return inf__err(INF_EIO, "cannot listen on %s:%d: %s", host, port, strerror(err));
    return 0;
}

int inf_server_create(const inf_server_config *cfg, inf_server **out) {
    if (!cfg || !out) return inf__err(INF_EINVAL, "server: NULL argument");
    *out = NULL;
    if (!cfg->model_path) return inf__err(INF_EINVAL, "server: no model path");
    if (cfg->port < 0 || cfg->port > 65535)
        return inf__err(INF_EINVAL, "server: port %d out of range", cfg->port);
    if (cfg->max_body < 1024 || cfg->max_choices < 1 || cfg->ws_max_inflight < 1 ||
        cfg->ws_ping_s < 0 || cfg->ws_ping_s > 3600 || cfg->max_send_buffer < 65536)
        return inf__err(INF_EINVAL, "server: limits out of range");
    for (int i = 0; i < cfg->n_served_names; i++)
        if (!cfg->served_names[i] || !cfg->served_names[i][0])
            return inf__err(INF_EINVAL, "server: empty served model name");
    for (int i = 0; i < cfg->n_api_keys; i++)
        if (!cfg->api_keys[i] || !cfg->api_keys[i][0])
            return inf__err(INF_EINVAL, "server: empty API key");
    inf_server *srv = inf__calloc(1, sizeof *srv);
    if (!srv) return inf__err(INF_ENOMEM, "server");
    srv->cfg = *cfg;
    srv->cfg.model_path = NULL;
    int rc = INF_ENOMEM;
    if (dup_list(cfg->served_names, cfg->n_served_names, &srv->names) < 0 ||
        dup_list(cfg->api_keys, cfg->n_api_keys, &srv->keys) < 0 ||
        dup_list(cfg->cors_origins, cfg->n_cors_origins, &srv->origins) < 0) {
        rc = inf__err(INF_ENOMEM, "server");
        goto fail;
    }
    srv->n_names = cfg->n_served_names;
    srv->n_keys = cfg->n_api_keys;
    srv->n_origins = cfg->n_cors_origins;
    srv->cfg.served_names = NULL;
    srv->cfg.api_keys = NULL;
    srv->cfg.cors_origins = NULL;
    srv->cfg.model_path = inf__strdup(cfg->model_path);
    const char *host = cfg->host && cfg->host[0] ? cfg->host : "127.0.0.1";
    if (!strcmp(host, "localhost")) host = "127.0.0.1";
    snprintf(srv->host, sizeof srv->host, "%s", host);
    srv->cfg.host = srv->host;
    srv->metrics = inf__metrics_new();
    srv->rl = inf__ratelimit_new(cfg->rate_limit);
    if (!srv->cfg.model_path || !srv->metrics || (cfg->rate_limit > 0 && !srv->rl)) {
        rc = inf__err(INF_ENOMEM, "server");
        goto fail;
    }
    inf__rng_seed(&srv->rng, inf__time_ns() ^ (uint64_t)(uintptr_t)srv);
    srv->created = (int64_t)time(NULL);

    if ((rc = preflight(srv->cfg.model_path, srv->host, cfg->port)) < 0) goto fail;
    json_object_seed(0); /* before the worker threads: jansson seeds its hashes once */
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = cfg->port;
    bool any = !strcmp(srv->host, "0.0.0.0") || !strcmp(srv->host, "::");
    info.iface = any ? NULL : srv->host;
    info.protocols = protocols;
    info.user = srv;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    if (!strchr(srv->host, ':')) info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.max_http_header_data = INF__MAX_HEADER_DATA;
    info.keepalive_timeout = 30;
    info.timeout_secs = 30;
    info.server_string = "inferneo";
    info.pt_serv_buf_size = 32768;
    if (cfg->ws_ping_s > 0) {
        /* idle WebSockets get an RFC 6455 ping, and are dropped when nothing comes back */
        srv->retry.secs_since_valid_ping = (uint16_t)cfg->ws_ping_s;
        srv->retry.secs_since_valid_hangup = (uint16_t)(3 * cfg->ws_ping_s);
        info.retry_and_idle_policy = &srv->retry;
    }
    info.vhost_name = "inferneo";
    inf__guard_set_hook(guard_violation, srv);
    lws_quiet = true;
    srv->ctx = lws_create_context(&info);
    lws_quiet = false;
    if (!srv->ctx) {
        rc = inf__err(INF_EIO, "cannot listen on %s:%d (address in use or not available)",
                      srv->host, cfg->port);
        goto fail;
    }
    srv->vhost = lws_get_vhost_by_name(srv->ctx, "inferneo");
    srv->port = srv->vhost ? lws_get_vhost_listen_port(srv->vhost) : cfg->port;
    if (srv->port <= 0) {
        rc = inf__err(INF_EIO, "cannot listen on %s:%d", srv->host, cfg->port);
        goto fail;
    }
    if (inf__prep_start(srv) < 0) {
        rc = inf__err(INF_EINTERNAL, "server: cannot start the prep thread");
        goto fail;
    }
    if (pthread_create(&srv->loader, NULL, loader_main, srv) != 0) {
        rc = inf__err(INF_EINTERNAL, "server: cannot start the loader thread");
        goto fail;
    }
    srv->loader_started = true;
    inf__log(INF_LOG_INFO, "loading %s (port %d open; /health answers 503 until ready)",
             srv->cfg.model_path, srv->port);
    *out = srv;
    return 0;
fail:
    inf_server_destroy(srv);
    return rc;
}

int inf_server_run(inf_server *srv) {
    if (!srv || !srv->ctx) return INF_EINVAL;
    while (!srv->exit_loop)
        if (lws_service(srv->ctx, 0) < 0) break;
    if (srv->shutting_down) inf__log(INF_LOG_INFO, "stopped");
    return srv->exit_code;
}

void inf_server_stop(inf_server *srv) {
    if (!srv) return;
    atomic_store(&srv->stop_requested, 1);
    if (srv->ctx) lws_cancel_service(srv->ctx);
}

void inf_server_destroy(inf_server *srv) {
    if (!srv) return;
    if (srv->loader_started) pthread_join(srv->loader, NULL);
    inf__prep_stop(srv); /* before the context: it wakes the loop through it */
    if (srv->ticker_started) {
        atomic_store(&srv->ticker_stop, 1);
        pthread_join(srv->ticker, NULL);
    }
    if (srv->ctx) {
        lws_context_destroy(srv->ctx); /* closes connections: their calls are cancelled */
        srv->ctx = NULL;
    }
    if (srv->engine) inf_engine_destroy(srv->engine);
    srv->engine = NULL;
    inf__calls_free_all(srv);
    inf__hmap_free(&srv->idmap);
    inf__pieces_free(&srv->pieces);
    if (srv->model) inf_model_free(srv->model);
    inf__metrics_free(srv->metrics);
    inf__ratelimit_free(srv->rl);
    free_list(srv->names, srv->n_names);
    free_list(srv->keys, srv->n_keys);
    free_list(srv->origins, srv->n_origins);
    free((char *)srv->cfg.model_path);
    free(srv);
}
