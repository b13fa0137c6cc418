/*
 * server.h — the HTTP/SSE + WebSocket server behind `inferneo serve` (L4). The app fills a
 * config, creates the server (which binds the port at once and loads the model in the
 * background: /health answers 503 until it is ready), runs it on the calling thread until
 * inf_server_stop(), then destroys it.
 */
#ifndef INF_SERVER_H
#define INF_SERVER_H

#include "inferneo.h"

typedef struct inf_server_config {
    const char *model_path;
    const char *host;                /* address to bind ("127.0.0.1"; "0.0.0.0": all) */
    int port;                        /* 0: any free port */
    const char *const *served_names; /* [0] is reported as the model id; the rest are aliases.
                                      * None: general.name of the GGUF, else its file stem */
    int n_served_names;
    const char *const *api_keys; /* none: no authentication */
    int n_api_keys;
    const char *const *cors_origins; /* allowed browser origins ("*": any); none: no CORS */
    int n_cors_origins;
    size_t max_body;         /* HTTP request body / WebSocket message bytes */
    int32_t max_choices;     /* engine requests one API request may make (n × prompts) */
    int32_t ws_max_inflight; /* requests in flight per WebSocket */
    int32_t ws_ping_s;       /* idle WebSockets get a protocol ping after this many seconds and
                              * are dropped 3 intervals without an answer; 0: never */
    int32_t rate_limit;      /* requests per minute per API key (or client); 0: off */
    size_t max_send_buffer;  /* output a connection may have pending before its
                              * requests are cancelled as a too-slow reader */
    double shutdown_grace_s; /* how long running requests may finish after stop */
    inf_model_params model;
    inf_engine_params engine; /* on_event is set by the server */
} inf_server_config;

/* Defaults: 127.0.0.1:8000, 8 MiB bodies, 128 choices, 16 in flight per socket, 30 s WebSocket
 * ping, no rate limit, 8 MiB send buffer, 5 s grace, library defaults for model and engine. */
void inf_server_config_default(inf_server_config *cfg);

typedef struct inf_server inf_server;

/* Validates cfg (copied), binds the listening socket and starts loading the model in a
 * background thread. *out: free with inf_server_destroy(). */
int inf_server_create(const inf_server_config *cfg, inf_server **out);
/* Serves until inf_server_stop() (then lets running requests finish for up to the grace time)
 * or until the model fails to load. Returns 0, or the load error. Call once. */
int inf_server_run(inf_server *srv);
/* Thread-safe (not async-signal-safe: call it from a signal-handling thread). */
void inf_server_stop(inf_server *srv);
void inf_server_destroy(inf_server *srv);

#endif
