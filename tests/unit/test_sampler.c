/*
 * test_sampler.c — the sampler: greedy, penalties arithmetic, top-k/top-p/min-p filtering
 * (checked against a brute-force reference on crafted and random logits), temperature, and
 * seeded determinism.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static inf_sampler *mk(const inf_sampling_params *p, int64_t n_vocab) {
    inf_sampler *s = NULL;
    assert_int_equal(inf_sampler_new(p, n_vocab, &s), 0);
    assert_non_null(s);
    return s;
}

static inf_sampling_params plain(float temp) {
    inf_sampling_params p = inf_sampling_params_default();
    p.temperature = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    return p;
}

static void test_defaults(void **st) {
    (void)st;
    inf_sampling_params p = inf_sampling_params_default();
    assert_true(fabsf(p.temperature - 0.8f) < 1e-6f);
    assert_int_equal(p.top_k, 40);
    assert_true(fabsf(p.top_p - 0.95f) < 1e-6f);
    assert_true(fabsf(p.min_p - 0.05f) < 1e-6f);
    assert_true(p.repetition_penalty == 1.0f);
    assert_int_equal(p.repeat_last_n, 64);
}

static void test_validation(void **st) {
    (void)st;
    inf_sampler *s = NULL;
    struct {
        int field;
        float v;
    } bad[] = {{0, -0.1f}, {0, NAN},    {0, INFINITY}, {1, 0.0f}, {1, 1.01f},
               {1, NAN},   {2, -0.01f}, {2, 1.5f},     {3, 0.0f}, {3, -1.0f},
               {3, NAN},   {4, 2.5f},   {4, -2.01f},   {5, 3.0f}, {5, NAN}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        inf_sampling_params p = inf_sampling_params_default();
        float *f[] = {&p.temperature,       &p.top_p,           &p.min_p, &p.repetition_penalty,
                      &p.frequency_penalty, &p.presence_penalty};
        *f[bad[i].field] = bad[i].v;
        assert_int_equal(inf_sampler_new(&p, 10, &s), INF_EINVAL);
        assert_null(s);
        assert_true(strlen(inf_last_error()) > 0);
    }
    inf_sampling_params p = inf_sampling_params_default();
    assert_int_equal(inf_sampler_new(&p, 0, &s), INF_EINVAL);
    p.repeat_last_n = -2;
    assert_int_equal(inf_sampler_new(&p, 10, &s), INF_EINVAL);
    /* edges are valid */
    p = inf_sampling_params_default();
    p.temperature = 0;
    p.top_p = 1;
    p.min_p = 1;
    p.frequency_penalty = 2;
    p.presence_penalty = -2;
    p.repeat_last_n = -1;
    s = mk(&p, 10);
    inf_sampler_free(s);
}

static void test_greedy(void **st) {
    (void)st;
    inf_sampling_params p = inf_sampling_params_default();
    p.temperature = 0;
    inf_sampler *s = mk(&p, 6);
    float l1[6] = {0.5f, 3.0f, -1.0f, 2.9f, 3.0f, 1.0f};
    assert_int_equal(inf_sampler_sample(s, l1), 1); /* tie 1 vs 4 -> lowest id */
    float l2[6] = {-5, -4, -3, -2, -1, -0.5f};
    assert_int_equal(inf_sampler_sample(s, l2), 5);
    float l3[6] = {NAN, -INFINITY, 1, NAN, 2, 0};
    assert_int_equal(inf_sampler_sample(s, l3), 4);
    inf_sampler_free(s);
}

