/*
 * gguf.c — GGUF v2/v3 reader: maps the file read-only and validates everything at open time.
 *
 * Invariants after a successful open: every key is a NUL-free string of 1..65535 bytes, keys and
 * tensor names are unique, every metadata value (including nested arrays) lies inside the
 * buffer, every tensor has 1..4 positive dims whose product fits int64, a known type whose block
 * size divides ne[0], an aligned offset, and data [offset, offset + nbytes) inside the file.
 * Accessors therefore never re-check bounds.
 *
 * Hostile input: every count read from the file is checked against the bytes that remain before
 * anything is allocated for it (each element needs a known minimum number of bytes), so memory is
 * O(file size) and time O(file size · log) on any input. Nested arrays are validated with a
 * recursion depth limit. Untrusted strings are sanitized before they appear in error details so
 * the detail stays one printable line.
 *
 * The mapping is MAP_PRIVATE of a file we assume nobody truncates while it is open (as every
 * mmap-based loader does): shrinking it underneath would fault on access.
 *
 * Threads: a handle is immutable after open; concurrent readers are fine.
 */
#define _GNU_SOURCE
#include "format/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAX_KEY_LEN 65535u
#define GGUF_MAX_NAME_LEN 255u
#define GGUF_MAX_DEPTH 8
#define GGUF_MAX_ALIGNMENT (1u << 30)
/* Caps far above real files (hundreds of keys, a few thousand tensors) that keep the per-entry
 * bookkeeping of a hostile multi-GB file of tiny entries from costing several times its size. */
#define GGUF_MAX_KV (1u << 20)
#define GGUF_MAX_TENSORS (1u << 20)
/* Smallest possible encodings, used to bound counts before allocating. */
#define GGUF_MIN_KV_SIZE (8 + 1 + 4 + 1)             /* key len, 1-byte key, type, 1-byte value */
#define GGUF_MIN_TENSOR_INFO (8 + 1 + 4 + 8 + 4 + 8) /* name len, name, n_dims, ne0, type, off */

/* ---- tensor type table (private: the format layer does not depend on kernels) ---- */

typedef struct {
    const char *name;
    int64_t blck;
    size_t size;
} gguf_type_info;

static const gguf_type_info type_table[] = {
    [0] = {"f32", 1, 4},         [1] = {"f16", 1, 2},         [2] = {"q4_0", 32, 18},
    [3] = {"q4_1", 32, 20},      [6] = {"q5_0", 32, 22},      [7] = {"q5_1", 32, 24},
    [8] = {"q8_0", 32, 34},      [9] = {"q8_1", 32, 36},      [10] = {"q2_K", 256, 84},
    [11] = {"q3_K", 256, 110},   [12] = {"q4_K", 256, 144},   [13] = {"q5_K", 256, 176},
    [14] = {"q6_K", 256, 210},   [15] = {"q8_K", 256, 292},   [16] = {"iq2_xxs", 256, 66},
    [17] = {"iq2_xs", 256, 74},  [18] = {"iq3_xxs", 256, 98}, [19] = {"iq1_s", 256, 50},
    [20] = {"iq4_nl", 32, 18},   [21] = {"iq3_s", 256, 110},  [22] = {"iq2_s", 256, 82},
    [23] = {"iq4_xs", 256, 136}, [24] = {"i8", 1, 1},         [25] = {"i16", 1, 2},
    [26] = {"i32", 1, 4},        [27] = {"i64", 1, 8},        [28] = {"f64", 1, 8},
    [29] = {"iq1_m", 256, 56},   [30] = {"bf16", 1, 2},       [34] = {"tq1_0", 256, 54},
    [35] = {"tq2_0", 256, 66},
};

bool inf_gguf_type_size(int type, int64_t *blck, size_t *type_size) {
    if (type < 0 || (size_t)type >= INF_ARRAY_LEN(type_table) || !type_table[type].name)
        return false;
    if (blck) *blck = type_table[type].blck;
    if (type_size) *type_size = type_table[type].size;
    return true;
}

const char *inf_gguf_type_name(int type) {
    return inf_gguf_type_size(type, NULL, NULL) ? type_table[type].name : NULL;
}

