/*
 * auth.c — API keys (constant-time comparison; keys never logged), per-key request rate limits
 * (token buckets: --rate-limit requests per minute; clients without a key are bucketed by peer
 * address), and the CORS origin allow-list.
 * Threads: I/O thread only.
 */
#include "server/internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *inf__auth_bearer(const char *value, size_t *len) {
    if (!value) return NULL;
    while (*value == ' ' || *value == '\t')
        value++;
    if (strncasecmp(value, "bearer", 6) || (value[6] != ' ' && value[6] != '\t')) return NULL;
    value += 6;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t n = strlen(value);
    while (n && (value[n - 1] == ' ' || value[n - 1] == '\t'))
        n--;
    if (!n) return NULL;
    *len = n;
    return value;
}

/* Compares without an early exit, so timing does not reveal how much of a key matched. */
static bool ct_equal(const char *a, size_t an, const char *b, size_t bn) {
    unsigned diff = (unsigned)(an != bn);
    for (size_t i = 0; i < an; i++)
        diff |= (unsigned char)a[i] ^ (unsigned char)b[i % (bn ? bn : 1)];
    return diff == 0 && bn > 0;
}

int inf__auth_check(inf_server *srv, const char *token, size_t len, int *key_index) {
    *key_index = -1;
    if (!srv->n_keys) return 1;
    if (!token) return 0;
    int found = -1;
    for (int i = 0; i < srv->n_keys; i++)
        if (ct_equal(token, len, srv->keys[i], strlen(srv->keys[i])) && found < 0) found = i;
    *key_index = found;
    return found >= 0;
}

bool inf__cors_allowed(inf_server *srv, const char *origin) {
    if (!origin || !origin[0]) return false;
    for (int i = 0; i < srv->n_origins; i++)
        if (!strcmp(srv->origins[i], "*") || !strcmp(srv->origins[i], origin)) return true;
    return false;
}

#define RL_ANON_SLOTS 1024
#define RL_MAX_KEYS 4096

typedef struct bucket {
    double tokens, last;
    bool used;
} bucket;

struct inf__ratelimit {
    double per_second, capacity;
    bucket keys[RL_MAX_KEYS];
    bucket anon[RL_ANON_SLOTS];
};

inf__ratelimit *inf__ratelimit_new(int per_minute) {
    if (per_minute <= 0) return NULL;
    inf__ratelimit *rl = inf__calloc(1, sizeof *rl);
    if (!rl) return NULL;
    rl->capacity = per_minute;
    rl->per_second = per_minute / 60.0;
    return rl;
}

void inf__ratelimit_free(inf__ratelimit *rl) {
    free(rl);
}

bool inf__ratelimit_take(inf__ratelimit *rl, int key_index, const char *peer) {
    if (!rl) return true;
    bucket *b;
    if (key_index >= 0 && key_index < RL_MAX_KEYS) {
        b = &rl->keys[key_index];
    } else {
        uint64_t h = inf__hash64(peer ? peer : "", peer ? strlen(peer) : 0, 0);
        b = &rl->anon[h % RL_ANON_SLOTS];
    }
    double now = inf__time_s();
    if (!b->used) {
        b->used = true;
        b->tokens = rl->capacity;
        b->last = now;
    }
    b->tokens += (now - b->last) * rl->per_second;
    if (b->tokens > rl->capacity) b->tokens = rl->capacity;
    b->last = now;
    if (b->tokens < 1.0) return false;
    b->tokens -= 1.0;
    return true;
}
