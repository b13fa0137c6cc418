/*
 * cmd_serve.c — `inferneo serve`: parses options into an inf_server_config, runs the server on
 * the main thread and turns SIGINT/SIGTERM into a graceful stop.
 *
 * Signals: SIGINT, SIGTERM and SIGUSR1 are blocked before any thread starts (so every thread
 * inherits the mask) and a dedicated thread takes them with sigwait(); it calls
 * inf_server_stop(), which is thread-safe. SIGUSR1 only ends that thread at exit. SIGPIPE is
 * ignored (a client that vanishes must not kill the server).
 */
#include "app.h"

#ifdef INF_HAVE_SERVER
#include "server/server.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void serve_usage(FILE *f) {
    fprintf(f, "usage: inferneo serve -m MODEL [options]\n\n"
               "  -m, --model PATH            GGUF model file (required)\n"
               "      --host ADDR             address to bind (default 127.0.0.1; 0.0.0.0: all)\n"
               "      --port N                port (default 8000; 0: any free port)\n"
               "      --served-model-name N[,ALIAS...]\n"
               "                              model id(s) reported and accepted (default: the\n"
               "                              GGUF's general.name, else the file name)\n"
               "      --api-key KEY           require Authorization: Bearer KEY (repeatable)\n"
               "      --api-key-file FILE     more keys, one per line ('#' comments)\n"
               "      --cors-origin ORIGIN    allow browser requests from ORIGIN ('*': any;\n"
               "                              repeatable)\n"
               "      --max-seqs N            sequences decoded together (default 64)\n"
               "      --max-batch-tokens N    tokens per forward step (default 512)\n"
               "      --kv-mem MiB            KV cache budget (default: engine's choice)\n"
               "  -c, --ctx-size N            per-request context (default: the model's)\n"
               "      --no-prefix-cache       do not share KV pages between requests\n"
               "      --max-body BYTES        largest request body / WebSocket message (default "
               "8 MiB)\n"
               "      --max-send-buffer BYTES output a connection may leave unread before its\n"
               "                              requests are cancelled (default 8 MiB)\n"
               "      --queue N               queued requests before 429 (default 1024)\n"
               "      --ws-max-inflight N     requests in flight per WebSocket (default 16)\n"
               "      --ws-ping-interval S    ping idle WebSockets every S seconds, drop them\n"
               "                              after 3 unanswered (default 30; 0: off)\n"
               "      --rate-limit N          requests per minute per API key (default 0: off)\n"
               "      --drain-timeout S       after SIGTERM/SIGINT, seconds running requests may\n"
               "                              finish before each is ended properly (default 10;\n"
               "                              --shutdown-grace is an alias)\n"
               "      --log-format FMT        text (default: ISO-8601 time, level, message) or\n"
               "                              json (one object per line: time, level, msg)\n"
               "  -t, --threads N             compute threads (default: number of cores)\n"
               "  -h, --help                  this help\n");
}

typedef struct strlist {
    char **v;
    int n, cap;
} strlist;

static bool push(strlist *l, const char *s, size_t n) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        char **nv = realloc(l->v, (size_t)cap * sizeof *nv);
        if (!nv) return false;
        l->v = nv;
        l->cap = cap;
    }
    char *d = malloc(n + 1);
    if (!d) return false;
    memcpy(d, s, n);
    d[n] = 0;
    l->v[l->n++] = d;
    return true;
}

static void list_free(strlist *l) {
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

static bool add_names(strlist *l, const char *csv) {
    for (const char *p = csv; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && (*p == ' '))
            p++, n--;
        while (n && p[n - 1] == ' ')
            n--;
        if (!n) {
            fprintf(stderr, "inferneo serve: empty name in --served-model-name '%s'\n", csv);
            return false;
        }
        if (!push(l, p, n)) return false;
        if (!e) break;
        p = e + 1;
    }
    return true;
}