/* greedy still applies the penalties first; sample() leaves the penalised logits in place */
static void test_penalties_arithmetic(void **st) {
    (void)st;
    inf_sampling_params p = plain(0);
    p.repetition_penalty = 2.0f;
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 0.25f;
    p.repeat_last_n = 64;
    inf_sampler *s = mk(&p, 5);
    inf_sampler_accept(s, 1);
    inf_sampler_accept(s, 1);
    inf_sampler_accept(s, 2);
    inf_sampler_accept(s, 99); /* out of range: ignored */
    inf_sampler_accept(s, -1);
    float l[5] = {1.0f, 2.0f, -1.0f, 0.5f, 0.0f};
    int32_t t = inf_sampler_sample(s, l);
    assert_true(fabsf(l[0] - 1.0f) < 1e-6f);
    assert_true(fabsf(l[1] - (2.0f / 2.0f - (2 * 0.5f + 0.25f))) < 1e-6f); /* -0.25 */
    assert_true(fabsf(l[2] - (-1.0f * 2.0f - (0.5f + 0.25f))) < 1e-6f);    /* -2.75 */
    assert_true(fabsf(l[3] - 0.5f) < 1e-6f);
    assert_true(fabsf(l[4] - 0.0f) < 1e-6f);
    assert_int_equal(t, 0); /* token 1 was best before the penalties */
    inf_sampler_free(s);

    /* window: only the last repeat_last_n tokens count */
    p = plain(0);
    p.repetition_penalty = 4.0f;
    p.repeat_last_n = 2;
    s = mk(&p, 4);
    inf_sampler_accept(s, 0);
    inf_sampler_accept(s, 1);
    inf_sampler_accept(s, 2);
    inf_sampler_accept(s, 1); /* window: {2, 1} */
    float w[4] = {4, 4, 4, 4};
    inf_sampler_sample(s, w);
    assert_true(w[0] == 4.0f && w[1] == 1.0f && w[2] == 1.0f && w[3] == 4.0f);
    inf_sampler_accept(s, 3); /* window: {1, 3} */
    inf_sampler_accept(s, 3); /* window: {3, 3} */
    float w2[4] = {4, 4, -4, 4};
    inf_sampler_sample(s, w2);
    assert_true(w2[0] == 4.0f && w2[1] == 4.0f && w2[2] == -4.0f && w2[3] == 1.0f);
    inf_sampler_free(s);

    /* -1: the whole history; 0: penalties off */
    p.repeat_last_n = -1;
    s = mk(&p, 4);
    for (int i = 0; i < 100; i++)
        inf_sampler_accept(s, i % 3 == 0 ? 0 : 3);
    inf_sampler_accept(s, 2);
    float w3[4] = {4, 4, 4, 4};
    inf_sampler_sample(s, w3);
    assert_true(w3[0] == 1.0f && w3[1] == 4.0f && w3[2] == 1.0f && w3[3] == 1.0f);
    inf_sampler_free(s);
    p.repeat_last_n = 0;
    s = mk(&p, 4);
    inf_sampler_accept(s, 0);
    float w4[4] = {4, 4, 4, 4};
    inf_sampler_sample(s, w4);
    assert_true(w4[0] == 4.0f);
    inf_sampler_free(s);
}

static void fill_random(float *l, int64_t n, inf_rng *r, float scale) {
    for (int64_t i = 0; i < n; i++)
        l[i] = (float)((inf__rng_uniform(r) * 2 - 1) * scale);
}

static void test_top_k1_is_greedy(void **st) {
    (void)st;
    const int64_t n = 3000;
    float *l = malloc(n * sizeof *l), *g = malloc(n * sizeof *g);
    inf_rng r;
    inf__rng_seed(&r, 7);
    inf_sampling_params pk = inf_sampling_params_default();
    pk.temperature = 1.5f;
    pk.top_k = 1;
    pk.seed = 3;
    inf_sampling_params pg = plain(0);
    inf_sampler *sk = mk(&pk, n), *sg = mk(&pg, n);
    for (int it = 0; it < 200; it++) {
        fill_random(l, n, &r, 5);
        if (it % 4 == 0) l[it] = l[it + 7] = 100; /* exact tie: lowest id */
        memcpy(g, l, n * sizeof *l);
        assert_int_equal(inf_sampler_sample(sk, l), inf_sampler_sample(sg, g));
    }
    inf_sampler_free(sk);
    inf_sampler_free(sg);
    free(l);
    free(g);
}

static void test_determinism(void **st) {
    (void)st;
    const int64_t n = 500;
    float *base = malloc(n * sizeof *base), *l = malloc(n * sizeof *l);
    inf_rng r;
    inf__rng_seed(&r, 11);
    fill_random(base, n, &r, 2);
    for (int cfg = 0; cfg < 3; cfg++) {
        inf_sampling_params p = inf_sampling_params_default();
        if (cfg == 1) p = plain(1.0f);
        if (cfg == 2) p.top_k = 0;
        int32_t a[300], b[300], c[300];
        /* all three alive at once, stepped in lockstep: state must not leak between them */
        inf_sampler *s[3];
        int32_t *out[3] = {a, b, c};
        for (int run = 0; run < 3; run++) {
            p.seed = run == 2 ? 12345 : 0; /* seed 0 is a valid seed */
            s[run] = mk(&p, n);
        }
        for (int i = 0; i < 300; i++) {
            for (int run = 0; run < 3; run++) {
                memcpy(l, base, n * sizeof *l);
                l[i % n] += 0.5f; /* a changing sequence of logits */
                out[run][i] = inf_sampler_sample(s[run], l);
                assert_true(out[run][i] >= 0 && out[run][i] < n);
                inf_sampler_accept(s[run], out[run][i]);
            }
        }
        for (int run = 0; run < 3; run++)
            inf_sampler_free(s[run]);
        assert_memory_equal(a, b, sizeof a);
        assert_memory_not_equal(a, c, sizeof a);
    }
    free(base);
    free(l);
}

