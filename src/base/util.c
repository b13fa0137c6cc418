/*
 * util.c — allocation helpers, time, cpu features, string buffer, PRNG, hashing (UTF-8 is in
 * utf8.c, the hash map in hmap.c).
 * Threads: all functions are thread-safe (cpu feature detection is idempotent).
 */
#define _GNU_SOURCE
#include "base.h"

#include <cpuid.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

void inf_free(void *p) { free(p); }

void *inf__malloc(size_t size) { return malloc(size ? size : 1); }

void *inf__calloc(size_t n, size_t size) {
    size_t total;
    if (inf__mul_overflow(n, size, &total)) return NULL;
    return calloc(total ? total : 1, 1);
}

void *inf__realloc_array(void *p, size_t n, size_t size) {
    size_t total;
    if (inf__mul_overflow(n, size, &total)) return NULL;
    return realloc(p, total ? total : 1);
}

void *inf__aligned_alloc(size_t align, size_t size) {
    size_t rounded;
    if (inf__add_overflow(size, align - 1, &rounded)) return NULL;
    rounded &= ~(align - 1);
    return aligned_alloc(align, rounded ? rounded : align);
}

void *inf__alloc_stream(size_t size) {
    const size_t huge = (size_t)2 << 20;
    if (size < 2 * huge) return inf__aligned_alloc(64, size);
    void *p = NULL;
    if (posix_memalign(&p, huge, size) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    /* whole huge pages only: the tail keeps small pages, so nothing past size becomes resident */
    (void)madvise(p, size & ~(huge - 1), MADV_HUGEPAGE);
#endif
    return p;
}

char *inf__strdup(const char *s) { return s ? inf__strndup(s, strlen(s)) : NULL; }

char *inf__strndup(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

uint64_t inf__time_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double inf__time_s(void) { return (double)inf__time_ns() * 1e-9; }

static inf_cpu_features cpu;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

static void cpu_detect(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    bool osxsave = (c >> 27) & 1;
    cpu.fma = (c >> 12) & 1;
    cpu.f16c = (c >> 29) & 1;
    if (!osxsave) return;
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    bool ymm = (xcr0_lo & 6) == 6, zmm = (xcr0_lo & 0xe6) == 0xe6;
    bool amx = (xcr0_lo & (3u << 17)) == (3u << 17);
    if (__get_cpuid_max(0, NULL) < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    cpu.avx2 = ymm && ((b >> 5) & 1);
    cpu.avx512f = zmm && ((b >> 16) & 1);
    cpu.avx512bw = zmm && ((b >> 30) & 1);
    cpu.avx512vl = zmm && ((b >> 31) & 1);
    cpu.avx512vnni = zmm && ((c >> 11) & 1);
    cpu.amx_int8 = amx && ((d >> 25) & 1);
    __cpuid_count(7, 1, a, b, c, d);
    cpu.avxvnni = ymm && ((a >> 4) & 1);
    cpu.avx512bf16 = zmm && ((a >> 5) & 1);
}

const inf_cpu_features *inf__cpu_features(void) {
    pthread_once(&cpu_once, cpu_detect);
    return &cpu;
}

int inf__n_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void inf__sb_append(inf_sb *sb, const char *s, size_t n) {
    if (sb->oom) return;
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 64;
        while (cap < sb->len + n + 1) {
            if (cap > SIZE_MAX / 2) {
                sb->oom = true;
                return;
            }
            cap *= 2;
        }
        char *d = realloc(sb->data, cap);
        if (!d) {
            sb->oom = true;
            return;
        }
        sb->data = d;
        sb->cap = cap;
    }
    if (n) memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = 0;
}

void inf__sb_puts(inf_sb *sb, const char *s) { inf__sb_append(sb, s, strlen(s)); }
void inf__sb_putc(inf_sb *sb, char c) { inf__sb_append(sb, &c, 1); }

void inf__sb_printf(inf_sb *sb, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        inf__sb_append(sb, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        sb->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    inf__sb_append(sb, big, (size_t)n);
    free(big);
}

void inf__sb_free(inf_sb *sb) {
    free(sb->data);
    memset(sb, 0, sizeof *sb);
}

char *inf__sb_take(inf_sb *sb) {
    if (sb->oom) {
        inf__sb_free(sb);
        return NULL;
    }
    if (!sb->data) inf__sb_append(sb, "", 0);
    char *d = sb->data;
    memset(sb, 0, sizeof *sb);
    return d;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void inf__rng_seed(inf_rng *r, uint64_t seed) {
    /* splitmix64 to fill the state */
    for (int i = 0; i < 4; i++) {
        uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        r->s[i] = z ^ (z >> 31);
    }
}

uint64_t inf__rng_next(inf_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double inf__rng_uniform(inf_rng *r) { return (double)(inf__rng_next(r) >> 11) * 0x1.0p-53; }

uint64_t inf__hash64(const void *data, size_t n, uint64_t seed) {
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
