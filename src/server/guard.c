/*
 * guard.c — a byte-level check of what clients send, in front of libwebsockets' own parser.
 *
 * libwebsockets 4.1 (Debian bookworm) has two gaps that no callback reaches:
 *   - it accepts WebSocket frames from a client that are not masked (RFC 6455 §5.1 says the
 *     server must close the connection, with 1002), and never tells which frames were masked;
 *   - a request line with a method it does not know (TRACE, FOO, …) gets its own "403
 *     Forbidden" before any callback runs.
 * So the server watches the bytes itself: lws reads every socket with recv(), and this file
 * defines recv() (the executable's definition takes precedence over libc's for the calls made
 * from libwebsockets.so), passes each call on to the kernel (recvfrom), and runs the bytes of
 * tracked connections through a small scanner:
 *   1. the method of the connection's first request line (letters only, up to 16): one lws
 *      does not handle is answered by the server (405) instead of lws;
 *   2. then the end of the request headers; bytes after it are kept (up to GUARD_KEEP) until
 *      the server learns what the request was: a WebSocket upgrade (inf__guard_ws, which scans
 *      the kept bytes, since lws may have read the first frames together with the handshake)
 *      or a plain HTTP request (inf__guard_http: the connection is no longer watched; an
 *      upgrade after a keep-alive request is not checked);
 *   3. on a WebSocket: every frame header; a client frame without the mask bit is a violation.
 * On a violation recv() hands the bytes before it to nobody, calls the server's hook (which
 * writes the answer: 405 response or close frame 1002 straight to the socket) and reports end
 * of stream, so lws closes the connection as if the client had gone.
 * Calls with MSG_PEEK, on untracked sockets or from other threads than the one that tracks
 * (the lws service thread) pass through untouched. inf__guard_feed is pure and unit-tested.
 * Threads: the I/O thread; other threads only pass through.
 */
#include "server/internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define GUARD_KEEP 16384

/* ---- the scanner -------------------------------------------------------------------------- */