int inf_gguf_tensor_nbytes(int type, int n_dims, const int64_t *ne, size_t *nbytes) {
    int64_t blck;
    size_t tsize;
    if (!inf_gguf_type_size(type, &blck, &tsize))
        return inf__err(INF_EFORMAT, "unknown tensor type %d", type);
    if (n_dims < 1 || n_dims > INF_GGUF_MAX_DIMS)
        return inf__err(INF_EFORMAT, "n_dims %d outside 1..%d", n_dims, INF_GGUF_MAX_DIMS);
    int64_t nel = 1;
    for (int i = 0; i < n_dims; i++) {
        if (ne[i] <= 0)
            return inf__err(INF_EFORMAT, "ne[%d] = %lld is not positive", i, (long long)ne[i]);
        if (__builtin_mul_overflow(nel, ne[i], &nel))
            return inf__err(INF_EFORMAT, "element count overflows int64");
    }
    if (ne[0] % blck != 0)
        return inf__err(INF_EFORMAT, "ne[0] = %lld is not a multiple of the %s block size %lld",
                        (long long)ne[0], type_table[type].name, (long long)blck);
    size_t row = (size_t)(ne[0] / blck), total;
    if (inf__mul_overflow(row, tsize, &row)) goto overflow;
    total = row;
    for (int i = 1; i < n_dims; i++)
        if (inf__mul_overflow(total, (size_t)ne[i], &total)) goto overflow;
    *nbytes = total;
    return 0;
overflow:
    return inf__err(INF_EFORMAT, "data size overflows");
}

/* ---- handle ---- */

typedef struct gguf_kv {
    char *key;       /* NUL-terminated copy */
    int type;        /* inf_gguf_vtype */
    size_t pos;      /* scalar: value; string: bytes; array: first element */
    uint64_t len;    /* string: byte length; array: element count */
    int elem_type;   /* array only */
    size_t *str_pos; /* string arrays: [len] offset of each element's length field */
} gguf_kv;

typedef struct name_idx {
    const char *name;
    int64_t idx;
} name_idx;

struct inf_gguf {
    const uint8_t *data;
    size_t size;
    bool mapped;
    uint32_t version;
    size_t alignment;
    size_t data_offset;
    int64_t n_kv;
    gguf_kv *kv;         /* [n_kv] in file order */
    name_idx *kv_sorted; /* [n_kv] by key */
    int64_t n_tensors;
    inf_gguf_tensor *tensors; /* [n_tensors] in file order */
    name_idx *t_sorted;       /* [n_tensors] by name */
};

/* Parse cursor; `where` names the item being parsed for error details. */
typedef struct rd {
    const uint8_t *p;
    size_t size, pos;
    char where[192];
} rd;

static const size_t scalar_size[INF_GGUF_VTYPE_COUNT] = {
    [INF_GGUF_UINT8] = 1,  [INF_GGUF_INT8] = 1,  [INF_GGUF_UINT16] = 2,  [INF_GGUF_INT16] = 2,
    [INF_GGUF_UINT32] = 4, [INF_GGUF_INT32] = 4, [INF_GGUF_FLOAT32] = 4, [INF_GGUF_BOOL] = 1,
    [INF_GGUF_UINT64] = 8, [INF_GGUF_INT64] = 8, [INF_GGUF_FLOAT64] = 8,
};

static const char *vtype_name(int t) {
    static const char *names[] = {"uint8",  "int8",    "uint16", "int16",  "uint32",
                                  "int32",  "float32", "bool",   "string", "array",
                                  "uint64", "int64",   "float64"};
    return t >= 0 && t < INF_GGUF_VTYPE_COUNT ? names[t] : "invalid";
}

/* Printable one-line rendering of untrusted bytes (escapes, truncation). */
static void sanitize(const uint8_t *s, size_t n, char *out, size_t cap) {
    if (cap < 8) {
        if (cap) out[0] = 0;
        return;
    }
    size_t o = 0, limit = cap > 8 ? cap - 8 : 0;
    for (size_t i = 0; i < n; i++) {
        if (o >= limit) {
            memcpy(out + o, "...", 4);
            return;
        }
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
            out[o++] = (char)c;
        } else {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        }
    }
    out[o] = 0;
}

static inline uint32_t ld_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline uint64_t ld_u64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static size_t remaining(const rd *r) {
    return r->size - r->pos;
}

static int truncated(const rd *r, const char *what, uint64_t need) {
    return inf__err(INF_EFORMAT,
                    "%s: %s at offset %zu needs %llu bytes, file has only %zu left (%zu bytes)",
                    r->where, what, r->pos, (unsigned long long)need, remaining(r), r->size);
}