typedef struct ref_c {
    float l;
    int32_t id;
} ref_c;

static int ref_cmp(const void *pa, const void *pb) {
    const ref_c *a = pa, *b = pb;
    if (a->l != b->l) return a->l > b->l ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* Brute-force reference of the kept set: full sort, then top_k, top_p, min_p. keep[id] = 1. */
static int64_t ref_keep(const float *logits, int64_t n, const inf_sampling_params *p,
                        unsigned char *keep) {
    ref_c *c = malloc(n * sizeof *c);
    for (int64_t i = 0; i < n; i++)
        c[i] = (ref_c){logits[i], (int32_t)i};
    qsort(c, n, sizeof *c, ref_cmp);
    int64_t m = n;
    if (p->top_k > 0 && p->top_k < m) m = p->top_k;
    if (p->top_p < 1) {
        double sum = 0, cum = 0;
        for (int64_t i = 0; i < m; i++)
            sum += expf(c[i].l - c[0].l);
        for (int64_t i = 0; i < m; i++) {
            cum += expf(c[i].l - c[0].l);
            if (cum >= p->top_p * sum) {
                m = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0) {
        float thr = c[0].l + logf(p->min_p);
        int64_t k = 0;
        while (k < m && c[k].l >= thr)
            k++;
        m = k;
    }
    memset(keep, 0, n);
    for (int64_t i = 0; i < m; i++)
        keep[c[i].id] = 1;
    free(c);
    return m;
}

/* Samples `draws` times and checks that only tokens of the reference set ever appear, and that
 * the best token comes up as often as softmax(logits / temperature) over that set says. */
static void check_filter(const float *logits, int64_t n, inf_sampling_params p, int draws) {
    unsigned char *keep = malloc(n);
    int *hits = calloc(n, sizeof *hits);
    float *l = malloc(n * sizeof *l);
    int64_t m = ref_keep(logits, n, &p, keep);
    inf_sampler *s = mk(&p, n);
    for (int i = 0; i < draws; i++) {
        memcpy(l, logits, n * sizeof *l);
        int32_t t = inf_sampler_sample(s, l);
        assert_true(t >= 0 && t < n);
        if (!keep[t]) fail_msg("token %d sampled but filtered out (kept %lld)", t, (long long)m);
        hits[t]++;
    }
    int32_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = (int32_t)i;
    double z = 0;
    for (int64_t i = 0; i < n; i++)
        if (keep[i]) z += exp((double)(logits[i] - logits[best]) / p.temperature);
    double want = 1.0 / z, got = (double)hits[best] / draws;
    double tol = 5 * sqrt(want * (1 - want) / draws) + 1e-3;
    if (fabs(got - want) > tol) fail_msg("best token frequency %.4f, expected %.4f", got, want);
    inf_sampler_free(s);
    free(keep);
    free(hits);
    free(l);
}

static float lg(double x) {
    return (float)log(x);
}

static void test_top_p(void **st) {
    (void)st;
    /* probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.7 keeps {0, 1} */
    float l[4] = {lg(0.5), lg(0.3), lg(0.15), lg(0.05)};
    inf_sampling_params p = plain(1.0f);
    p.top_p = 0.7f;
    p.seed = 1;
    inf_sampler *s = mk(&p, 4);
    int hits[4] = {0};
    for (int i = 0; i < 10000; i++) {
        float c[4];
        memcpy(c, l, sizeof c);
        hits[inf_sampler_sample(s, c)]++;
    }
    inf_sampler_free(s);
    assert_int_equal(hits[2] + hits[3], 0);
    /* renormalised: P(0) = 0.5 / 0.8 = 0.625 */
    assert_true(fabs(hits[0] / 10000.0 - 0.625) < 0.025);

    /* a large vocabulary with a flat tail exercises the thresholded (no top_k) path */
    const int64_t n = 5000;
    float *big = malloc(n * sizeof *big);
    double tail = 0.15 / (n - 2);
    for (int64_t i = 0; i < n; i++)
        big[i] = lg(tail);
    big[4000] = lg(0.6);
    big[42] = lg(0.25);
    p.top_p = 0.8f; /* {4000, 42} */
    check_filter(big, n, p, 2000);
    p.top_p = 0.9f; /* + ~1666 tail tokens, lowest ids first */
    check_filter(big, n, p, 2000);
    p.top_p = 0.999f;
    check_filter(big, n, p, 2000);
    free(big);
}

static void test_min_p(void **st) {
    (void)st;
    /* relative to the best: 1, 0.5, 0.04 (cut at min_p 0.05), 0.06 (kept) */
    float l[4] = {lg(1), lg(0.5), lg(0.04), lg(0.06)};
    inf_sampling_params p = plain(1.0f);
    p.min_p = 0.05f;
    p.seed = 99;
    inf_sampler *s = mk(&p, 4);
    int hits[4] = {0};
    for (int i = 0; i < 10000; i++) {
        float c[4];
        memcpy(c, l, sizeof c);
        hits[inf_sampler_sample(s, c)]++;
    }
    inf_sampler_free(s);
    assert_int_equal(hits[2], 0);
    assert_true(hits[3] > 0);
    assert_true(fabs(hits[3] / 10000.0 - 0.06 / 1.56) < 0.01);
}

static void test_random_configs_against_reference(void **st) {
    (void)st;
    const int64_t n = 2000;
    float *l = malloc(n * sizeof *l);
    inf_rng r;
    inf__rng_seed(&r, 2024);
    const struct {
        int32_t k;
        float p, minp;
    } cfg[] = {{40, 0.95f, 0.05f}, {0, 0.9f, 0.0f},  {0, 1.0f, 0.1f},   {5, 1.0f, 0.0f},
               {100, 0.5f, 0.0f},  {0, 0.6f, 0.02f}, {3000, 0.8f, 0.0f}};
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        fill_random(l, n, &r, 8);
        for (int i = 0; i < 50; i++)
            l[(i * 37) % n] = l[0]; /* ties */
        inf_sampling_params p = plain(0.7f);
        p.top_k = cfg[c].k;
        p.top_p = cfg[c].p;
        p.min_p = cfg[c].minp;
        p.seed = c;
        check_filter(l, n, p, 1000);
    }
    free(l);
}

static void test_temperature(void **st) {
    (void)st;
    /* logits {0, ln 3}: P(1) = 0.75 at T = 1, sqrt(3) / (1 + sqrt(3)) at T = 2 */
    const float temps[] = {1.0f, 2.0f, 0.05f};
    const double want[] = {0.75, sqrt(3.0) / (1 + sqrt(3.0)), 1.0};
    for (int k = 0; k < 3; k++) {
        inf_sampling_params p = plain(temps[k]);
        p.seed = 5;
        inf_sampler *s = mk(&p, 2);
        int ones = 0;
        for (int i = 0; i < 10000; i++) {
            float l[2] = {0, lg(3)};
            ones += inf_sampler_sample(s, l);
        }
        inf_sampler_free(s);
        assert_true(fabs(ones / 10000.0 - want[k]) < 0.02);
    }
}

static void test_nonfinite(void **st) {
    (void)st;
    inf_sampling_params p = plain(1.0f);
    inf_sampler *s = mk(&p, 5);
    for (int i = 0; i < 1000; i++) {
        float l[5] = {-INFINITY, NAN, 0.0f, -INFINITY, NAN};
        assert_int_equal(inf_sampler_sample(s, l), 2);
    }
    inf_sampler_free(s);
    /* a denormal temperature behaves as greedy instead of dividing into inf * 0 */
    p = plain(1e-45f);
    s = mk(&p, 5);
    for (int i = 0; i < 100; i++) {
        float l[5] = {0.5f, 3.0f, -1.0f, 3.0f, 2.0f};
        assert_int_equal(inf_sampler_sample(s, l), 1);
    }
    float all[5] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int32_t t = inf_sampler_sample(s, all);
    assert_true(t >= 0 && t < 5);
    inf_sampler_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_penalties_arithmetic),
        cmocka_unit_test(test_top_k1_is_greedy),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_top_p),
        cmocka_unit_test(test_min_p),
        cmocka_unit_test(test_random_configs_against_reference),
        cmocka_unit_test(test_temperature),
        cmocka_unit_test(test_nonfinite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
