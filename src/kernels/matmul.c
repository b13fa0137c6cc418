/*
 * matmul.c — the matmul driver: Y[t][o] = W[o] . X[t] on the compute pool.
 *
 * Phase 1: each token row of X is prepared once (quantized to the weight type's vec_dot_type, or
 * to an ISA kernel's own activation format) into scratch, tokens split across threads. A spin
 * barrier (all pool threads are inside the same run) ends the phase.
 * Phase 2: output rows are cut into chunks handed out by an atomic counter; a chunk computes its
 * rows for every token, either with the ISA's tiled kernel (inf__mm_kernel) or one vec_dot per
 * output.
 *
 * Determinism: the kernel is chosen from (ISA, weight type) only, never from n_tok or the thread
 * count, and each kernel computes an output with the same operation sequence wherever it sits in
 * a tile, so Y[t][o] depends only on W row o and X row t.
 * Threads: inf_matmul is called by the pool's driver thread; scratch is owned by the call.
 */
#include "kernels/kernels.h"
#include "kernels/x86/x86.h"

#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

static size_t round_up64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Bytes per prepared activation row (64-byte multiple), 0 when n_in does not fit the type.
 * wstride: the weight row stride, or 0 when unknown (sizing: the larger of both formats). */
static size_t act_stride(int wtype, int64_t n_in, size_t wstride, const inf__mm_kernel **kout) {
    const inf_type_traits *wt = inf_type_traits_get(wtype);
    if (kout) *kout = NULL;
    if (!wt || n_in <= 0 || n_in % wt->blck_size != 0) return 0;
    const inf__mm_kernel *k = inf__kernels_mm(wtype);
    if (k && k->max_wstride && wstride > k->max_wstride) k = NULL;
    size_t sz;
    if (k) {
        sz = k->act_size(n_in);
    } else {
        const inf_type_traits *vt = inf_type_traits_get(wt->vec_dot_type);
        if (!vt || n_in % vt->blck_size != 0) return 0;
        sz = inf_type_row_size(wt->vec_dot_type, n_in);
    }
    if (kout) *kout = k;
    if (k && wstride == 0 && k->max_wstride) {
        /* Sizing without a stride: also fit the vec_dot format used for huge strides. */
        size_t alt = inf_type_row_size(wt->vec_dot_type, n_in);
        if (alt > sz) sz = alt;
    }
    return sz ? round_up64(sz) : 0;
}

size_t inf_matmul_scratch_size(int wtype, int64_t n_in, int64_t n_tok) {
    if (n_tok <= 0) return 64;
    size_t stride = act_stride(wtype, n_in, 0, NULL);
    size_t total;
    if (stride == 0 || inf__mul_overflow(stride, (size_t)n_tok, &total)) return 0;
    return total + 64;
}

struct mm_ctx {
    const inf_tensor *W;
    const float *X;
    float *Y;
    int64_t n_tok, n_in, n_out, ldy;
    char *act;
    size_t astride;
    const inf__mm_kernel *kern;
    const inf_type_traits *wt, *vt;
    int64_t chunk_rows, n_chunks;
    _Alignas(64) _Atomic int64_t next_chunk;
    _Alignas(64) _Atomic int arrived;
};

static void mm_prepare(struct mm_ctx *c, int ith, int nth) {
    /* Contiguous token ranges: thread ith takes [t0, t1). */
    int64_t per = (c->n_tok + nth - 1) / nth;
    int64_t t0 = per * ith, t1 = INF_MIN(c->n_tok, t0 + per);
    for (int64_t t = t0; t < t1; t++) {
        const float *x = c->X + t * c->n_in;
        void *dst = c->act + (size_t)t * c->astride;
        if (c->kern) c->kern->act_prep(x, dst, c->n_in);
        else if (c->vt->from_float) c->vt->from_float(x, dst, c->n_in);
    }
}

static void mm_rows(struct mm_ctx *c, int64_t o0, int64_t o1) {
    const char *w = (const char *)c->W->data + (size_t)o0 * c->W->nb[1];
    if (c->kern) {
        c->kern->run(c->n_in, w, c->W->nb[1], o1 - o0, c->act, c->astride, c->n_tok, c->Y + o0,
                     c->ldy);
        return;
    }
    for (int64_t o = o0; o < o1; o++, w += c->W->nb[1]) {
        for (int64_t t = 0; t < c->n_tok; t++) {
            c->wt->vec_dot(c->n_in, c->Y + t * c->ldy + o, w, c->act + (size_t)t * c->astride);
        }
    }
}

static void mm_worker(void *vctx, int ith, int nth) {
    struct mm_ctx *c = vctx;
    if (c->act != (char *)c->X) {
        mm_prepare(c, ith, nth);
        if (nth > 1) {
            atomic_fetch_add_explicit(&c->arrived, 1, memory_order_acq_rel);
            for (uint32_t i = 1; atomic_load_explicit(&c->arrived, memory_order_acquire) < nth;
                 i++) {
                cpu_relax();
                if ((i & 4095) == 0) sched_yield();
            }
        }
    }
    for (;;) {
        int64_t ch = atomic_fetch_add_explicit(&c->next_chunk, 1, memory_order_relaxed);
        if (ch >= c->n_chunks) break;
        int64_t o0 = ch * c->chunk_rows;
        int64_t o1 = INF_MIN(c->n_out, o0 + c->chunk_rows);
        mm_rows(c, o0, o1);
    }
}

void inf_matmul(inf_pool *pool, const inf_tensor *W, const float *X, int64_t n_tok, float *Y,
                int64_t ldy, void *scratch) {
    if (n_tok <= 0 || W->ne[1] <= 0) return;
    struct mm_ctx c;
    memset(&c, 0, sizeof(c));
    c.W = W;
    c.X = X;
    c.Y = Y;
    c.n_tok = n_tok;
    c.n_in = W->ne[0];
    c.n_out = W->ne[1];
    c.ldy = ldy;
    c.wt = inf_type_traits_get(W->type);
    INF_ASSERT(c.wt != NULL && ldy >= c.n_out);
    c.astride = act_stride(W->type, c.n_in, W->nb[1], &c.kern);
    INF_ASSERT(c.astride != 0);
    c.vt = inf_type_traits_get(c.wt->vec_dot_type);
    INF_ASSERT(c.vt != NULL);
    c.act = scratch;
    if (!c.kern && c.wt->vec_dot_type == INF_TYPE_F32) {
        c.act = (char *)X; /* f32 activations are used as they are */
        c.astride = (size_t)c.n_in * sizeof(float);
    }
    int nth = inf_pool_size(pool);
    /* Chunks: enough for dynamic balancing on a noisy machine, big enough to amortize the
     * counter and keep weight streams long. Multiples of 16 rows suit every tile shape. */
    int64_t target = (int64_t)nth * 8;
    int64_t rows = (c.n_out + target - 1) / target;
    int64_t min_rows = n_tok == 1 ? 32 : 16;
    if (rows < min_rows) rows = min_rows;
    rows = (rows + 15) & ~(int64_t)15;
    c.chunk_rows = rows;
    c.n_chunks = (c.n_out + rows - 1) / rows;
    atomic_init(&c.next_chunk, 0);
    atomic_init(&c.arrived, 0);
    if (nth <= 1 || (c.n_chunks == 1 && n_tok == 1)) {
        mm_worker(&c, 0, 1);
        return;
    }
    inf_pool_run(pool, mm_worker, &c);
}
