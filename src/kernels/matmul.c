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

/* Picks the kernel for W (NULL: vec_dot per output) and returns the activation bytes for n_tok
 * tokens, 0 when the shape does not fit the type or the size overflows. wstride 0 = unknown
 * (sizing only: then the larger of both formats). *row_stride: bytes per vec_dot row. */
/* The GGUF type a (possibly repacked) weight type computes as. */
static int base_type(int wtype) {
    if (wtype == INF__TYPE_Q4_0_R16 || wtype == INF__TYPE_Q4_0_R8) return INF_TYPE_Q4_0;
    if (wtype == INF__TYPE_Q8_0_R16 || wtype == INF__TYPE_Q8_0_R8) return INF_TYPE_Q8_0;
    if (wtype == INF__TYPE_Q4_K_R16) return INF_TYPE_Q4_K;
    return wtype;
}

static size_t plan(int wtype, int64_t n_in, int64_t n_tok, size_t wstride,
                   const inf__mm_kernel **kout, size_t *row_stride) {
    const inf_type_traits *wt = inf_type_traits_get(base_type(wtype));
    if (kout) *kout = NULL;
    if (!wt || n_in <= 0 || n_tok <= 0 || n_in % wt->blck_size != 0) return 0;
    const inf_type_traits *vt = inf_type_traits_get(wt->vec_dot_type);
    if (!vt || n_in % vt->blck_size != 0) return 0;
    const inf__mm_kernel *k = inf__kernels_mm(wtype);
    if (k && k->max_wstride && wstride > k->max_wstride) k = NULL;
    size_t rs = round_up64(inf_type_row_size(wt->vec_dot_type, n_in)), generic;
    if (rs == 0 || inf__mul_overflow(rs, (size_t)n_tok, &generic)) return 0;
    if (row_stride) *row_stride = rs;
    if (kout) *kout = k;
    if (!k) return generic;
    size_t sz = k->act_size(n_in, n_tok);
    if (sz == 0) return 0;
    if (wstride == 0) {
        /* Sizing only: also fit the formats this type may run with (huge strides fall back to
         * vec_dot; a repacked copy of the weights has its own kernel). */
        if (k->max_wstride && generic > sz) sz = generic;
        const int packed[2][2] = {{INF__TYPE_Q4_0_R16, INF__TYPE_Q4_0_R8},
                                  {INF__TYPE_Q8_0_R16, INF__TYPE_Q8_0_R8}};
        for (int i = 0; i < 2; i++) {
            const inf__mm_kernel *kr = NULL;
            if (wtype == INF_TYPE_Q4_0) kr = inf__kernels_mm(packed[0][i]);
            if (wtype == INF_TYPE_Q8_0) kr = inf__kernels_mm(packed[1][i]);
            if (wtype == INF_TYPE_Q4_K && i == 0) kr = inf__kernels_mm(INF__TYPE_Q4_K_R16);
            size_t szr = kr ? kr->act_size(n_in, n_tok) : 0;
            if (szr > sz) sz = szr;
        }
    }
    return round_up64(sz);
}

size_t inf_matmul_scratch_size(int wtype, int64_t n_in, int64_t n_tok) {
    if (n_tok <= 0) return 64;
    size_t sz = plan(wtype, n_in, n_tok, 0, NULL, NULL);
    return sz ? sz + 64 : 0;
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
        if (c->kern) c->kern->act_prep(x, c->act, c->n_in, t);
        else c->vt->from_float(x, c->act + (size_t)t * c->astride, c->n_in);
    }
}