static int rd_u32(rd *r, const char *what, uint32_t *v) {
    if (remaining(r) < 4) return truncated(r, what, 4);
    *v = ld_u32(r->p + r->pos);
    r->pos += 4;
    return 0;
}

static int rd_u64(rd *r, const char *what, uint64_t *v) {
    if (remaining(r) < 8) return truncated(r, what, 8);
    *v = ld_u64(r->p + r->pos);
    r->pos += 8;
    return 0;
}

/* Reads a string header and checks its bytes are present; *pos = offset of the bytes. */
static int rd_str(rd *r, const char *what, uint64_t *len, size_t *pos) {
    char w[64];
    snprintf(w, sizeof w, "%s length", what);
    int err = rd_u64(r, w, len);
    if (err) return err;
    if (*len > remaining(r))
        return inf__err(INF_EFORMAT,
                        "%s: %s length %llu at offset %zu exceeds the %zu bytes left in the file",
                        r->where, what, (unsigned long long)*len, r->pos - 8, remaining(r));
    *pos = r->pos;
    r->pos += (size_t)*len;
    return 0;
}

static int rd_skip_value(rd *r, int type, int depth);

/* Validates an array body (after the array type tag). */
static int rd_array(rd *r, int depth, int *elem_type, uint64_t *n, size_t *first) {
    uint32_t et;
    int err = rd_u32(r, "array element type", &et);
    if (err) return err;
    if (et >= INF_GGUF_VTYPE_COUNT)
        return inf__err(INF_EFORMAT, "%s: invalid array element type %u at offset %zu", r->where,
                        et, r->pos - 4);
    if ((err = rd_u64(r, "array length", n))) return err;
    size_t min = et == INF_GGUF_STRING ? 8 : et == INF_GGUF_ARRAY ? 12 : scalar_size[et];
    if (*n > remaining(r) / min)
        return inf__err(INF_EFORMAT,
                        "%s: array of %llu %s at offset %zu exceeds the %zu bytes left in the "
                        "file",
                        r->where, (unsigned long long)*n, vtype_name((int)et), r->pos - 8,
                        remaining(r));
    *elem_type = (int)et;
    *first = r->pos;
    if (et == INF_GGUF_ARRAY && depth + 1 > GGUF_MAX_DEPTH)
        return inf__err(INF_EFORMAT, "%s: arrays nested deeper than %d at offset %zu", r->where,
                        GGUF_MAX_DEPTH, r->pos);
    if (et != INF_GGUF_STRING && et != INF_GGUF_ARRAY) {
        if (et == INF_GGUF_BOOL) {
            for (uint64_t i = 0; i < *n; i++)
                if (r->p[r->pos + i] > 1)
                    return inf__err(INF_EFORMAT,
                                    "%s: bool element %llu has value %u at offset "
                                    "%zu",
                                    r->where, (unsigned long long)i, r->p[r->pos + i],
                                    (size_t)(r->pos + i));
        }
        r->pos += (size_t)*n * min;
        return 0;
    }
    for (uint64_t i = 0; i < *n; i++)
        if ((err = rd_skip_value(r, (int)et, depth + 1))) return err;
    return 0;
}

static int rd_skip_value(rd *r, int type, int depth) {
    if (type == INF_GGUF_STRING) {
        uint64_t len;
        size_t pos;
        return rd_str(r, "string", &len, &pos);
    }
    if (type == INF_GGUF_ARRAY) {
        int et;
        uint64_t n;
        size_t first;
        return rd_array(r, depth, &et, &n, &first);
    }
    size_t sz = scalar_size[type];
    if (remaining(r) < sz) return truncated(r, vtype_name(type), sz);
    if (type == INF_GGUF_BOOL && r->p[r->pos] > 1)
        return inf__err(INF_EFORMAT, "%s: bool value %u at offset %zu is not 0 or 1", r->where,
                        r->p[r->pos], r->pos);
    r->pos += sz;
    return 0;
}

static int cmp_name_idx(const void *a, const void *b) {
    const name_idx *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int64_t find_sorted(const name_idx *v, int64_t n, const char *name) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v[mid].name, name);
        if (c == 0) return v[mid].idx;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Reads a length-prefixed identifier (metadata key or tensor name): 1..max bytes, no NUL.
 * *out: new NUL-terminated copy; printable: the sanitized form for messages. */
