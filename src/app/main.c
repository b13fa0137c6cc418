/*
 * main.c — the inferneo program: dispatches to subcommands (app/cmd_*.c).
 */
#include "app.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"serve", inf_cmd_serve, "serve the OpenAI REST API and the WebSocket API"},
    {"generate", inf_cmd_generate, "generate text from a prompt"},
    {"batch", inf_cmd_batch, "run a JSONL file of requests concurrently through the engine"},
    {"info", inf_cmd_info, "print a model's architecture, hyperparameters and tensors"},
    {"tokenize", inf_cmd_tokenize, "print the token ids of a text"},
    {"logits", inf_cmd_logits, "write the logits of every prompt position"},
    {"bench", inf_cmd_bench, "measure prompt processing and generation speed"},
    {"synth", inf_cmd_synth, "write a random-weight llama GGUF of a given shape"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: inferneo <command> [options]   (inferneo <command> --help)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "inferneo: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
