/*
 * common.c — helpers shared by the subcommands: error printing, logging, file reading and strict
 * option parsing.
 */
#include "app.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

void inf_app_fail(const char *what, int err) {
    const char *detail = inf_last_error();
    if (detail && detail[0])
        fprintf(stderr, "inferneo: %s: %s: %s\n", what, inf_strerror(err), detail);
    else
        fprintf(stderr, "inferneo: %s: %s\n", what, inf_strerror(err));
}

void inf_app_log_stderr(int level, const char *msg, void *user) {
    (void)user;
    /* Info lines ("listening on http://HOST:PORT", request lines) are printed as they are, so
     * scripts can match them; other levels carry their name. */
    if (level == INF_LOG_INFO) {
        fprintf(stderr, "%s\n", msg);
        return;
    }
    static const char *names[] = {"debug", "info", "warn", "error"};
    fprintf(stderr, "[%s] %s\n", names[level < 0 || level > 3 ? 1 : level], msg);
}

/* "2026-12-02T21:55:32.123Z" (UTC, milliseconds) */
static void iso_now(char out[32]) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

void inf_app_log_serve(int level, const char *msg, void *user) {
    const inf_app_log_format *fmt = user;
    static const char *names[] = {"debug", "info", "warn", "error"};
    const char *name = names[level < 0 || level > 3 ? 1 : level];
    char ts[32];
    iso_now(ts);
    if (fmt && *fmt == INF_APP_LOG_JSON) {
        /* one JSON object per line: {"time", "level", "msg"}; msg escaped per RFC 8259 */
        char line[4096];
        size_t n = (size_t)snprintf(line, sizeof line, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"",
                                    ts, name);
        for (const unsigned char *p = (const unsigned char *)msg; *p && n + 8 < sizeof line; p++) {
            if (*p == '"' || *p == '\\') {
                line[n++] = '\\';
                line[n++] = (char)*p;
            } else if (*p < 0x20 || *p == 0x7f) {
                n += (size_t)snprintf(line + n, sizeof line - n, "\\u%04x", *p);
            } else {
                line[n++] = (char)*p;
            }
        }
        line[n] = 0;
        fprintf(stderr, "%s\"}\n", line);
        return;
    }
    fprintf(stderr, "%s %-5s %s\n", ts, name, msg);
}

void inf_app_progress(float done, void *user) {
    const char *what = user ? user : "loading";
    static int last = -1;
    int pct = done >= 1.0f ? 100 : done <= 0.0f ? 0 : (int)(done * 100.0f);
    if (pct == last) return;
    last = pct;
    char bar[31];
    int fill = pct * 30 / 100;
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    fprintf(stderr, "\r%s [%s] %3d%%%s", what, bar, pct, pct == 100 ? "\n" : "");
    if (pct == 100) last = -1;
}

bool inf_app_progress_wanted(void) {
    return isatty(STDERR_FILENO) && getenv("TERM") && strcmp(getenv("TERM"), "dumb");
}

char *inf_app_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "inferneo: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        if (cap >= INF_APP_MAX_FILE) {
            /* Endless or huge inputs (/dev/zero, a pipe that never ends) stay bounded. */
            free(buf);
            fclose(f);
            fprintf(stderr, "inferneo: %s: larger than %d MiB\n", path, INF_APP_MAX_FILE >> 20);
            return NULL;
        }
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
        }
        buf = nb;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf || err) {
        free(buf);
        fprintf(stderr, "inferneo: %s: read failed\n", path);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

bool inf_app_parse_i64(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "inferneo: %s: expected an integer in [%lld, %lld], got '%s'\n", opt,
                (long long)lo, (long long)hi, s ? s : "");
        return false;
    }
    *out = v;
    return true;
}

bool inf_app_parse_f32(const char *opt, const char *s, float *out) {
    char *end;
    errno = 0;
    float v = s ? strtof(s, &end) : 0;
    if (!s || !*s || *end || errno || !isfinite(v)) {
        fprintf(stderr, "inferneo: %s: expected a number, got '%s'\n", opt, s ? s : "");
        return false;
    }
    *out = v;
    return true;
}
