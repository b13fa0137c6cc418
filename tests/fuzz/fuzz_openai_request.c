/*
 * fuzz_openai_request.c — libFuzzer target: the one OpenAI request validator of the server
 * (inf__oa_load_json + inf__oa_parse, src/server/openai.c) on hostile request bodies for each
 * endpoint kind (chat, completions, embeddings).
 *
 * The validator reads only the served names, the limits in cfg, n_vocab/n_ctx/n_embd and the
 * model (chat formatting), so the target fills a zeroed struct inf_server with exactly those: no
 * sockets, no engine. Models (vocab only): the repo's stories260K (no chat template: the ChatML
 * fallback), and the fixtures' tiny-llama (Llama 2 template, raise_exception on bad role order)
 * and tiny-qwen2 (ChatML template, BPE vocab).
 *
 * Input: byte 0 picks the endpoint (bits 0-1) and the model (bits 2-3); the rest is the body.
 * A parse must succeed with a consistent request or fail with an HTTP error status and message.
 */
#include "server/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {"fuzz-model", "alias"};
static struct inf_server servers[3];

static void load(struct inf_server *srv, const char *path) {
    inf_model_params p = inf_model_params_default();
    p.vocab_only = true;
    if (inf_model_load(path, &p, &srv->model) < 0) {
        fprintf(stderr, "fuzz_openai_request: cannot load %s: %s\n", path, inf_last_error());
        exit(1);
    }
    inf_model_info info;
    inf_model_get_info(srv->model, &info);
    inf_server_config_default(&srv->cfg);
    srv->names = (char **)names;
    srv->n_names = 2;
    srv->n_vocab = info.n_vocab;
    srv->n_ctx = info.n_ctx_train > 0 ? info.n_ctx_train : 2048;
    srv->n_embd = info.n_embd;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    load(&servers[0], INF_ROOT_DIR "/models/stories260K.gguf");
    load(&servers[1], INF_FIXTURES_DIR "/models/tiny-llama-q4_0.gguf");
    load(&servers[2], INF_FIXTURES_DIR "/models/tiny-qwen2-q8_0.gguf");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const int eps[] = {INF__EP_CHAT, INF__EP_COMPLETION, INF__EP_EMBEDDING, INF__EP_CHAT};
    int ep = eps[data[0] & 3];
    struct inf_server *srv = &servers[((data[0] >> 2) & 3) % 3];
    inf__oa_err err;
    memset(&err, 0, sizeof err);
    json_t *root = inf__oa_load_json((const char *)data + 1, size - 1, &err);
    if (!root) {
        if (err.status != 400 || !err.message[0]) abort();
        return 0;
    }
    inf__oa_req req;
    if (inf__oa_parse(srv, ep, root, &req, &err) == 0) {
        /* a valid request has prompts to run and sane choice counts */
        if (req.n_prompts < 1 || req.n < 1 || !req.prompts) abort();
        for (int i = 0; i < req.n_prompts; i++) {
            const inf__prompt *p = &req.prompts[i];
            if (!p->text && !p->tokens && p->n_tokens) abort();
            for (int64_t k = 0; p->tokens && k < p->n_tokens; k++)
                if (p->tokens[k] < 0 || p->tokens[k] >= srv->n_vocab) abort();
        }
    } else if (err.status < 400 || err.status > 599 || !err.message[0] || !err.type) {
        abort();
    }
    inf__oa_req_free(&req);
    json_decref(root);
    return 0;
}