static int rd_ident(rd *r, const char *what, uint32_t max, char **out, char *printable,
                    size_t cap) {
    uint64_t len;
    size_t pos;
    int err = rd_str(r, what, &len, &pos);
    if (err) return err;
    if (len == 0 || len > max)
        return inf__err(INF_EFORMAT, "%s: %s length %llu at offset %zu outside 1..%u", r->where,
                        what, (unsigned long long)len, pos - 8, max);
    if (memchr(r->p + pos, 0, (size_t)len))
        return inf__err(INF_EFORMAT, "%s: %s at offset %zu contains a NUL byte", r->where, what,
                        pos);
    *out = inf__strndup((const char *)r->p + pos, (size_t)len);
    if (!*out) return inf__err(INF_ENOMEM, "%s: out of memory", r->where);
    sanitize(r->p + pos, (size_t)len, printable, cap);
    return 0;
}

static int parse_kv(inf_gguf *g, rd *r) {
    int err;
    for (int64_t i = 0; i < g->n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        snprintf(r->where, sizeof r->where, "metadata key %lld", (long long)i);
        char kname[96];
        if ((err = rd_ident(r, "key", GGUF_MAX_KEY_LEN, &kv->key, kname, sizeof kname)))
            return err;
        snprintf(r->where, sizeof r->where, "metadata key %lld ('%s')", (long long)i, kname);
        uint32_t t;
        if ((err = rd_u32(r, "value type", &t))) return err;
        if (t >= INF_GGUF_VTYPE_COUNT)
            return inf__err(INF_EFORMAT, "%s: invalid value type %u at offset %zu", r->where, t,
                            r->pos - 4);
        kv->type = (int)t;
        if (t == INF_GGUF_STRING) {
            if ((err = rd_str(r, "string", &kv->len, &kv->pos))) return err;
        } else if (t == INF_GGUF_ARRAY) {
            if ((err = rd_array(r, 0, &kv->elem_type, &kv->len, &kv->pos))) return err;
            if (kv->elem_type == INF_GGUF_STRING && kv->len > 0) {
                /* Element offsets for O(1) access; bounded: each element used >= 8 bytes. */
                kv->str_pos = inf__calloc((size_t)kv->len, sizeof(size_t));
                if (!kv->str_pos) return inf__err(INF_ENOMEM, "%s: out of memory", r->where);
                size_t p = kv->pos;
                for (uint64_t j = 0; j < kv->len; j++) {
                    kv->str_pos[j] = p;
                    p += 8 + (size_t)ld_u64(r->p + p);
                }
            }
        } else {
            kv->pos = r->pos;
            if ((err = rd_skip_value(r, (int)t, 0))) return err;
        }
    }
    return 0;
}

static int check_alignment(inf_gguf *g) {
    g->alignment = 32;
    int64_t idx = inf_gguf_find_key(g, "general.alignment");
    if (idx < 0) return 0;
    int64_t v;
    int err = inf_gguf_get_i64(g, "general.alignment", &v);
    if (err) return err;
    if (v <= 0 || (v & (v - 1)) || v > (int64_t)GGUF_MAX_ALIGNMENT)
        return inf__err(INF_EFORMAT,
                        "metadata key %lld ('general.alignment'): %lld is not a power of two in "
                        "1..%u",
                        (long long)idx, (long long)v, GGUF_MAX_ALIGNMENT);
    g->alignment = (size_t)v;
    return 0;
}