static void mm_rows(struct mm_ctx *c, int64_t o0, int64_t o1) {
    const char *w = (const char *)c->W->data + (size_t)o0 * c->W->nb[1];
    if (c->kern) {
        c->kern->run(c->n_in, w, c->W->nb[1], o1 - o0, c->act, c->n_tok, c->Y + o0, c->ldy);
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
    c.wt = inf_type_traits_get(base_type(W->type));
    INF_ASSERT(c.wt != NULL && ldy >= c.n_out);
    INF_ASSERT(plan(W->type, c.n_in, n_tok, W->nb[1], &c.kern, &c.astride) != 0);
    c.vt = inf_type_traits_get(c.wt->vec_dot_type);
    INF_ASSERT(c.vt != NULL);
    c.act = scratch;
    INF_ASSERT(c.kern || base_type(W->type) == W->type); /* repacked weights need their kernel */
    if (!c.kern && c.wt->vec_dot_type == INF_TYPE_F32) {
        c.act = (char *)X; /* f32 activations are used as they are */
        c.astride = (size_t)c.n_in * sizeof(float);
    }
    int nth = inf_pool_size(pool);
    /* Chunks: enough for dynamic balancing on a noisy machine, big enough to amortize the
     * counter and keep weight streams long. Multiples of 16 rows suit every tile shape (and
     * start every chunk at a row group of the repacked layouts: 16 rows AVX-512, 8 AVX2). */
    int64_t target = (int64_t)nth * 8;
    int64_t rows = (c.n_out + target - 1) / target;
    int64_t min_rows = n_tok == 1 ? 32 : 16;
    if (rows < min_rows) rows = min_rows;
    rows = (rows + 15) & ~(int64_t)15;
    c.chunk_rows = rows;
    c.n_chunks = (c.n_out + rows - 1) / rows;
    atomic_init(&c.next_chunk, 0);
    atomic_init(&c.arrived, 0);
    /* Small products stay on the calling thread: waking workers costs more than the work
     * (results do not depend on the thread count, so this changes only speed). */
    bool small = (double)c.n_out * (double)c.n_in * (double)n_tok < (double)(1 << 20);
    if (nth <= 1 || small || (c.n_chunks == 1 && n_tok == 1)) {
        mm_worker(&c, 0, 1);
        return;
    }
    inf_pool_run(pool, mm_worker, &c);
}

/* ---- repacking ---------------------------------------------------------------------------- */

struct repack_ctx {
    const inf_tensor *W;
    void (*repack)(int type, const void *src, size_t src_stride, int64_t n_in, int64_t n_rows,
                   int64_t g0, int64_t g1, void *dst, size_t *row_bytes);
    void *dst;
    int64_t n_groups;
    size_t row_bytes;
    _Atomic int64_t next;
};

static void repack_worker(void *vctx, int ith, int nth) {
    (void)ith;
    (void)nth;
    struct repack_ctx *c = vctx;
    for (;;) {
        int64_t g = atomic_fetch_add_explicit(&c->next, 16, memory_order_relaxed);
        if (g >= c->n_groups) break;
        int64_t g1 = INF_MIN(c->n_groups, g + 16);
        size_t rb;
        c->repack(c->W->type, c->W->data, c->W->nb[1], c->W->ne[0], c->W->ne[1], g, g1, c->dst,
                  &rb);
        if (g == 0) c->row_bytes = rb;
    }
}

int inf_matmul_repack(inf_pool *pool, const inf_tensor *W, inf_tensor *out, void **mem) {
    *out = *W;
    *mem = NULL;
#if defined(__x86_64__)
    const int isa = inf_kernels_isa();
    if (isa != INF_ISA_AVX512 && isa != INF_ISA_AVX2) return 0;
    const bool v512 = isa == INF_ISA_AVX512; /* 16-row groups; AVX2: 8-row groups */
    if (W->type != INF_TYPE_Q4_0 && W->type != INF_TYPE_Q8_0 && !(v512 && W->type == INF_TYPE_Q4_K))
        return 0;
    if (W->ne[2] > 1 || W->ne[3] > 1) return 0;
    size_t size = v512 ? inf__avx512_repack_size(W->type, W->ne[0], W->ne[1])
                       : inf__avx2_repack_size(W->type, W->ne[0], W->ne[1]);
    if (size == 0) return 0;
    if (W->nb[1] < inf_type_row_size(W->type, W->ne[0]))
        return inf__err(INF_EINVAL, "repack '%s': row stride %zu below the row size",
                        W->name ? W->name : "?", W->nb[1]);
    void *dst = inf__alloc_stream(size);
    if (!dst)
        return inf__err(INF_ENOMEM, "repack '%s': cannot allocate %zu bytes",
                        W->name ? W->name : "?", size);
    const int64_t group_rows = v512 ? 16 : 8;
    struct repack_ctx c = {.W = W,
                           .repack = v512 ? inf__avx512_repack : inf__avx2_repack,
                           .dst = dst,
                           .n_groups = (W->ne[1] + group_rows - 1) / group_rows};
    atomic_init(&c.next, 0);
    inf_pool_run(pool, repack_worker, &c);
    if (W->type == INF_TYPE_Q4_K) out->type = INF__TYPE_Q4_K_R16;
    else if (v512) out->type = W->type == INF_TYPE_Q4_0 ? INF__TYPE_Q4_0_R16 : INF__TYPE_Q8_0_R16;
    else out->type = W->type == INF_TYPE_Q4_0 ? INF__TYPE_Q4_0_R8 : INF__TYPE_Q8_0_R8;
    out->nb[1] = c.row_bytes;
    out->nb[2] = out->nb[3] = size;
    out->data = dst;
    *mem = dst;
#else
    (void)pool;
#endif
    return 0;
}
