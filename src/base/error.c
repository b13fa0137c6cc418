/*
 * error.c — error table, thread-local error detail and the log sink.
 * Threads: the detail buffer is thread-local; the log sink is set once at start.
 */
#include "base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_error[1024];
static inf_log_fn log_fn;
static void *log_user;

const char *inf_strerror(int err) {
    switch (err) {
#define INF_X_CASE(name, value, text)                                                             \
    case value: return text;
        INF_ERROR_TABLE(INF_X_CASE)
#undef INF_X_CASE
    }
    return err > 0 ? "retry later" : "unknown error";
}

const char *inf_error_name(int err) {
    switch (err) {
#define INF_X_CASE(name, value, text)                                                             \
    case value: return #name;
        INF_ERROR_TABLE(INF_X_CASE)
#undef INF_X_CASE
    }
    return "INF_EUNKNOWN";
}

const char *inf_last_error(void) { return last_error; }

int inf__err(int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return err;
}

int inf__err_prefix(int err, const char *fmt, ...) {
    char prefix[512], old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    snprintf(last_error, sizeof last_error, "%.500s: %.520s", prefix,
             old[0] ? old : inf_strerror(err));
    return err;
}

void inf_set_log(inf_log_fn fn, void *user) {
    log_fn = fn;
    log_user = user;
}

void inf__log(int level, const char *fmt, ...) {
    if (!log_fn) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_fn(level, msg, log_user);
}

void inf__assert_fail(const char *cond, const char *file, int line) {
    fprintf(stderr, "inferneo: internal assertion failed: %s (%s:%d)\n", cond, file, line);
    abort();
}