static int parse_tensor_infos(inf_gguf *g, rd *r) {
    int err;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        inf_gguf_tensor *t = &g->tensors[i];
        snprintf(r->where, sizeof r->where, "tensor %lld", (long long)i);
        char sname[96], *name;
        if ((err = rd_ident(r, "name", GGUF_MAX_NAME_LEN, &name, sname, sizeof sname)))
            return err;
        t->name = name;
        snprintf(r->where, sizeof r->where, "tensor '%s'", sname);
        uint32_t nd;
        if ((err = rd_u32(r, "n_dims", &nd))) return err;
        if (nd < 1 || nd > INF_GGUF_MAX_DIMS)
            return inf__err(INF_EFORMAT, "%s: n_dims %u at offset %zu outside 1..%d", r->where, nd,
                            r->pos - 4, INF_GGUF_MAX_DIMS);
        t->n_dims = (int)nd;
        for (int d = 0; d < INF_GGUF_MAX_DIMS; d++)
            t->ne[d] = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t ne = 0;
            if ((err = rd_u64(r, "dimension", &ne))) return err;
            if (ne == 0 || ne > (uint64_t)INT64_MAX)
                return inf__err(INF_EFORMAT, "%s: ne[%u] = %llu at offset %zu outside 1..2^63-1",
                                r->where, d, (unsigned long long)ne, r->pos - 8);
            t->ne[d] = (int64_t)ne;
        }
        uint32_t type;
        if ((err = rd_u32(r, "type", &type))) return err;
        if (!inf_gguf_type_size((int)type, NULL, NULL))
            return inf__err(INF_EFORMAT, "%s: unknown tensor type %u at offset %zu", r->where, type,
                            r->pos - 4);
        t->type = (int)type;
        if ((err = rd_u64(r, "data offset", &t->offset))) return err;
        if ((err = inf_gguf_tensor_nbytes(t->type, t->n_dims, t->ne, &t->nbytes)))
            return inf__err_prefix(err, "%s", r->where);
    }
    return 0;
}

static int check_tensor_data(inf_gguf *g) {
    for (int64_t i = 0; i < g->n_tensors; i++) {
        inf_gguf_tensor *t = &g->tensors[i];
        char sname[96];
        sanitize((const uint8_t *)t->name, strlen(t->name), sname, sizeof sname);
        if (t->offset % g->alignment)
            return inf__err(INF_EFORMAT,
                            "tensor '%s': data offset %llu is not a multiple of the "
                            "alignment %zu",
                            sname, (unsigned long long)t->offset, g->alignment);
        size_t start, end;
        if (t->offset > g->size || inf__add_overflow(g->data_offset, (size_t)t->offset, &start) ||
            inf__add_overflow(start, t->nbytes, &end) || end > g->size)
            return inf__err(INF_EFORMAT,
                            "tensor '%s': data [offset %llu, size %zu] beyond end of file (%zu "
                            "bytes, data section at %zu)",
                            sname, (unsigned long long)t->offset, t->nbytes, g->size,
                            g->data_offset);
        t->data = g->data + start;
    }
    return 0;
}

static int build_index(name_idx **out, int64_t n, const char *(*get)(const inf_gguf *, int64_t),
                       const inf_gguf *g, const char *what) {
    if (n == 0) return 0;
    name_idx *v = inf__calloc((size_t)n, sizeof *v);
    if (!v) return inf__err(INF_ENOMEM, "out of memory indexing %s", what);
    for (int64_t i = 0; i < n; i++) {
        v[i].name = get(g, i);
        v[i].idx = i;
    }
    qsort(v, (size_t)n, sizeof *v, cmp_name_idx);
    *out = v;
    for (int64_t i = 1; i < n; i++) {
        if (!strcmp(v[i].name, v[i - 1].name)) {
            char s[96];
            sanitize((const uint8_t *)v[i].name, strlen(v[i].name), s, sizeof s);
            return inf__err(INF_EFORMAT, "duplicate %s '%s' (entries %lld and %lld)", what, s,
                            (long long)v[i - 1].idx, (long long)v[i].idx);
        }
    }
    return 0;
}

const char *inf__gguf_printable(const void *s, size_t n, char *out, size_t cap) {
    sanitize(s, n, out, cap);
    return out;
}

static const char *tensor_name_at(const inf_gguf *g, int64_t i) {
    return g->tensors[i].name;
}

