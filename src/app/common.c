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
