/*
 * gguf.h — GGUF v2/v3 reader (mmap, hostile-input validation) and writer.
 *
 * The reader validates the whole header, metadata and tensor table at open time: magic, version,
 * counts against the file size, string lengths, array sizes, value types, tensor dimensions
 * (positive, product without overflow), tensor types (known, ne[0] divisible by block size),
 * data offsets (aligned, inside the file, non-overlapping is not required). After a successful
 * open every accessor is safe. Failures return INF_EFORMAT / INF_EIO with a detail naming the
 * problem, e.g. "tensor 'blk.3.attn_q.weight': data ends at 123 beyond end of file (100)".
 */
#ifndef INF_GGUF_H
#define INF_GGUF_H

#include "base/base.h"

enum inf_gguf_vtype {
    INF_GGUF_UINT8 = 0,
    INF_GGUF_INT8 = 1,
    INF_GGUF_UINT16 = 2,
    INF_GGUF_INT16 = 3,
    INF_GGUF_UINT32 = 4,
    INF_GGUF_INT32 = 5,
    INF_GGUF_FLOAT32 = 6,
    INF_GGUF_BOOL = 7,
    INF_GGUF_STRING = 8,
    INF_GGUF_ARRAY = 9,
    INF_GGUF_UINT64 = 10,
    INF_GGUF_INT64 = 11,
    INF_GGUF_FLOAT64 = 12,
    INF_GGUF_VTYPE_COUNT
};

#define INF_GGUF_MAX_DIMS 4

typedef struct inf_gguf_tensor {
    const char *name;  /* NUL-terminated copy */
    int type;          /* GGUF/ggml tensor type id (enum inf_type in kernels/types.h) */
    int n_dims;
    int64_t ne[INF_GGUF_MAX_DIMS]; /* elements per dim, ne[0] innermost; unused dims = 1 */
    uint64_t offset;   /* relative to the data section */
    size_t nbytes;
    const void *data;  /* inside the mapping */
} inf_gguf_tensor;

typedef struct inf_gguf inf_gguf;

/* Opens and validates path. *out: new, close with inf_gguf_close(). */
int inf_gguf_open(const char *path, inf_gguf **out);
/* Same on a caller-owned buffer that must outlive the handle (tests, fuzzing). */
int inf_gguf_open_buffer(const void *data, size_t size, inf_gguf **out);
void inf_gguf_close(inf_gguf *g);

/* Writes a printable one-line rendering of untrusted bytes s[0..n) into out (cap >= 8 bytes:
 * control / non-ASCII bytes and quotes as \xNN, truncated with "..."); returns out. For error
 * details that quote file contents (names, keys), which must stay one line. */
const char *inf__gguf_printable(const void *s, size_t n, char *out, size_t cap);

uint32_t inf_gguf_version(const inf_gguf *g);
size_t inf_gguf_file_size(const inf_gguf *g);
size_t inf_gguf_alignment(const inf_gguf *g);
/* Byte offset of the data section in the file. */
size_t inf_gguf_data_offset(const inf_gguf *g);

/* ---- tensor type sizes (the format layer's own table; no kernels needed) ---- */
/* Block size (elements) and bytes per block of a tensor type id; false when unknown. */
bool inf_gguf_type_size(int type, int64_t *blck, size_t *type_size);
/* Lower-case name ("q4_0", "q6_K") or NULL when unknown. */
const char *inf_gguf_type_name(int type);
/* Bytes of a tensor: validates type, 1 <= n_dims <= 4, ne[i] > 0, element count within int64,
 * ne[0] divisible by the block size, no size_t overflow. INF_EFORMAT with a detail otherwise. */
int inf_gguf_tensor_nbytes(int type, int n_dims, const int64_t *ne, size_t *nbytes);

/* ---- metadata ---- */
int64_t inf_gguf_n_kv(const inf_gguf *g);
/* Index of key or -1. */
int64_t inf_gguf_find_key(const inf_gguf *g, const char *key);
const char *inf_gguf_key_name(const inf_gguf *g, int64_t idx);
int inf_gguf_kv_type(const inf_gguf *g, int64_t idx);

/* Typed getters by key. Return 0, INF_ENOTFOUND when absent, INF_EFORMAT when the stored type
 * cannot represent the request (integers convert between widths when the value fits; floats
 * accept float32/float64). The error detail names the key. */
int inf_gguf_get_u32(const inf_gguf *g, const char *key, uint32_t *out);
int inf_gguf_get_i64(const inf_gguf *g, const char *key, int64_t *out);
int inf_gguf_get_f32(const inf_gguf *g, const char *key, float *out);
int inf_gguf_get_bool(const inf_gguf *g, const char *key, bool *out);
/* Borrowed pointer into the mapping (NOT NUL-terminated) and byte length. */
int inf_gguf_get_str(const inf_gguf *g, const char *key, const char **s, size_t *len);
/* Same, as a new NUL-terminated copy (free with free()). */
int inf_gguf_get_strdup(const inf_gguf *g, const char *key, char **out);

