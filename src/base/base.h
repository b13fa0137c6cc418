/*
 * base.h — L0 utilities shared by every layer: errors, logging, allocation with overflow checks,
 * time, cpu features, string buffer, thread helpers.
 */
#ifndef INF_BASE_H
#define INF_BASE_H

#include "inferneo.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INF_MIN(a, b) ((a) < (b) ? (a) : (b))
#define INF_MAX(a, b) ((a) > (b) ? (a) : (b))
#define INF_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Records a formatted detail for inf_last_error() and returns err (so: return inf__err(...)). */
int inf__err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current thread's last error detail with "prefix: ". Returns err. */
int inf__err_prefix(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void inf__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Asserts our own invariants (never untrusted input). Always on; aborts with file:line. */
#define INF_ASSERT(cond)                                                                          \
    do {                                                                                          \
        if (!(cond)) inf__assert_fail(#cond, __FILE__, __LINE__);                                 \
    } while (0)
_Noreturn void inf__assert_fail(const char *cond, const char *file, int line);

/* Allocation. All return NULL on failure (and on overflow of n * size). Memory from these is
 * released with inf_free()/free(). inf__aligned_alloc memory is released with free() too. */
void *inf__malloc(size_t size);
void *inf__calloc(size_t n, size_t size);
void *inf__realloc_array(void *p, size_t n, size_t size);
void *inf__aligned_alloc(size_t align, size_t size); /* size rounded up to align */
/* A large buffer streamed by the kernels (weights, bandwidth probe): 64-byte aligned; from 4 MiB
 * on, 2 MiB aligned with its whole 2 MiB pages advised to transparent huge pages (fewer TLB
 * misses on weight streams: about +10% decode speed measured). free() it. */
void *inf__alloc_stream(size_t size);
char *inf__strdup(const char *s);
char *inf__strndup(const char *s, size_t n);

/* Overflow-checked arithmetic: return true when the result overflowed. */
static inline bool inf__mul_overflow(size_t a, size_t b, size_t *out) {
    return __builtin_mul_overflow(a, b, out);
}
static inline bool inf__add_overflow(size_t a, size_t b, size_t *out) {
    return __builtin_add_overflow(a, b, out);
}

/* Monotonic time. */
uint64_t inf__time_ns(void);
double inf__time_s(void);

/* CPU features, detected once. */
typedef struct inf_cpu_features {
    bool avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16, avxvnni, amx_int8;
} inf_cpu_features;
const inf_cpu_features *inf__cpu_features(void);
int inf__n_cores(void);

/* Growable string buffer. Zero-initialise ({0}) before use; free with inf__sb_free. On allocation
 * failure the buffer sets oom and further appends are ignored. */
typedef struct inf_sb {
    char *data;
    size_t len, cap;
    bool oom;
} inf_sb;
void inf__sb_append(inf_sb *sb, const char *s, size_t n);
void inf__sb_puts(inf_sb *sb, const char *s);
void inf__sb_printf(inf_sb *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void inf__sb_putc(inf_sb *sb, char c);
void inf__sb_free(inf_sb *sb);
/* Transfers ownership of the NUL-terminated data (never NULL unless oom). */
char *inf__sb_take(inf_sb *sb);

/* UTF-8: length of the sequence started by lead byte c (1..4), or 0 for a continuation/invalid. */
int inf__utf8_len(unsigned char c);
/* Number of leading bytes of s[0..n) that form complete UTF-8 characters (an incomplete tail is
 * held back; invalid bytes count as complete single bytes). */
size_t inf__utf8_complete_prefix(const char *s, size_t n);

/* Simple reproducible PRNG (xoshiro256**). */
typedef struct inf_rng {
    uint64_t s[4];
} inf_rng;
void inf__rng_seed(inf_rng *r, uint64_t seed);
uint64_t inf__rng_next(inf_rng *r);
/* Uniform in [0, 1). */
double inf__rng_uniform(inf_rng *r);

/* FNV-1a 64-bit. */
uint64_t inf__hash64(const void *data, size_t n, uint64_t seed);

#endif
