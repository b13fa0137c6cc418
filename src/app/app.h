/*
 * app.h — subcommands of the inferneo program. Each returns the process exit status.
 * Subcommands see the library only through inferneo.h (and the server through server.h).
 */
#ifndef INF_APP_H
#define INF_APP_H

#include "inferneo.h"

int inf_cmd_info(int argc, char **argv);
int inf_cmd_tokenize(int argc, char **argv);
int inf_cmd_generate(int argc, char **argv);
int inf_cmd_logits(int argc, char **argv);
int inf_cmd_bench(int argc, char **argv);
int inf_cmd_synth(int argc, char **argv);
int inf_cmd_batch(int argc, char **argv);
int inf_cmd_serve(int argc, char **argv);

/* Shared helpers (app/common.c). */
/* Prints "inferneo: <what>: <inf_strerror(err)>: <inf_last_error()>" to stderr on one line. */
void inf_app_fail(const char *what, int err);
/* Log sink that writes lines to stderr: info as is, other levels as "[level] msg". */
void inf_app_log_stderr(int level, const char *msg, void *user);
/* The server's log: each line starts with an ISO-8601 UTC timestamp and the level; with
 * INF_APP_LOG_JSON each line is {"time","level","msg"}. user: an inf_app_log_format *. */
typedef enum { INF_APP_LOG_TEXT, INF_APP_LOG_JSON } inf_app_log_format;
void inf_app_log_serve(int level, const char *msg, void *user);
/* A progress bar on stderr ("\r" redrawn; user: a label or NULL), for inf_model_params.progress;
 * inf_app_progress_wanted: stderr is a terminal that can show it. */
void inf_app_progress(float done, void *user);
bool inf_app_progress_wanted(void);
/* Reads a whole file into a new buffer (free with free()); NULL + message on failure, also when
 * the file is larger than INF_APP_MAX_FILE bytes. */
#define INF_APP_MAX_FILE (256 << 20)
char *inf_app_read_file(const char *path, size_t *len);
/* Parses a strict integer/float option value; prints an error and returns false when invalid. */
bool inf_app_parse_i64(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out);
bool inf_app_parse_f32(const char *opt, const char *s, float *out);
/* Aggregate decode tokens/s of n_conc concurrent greedy sequences of n_gen tokens through the
 * engine (app/bench_concurrency.c). */
int inf_app_bench_concurrency(inf_model *m, int n_conc, int n_gen, double *tok_s);

#endif
