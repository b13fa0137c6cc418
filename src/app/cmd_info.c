/*
 * cmd_info.c — `inferneo info MODEL`: loads a model (full load, so the tensors are validated) and
 * prints its architecture, hyperparameters, tensor counts per type, vocabulary and whether it
 * carries a chat template. Public API only.
 *
 * Exit status: 0 ok, 1 the model failed to load (one line on stderr), 2 bad command line.
 */
#include "app.h"

#include <stdio.h>
#include <string.h>

static void info_usage(FILE *f) {
    fprintf(f,
            "usage: inferneo info [options] MODEL\n"
            "\n"
            "Loads a GGUF model and prints its architecture, hyperparameters, tensors and vocab.\n"
            "\n"
            "  -h, --help    this help\n");
}

static const char *or_none(const char *s) {
    return s && *s ? s : "(none)";
}

/* Human-readable byte count. */
static void print_bytes(const char *label, uint64_t n) {
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    printf("%-18s %llu (%.2f %s)\n", label, (unsigned long long)n, v, unit[u]);
}

int inf_cmd_info(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            info_usage(stdout);
            return 0;
        }
        if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "inferneo info: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        }
        if (path) {
            fprintf(stderr, "inferneo info: more than one model given (see --help)\n");
            return 2;
        }
        path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "inferneo info: no model given (usage: inferneo info MODEL)\n");
        return 2;
    }

    inf_model_params mp = inf_model_params_default();
    mp.n_threads = 1; /* info computes nothing */
    inf_model *model = NULL;
    int err = inf_model_load(path, &mp, &model);
    if (err) {
        char what[1200];
        snprintf(what, sizeof what, "cannot load '%s'", path);
        /* Keep the message one line even when the path has a newline in it. */
        for (char *c = what; *c; c++)
            if (*c == '\n' || *c == '\r') *c = '?';
        inf_app_fail(what, err);
        return 1;
    }
    inf_model_info in;
    memset(&in, 0, sizeof in);
    inf_model_get_info(model, &in);

    printf("%-18s %s\n", "file", path);
    printf("%-18s %s\n", "architecture", or_none(in.arch));
    printf("%-18s %s\n", "name", or_none(in.name));
    printf("%-18s %llu\n", "parameters", (unsigned long long)in.n_params);
    print_bytes("weight bytes", in.weight_bytes);
    printf("\nhyperparameters:\n");
    printf("  %-16s %lld\n", "n_vocab", (long long)in.n_vocab);
    printf("  %-16s %lld\n", "n_ctx_train", (long long)in.n_ctx_train);
    printf("  %-16s %lld\n", "n_embd", (long long)in.n_embd);
    printf("  %-16s %lld\n", "n_layer", (long long)in.n_layer);
    printf("  %-16s %lld\n", "n_head", (long long)in.n_head);
    printf("  %-16s %lld\n", "n_head_kv", (long long)in.n_head_kv);
    printf("  %-16s %lld\n", "head_dim", (long long)in.head_dim);
    printf("  %-16s %lld\n", "n_ff", (long long)in.n_ff);
    printf("  %-16s %g\n", "rope_freq_base", (double)in.rope_freq_base);
    printf("  %-16s %g\n", "rope_freq_scale", (double)in.rope_freq_scale);
    printf("  %-16s %s\n", "rope_type", in.rope_neox ? "neox" : "normal");
    printf("  %-16s %g\n", "rms_eps", (double)in.rms_eps);
    if (in.n_rot && in.n_rot != in.head_dim)
        printf("  %-16s %lld of %lld\n", "rope_dims", (long long)in.n_rot, (long long)in.head_dim);
    if (in.n_expert) {
        printf("  %-16s %lld\n", "n_expert", (long long)in.n_expert);
        printf("  %-16s %lld\n", "n_expert_used", (long long)in.n_expert_used);
        printf("  %-16s %lld\n", "n_ff_expert", (long long)in.n_ff_exp);
        print_bytes("weight bytes/token", in.weight_bytes_per_token);
    }
    if (in.n_swa) {
        printf("  %-16s %lld\n", "sliding_window", (long long)in.n_swa);
        printf("  %-16s every layer l with l %% %lld < %lld\n", "sliding_layers",
               (long long)in.swa_pattern, (long long)in.swa_pattern - 1);
        printf("  %-16s %g (scale %g)\n", "rope_base_swa", (double)in.rope_freq_base_swa,
               (double)in.rope_freq_scale_swa);
    }
    if (in.attn_softcap > 0)
        printf("  %-16s %g\n", "attn_softcap", (double)in.attn_softcap);
    if (in.final_softcap > 0)
        printf("  %-16s %g\n", "final_softcap", (double)in.final_softcap);
    if (in.n_ctx_orig) {
        printf("  %-16s longrope (original context %lld, attn_factor %g)\n", "rope_scaling",
               (long long)in.n_ctx_orig, (double)in.rope_attn_factor);
    }

    printf("\ntensors: %lld\n", (long long)in.n_tensors);
    int n_types = (int)(sizeof in.n_tensors_by_type / sizeof in.n_tensors_by_type[0]);
    for (int t = 0; t < n_types; t++) {
        if (!in.n_tensors_by_type[t]) continue;
        const char *tn = inf_type_name(t);
        char id[32];
        if (!tn) {
            snprintf(id, sizeof id, "type %d", t);
            tn = id;
        }
        printf("  %-16s %lld\n", tn, (long long)in.n_tensors_by_type[t]);
    }

    printf("\nvocab:\n");
    printf("  %-16s %lld\n", "size", (long long)in.n_vocab);
    printf("  %-16s %s\n", "tokenizer", or_none(in.tokenizer));
    printf("  %-16s %s\n", "pre-tokenizer", or_none(in.pre));
    printf("  %-16s %d%s\n", "bos", in.bos, in.add_bos ? " (added)" : "");
    printf("  %-16s %d%s\n", "eos", in.eos, in.add_eos ? " (added)" : "");
    printf("  %-16s %d\n", "eot", in.eot);
    printf("%-18s %s\n", "chat template", in.chat_template && in.chat_template[0] ? "yes" : "no");

    inf_model_free(model);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "inferneo info: writing output failed\n");
        return 1;
    }
    return 0;
}
