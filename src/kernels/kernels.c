/*
 * kernels.c — ISA dispatch: picks the best kernel set once (cpuid, or INFERNEO_ISA=ref|avx2|
 * avx512) and builds the dispatched trait table: a copy of the reference table with vec_dot,
 * activation quantizers and some to_float entries replaced by that ISA's versions.
 *
 * Invariants: the table and the ISA never change after the first successful init, so kernels
 * chosen for one matmul are the kernels for every matmul (the determinism contract needs that).
 * Threads: init runs once under pthread_once; everything else reads constant data.
 */
#define _GNU_SOURCE
#include "kernels/kernels.h"
#include "kernels/x86/x86.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <strings.h>

static inf_type_traits table[INF_TYPE_COUNT];
static int cur_isa = INF_ISA_REF;
static int init_rc;
static char init_msg[256];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static bool cpu_has_avx2(void) {
    const inf_cpu_features *f = inf__cpu_features();
    return f->avx2 && f->fma && f->f16c;
}

static bool cpu_has_avx512(void) {
    const inf_cpu_features *f = inf__cpu_features();
#if defined(__x86_64__) || defined(__i386__)
    /* avx512dq is not in inf_cpu_features; the avx512 files are built with -mavx512dq. */
    __builtin_cpu_init();
    bool dq = __builtin_cpu_supports("avx512dq");
#else
    bool dq = false;
#endif
    return cpu_has_avx2() && f->avx512f && f->avx512bw && f->avx512vl && f->avx512vnni && dq;
}

static void do_init(void) {
    for (int t = 0; t < INF_TYPE_COUNT; t++) {
        const inf_type_traits *r = inf_type_traits_ref(t);
        if (r) table[t] = *r;
    }
    int want = -1;
    const char *env = getenv("INFERNEO_ISA");
    if (env && *env) {
        if (!strcasecmp(env, "ref")) want = INF_ISA_REF;
        else if (!strcasecmp(env, "avx2")) want = INF_ISA_AVX2;
        else if (!strcasecmp(env, "avx512")) want = INF_ISA_AVX512;
        else {
            init_rc = INF_EUNSUPPORTED;
            snprintf(init_msg, sizeof(init_msg),
                     "INFERNEO_ISA='%.64s': unknown (expected ref, avx2 or avx512)", env);
            return;
        }
        if ((want == INF_ISA_AVX2 && !cpu_has_avx2()) ||
            (want == INF_ISA_AVX512 && !cpu_has_avx512())) {
            init_rc = INF_EUNSUPPORTED;
            snprintf(init_msg, sizeof(init_msg), "INFERNEO_ISA=%s: this CPU lacks it", env);
            return;
        }
    } else {
        want = cpu_has_avx512() ? INF_ISA_AVX512 : cpu_has_avx2() ? INF_ISA_AVX2 : INF_ISA_REF;
    }
    cur_isa = want;
#if defined(__x86_64__)
    if (want >= INF_ISA_AVX2) inf__avx2_override(table);
    if (want >= INF_ISA_AVX512) inf__avx512_override(table);
#endif
}

int inf_kernels_init(void) {
    pthread_once(&init_once, do_init);
    if (init_rc) return inf__err(init_rc, "%s", init_msg);
    return 0;
}

int inf_kernels_isa(void) {
    pthread_once(&init_once, do_init);
    return cur_isa;
}

const char *inf_isa_name(int isa) {
    switch (isa) {
    case INF_ISA_REF: return "ref";
    case INF_ISA_AVX2: return "avx2";
    case INF_ISA_AVX512: return "avx512";
    }
    return "unknown";
}

const inf_type_traits *inf_type_traits_get(int type) {
    pthread_once(&init_once, do_init);
    if (type < 0 || type >= INF_TYPE_COUNT) return NULL;
    if (table[type].name == NULL || !table[type].supported) return NULL;
    return &table[type];
}

const inf__mm_kernel *inf__kernels_mm(int wtype) {
    pthread_once(&init_once, do_init);
#if defined(__x86_64__)
    if (cur_isa == INF_ISA_AVX512) {
        const inf__mm_kernel *k = inf__avx512_mm_kernel(wtype);
        if (k) return k;
    }
    if (cur_isa >= INF_ISA_AVX2) return inf__avx2_mm_kernel(wtype);
#endif
    return NULL;
}

/* ---- memory read bandwidth ---------------------------------------------------------------- */

struct bw_ctx {
    const uint64_t *buf;
    size_t n_words;
    uint64_t sink[64];
};

static void bw_fn(void *vctx, int ith, int nth) {
    struct bw_ctx *c = vctx;
    size_t per = (c->n_words / (size_t)nth) & ~(size_t)31;
    const uint64_t *p = c->buf + per * (size_t)ith;
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t i = 0; i < per; i += 8) {
        a0 += p[i] ^ p[i + 4];
        a1 += p[i + 1] ^ p[i + 5];
        a2 += p[i + 2] ^ p[i + 6];
        a3 += p[i + 3] ^ p[i + 7];
    }
    if (ith < 64) c->sink[ith] = a0 + a1 + a2 + a3;
}

#if defined(__x86_64__)
/* Full-width loads, as the matmul kernels issue them: scalar loads understate what a core can
 * stream on some CPUs, which would make the bench ratio exceed 1. */
__attribute__((target("avx512f"))) static void bw_fn_avx512(void *vctx, int ith, int nth) {
    struct bw_ctx *c = vctx;
    size_t per = (c->n_words / (size_t)nth) & ~(size_t)31;
    const uint64_t *p = c->buf + per * (size_t)ith;
    __m512i a = _mm512_setzero_si512(), b = a, d = a, e = a;
    for (size_t i = 0; i < per; i += 32) {
        a = _mm512_xor_si512(a, _mm512_load_si512(p + i));
        b = _mm512_xor_si512(b, _mm512_load_si512(p + i + 8));
        d = _mm512_xor_si512(d, _mm512_load_si512(p + i + 16));
        e = _mm512_xor_si512(e, _mm512_load_si512(p + i + 24));
    }
    a = _mm512_xor_si512(_mm512_xor_si512(a, b), _mm512_xor_si512(d, e));
    if (ith < 64) c->sink[ith] = (uint64_t)_mm512_reduce_or_epi64(a) /* or: no signed overflow */;
}
#endif

double inf_kernels_measure_read_bw(inf_pool *pool) {
    /* A buffer far larger than the caches that the compiler cannot see through. */
    const size_t bytes = (size_t)512 << 20;
    uint64_t *buf = inf__alloc_stream(bytes);
    if (!buf) return 0.0;
    size_t n = bytes / sizeof(uint64_t);
    for (size_t i = 0; i < n; i++) buf[i] = i * 0x9E3779B97F4A7C15ull;
    struct bw_ctx c = {.buf = buf, .n_words = n};
    inf_pool_fn fn = bw_fn;
#if defined(__x86_64__)
    if (inf__cpu_features()->avx512f) fn = bw_fn_avx512;
#endif
    inf_pool_run(pool, fn, &c); /* warm-up: page faults, TLB */
    double best = 0.0;
    for (int rep = 0; rep < 6; rep++) { /* best of several: the machine is shared and noisy */
        double t0 = inf__time_s();
        inf_pool_run(pool, fn, &c);
        double dt = inf__time_s() - t0;
        size_t per = (n / (size_t)inf_pool_size(pool)) & ~(size_t)31;
        double gbs = (double)per * (double)inf_pool_size(pool) * 8.0 / dt / 1e9;
        if (gbs > best) best = gbs;
    }
    free(buf);
    return best;
}
