/*
 * base.h — L0 utilities shared by every layer: errors, logging, allocation with overflow checks,
 * time, cpu features, string buffer, UTF-8 validity, hash map, PRNG.
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

/* ---- UTF-8 (utf8.c): the tree's one validity rule ------------------------------------------
 * Well-formed means Unicode's Table 3-7: no overlong forms, no surrogates, nothing above
 * U+10FFFF. Invalid input is repaired the one way browsers (WHATWG) and Unicode's "best
 * practice" do it: each maximal subpart of an ill-formed sequence becomes one U+FFFD. */
#define INF_UTF8_REPLACEMENT "\xef\xbf\xbd"
/* Length of the sequence a lead byte announces (1..4), 0 for a continuation or 0xF8..0xFF byte.
 * Says nothing about validity: for stepping through text already known to be well-formed. */
int inf__utf8_len(unsigned char c);
/* The character at s[0..n), n > 0: > 0 its length when well-formed; 0 when s[0..n) is a proper
 * prefix of a well-formed character (more bytes could complete it); < 0 when ill-formed: -ret
 * bytes (1..3) form a maximal subpart, to be replaced by one U+FFFD. */
int inf__utf8_seq(const char *s, size_t n);
/* Whether s[0..n) is well-formed UTF-8. */
bool inf__utf8_valid(const char *s, size_t n);
/* Appends s[0..n) to sb with the rule above applied. held NULL: an incomplete character at the
 * end becomes one U+FFFD too; held non-NULL: it is left out and *held gets its length (0..3),
 * for a stream to prepend to the next bytes. Returns the number of U+FFFD written. */
size_t inf__utf8_sanitize(inf_sb *sb, const char *s, size_t n, size_t *held);
/* Writes the UTF-8 form of cp (< 0x200000; no validity check, callers range-check code points
 * from input) to out, returns its length 1..4. */
size_t inf__utf8_put(uint32_t cp, char out[4]);
/* Number of leading bytes of s[0..n) that can be released to a stream: all of them except an
 * incomplete character at the end (ill-formed bytes count as complete; they never complete). */
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

/* ---- hash map (hmap.c) ----------------------------------------------------------------------
 * Open addressing from uint64_t keys to uint64_t values (store an index, an id or a pointer cast
 * through uintptr_t). Zero-initialise ({0}) or inf__hmap_init; free with inf__hmap_free.
 * Exact keys (ids): inf__hmap_put / get / del. Keys that are not integers (byte strings, token
 * runs): use a 64-bit hash of the key as the map key, keep the real keys in the caller's arrays,
 * insert with inf__hmap_add (hashes may collide, so one map key may hold several values) and walk
 * the candidates with inf__hmap_next, comparing the real key of each. Entry addresses are not
 * stable: any insert may rehash and any delete may move other entries. */
typedef struct inf_hmap_slot {
    uint64_t key, val;
} inf_hmap_slot;
typedef struct inf_hmap {
    inf_hmap_slot *slot; /* [cap] */
    uint8_t *used;       /* [cap] 1 when the slot holds an entry */
    size_t cap, n;       /* cap: 0 or a power of two; n <= cap / 2 */
} inf_hmap;
/* Starts an empty map with room for reserve entries: no allocation happens until it holds more.
 * INF_ENOMEM / INF_ERANGE on failure (the map is then empty and valid). */
int inf__hmap_init(inf_hmap *m, size_t reserve);
void inf__hmap_free(inf_hmap *m);
/* Sets key's value (replacing the first entry under key). 1 inserted, 0 replaced, < 0 error
 * (INF_ENOMEM; the map is unchanged). */
int inf__hmap_put(inf_hmap *m, uint64_t key, uint64_t val);
/* Inserts a further entry under key even when the key is present (hashed keys). 0 or < 0. */
int inf__hmap_add(inf_hmap *m, uint64_t key, uint64_t val);
/* First value under key into *val (may be NULL); false when absent. */
bool inf__hmap_get(const inf_hmap *m, uint64_t key, uint64_t *val);
/* Each value under key in turn: start with *it = 0; returns false after the last one. The map
 * must not change during the walk. */
bool inf__hmap_next(const inf_hmap *m, uint64_t key, size_t *it, uint64_t *val);
/* Every entry in slot order (any order): start with *it = 0; key / val may be NULL. */
bool inf__hmap_each(const inf_hmap *m, size_t *it, uint64_t *key, uint64_t *val);
/* Removes the first entry under key / the entry (key, val). False when there was none. */
bool inf__hmap_del(inf_hmap *m, uint64_t key);
bool inf__hmap_del_entry(inf_hmap *m, uint64_t key, uint64_t val);

#endif
