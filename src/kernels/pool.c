/*
 * pool.c — persistent compute thread pool (no OpenMP).
 *
 * One caller (the engine thread) drives the pool: inf_pool_run() publishes (fn, ctx), bumps a
 * generation counter and runs ith 0 itself; workers 1..n-1 see the new generation, run their
 * share, and count themselves done. The caller waits until all workers are done, so a run never
 * overlaps the next one and ctx may live on the caller's stack.
 *
 * Waiting: workers spin (with `pause`) for a short time after each run because a forward pass
 * issues hundreds of runs back to back, then sleep on a condition variable. The caller spins on
 * the done counter and yields the CPU when a worker is slow (the machine may be oversubscribed).
 *
 * Sleep/wake protocol (Dekker style, all seq_cst): a worker registers in n_sleeping and then
 * re-checks gen under the mutex before waiting; the caller bumps gen and then reads n_sleeping,
 * broadcasting under the mutex when someone sleeps. One of the two always sees the other's
 * store, so a wake-up is never lost.
 *
 * Threads: inf_pool_run must not be called concurrently or from inside a pool function.
 * Lock order: only pool->mu.
 */
#define _GNU_SOURCE
#include "kernels/kernels.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

#define POOL_MAX_THREADS 256

struct inf_pool {
    int n;
    uint64_t spin_ns;
    pthread_t *threads;
    int n_started;

    _Alignas(64) _Atomic uint64_t gen; /* bumped once per run (and at shutdown) */
    inf_pool_fn fn;
    void *ctx;
    _Atomic int stop;

    _Alignas(64) _Atomic int n_done; /* workers finished with the current generation */

    _Alignas(64) _Atomic int n_sleeping;
    _Atomic int in_run; /* guards against concurrent or nested runs */
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

struct worker_arg {
    inf_pool *p;
    int ith;
};

static uint64_t wait_new_gen(inf_pool *p, uint64_t seen) {
    uint64_t g;
    uint64_t t0 = 0;
    for (uint32_t i = 1;; i++) {
        g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen) return g;
        cpu_relax();
        if ((i & 255) == 0) {
            /* Let an oversubscribed machine run whoever we are waiting for. */
            if ((i & 1023) == 0) sched_yield();
            uint64_t now = inf__time_ns();
            if (t0 == 0) t0 = now;
            else if (now - t0 > p->spin_ns) break;
        }
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->n_sleeping, 1);
    while ((g = atomic_load(&p->gen)) == seen) pthread_cond_wait(&p->cv, &p->mu);
    atomic_fetch_sub(&p->n_sleeping, 1);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker_main(void *arg) {
    struct worker_arg a = *(struct worker_arg *)arg;
    free(arg);
    inf_pool *p = a.p;
    uint64_t seen = 0;
    for (;;) {
        seen = wait_new_gen(p, seen);
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        p->fn(p->ctx, a.ith, p->n);
        atomic_fetch_add_explicit(&p->n_done, 1, memory_order_acq_rel);
    }
    return NULL;
}

static void wake_all(inf_pool *p) {
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

static void shutdown_workers(inf_pool *p) {
    atomic_store(&p->stop, 1);
    atomic_fetch_add(&p->gen, 1);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_started; i++) pthread_join(p->threads[i], NULL);
    p->n_started = 0;
}

int inf_pool_create(int n_threads, inf_pool **out) {
    *out = NULL;
    if (n_threads <= 0) n_threads = inf__n_cores();
    if (n_threads > POOL_MAX_THREADS)
        return inf__err(INF_EINVAL, "pool: %d threads (max %d)", n_threads, POOL_MAX_THREADS);
    inf_pool *p = inf__aligned_alloc(64, sizeof(*p));
    if (!p) return inf__err(INF_ENOMEM, "pool: out of memory");
    memset(p, 0, sizeof(*p));
    p->n = n_threads;
    p->spin_ns = 1000 * 1000; /* 1 ms */
    const char *env = getenv("INFERNEO_POOL_SPIN_US");
    if (env && *env) {
        long us = strtol(env, NULL, 10);
        if (us >= 0 && us <= 1000000) p->spin_ns = (uint64_t)us * 1000;
    }
    atomic_init(&p->gen, 0);
    atomic_init(&p->n_done, 0);
    atomic_init(&p->n_sleeping, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->in_run, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (n_threads > 1) {
        p->threads = inf__calloc((size_t)n_threads - 1, sizeof(pthread_t));
        if (!p->threads) goto fail_nomem;
        for (int i = 1; i < n_threads; i++) {
            struct worker_arg *a = inf__malloc(sizeof(*a));
            if (!a) goto fail_nomem;
            a->p = p;
            a->ith = i;
            if (pthread_create(&p->threads[i - 1], NULL, worker_main, a) != 0) {
                free(a);
                shutdown_workers(p);
                inf_pool_destroy(p);
                return inf__err(INF_ENOMEM, "pool: cannot start thread %d of %d", i, n_threads);
            }
            p->n_started++;
        }
    }
    *out = p;
    return 0;
fail_nomem:
    inf_pool_destroy(p);
    return inf__err(INF_ENOMEM, "pool: out of memory");
}

void inf_pool_destroy(inf_pool *p) {
    if (!p) return;
    if (p->n_started > 0) shutdown_workers(p);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}

int inf_pool_size(const inf_pool *p) { return p ? p->n : 1; }

void inf_pool_run(inf_pool *p, inf_pool_fn fn, void *ctx) {
    if (!p || p->n <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    INF_ASSERT(atomic_exchange(&p->in_run, 1) == 0); /* no concurrent or nested runs */
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->n_done, 0, memory_order_relaxed);
    atomic_fetch_add(&p->gen, 1); /* seq_cst: publishes fn/ctx, orders before n_sleeping read */
    wake_all(p);
    fn(ctx, 0, p->n);
    int want = p->n - 1;
    for (uint32_t i = 1; atomic_load_explicit(&p->n_done, memory_order_acquire) != want; i++) {
        cpu_relax();
        if ((i & 1023) == 0) sched_yield();
    }
    atomic_store(&p->in_run, 0);
}