static bool read_keys(strlist *keys, const char *path) {
    size_t len;
    char *buf = inf_app_read_file(path, &len);
    if (!buf) return false;
    bool ok = true;
    for (char *line = buf; ok && line < buf + len;) {
        char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        char *end = nl ? nl : buf + len;
        char *a = line, *b = end;
        while (a < b && (*a == ' ' || *a == '\t' || *a == '\r'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\r'))
            b--;
        if (b > a && *a != '#') ok = push(keys, a, (size_t)(b - a));
        line = end + 1;
    }
    free(buf);
    if (ok && !keys->n) fprintf(stderr, "inferneo serve: %s: no keys in the file\n", path);
    return ok && keys->n;
}

typedef struct sig_ctx {
    inf_server *srv;
    sigset_t set;
    void *log_user;
} sig_ctx;

static void *signal_main(void *arg) {
    sig_ctx *s = arg;
    for (;;) {
        int sig = 0;
        if (sigwait(&s->set, &sig) != 0) continue;
        if (sig == SIGUSR1) return NULL;
        inf_app_log_serve(INF_LOG_INFO, sig == SIGINT ? "SIGINT received: stopping"
                                                      : "SIGTERM received: stopping", s->log_user);
        inf_server_stop(s->srv);
    }
}

int inf_cmd_serve(int argc, char **argv) {
    inf_server_config cfg;
    inf_server_config_default(&cfg);
    strlist names = {0}, keys = {0}, origins = {0};
    static inf_app_log_format log_format = INF_APP_LOG_TEXT;
    int status = 2;
    int64_t v;
    float f;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            serve_usage(stdout);
            status = 0;
            goto done;
        }
        if (!strcmp(a, "--no-prefix-cache")) {
            cfg.engine.prefix_cache = false;
            continue;
        }
        if (i + 1 >= argc || a[0] != '-') {
            fprintf(stderr, "inferneo serve: option %s needs a value (or is unknown)\n", a);
            serve_usage(stderr);
            goto done;
        }
        const char *val = argv[++i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            cfg.model_path = val;
        } else if (!strcmp(a, "--host")) {
            cfg.host = val;
        } else if (!strcmp(a, "--port")) {
            if (!inf_app_parse_i64(a, val, 0, 65535, &v)) goto done;
            cfg.port = (int)v;
        } else if (!strcmp(a, "--served-model-name")) {
            if (!add_names(&names, val)) goto done;
        } else if (!strcmp(a, "--api-key")) {
            if (!val[0]) {
                fprintf(stderr, "inferneo serve: --api-key must not be empty\n");
                goto done;
            }
            if (!push(&keys, val, strlen(val))) goto done;
        } else if (!strcmp(a, "--api-key-file")) {
            if (!read_keys(&keys, val)) goto done;
        } else if (!strcmp(a, "--cors-origin")) {
            if (!push(&origins, val, strlen(val))) goto done;
        } else if (!strcmp(a, "--max-seqs")) {
            if (!inf_app_parse_i64(a, val, 1, 4096, &v)) goto done;
            cfg.engine.max_seqs = (int32_t)v;
        } else if (!strcmp(a, "--max-batch-tokens")) {
            if (!inf_app_parse_i64(a, val, 1, 1 << 20, &v)) goto done;
            cfg.engine.max_batch_tokens = (int32_t)v;
        } else if (!strcmp(a, "--kv-mem")) {
            if (!inf_app_parse_i64(a, val, 1, (int64_t)1 << 30, &v)) goto done;
            cfg.engine.kv_mem_bytes = (size_t)v << 20;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (!inf_app_parse_i64(a, val, 0, (int64_t)1 << 24, &v)) goto done;
            cfg.engine.n_ctx = v;
        } else if (!strcmp(a, "--max-body")) {
            if (!inf_app_parse_i64(a, val, 1024, (int64_t)1 << 32, &v)) goto done;
            cfg.max_body = (size_t)v;
        } else if (!strcmp(a, "--max-send-buffer")) {
            if (!inf_app_parse_i64(a, val, 65536, (int64_t)1 << 32, &v)) goto done;
            cfg.max_send_buffer = (size_t)v;
        } else if (!strcmp(a, "--queue")) {
            if (!inf_app_parse_i64(a, val, 1, 1 << 24, &v)) goto done;
            cfg.engine.max_queue = (int32_t)v;
        } else if (!strcmp(a, "--ws-max-inflight")) {
            if (!inf_app_parse_i64(a, val, 1, 1 << 16, &v)) goto done;
            cfg.ws_max_inflight = (int32_t)v;
        } else if (!strcmp(a, "--ws-ping-interval")) {
            if (!inf_app_parse_i64(a, val, 0, 3600, &v)) goto done;
            cfg.ws_ping_s = (int32_t)v;
        } else if (!strcmp(a, "--rate-limit")) {
            if (!inf_app_parse_i64(a, val, 0, 1 << 24, &v)) goto done;
            cfg.rate_limit = (int32_t)v;
        } else if (!strcmp(a, "--drain-timeout") || !strcmp(a, "--shutdown-grace")) {
            if (!inf_app_parse_f32(a, val, &f) || f < 0 || f > 3600) {
                fprintf(stderr, "inferneo serve: %s must be in [0, 3600]\n", a);
                goto done;
            }
            cfg.shutdown_grace_s = f;
        } else if (!strcmp(a, "--log-format")) {
            if (strcmp(val, "text") && strcmp(val, "json")) {
                fprintf(stderr, "inferneo serve: --log-format must be text or json\n");
                goto done;
            }
            log_format = !strcmp(val, "json") ? INF_APP_LOG_JSON : INF_APP_LOG_TEXT;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!inf_app_parse_i64(a, val, 1, 1024, &v)) goto done;
            cfg.model.n_threads = (int)v;
        } else {
            fprintf(stderr, "inferneo serve: unknown option '%s'\n", a);
            serve_usage(stderr);
            goto done;
        }
    }
    if (!cfg.model_path) {
        fprintf(stderr, "inferneo serve: -m MODEL is required\n");
        serve_usage(stderr);
        goto done;
    }
    cfg.served_names = (const char *const *)names.v;
    cfg.n_served_names = names.n;
    cfg.api_keys = (const char *const *)keys.v;
    cfg.n_api_keys = keys.n;
    cfg.cors_origins = (const char *const *)origins.v;
    cfg.n_cors_origins = origins.n;

    inf_set_log(inf_app_log_serve, &log_format);
    if (inf_app_progress_wanted()) {
        cfg.model.progress = inf_app_progress;
        cfg.model.progress_user = "loading model";
    }
    signal(SIGPIPE, SIG_IGN);
    sig_ctx sc = {.log_user = &log_format};
    sigemptyset(&sc.set);
    sigaddset(&sc.set, SIGINT);
    sigaddset(&sc.set, SIGTERM);
    sigaddset(&sc.set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sc.set, NULL);

    inf_server *srv = NULL;
    int rc = inf_server_create(&cfg, &srv);
    if (rc < 0) {
        /* one sentence: what failed and why (no error-class prefix) */
        const char *why = inf_last_error();
        fprintf(stderr, "inferneo: %s\n", why && why[0] ? why : inf_strerror(rc));
        status = 1;
        goto done;
    }
    sc.srv = srv;
    pthread_t sig_thread;
    bool have_sig = pthread_create(&sig_thread, NULL, signal_main, &sc) == 0;
    rc = inf_server_run(srv);
    if (have_sig) {
        pthread_kill(sig_thread, SIGUSR1);
        pthread_join(sig_thread, NULL);
    }
    inf_server_destroy(srv);
    status = rc < 0 ? 1 : 0;
done:
    list_free(&names);
    list_free(&keys);
    list_free(&origins);
    return status;
}

#else
#include <stdio.h>
int inf_cmd_serve(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "inferneo: built without the server (libwebsockets/jansson missing)\n");
    return 2;
}
#endif
