/*
 * bench_concurrency.c — aggregate generation throughput with N concurrent sequences through
 * the engine, for `inferneo bench --concurrency N`.
 *
 *   int inf_app_bench_concurrency(inf_model *m, int n_conc, int n_gen, double *tok_s);
 *
 * Starts an engine with max_seqs = n_conc, submits n_conc greedy requests (distinct short
 * prompts, EOS ignored, n_gen tokens each) and measures the decode phase: from the earliest
 * first token until the last finish, counting the tokens generated after each first token.
 * *tok_s receives tokens per second over all sequences together (compare with the
 * single-sequence figure from the same run).
 * Returns 0 or a negative INF_E* code (details in inf_last_error()).
 */
#include "app.h"

#include "base/base.h"

#include <stdlib.h>
#include <string.h>

int inf_app_bench_concurrency(inf_model *m, int n_conc, int n_gen, double *tok_s) {
    if (!m || !tok_s || n_conc < 1 || n_conc > 4096 || n_gen < 2)
        return inf__err(INF_EINVAL, "bench: concurrency %d, n_gen %d (needs >= 1, >= 2)", n_conc,
                        n_gen);
    *tok_s = 0;
    inf_model_info info;
    inf_model_get_info(m, &info);
    inf_engine_params ep = inf_engine_params_default();
    ep.max_seqs = n_conc;
    ep.prefix_cache = false;
    inf_engine *e = NULL;
    int rc = inf_engine_create(m, &ep, &e);
    if (rc < 0) return rc;
    for (int i = 0; i < n_conc && rc == 0; i++) {
        int32_t prompt[4];
        int32_t base = info.bos >= 0 ? info.bos : 1;
        prompt[0] = base;
        for (int k = 1; k < 4; k++)
            prompt[k] = (int32_t)(((int64_t)i * 7919 + k * 104729) % info.n_vocab);
        inf_request_params rp = inf_request_params_default();
        rp.prompt = prompt;
        rp.n_prompt = 4;
        rp.max_tokens = n_gen;
        rp.sampling.temperature = 0;
        rp.ignore_eos = true;
        rp.user_tag = (uint64_t)i;
        uint64_t id;
        rc = inf_engine_submit(e, &rp, &id);
    }
    /* Timing comes from the engine's own per-request clocks (seconds since submit; the
     * submits above happen within microseconds of each other), not from when this thread
     * happens to see the events: the decode window runs from the earliest first token to the
     * last finish, and every sequence generates n_gen - 1 tokens after its first. */
    int finished = 0;
    int64_t counted = 0;
    double t_first_min = 1e30, t_end_max = 0;
    while (rc == 0 && finished < n_conc) {
        inf_event ev;
        if (!inf_engine_wait(e, &ev, -1)) continue;
        if (ev.type == INF_EVENT_FINISH) {
            finished++;
            if (ev.finish_reason == INF_FINISH_ERROR) {
                rc = inf__err(ev.error ? ev.error : INF_EINTERNAL, "bench: %s",
                              ev.error_msg ? ev.error_msg : "request failed");
            }
            counted += ev.usage.completion_tokens - 1;
            t_first_min = INF_MIN(t_first_min, ev.t_first_token_s);
            t_end_max = INF_MAX(t_end_max, ev.t_total_s);
        }
        inf_event_clear(&ev);
    }
    if (rc == 0 && t_end_max > t_first_min && counted > 0)
        *tok_s = (double)counted / (t_end_max - t_first_min);
    inf_engine_destroy(e);
    return rc;
}
