/*
 * cmd_synth.c — `inferneo synth`: writes a random-weight llama GGUF of a named or custom shape
 * (inf_synth_write does the work; this file parses the command line).
 *
 * Exit status: 0 ok, 1 the write failed (one line on stderr), 2 bad command line.
 */
#include "app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const struct {
    const char *name;
    int64_t dim, layers, heads, kv_heads, ff, vocab;
} shapes[] = {
    {"tinyllama-1.1b", 2048, 22, 32, 4, 5632, 32000},
    {"llama2-7b", 4096, 32, 32, 32, 11008, 32000},
};

static const struct {
    const char *name;
    int id, mix;
} types[] = {{"f32", 0, 0},     {"f16", 1, 0},     {"bf16", 30, 0},   {"q4_0", 2, 0},
             {"q4_1", 3, 0},    {"q5_0", 6, 0},    {"q5_1", 7, 0},    {"q8_0", 8, 0},
             {"q2_k", 10, 0},   {"q3_k", 11, 0},   {"q4_k", 12, 0},   {"q5_k", 13, 0},
             {"q6_k", 14, 0},   {"iq4_nl", 20, 0}, {"iq4_xs", 23, 0}, {"q3_k_m", 11, 1},
             {"q4_k_m", 12, 1}, {"q5_k_m", 13, 1}};
#define TYPE_LIST                                                                                  \
    "f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, "         \
    "iq4_xs (every matrix), or llama-quantize's mixtures q3_k_m, q4_k_m, q5_k_m"

static void synth_usage(FILE *f) {
    fprintf(
        f,
        "usage: inferneo synth --shape SHAPE --type TYPE -o OUT.gguf [--seed S]\n"
        "\n"
        "Writes a llama GGUF with random weights and a synthetic SentencePiece vocabulary.\n"
        "\n"
        "  --shape SHAPE   tinyllama-1.1b, llama2-7b, or NAME:dim,layers,heads,kv_heads,ff,vocab\n"
        "  --type TYPE     weight type (norms are always f32): " TYPE_LIST "\n"
        "  -o, --output P  output file\n"
        "  --seed S        random seed (default 42)\n"
        "  --ctx N         llama.context_length (default 2048)\n"
        "  --experts N     mixture of experts (Mixtral layout): N experts of ff rows per layer\n"
        "  --experts-used K  experts routed per token (default 2)\n"
        "  -h, --help      this help\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* NAME:dim,layers,heads,kv_heads,ff,vocab */
static bool parse_custom(const char *s, inf_synth_params *p, char *name, size_t name_cap) {
    const char *colon = strchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= name_cap) return false;
    memcpy(name, s, (size_t)(colon - s));
    name[colon - s] = 0;
    int64_t v[6];
    const char *c = colon + 1;
    for (int i = 0; i < 6; i++) {
        char *end;
        long long x = strtoll(c, &end, 10);
        if (end == c || x <= 0 || (i < 5 ? *end != ',' : *end != 0)) return false;
        v[i] = x;
        c = end + 1;
    }
    p->n_embd = v[0];
    p->n_layer = v[1];
    p->n_head = v[2];
    p->n_head_kv = v[3];
    p->n_ff = v[4];
    p->n_vocab = v[5];
    return true;
}

int inf_cmd_synth(int argc, char **argv) {
    const char *shape = NULL, *type = NULL, *out = NULL;
    int64_t seed = 42, ctx = 2048, n_expert = 0, n_expert_used = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            synth_usage(stdout);
            return 0;
        }
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "--shape") && has_val)
            shape = argv[++i];
        else if (!strcmp(a, "--type") && has_val)
            type = argv[++i];
        else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && has_val)
            out = argv[++i];
        else if (!strcmp(a, "--seed") && has_val) {
            if (!inf_app_parse_i64("--seed", argv[++i], 0, INT64_MAX, &seed)) return 2;
        } else if (!strcmp(a, "--ctx") && has_val) {
            if (!inf_app_parse_i64("--ctx", argv[++i], 1, 1 << 24, &ctx)) return 2;
        } else if (!strcmp(a, "--experts") && has_val) {
            if (!inf_app_parse_i64("--experts", argv[++i], 1, 256, &n_expert)) return 2;
        } else if (!strcmp(a, "--experts-used") && has_val) {
            if (!inf_app_parse_i64("--experts-used", argv[++i], 1, 256, &n_expert_used)) return 2;
        } else {
            fprintf(stderr, "inferneo synth: unknown option or missing value '%s' (see --help)\n",
                    a);
            return 2;
        }
    }
    if (!shape || !type || !out) {
        fprintf(stderr, "inferneo synth: --shape, --type and -o are required (see --help)\n");
        return 2;
    }
    inf_synth_params p = inf_synth_params_default();
    char name[128];
    bool found = false;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        if (strcmp(shape, shapes[i].name)) continue;
        p.n_embd = shapes[i].dim;
        p.n_layer = shapes[i].layers;
        p.n_head = shapes[i].heads;
        p.n_head_kv = shapes[i].kv_heads;
        p.n_ff = shapes[i].ff;
        p.n_vocab = shapes[i].vocab;
        snprintf(name, sizeof name, "%s", shapes[i].name);
        found = true;
    }
    if (!found && !parse_custom(shape, &p, name, sizeof name)) {
        fprintf(stderr,
                "inferneo synth: bad --shape '%s' (tinyllama-1.1b, llama2-7b, or "
                "NAME:dim,layers,heads,kv_heads,ff,vocab)\n",
                shape);
        return 2;
    }
    found = false;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcasecmp(type, types[i].name)) {
            p.type = types[i].id;
            p.mix = types[i].mix ? INF_SYNTH_MIX_M : INF_SYNTH_PURE;
            found = true;
        }
    if (!found) {
        fprintf(stderr, "inferneo synth: bad --type '%s' (" TYPE_LIST ")\n", type);
        return 2;
    }
    p.seed = (uint64_t)seed;
    p.n_ctx = ctx;
    p.name = name;
    p.n_expert = n_expert;
    p.n_expert_used = n_expert ? n_expert_used : 0;
    double t0 = now_s();
    int err = inf_synth_write(out, &p);
    if (err) {
        inf_app_fail("synth", err);
        return err == INF_EINVAL ? 2 : 1;
    }
    printf("wrote %s: %s, %s, n_embd %lld, n_layer %lld, n_head %lld/%lld, n_ff %lld, "
           "n_vocab %lld (%.1f s)\n",
           out, name, type, (long long)p.n_embd, (long long)p.n_layer, (long long)p.n_head,
           (long long)p.n_head_kv, (long long)p.n_ff, (long long)p.n_vocab, now_s() - t0);
    return 0;
}
