/*
 * gguf_write.c — GGUF v3 writer (little-endian hosts only, like the reader).
 *
 * Metadata values are serialized when set (type tag excluded) so writing is a straight copy.
 * Tensors are laid out in add order, each at an offset that is a multiple of the alignment.
 * Deferred tensors (data == NULL) are produced one at a time by a fill callback at write time,
 * so the writer never holds more than the largest deferred tensor. Files are written to a
 * temporary name and renamed, so a failed write never leaves a truncated model at path.
 *
 * Threads: a writer is used by one thread at a time.
 */
#define _GNU_SOURCE
#include "format/gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct wkv {
    char *key;
    int type;
    uint8_t *bytes; /* serialized value */
    size_t n;
} wkv;

typedef struct wtensor {
    char *name;
    int type, n_dims;
    int64_t ne[INF_GGUF_MAX_DIMS];
    size_t nbytes;
    uint64_t offset;
    void *data; /* owned copy, or NULL when deferred */
} wtensor;

struct inf_gguf_writer {
    wkv *kv;
    int64_t n_kv, cap_kv;
    wtensor *t;
    int64_t n_t, cap_t;
    size_t alignment;
};

inf_gguf_writer *inf_gguf_writer_new(void) {
    inf_gguf_writer *w = inf__calloc(1, sizeof *w);
    if (w) w->alignment = 32;
    return w;
}

void inf_gguf_writer_free(inf_gguf_writer *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].bytes);
    }
    free(w->kv);
    for (int64_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->t);
    free(w);
}

static wkv *find_kv(inf_gguf_writer *w, const char *key) {
    for (int64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) return &w->kv[i];
    return NULL;
}

/* Takes ownership of bytes (freed on failure). */
static int add_kv(inf_gguf_writer *w, const char *key, int type, uint8_t *bytes, size_t n) {
    if (!w || !key || !*key) {
        free(bytes);
        return inf__err(INF_EINVAL, "gguf writer: empty key");
    }
    if (find_kv(w, key)) {
        free(bytes);
        return inf__err(INF_EINVAL, "gguf writer: duplicate key '%s'", key);
    }
    if (w->n_kv == w->cap_kv) {
        int64_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
        wkv *nk = inf__realloc_array(w->kv, (size_t)cap, sizeof *nk);
        if (!nk) goto oom;
        w->kv = nk;
        w->cap_kv = cap;
    }
    char *k = inf__strdup(key);
    if (!k) goto oom;
    w->kv[w->n_kv++] = (wkv){.key = k, .type = type, .bytes = bytes, .n = n};
    return 0;
oom:
    free(bytes);
    return inf__err(INF_ENOMEM, "gguf writer: out of memory");
}

static uint8_t *dup_bytes(const void *p, size_t n) {
    uint8_t *b = inf__malloc(n);
    if (b && n) memcpy(b, p, n);
    return b;
}

