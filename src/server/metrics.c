/*
 * metrics.c — Prometheus text exposition for GET /metrics: request counters by endpoint and
 * status (kept here), token and KV gauges/counters (read from the engine's stats snapshot at
 * scrape time), and latency histograms fed from the engine's FINISH events. inf__record is the
 * one place a finished request is counted and logged, so the log and the counters agree.
 * Threads: I/O thread only.
 */
#include "server/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERIES 256

typedef struct series {
    char endpoint[64];
    int status;
    uint64_t count;
} series;

typedef struct histo {
    const double *bounds;
    int n;
    uint64_t counts[32]; /* [n] cumulative at render; stored per bucket */
    uint64_t total;
    double sum;
} histo;

static const double ttft_bounds[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,
                                     0.5,   0.75,  1.0,  2.5,  5.0,  7.5,  10.0, 20.0, 40.0};
static const double tpot_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1,
                                     0.15,  0.2,    0.3,   0.4,  0.5,   0.75, 1.0,   2.5};

struct inf__metrics {
    series s[MAX_SERIES];
    int n;
    histo ttft, tpot;
};

inf__metrics *inf__metrics_new(void) {
    inf__metrics *m = inf__calloc(1, sizeof *m);
    if (!m) return NULL;
    m->ttft.bounds = ttft_bounds;
    m->ttft.n = (int)INF_ARRAY_LEN(ttft_bounds);
    m->tpot.bounds = tpot_bounds;
    m->tpot.n = (int)INF_ARRAY_LEN(tpot_bounds);
    return m;
}

void inf__metrics_free(inf__metrics *m) {
    free(m);
}

static void metrics_request(inf__metrics *m, const char *endpoint, int status) {
    if (!m) return;
    if (!endpoint) endpoint = "other";
    for (int i = 0; i < m->n; i++)
        if (m->s[i].status == status && !strcmp(m->s[i].endpoint, endpoint)) {
            m->s[i].count++;
            return;
        }
    if (m->n == MAX_SERIES) return;
    series *s = &m->s[m->n++];
    snprintf(s->endpoint, sizeof s->endpoint, "%s", endpoint);
    s->status = status;
    s->count = 1;
}

static void observe(histo *h, double v) {
    if (v < 0) return;
    h->total++;
    h->sum += v;
    for (int i = 0; i < h->n; i++)
        if (v <= h->bounds[i]) {
            h->counts[i]++;
            return;
        }
}

void inf__metrics_latency(inf__metrics *m, double ttft_s, double tpot_s) {
    if (!m) return;
    observe(&m->ttft, ttft_s);
    if (tpot_s >= 0) observe(&m->tpot, tpot_s);
}

static void render_histo(inf_sb *sb, const char *name, const char *help, const histo *h) {
    inf__sb_printf(sb, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < h->n; i++) {
        cum += h->counts[i];
        inf__sb_printf(sb, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i],
                       (unsigned long long)cum);
    }
    inf__sb_printf(sb, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->total);
    inf__sb_printf(sb, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name,
                   (unsigned long long)h->total);
}

static void metric(inf_sb *sb, const char *name, const char *type, const char *help, long long v) {
    inf__sb_printf(sb, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", name, help, name, type, name, v);
}

char *inf__metrics_render(inf__metrics *m, inf_engine *engine, size_t *len) {
    inf_sb sb = {0};
    inf__sb_puts(&sb, "# HELP inferneo_requests_total Requests answered, by endpoint and HTTP "
                      "status.\n# TYPE inferneo_requests_total counter\n");
    for (int i = 0; m && i < m->n; i++)
        inf__sb_printf(&sb, "inferneo_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n",
                       m->s[i].endpoint, m->s[i].status, (unsigned long long)m->s[i].count);
    inf_engine_stats st = {0};
    if (engine) inf_engine_get_stats(engine, &st);
    metric(&sb, "inferneo_prompt_tokens_total", "counter", "Prompt tokens processed.",
           (long long)st.prompt_tokens);
    metric(&sb, "inferneo_generation_tokens_total", "counter", "Tokens generated.",
           (long long)st.generated_tokens);
    metric(&sb, "inferneo_prefix_cache_hit_tokens_total", "counter",
           "Prompt tokens served from the prefix cache.", (long long)st.prefix_hit_tokens);
    metric(&sb, "inferneo_requests_running", "gauge", "Requests being computed.",
           (long long)st.running);
    metric(&sb, "inferneo_requests_waiting", "gauge", "Requests queued.", (long long)st.queued);
    metric(&sb, "inferneo_kv_pages_total", "gauge", "KV cache pages.", (long long)st.pages_total);
    metric(&sb, "inferneo_kv_pages_in_use", "gauge", "KV cache pages held by requests.",
           (long long)st.pages_used);
    metric(&sb, "inferneo_kv_pages_cached", "gauge",
           "KV cache pages kept for prefix reuse (unreferenced).", (long long)st.pages_cached);
    if (m) {
        render_histo(&sb, "inferneo_time_to_first_token_seconds",
                     "Seconds from submission to the first generated token.", &m->ttft);
        render_histo(&sb, "inferneo_time_per_output_token_seconds",
                     "Seconds per generated token after the first.", &m->tpot);
    }
    if (sb.oom) {
        inf__sb_free(&sb);
        return NULL;
    }
    *len = sb.len;
    return inf__sb_take(&sb);
}

const char *inf__err_reason(const inf__oa_err *e, json_t *obj, char *buf, size_t n) {
    const char *code = NULL, *msg = NULL;
    if (e) {
        code = e->code ? e->code : e->type;
        msg = e->message;
    } else {
        json_t *err = json_object_get(obj, "error");
        code = json_string_value(json_object_get(err, "code"));
        if (!code) code = json_string_value(json_object_get(err, "type"));
        msg = json_string_value(json_object_get(err, "message"));
    }
    snprintf(buf, n, "%s: %s", code ? code : "error", msg ? msg : "");
    return buf;
}

/* Copies client-controlled text into the log without control bytes or quotes. */
static void log_safe(char *out, size_t cap, const char *s) {
    size_t n = 0;
    for (const char *p = s ? s : "?"; *p && n + 1 < cap; p++)
        out[n++] = (unsigned char)*p < 0x20 || *p == 0x7f || *p == '"' ? '?' : *p;
    out[n] = 0;
}

void inf__record(inf_server *srv, const char *method, const char *path, const char *endpoint,
                 int status, int64_t prompt_tokens, int64_t completion_tokens, double t_start,
                 const char *reason) {
    metrics_request(srv->metrics, endpoint, status);
    double ms = (inf__time_s() - t_start) * 1e3;
    char safe[128], why[200] = ""; /* client-controlled text: no control bytes in the log */
    log_safe(safe, sizeof safe, path);
    if (status >= 400) {
        char r[180];
        log_safe(r, sizeof r, reason ? reason : status == 499 ? "client_closed: the client went away" : "?");
        snprintf(why, sizeof why, " reason=\"%s\"", r);
    }
    int level = status >= 500 && status != 503 ? INF_LOG_WARN : INF_LOG_INFO;
    if (prompt_tokens >= 0)
        inf__log(level, "%s %s %d tokens=%lld+%lld %.1f ms%s", method, safe, status,
                 (long long)prompt_tokens, (long long)completion_tokens, ms, why);
    else
        inf__log(level, "%s %s %d %.1f ms%s", method, safe, status, ms, why);
}