static int parse(inf_gguf *g) {
    rd r = {.p = g->data, .size = g->size, .pos = 0};
    snprintf(r.where, sizeof r.where, "header");
    if (g->size < 4)
        return inf__err(INF_EFORMAT, "file too small (%zu bytes) for a GGUF header", g->size);
    if (memcmp(g->data, "GGUF", 4)) {
        char m[32];
        sanitize(g->data, 4, m, sizeof m);
        return inf__err(INF_EFORMAT, "bad magic '%s' (not a GGUF file)", m);
    }
    r.pos = 4;
    uint32_t version;
    int err = rd_u32(&r, "version", &version);
    if (err) return err;
    if (version == 1)
        return inf__err(INF_EFORMAT, "GGUF version 1 is not supported (v2 or v3 required)");
    if (version == 0x02000000u || version == 0x03000000u)
        return inf__err(INF_EFORMAT, "big-endian GGUF is not supported");
    if (version != 2 && version != 3)
        return inf__err(INF_EFORMAT, "unsupported GGUF version %u (v2 or v3 required)", version);
    g->version = version;
    uint64_t nt, nkv;
    if ((err = rd_u64(&r, "tensor count", &nt)) || (err = rd_u64(&r, "metadata count", &nkv)))
        return err;
    size_t left = remaining(&r);
    if (nkv > GGUF_MAX_KV)
        return inf__err(INF_EFORMAT, "header: metadata count %llu exceeds the limit %u",
                        (unsigned long long)nkv, GGUF_MAX_KV);
    if (nt > GGUF_MAX_TENSORS)
        return inf__err(INF_EFORMAT, "header: tensor count %llu exceeds the limit %u",
                        (unsigned long long)nt, GGUF_MAX_TENSORS);
    if (nkv > left / GGUF_MIN_KV_SIZE)
        return inf__err(INF_EFORMAT,
                        "header: metadata count %llu cannot fit in the %zu bytes "
                        "left in the file",
                        (unsigned long long)nkv, left);
    if (nt > left / GGUF_MIN_TENSOR_INFO ||
        nkv * GGUF_MIN_KV_SIZE + nt * GGUF_MIN_TENSOR_INFO > left)
        return inf__err(INF_EFORMAT,
                        "header: tensor count %llu cannot fit in the %zu bytes "
                        "left in the file",
                        (unsigned long long)nt, left);
    g->n_kv = (int64_t)nkv;
    g->n_tensors = (int64_t)nt;
    if (nkv && !(g->kv = inf__calloc((size_t)nkv, sizeof *g->kv)))
        return inf__err(INF_ENOMEM, "out of memory for %llu metadata entries",
                        (unsigned long long)nkv);
    if ((err = parse_kv(g, &r))) return err;
    if ((err = build_index(&g->kv_sorted, g->n_kv, inf_gguf_key_name, g, "metadata key")))
        return err;
    if ((err = check_alignment(g))) return err;
    if (nt && !(g->tensors = inf__calloc((size_t)nt, sizeof *g->tensors)))
        return inf__err(INF_ENOMEM, "out of memory for %llu tensors", (unsigned long long)nt);
    if ((err = parse_tensor_infos(g, &r))) return err;
    if ((err = build_index(&g->t_sorted, g->n_tensors, tensor_name_at, g, "tensor name")))
        return err;
    /* The data section starts at the next multiple of the alignment. */
    size_t pad = (g->alignment - r.pos % g->alignment) % g->alignment;
    g->data_offset = r.pos + pad;
    if (g->n_tensors > 0 && (g->data_offset < r.pos || g->data_offset > g->size))
        return inf__err(INF_EFORMAT,
                        "data section would start at %zu, beyond end of file (%zu "
                        "bytes)",
                        g->data_offset, g->size);
    return check_tensor_data(g);
}

static int open_common(const uint8_t *data, size_t size, bool mapped, inf_gguf **out) {
    inf_gguf *g = inf__calloc(1, sizeof *g);
    if (!g) {
        if (mapped) munmap((void *)data, size);
        return inf__err(INF_ENOMEM, "out of memory");
    }
    g->data = data;
    g->size = size;
    g->mapped = mapped;
    int err = parse(g);
    if (err) {
        inf_gguf_close(g);
        return err;
    }
    *out = g;
    return 0;
}

int inf_gguf_open_buffer(const void *data, size_t size, inf_gguf **out) {
    *out = NULL;
    if (!data && size) return inf__err(INF_EINVAL, "NULL buffer");
    static const uint8_t empty[1];
    return open_common(data ? data : empty, size, false, out);
}

int inf_gguf_open(const char *path, inf_gguf **out) {
    *out = NULL;
    if (!path) return inf__err(INF_EINVAL, "no path");
    char sp[512]; /* the path as it may appear in a one-line detail */
    sanitize((const uint8_t *)path, strlen(path), sp, sizeof sp);
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (regular files ignore it). */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return inf__err(INF_EIO, "cannot open '%s': %s", sp, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return inf__err(INF_EIO, "cannot stat '%s': %s", sp, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return inf__err(INF_EIO, "'%s' is not a regular file", sp);
    }
    size_t size = (size_t)st.st_size;
    if (size == 0) {
        close(fd);
        return inf__err(INF_EFORMAT, "'%s': empty file (0 bytes), not a GGUF file", sp);
    }
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return inf__err(INF_EIO, "cannot map '%s': %s", sp, strerror(e));
    return open_common(p, size, true, out);
}

void inf_gguf_close(inf_gguf *g) {
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].str_pos);
    }
    free(g->kv);
    free(g->kv_sorted);
    for (int64_t i = 0; i < g->n_tensors && g->tensors; i++)
        free((char *)g->tensors[i].name);
    free(g->tensors);
    free(g->t_sorted);
    if (g->mapped) munmap((void *)g->data, g->size);
    free(g);
}