static size_t vsize(int vtype) {
    switch (vtype) {
    case INF_GGUF_UINT8:
    case INF_GGUF_INT8:
    case INF_GGUF_BOOL: return 1;
    case INF_GGUF_UINT16:
    case INF_GGUF_INT16: return 2;
    case INF_GGUF_UINT32:
    case INF_GGUF_INT32:
    case INF_GGUF_FLOAT32: return 4;
    case INF_GGUF_UINT64:
    case INF_GGUF_INT64:
    case INF_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

int inf_gguf_writer_set_scalar(inf_gguf_writer *w, const char *key, int vtype, const void *v) {
    size_t n = vsize(vtype);
    if (!n || !v)
        return inf__err(INF_EINVAL, "gguf writer: key '%s': bad scalar type %d", key ? key : "",
                        vtype);
    uint8_t *b = dup_bytes(v, n);
    if (!b) return inf__err(INF_ENOMEM, "gguf writer: out of memory");
    return add_kv(w, key, vtype, b, n);
}

int inf_gguf_writer_set_u32(inf_gguf_writer *w, const char *key, uint32_t v) {
    return inf_gguf_writer_set_scalar(w, key, INF_GGUF_UINT32, &v);
}
int inf_gguf_writer_set_i32(inf_gguf_writer *w, const char *key, int32_t v) {
    return inf_gguf_writer_set_scalar(w, key, INF_GGUF_INT32, &v);
}
int inf_gguf_writer_set_f32(inf_gguf_writer *w, const char *key, float v) {
    return inf_gguf_writer_set_scalar(w, key, INF_GGUF_FLOAT32, &v);
}
int inf_gguf_writer_set_u64(inf_gguf_writer *w, const char *key, uint64_t v) {
    return inf_gguf_writer_set_scalar(w, key, INF_GGUF_UINT64, &v);
}
int inf_gguf_writer_set_i64(inf_gguf_writer *w, const char *key, int64_t v) {
    return inf_gguf_writer_set_scalar(w, key, INF_GGUF_INT64, &v);
}
int inf_gguf_writer_set_f64(inf_gguf_writer *w, const char *key, double v) {
    return inf_gguf_writer_set_scalar(w, key, INF_GGUF_FLOAT64, &v);
}
int inf_gguf_writer_set_bool(inf_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return inf_gguf_writer_set_scalar(w, key, INF_GGUF_BOOL, &b);
}

int inf_gguf_writer_set_str(inf_gguf_writer *w, const char *key, const char *v) {
    if (!v) return inf__err(INF_EINVAL, "gguf writer: key '%s': NULL string", key ? key : "");
    uint64_t len = strlen(v);
    uint8_t *b = inf__malloc(8 + (size_t)len);
    if (!b) return inf__err(INF_ENOMEM, "gguf writer: out of memory");
    memcpy(b, &len, 8);
    memcpy(b + 8, v, (size_t)len);
    return add_kv(w, key, INF_GGUF_STRING, b, 8 + (size_t)len);
}

int inf_gguf_writer_set_raw(inf_gguf_writer *w, const char *key, int vtype, const void *bytes,
                            size_t n) {
    uint8_t *b = dup_bytes(bytes, n);
    if (!b) return inf__err(INF_ENOMEM, "gguf writer: out of memory");
    return add_kv(w, key, vtype, b, n);
}

int inf_gguf_writer_set_arr(inf_gguf_writer *w, const char *key, int elem_type, const void *data,
                            int64_t n) {
    size_t es = vsize(elem_type), total;
    if (!es || n < 0 || (n && !data))
        return inf__err(INF_EINVAL, "gguf writer: key '%s': bad array", key ? key : "");
    if (inf__mul_overflow((size_t)n, es, &total) || inf__add_overflow(total, 12, &total))
        return inf__err(INF_EINVAL, "gguf writer: key '%s': array too large", key ? key : "");
    uint8_t *b = inf__malloc(total);
    if (!b) return inf__err(INF_ENOMEM, "gguf writer: out of memory");
    uint32_t et = (uint32_t)elem_type;
    uint64_t cnt = (uint64_t)n;
    memcpy(b, &et, 4);
    memcpy(b + 4, &cnt, 8);
    if (n) memcpy(b + 12, data, total - 12);
    return add_kv(w, key, INF_GGUF_ARRAY, b, total);
}

int inf_gguf_writer_set_arr_str(inf_gguf_writer *w, const char *key, const char *const *v,
                                int64_t n) {
    if (n < 0 || (n && !v))
        return inf__err(INF_EINVAL, "gguf writer: key '%s': bad array", key ? key : "");
    size_t total = 12;
    for (int64_t i = 0; i < n; i++) {
        if (!v[i]) return inf__err(INF_EINVAL, "gguf writer: key '%s': NULL string", key);
        if (inf__add_overflow(total, 8 + strlen(v[i]), &total))
            return inf__err(INF_EINVAL, "gguf writer: key '%s': array too large", key);
    }
    uint8_t *b = inf__malloc(total);
    if (!b) return inf__err(INF_ENOMEM, "gguf writer: out of memory");
    uint32_t et = INF_GGUF_STRING;
    uint64_t cnt = (uint64_t)n;
    memcpy(b, &et, 4);
    memcpy(b + 4, &cnt, 8);
    size_t p = 12;
    for (int64_t i = 0; i < n; i++) {
        uint64_t len = strlen(v[i]);
        memcpy(b + p, &len, 8);
        memcpy(b + p + 8, v[i], (size_t)len);
        p += 8 + (size_t)len;
    }
    return add_kv(w, key, INF_GGUF_ARRAY, b, total);
}

int inf_gguf_writer_set_alignment(inf_gguf_writer *w, uint32_t alignment) {
    if (!alignment || (alignment & (alignment - 1)))
        return inf__err(INF_EINVAL, "gguf writer: alignment %u is not a power of two", alignment);
    wkv *kv = find_kv(w, "general.alignment");
    if (kv) {
        if (kv->type != INF_GGUF_UINT32 || kv->n != 4)
            return inf__err(INF_EINVAL, "gguf writer: general.alignment already set as raw");
        memcpy(kv->bytes, &alignment, 4);
    } else {
        int err = inf_gguf_writer_set_u32(w, "general.alignment", alignment);
        if (err) return err;
    }
    w->alignment = alignment;
    return 0;
}

int inf_gguf_writer_add_tensor(inf_gguf_writer *w, const char *name, int type, int n_dims,
                               const int64_t *ne, const void *data) {
    if (!w || !name || !*name || !ne)
        return inf__err(INF_EINVAL, "gguf writer: tensor needs a name and dims");
    size_t nbytes;
    int err = inf_gguf_tensor_nbytes(type, n_dims, ne, &nbytes);
    if (err) return inf__err_prefix(INF_EINVAL, "gguf writer: tensor '%s'", name);
    for (int64_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name))
            return inf__err(INF_EINVAL, "gguf writer: duplicate tensor '%s'", name);
    if (w->n_t == w->cap_t) {
        int64_t cap = w->cap_t ? w->cap_t * 2 : 16;
        wtensor *nt = inf__realloc_array(w->t, (size_t)cap, sizeof *nt);
        if (!nt) return inf__err(INF_ENOMEM, "gguf writer: out of memory");
        w->t = nt;
        w->cap_t = cap;
    }
    wtensor t = {.type = type, .n_dims = n_dims, .nbytes = nbytes};
    for (int i = 0; i < INF_GGUF_MAX_DIMS; i++)
        t.ne[i] = i < n_dims ? ne[i] : 1;
    t.name = inf__strdup(name);
    if (!t.name) return inf__err(INF_ENOMEM, "gguf writer: out of memory");
    if (data) {
        t.data = dup_bytes(data, nbytes);
        if (!t.data) {
            free(t.name);
            return inf__err(INF_ENOMEM, "gguf writer: out of memory for tensor '%s'", name);
        }
    }
    w->t[w->n_t++] = t;
    return 0;
}

/* ---- output ---- */

static bool put(FILE *f, const void *p, size_t n) {
    return n == 0 || fwrite(p, 1, n, f) == n;
}

static bool put_zeros(FILE *f, size_t n) {
    static const uint8_t zeros[4096];
    while (n) {
        size_t k = INF_MIN(n, sizeof zeros);
        if (!put(f, zeros, k)) return false;
        n -= k;
    }
    return true;
}

static bool put_str(FILE *f, const char *s) {
    uint64_t len = strlen(s);
    return put(f, &len, 8) && put(f, s, (size_t)len);
}

static int emit(inf_gguf_writer *w, FILE *f, inf_gguf_fill_fn fill, void *user) {
    size_t a = w->alignment, off = 0;
    for (int64_t i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        size_t end;
        if (inf__add_overflow(off, w->t[i].nbytes, &end) || inf__add_overflow(end, a - 1, &end))
            return inf__err(INF_EINVAL, "gguf writer: data section too large");
        off = end & ~(a - 1);
    }
    uint32_t version = 3;
    uint64_t nt = (uint64_t)w->n_t, nkv = (uint64_t)w->n_kv;
    size_t pos = 4 + 4 + 8 + 8;
    if (!put(f, "GGUF", 4) || !put(f, &version, 4) || !put(f, &nt, 8) || !put(f, &nkv, 8)) goto io;
    for (int64_t i = 0; i < w->n_kv; i++) {
        uint32_t type = (uint32_t)w->kv[i].type;
        if (!put_str(f, w->kv[i].key) || !put(f, &type, 4) || !put(f, w->kv[i].bytes, w->kv[i].n))
            goto io;
        pos += 8 + strlen(w->kv[i].key) + 4 + w->kv[i].n;
    }
    for (int64_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        uint32_t nd = (uint32_t)t->n_dims, type = (uint32_t)t->type;
        if (!put_str(f, t->name) || !put(f, &nd, 4)) goto io;
        for (int d = 0; d < t->n_dims; d++)
            if (!put(f, &t->ne[d], 8)) goto io;
        if (!put(f, &type, 4) || !put(f, &t->offset, 8)) goto io;
        pos += 8 + strlen(t->name) + 4 + 8 * (size_t)t->n_dims + 4 + 8;
    }
    if (w->n_t > 0 && !put_zeros(f, (a - pos % a) % a)) goto io;

    void *buf = NULL;
    size_t buf_cap = 0;
    int err = 0;
    for (int64_t i = 0; i < w->n_t && !err; i++) {
        const wtensor *t = &w->t[i];
        if (t->data) {
            if (!put(f, t->data, t->nbytes)) err = INF_EIO;
        } else if (!fill) {
            if (!put_zeros(f, t->nbytes)) err = INF_EIO;
        } else {
            if (t->nbytes > buf_cap) {
                free(buf);
                buf = inf__aligned_alloc(64, t->nbytes);
                buf_cap = buf ? t->nbytes : 0;
                if (!buf) {
                    err = inf__err(INF_ENOMEM,
                                   "gguf writer: out of memory for tensor '%s' (%zu "
                                   "bytes)",
                                   t->name, t->nbytes);
                    break;
                }
            }
            err = fill(user, i, t->name, t->type, t->ne, buf, t->nbytes);
            if (!err && !put(f, buf, t->nbytes)) err = INF_EIO;
        }
        if (!err && i + 1 < w->n_t && !put_zeros(f, (a - t->nbytes % a) % a)) err = INF_EIO;
    }
    free(buf);
    if (err == INF_EIO) goto io;
    return err;
io:
    return inf__err(INF_EIO, "gguf writer: write failed: %s", strerror(errno));
}

int inf_gguf_writer_write_cb(inf_gguf_writer *w, const char *path, inf_gguf_fill_fn fill,
                             void *user) {
    if (!w || !path) return inf__err(INF_EINVAL, "gguf writer: no path");
    inf_sb tmp = {0};
    inf__sb_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
    if (tmp.oom) return inf__err(INF_ENOMEM, "gguf writer: out of memory");
    FILE *f = fopen(tmp.data, "wb");
    if (!f) {
        int e = errno;
        inf__sb_free(&tmp);
        return inf__err(INF_EIO, "cannot create '%s': %s", path, strerror(e));
    }
    int err = emit(w, f, fill, user);
    if (fclose(f) != 0 && !err) err = inf__err(INF_EIO, "writing '%s': %s", path, strerror(errno));
    if (!err && rename(tmp.data, path) != 0)
        err = inf__err(INF_EIO, "cannot rename to '%s': %s", path, strerror(errno));
    if (err) unlink(tmp.data);
    inf__sb_free(&tmp);
    return err;
}

int inf_gguf_writer_write(inf_gguf_writer *w, const char *path) {
    return inf_gguf_writer_write_cb(w, path, NULL, NULL);
}

int inf_gguf_writer_write_mem(inf_gguf_writer *w, void **out, size_t *len) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) return inf__err(INF_ENOMEM, "gguf writer: open_memstream failed");
    int err = emit(w, f, NULL, NULL);
    if (fclose(f) != 0 && !err) err = inf__err(INF_ENOMEM, "gguf writer: memory stream failed");
    if (err) {
        free(buf);
        return err;
    }
    *out = buf;
    *len = n;
    return 0;
}