/* Arrays. */
int inf_gguf_get_arr(const inf_gguf *g, const char *key, int *elem_type, int64_t *n);
/* Element i of a string array: borrowed bytes + length. */
int inf_gguf_get_arr_str(const inf_gguf *g, const char *key, int64_t i, const char **s,
                         size_t *len);
/* Raw element data of a numeric array (little-endian, element size of elem_type). The pointer
 * points into the file and may be unaligned: read elements with memcpy. */
int inf_gguf_get_arr_data(const inf_gguf *g, const char *key, const void **data);

/* ---- tensors ---- */
int64_t inf_gguf_n_tensors(const inf_gguf *g);
const inf_gguf_tensor *inf_gguf_tensor_at(const inf_gguf *g, int64_t i);
/* NULL when absent. */
const inf_gguf_tensor *inf_gguf_find_tensor(const inf_gguf *g, const char *name);

/* ---- writer ---- */
typedef struct inf_gguf_writer inf_gguf_writer;
/* New writer for GGUF v3 with the default alignment (32). */
inf_gguf_writer *inf_gguf_writer_new(void);
void inf_gguf_writer_free(inf_gguf_writer *w);
/* Metadata setters copy their arguments; keys are added in call order. */
int inf_gguf_writer_set_u32(inf_gguf_writer *w, const char *key, uint32_t v);
int inf_gguf_writer_set_i32(inf_gguf_writer *w, const char *key, int32_t v);
int inf_gguf_writer_set_f32(inf_gguf_writer *w, const char *key, float v);
int inf_gguf_writer_set_bool(inf_gguf_writer *w, const char *key, bool v);
int inf_gguf_writer_set_str(inf_gguf_writer *w, const char *key, const char *v);
int inf_gguf_writer_set_u64(inf_gguf_writer *w, const char *key, uint64_t v);
int inf_gguf_writer_set_i64(inf_gguf_writer *w, const char *key, int64_t v);
int inf_gguf_writer_set_f64(inf_gguf_writer *w, const char *key, double v);
/* Any scalar type (not STRING/ARRAY); v points to a value of that type's C width. */
int inf_gguf_writer_set_scalar(inf_gguf_writer *w, const char *key, int vtype, const void *v);
/* Stores n raw bytes as the value of key with type tag vtype, unvalidated (tests build nested
 * arrays and malformed values with it). */
int inf_gguf_writer_set_raw(inf_gguf_writer *w, const char *key, int vtype, const void *bytes,
                            size_t n);
/* Sets the data alignment (power of two) and the general.alignment key. */
int inf_gguf_writer_set_alignment(inf_gguf_writer *w, uint32_t alignment);
/* Numeric array: n elements of elem_type (not STRING/ARRAY), raw little-endian data. */
int inf_gguf_writer_set_arr(inf_gguf_writer *w, const char *key, int elem_type, const void *data,
                            int64_t n);
int inf_gguf_writer_set_arr_str(inf_gguf_writer *w, const char *key, const char *const *v,
                                int64_t n);
/* Adds a tensor; data (nbytes computed from type and ne) is copied. data == NULL defers the
 * data: it is produced at write time by the fill callback of inf_gguf_writer_write_cb (zeros
 * with inf_gguf_writer_write). Duplicate keys and tensor names are INF_EINVAL. */
int inf_gguf_writer_add_tensor(inf_gguf_writer *w, const char *name, int type, int n_dims,
                               const int64_t *ne, const void *data);
/* Writes the file (to a temporary next to path, renamed on success). */
int inf_gguf_writer_write(inf_gguf_writer *w, const char *path);
/* Fills buf (nbytes bytes) with the data of deferred tensor index (in add order); returns 0 or a
 * negative INF_E* that aborts the write. */
typedef int (*inf_gguf_fill_fn)(void *user, int64_t index, const char *name, int type,
                                const int64_t *ne, void *buf, size_t nbytes);
/* Like inf_gguf_writer_write, producing deferred tensors one at a time (memory: the largest
 * deferred tensor), so huge models can be written with bounded memory. */
int inf_gguf_writer_write_cb(inf_gguf_writer *w, const char *path, inf_gguf_fill_fn fill,
                             void *user);
/* Writes the file into a new buffer *out of *len bytes (free with free()). */
int inf_gguf_writer_write_mem(inf_gguf_writer *w, void **out, size_t *len);

#endif