uint32_t inf_gguf_version(const inf_gguf *g) {
    return g->version;
}
size_t inf_gguf_file_size(const inf_gguf *g) {
    return g->size;
}
size_t inf_gguf_alignment(const inf_gguf *g) {
    return g->alignment;
}
size_t inf_gguf_data_offset(const inf_gguf *g) {
    return g->data_offset;
}

/* ---- metadata ---- */

int64_t inf_gguf_n_kv(const inf_gguf *g) {
    return g->n_kv;
}

int64_t inf_gguf_find_key(const inf_gguf *g, const char *key) {
    if (!key) return -1;
    if (g->kv_sorted) return find_sorted(g->kv_sorted, g->n_kv, key);
    /* During parsing (before the index exists) fall back to a scan. */
    for (int64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && !strcmp(g->kv[i].key, key)) return i;
    return -1;
}

const char *inf_gguf_key_name(const inf_gguf *g, int64_t idx) {
    return idx >= 0 && idx < g->n_kv ? g->kv[idx].key : NULL;
}

int inf_gguf_kv_type(const inf_gguf *g, int64_t idx) {
    return idx >= 0 && idx < g->n_kv ? g->kv[idx].type : -1;
}

static int lookup(const inf_gguf *g, const char *key, const gguf_kv **kv) {
    int64_t i = inf_gguf_find_key(g, key);
    if (i < 0) return inf__err(INF_ENOTFOUND, "metadata key '%s' not found", key ? key : "");
    *kv = &g->kv[i];
    return 0;
}

static int wrong_type(const char *key, const gguf_kv *kv, const char *want) {
    return inf__err(INF_EFORMAT, "metadata key '%s': has type %s, expected %s", key,
                    vtype_name(kv->type), want);
}

/* Integer value as (negative flag, magnitude) so every width compares exactly. */
static bool get_int(const inf_gguf *g, const gguf_kv *kv, bool *neg, uint64_t *mag) {
    const uint8_t *p = g->data + kv->pos;
    int64_t s;
    *neg = false;
    switch (kv->type) {
    case INF_GGUF_UINT8: *mag = p[0]; return true;
    case INF_GGUF_UINT16: {
        uint16_t v;
        memcpy(&v, p, 2);
        *mag = v;
        return true;
    }
    case INF_GGUF_UINT32: *mag = ld_u32(p); return true;
    case INF_GGUF_UINT64: *mag = ld_u64(p); return true;
    case INF_GGUF_INT8: s = (int8_t)p[0]; break;
    case INF_GGUF_INT16: {
        int16_t v;
        memcpy(&v, p, 2);
        s = v;
        break;
    }
    case INF_GGUF_INT32: {
        int32_t v;
        memcpy(&v, p, 4);
        s = v;
        break;
    }
    case INF_GGUF_INT64: memcpy(&s, p, 8); break;
    default: return false;
    }
    *neg = s < 0;
    *mag = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
    return true;
}

int inf_gguf_get_u32(const inf_gguf *g, const char *key, uint32_t *out) {
    const gguf_kv *kv = NULL;
    int err = lookup(g, key, &kv);
    if (err) return err;
    bool neg;
    uint64_t mag;
    if (!get_int(g, kv, &neg, &mag)) return wrong_type(key, kv, "an integer");
    if ((neg && mag) || mag > UINT32_MAX)
        return inf__err(INF_EFORMAT, "metadata key '%s': value %s%llu does not fit uint32", key,
                        neg ? "-" : "", (unsigned long long)mag);
    *out = (uint32_t)mag;
    return 0;
}