static bool known_method(const char *m, int n) {
    static const char *const known[] = {"GET",    "POST",    "HEAD",  "PUT",
                                        "DELETE", "OPTIONS", "PATCH", "CONNECT"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if ((int)strlen(known[i]) == n && !strncasecmp(known[i], m, (size_t)n)) return true;
    return false;
}

static bool is_alpha(uint8_t b) {
    return (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z');
}

/* One byte of the request line / headers. Returns a verdict, or -1 to stop watching. */
static int scan_http_byte(inf__guard_scan *s, uint8_t b) {
    if (s->mode == INF__GUARD_METHOD) {
        if (s->n_method == 0 && (b == '\r' || b == '\n')) return 0; /* leading empty lines */
        if (is_alpha(b) && s->n_method < (int)sizeof s->method) {
            s->method[s->n_method++] = (char)b;
            return 0;
        }
        if (b == ' ' && s->n_method > 0) {
            if (!known_method(s->method, s->n_method)) return INF__GUARD_BAD_METHOD;
            s->mode = INF__GUARD_HEADERS;
            return 0;
        }
        return -1; /* not a request line this scanner understands: lws answers it */
    }
    /* INF__GUARD_HEADERS: find CR LF CR LF (or LF LF) */
    s->tail = (s->tail << 8) | b;
    if ((s->tail & 0xffffffffu) == 0x0d0a0d0au || (s->tail & 0xffffu) == 0x0a0au)
        s->mode = INF__GUARD_BODY;
    return 0;
}

/* One byte of the client's WebSocket frames. */
static int scan_ws_byte(inf__guard_scan *s, uint8_t b) {
    switch (s->ws_state) {
    case 0: s->ws_state = 1; return 0; /* FIN, RSV, opcode: lws checks them */
    case 1:
        if (!(b & 0x80)) return INF__GUARD_UNMASKED;
        s->remaining = b & 0x7f;
        s->n_len = s->remaining == 126 ? 2 : s->remaining == 127 ? 8 : 0;
        if (s->n_len) s->remaining = 0;
        s->ws_state = s->n_len ? 2 : 3;
        s->n_key = 4;
        return 0;
    case 2:
        s->remaining = (s->remaining << 8) | b;
        if (--s->n_len == 0) s->ws_state = 3;
        return 0;
    case 3:
        if (--s->n_key == 0) s->ws_state = s->remaining ? 4 : 0;
        return 0;
    default: /* payload: skipped in whole runs by inf__guard_scan */
        if (--s->remaining == 0) s->ws_state = 0;
        return 0;
    }
}

int inf__guard_feed(inf__guard_scan *s, const uint8_t *p, size_t n, size_t *used) {
    size_t i = 0;
    while (i < n) {
        int v = 0;
        switch (s->mode) {
        case INF__GUARD_METHOD:
        case INF__GUARD_HEADERS: v = scan_http_byte(s, p[i++]); break;
        case INF__GUARD_BODY: /* kept by the caller until the request's kind is known */
            *used = i;
            return 0;
        case INF__GUARD_WS:
            if (s->ws_state == 4) {
                uint64_t run = s->remaining < (uint64_t)(n - i) ? s->remaining : (uint64_t)(n - i);
                i += (size_t)run;
                s->remaining -= run;
                if (!s->remaining) s->ws_state = 0;
                continue;
            }
            v = scan_ws_byte(s, p[i++]);
            break;
        default: *used = n; return 0;
        }
        if (v < 0) {
            s->mode = INF__GUARD_OFF;
            *used = n;
            return 0;
        }
        if (v > 0) {
            *used = i - 1;
            s->mode = INF__GUARD_OFF;
            return v;
        }
    }
    *used = n;
    return 0;
}

/* ---- per-socket state and the recv() interposer -------------------------------------------- */

typedef struct {
    bool tracked;
    struct lws *wsi;
    inf__guard_scan scan;
    uint8_t *kept; /* bytes after the request headers, until inf__guard_ws / _http */
    size_t n_kept;
} guard_fd;

static guard_fd *tab;
static int n_tab;
static pthread_t io_thread;
static bool io_thread_set;
static void (*hook)(void *ctx, struct lws *wsi, int verdict, const char *method);
static void *hook_ctx;

void inf__guard_set_hook(void (*fn)(void *ctx, struct lws *wsi, int verdict, const char *method),
                         void *ctx) {
    hook = fn;
    hook_ctx = ctx;
}

static guard_fd *slot(int fd, bool grow) {
    if (fd < 0 || fd > (1 << 22)) return NULL;
    if (fd >= n_tab) {
        if (!grow) return NULL;
        int n = n_tab ? n_tab : 256;
        while (n <= fd)
            n *= 2;
        guard_fd *t = realloc(tab, (size_t)n * sizeof *t);
        if (!t) return NULL;
        memset(t + n_tab, 0, (size_t)(n - n_tab) * sizeof *t);
        tab = t;
        n_tab = n;
    }
    return &tab[fd];
}

static void untrack(guard_fd *g) {
    free(g->kept);
    memset(g, 0, sizeof *g);
}

void inf__guard_track(struct lws *wsi) {
    io_thread = pthread_self();
    io_thread_set = true;
    guard_fd *g = slot((int)lws_get_socket_fd(wsi), true);
    if (!g) return;
    untrack(g);
    g->tracked = true;
    g->wsi = wsi;
}

void inf__guard_http(struct lws *wsi) {
    guard_fd *g = slot((int)lws_get_socket_fd(wsi), false);
    if (g && g->wsi == wsi) untrack(g);
}

void inf__guard_forget(struct lws *wsi) {
    for (int fd = 0; fd < n_tab; fd++) /* the socket may already be closed: look by wsi */
        if (tab[fd].wsi == wsi) untrack(&tab[fd]);
}

int inf__guard_ws(struct lws *wsi) {
    guard_fd *g = slot((int)lws_get_socket_fd(wsi), false);
    if (!g || !g->tracked || g->wsi != wsi || g->scan.mode != INF__GUARD_BODY) return 0;
    g->scan.mode = INF__GUARD_WS;
    g->scan.ws_state = 0;
    size_t used = 0;
    int v = inf__guard_feed(&g->scan, g->kept, g->n_kept, &used);
    free(g->kept);
    g->kept = NULL;
    g->n_kept = 0;
    if (v) untrack(g);
    return v;
}

/* Runs fresh bytes of a tracked socket through the scanner; returns a verdict. */
static int inspect(guard_fd *g, const uint8_t *p, size_t n) {
    size_t off = 0;
    while (off < n && g->tracked) {
        size_t used = 0;
        int v = inf__guard_feed(&g->scan, p + off, n - off, &used);
        if (v) return v;
        off += used;
        if (g->scan.mode == INF__GUARD_OFF) {
            untrack(g);
            break;
        }
        if (g->scan.mode == INF__GUARD_BODY && off < n) {
            size_t take = n - off;
            if (g->n_kept + take > GUARD_KEEP) { /* a request body, not frames: stop */
                untrack(g);
                break;
            }
            uint8_t *k = realloc(g->kept, g->n_kept + take);
            if (!k) {
                untrack(g);
                break;
            }
            memcpy(k + g->n_kept, p + off, take);
            g->kept = k;
            g->n_kept += take;
            off = n;
        }
    }
    return 0;
}

ssize_t recv(int fd, void *buf, size_t len, int flags) {
    ssize_t n = recvfrom(fd, buf, len, flags, NULL, NULL);
    if (n <= 0 || (flags & MSG_PEEK) || !io_thread_set || !pthread_equal(pthread_self(), io_thread))
        return n;
    guard_fd *g = slot(fd, false);
    if (!g || !g->tracked) return n;
    int v = inspect(g, buf, (size_t)n);
    if (!v) return n;
    struct lws *wsi = g->wsi;
    char method[sizeof g->scan.method + 1];
    memcpy(method, g->scan.method, (size_t)g->scan.n_method);
    method[g->scan.n_method] = 0;
    untrack(g);
    if (hook) hook(hook_ctx, wsi, v, method);
    return 0; /* lws closes the connection as at the client's end of stream */
}