int inf_gguf_get_i64(const inf_gguf *g, const char *key, int64_t *out) {
    const gguf_kv *kv = NULL;
    int err = lookup(g, key, &kv);
    if (err) return err;
    bool neg;
    uint64_t mag;
    if (!get_int(g, kv, &neg, &mag)) return wrong_type(key, kv, "an integer");
    if (!neg && mag > (uint64_t)INT64_MAX)
        return inf__err(INF_EFORMAT, "metadata key '%s': value %llu does not fit int64", key,
                        (unsigned long long)mag);
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return 0;
}

int inf_gguf_get_f32(const inf_gguf *g, const char *key, float *out) {
    const gguf_kv *kv = NULL;
    int err = lookup(g, key, &kv);
    if (err) return err;
    const uint8_t *p = g->data + kv->pos;
    if (kv->type == INF_GGUF_FLOAT32) {
        memcpy(out, p, 4);
    } else if (kv->type == INF_GGUF_FLOAT64) {
        double d;
        memcpy(&d, p, 8);
        *out = (float)d;
    } else {
        return wrong_type(key, kv, "float32 or float64");
    }
    return 0;
}

int inf_gguf_get_bool(const inf_gguf *g, const char *key, bool *out) {
    const gguf_kv *kv = NULL;
    int err = lookup(g, key, &kv);
    if (err) return err;
    if (kv->type != INF_GGUF_BOOL) return wrong_type(key, kv, "bool");
    *out = g->data[kv->pos] != 0;
    return 0;
}

int inf_gguf_get_str(const inf_gguf *g, const char *key, const char **s, size_t *len) {
    const gguf_kv *kv = NULL;
    int err = lookup(g, key, &kv);
    if (err) return err;
    if (kv->type != INF_GGUF_STRING) return wrong_type(key, kv, "string");
    *s = (const char *)g->data + kv->pos;
    *len = (size_t)kv->len;
    return 0;
}

int inf_gguf_get_strdup(const inf_gguf *g, const char *key, char **out) {
    const char *s = NULL;
    size_t len = 0;
    int err = inf_gguf_get_str(g, key, &s, &len);
    if (err) return err;
    *out = inf__strndup(s, len);
    if (!*out) return inf__err(INF_ENOMEM, "metadata key '%s': out of memory", key);
    return 0;
}

int inf_gguf_get_arr(const inf_gguf *g, const char *key, int *elem_type, int64_t *n) {
    const gguf_kv *kv = NULL;
    int err = lookup(g, key, &kv);
    if (err) return err;
    if (kv->type != INF_GGUF_ARRAY) return wrong_type(key, kv, "array");
    *elem_type = kv->elem_type;
    *n = (int64_t)kv->len;
    return 0;
}

int inf_gguf_get_arr_str(const inf_gguf *g, const char *key, int64_t i, const char **s,
                         size_t *len) {
    const gguf_kv *kv = NULL;
    int err = lookup(g, key, &kv);
    if (err) return err;
    if (kv->type != INF_GGUF_ARRAY || kv->elem_type != INF_GGUF_STRING)
        return inf__err(INF_EFORMAT, "metadata key '%s': not an array of strings", key);
    if (i < 0 || (uint64_t)i >= kv->len)
        return inf__err(INF_ERANGE, "metadata key '%s': index %lld outside 0..%llu", key,
                        (long long)i, (unsigned long long)kv->len);
    size_t p = kv->str_pos[i];
    *len = (size_t)ld_u64(g->data + p);
    *s = (const char *)g->data + p + 8;
    return 0;
}

int inf_gguf_get_arr_data(const inf_gguf *g, const char *key, const void **data) {
    const gguf_kv *kv = NULL;
    int err = lookup(g, key, &kv);
    if (err) return err;
    if (kv->type != INF_GGUF_ARRAY || kv->elem_type == INF_GGUF_STRING ||
        kv->elem_type == INF_GGUF_ARRAY)
        return inf__err(INF_EFORMAT, "metadata key '%s': not a numeric array", key);
    *data = g->data + kv->pos;
    return 0;
}

/* ---- tensors ---- */

int64_t inf_gguf_n_tensors(const inf_gguf *g) {
    return g->n_tensors;
}

const inf_gguf_tensor *inf_gguf_tensor_at(const inf_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const inf_gguf_tensor *inf_gguf_find_tensor(const inf_gguf *g, const char *name) {
    if (!name || !g->t_sorted) return NULL;
    int64_t i = find_sorted(g->t_sorted, g->n_tensors, name);
    return i < 0 ? NULL : &g->tensors[i];
}
