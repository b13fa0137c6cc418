/*
 * chat_template_value.c — values of the chat-template engine: lists and dicts, truthiness,
 * Python-like str()/repr()/json rendering, equality and ordering, item and attribute access.
 * All memory comes from the render's arena. Threads: reentrant.
 */
#include "chat/chat_template_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

vlist *inf__ct_list_new(ct *c, size_t cap) {
    vlist *l = inf__ct_alloc(c, sizeof *l);
    l->n = 0;
    l->tuple = false;
    l->cap = cap ? cap : 4;
    l->v = inf__ct_alloc_array(c, l->cap, sizeof(val));
    return l;
}

void inf__ct_list_push(ct *c, vlist *l, val v) {
    if (l->n == l->cap) {
        val *nv = inf__ct_alloc_array(c, l->cap * 2, sizeof(val));
        memcpy(nv, l->v, l->n * sizeof(val));
        l->v = nv;
        l->cap *= 2;
    }
    l->v[l->n++] = v;
}

val *inf__ct_dict_find(vdict *d, const char *k, size_t n) {
    for (size_t i = 0; i < d->n; i++)
        if (vstr_eq(d->k[i], k, n)) return &d->v[i];
    return NULL;
}

void inf__ct_dict_set(ct *c, vdict *d, const char *k, size_t n, val v) {
    val *slot = inf__ct_dict_find(d, k, n);
    if (slot) {
        *slot = v;
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        vstr *nk = inf__ct_alloc_array(c, cap, sizeof(vstr));
        val *nv = inf__ct_alloc_array(c, cap, sizeof(val));
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof(vstr));
            memcpy(nv, d->v, d->n * sizeof(val));
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = (vstr){k, n};
    d->v[d->n++] = v;
}

vdict *inf__ct_dict_new(ct *c) {
    vdict *d = inf__ct_alloc(c, sizeof *d);
    memset(d, 0, sizeof *d);
    return d;
}

/* ---- value helpers -------------------------------------------------------------------------- */

bool inf__ct_truthy(val v) {
    switch (v.t) {
    case V_UNDEF:
    case V_NONE: return false;
    case V_BOOL: return v.b;
    case V_INT: return v.i != 0;
    case V_FLOAT: return v.f != 0;
    case V_STR: return v.s.n != 0;
    case V_LIST: return v.l->n != 0;
    case V_DICT: return v.d->n != 0;
    default: return true;
    }
}

const char *inf__ct_type_name(val v) {
    static const char *names[] = {"undefined", "none", "bool",  "int",      "float", "string",
                                  "list",      "dict", "macro", "function", "method"};
    return names[v.t];
}

void inf__ct_fmt_float(asb *sb, double f) {
    if (isnan(f)) {
        inf__ct_sb_puts(sb, "nan");
        return;
    }
    if (isinf(f)) {
        inf__ct_sb_puts(sb, f < 0 ? "-inf" : "inf");
        return;
    }
    /* Python repr: shortest digits that round-trip, positional for 1e-4 <= |f| < 1e16. */
    char buf[48];
    int p = 1;
    for (; p < 17; p++) {
        snprintf(buf, sizeof buf, "%.*e", p - 1, f);
        if (strtod(buf, NULL) == f) break;
    }
    snprintf(buf, sizeof buf, "%.*e", p - 1, f);
    char *e = strchr(buf, 'e');
    int exp10 = atoi(e + 1);
    *e = 0;
    char digits[24];
    int nd = 0;
    for (char *q = buf; *q; q++)
        if (*q >= '0' && *q <= '9') digits[nd++] = *q;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    if (f < 0) inf__ct_sb_putc(sb, '-');
    if (exp10 >= 16 || exp10 < -4) {
        inf__ct_sb_putc(sb, digits[0]);
        if (nd > 1) {
            inf__ct_sb_putc(sb, '.');
            inf__ct_sb_append(sb, digits + 1, (size_t)nd - 1);
        }
        inf__ct_sb_printf(sb, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    } else if (exp10 < 0) {
        inf__ct_sb_puts(sb, "0.");
        for (int i = 0; i < -exp10 - 1; i++)
            inf__ct_sb_putc(sb, '0');
        inf__ct_sb_append(sb, digits, (size_t)nd);
    } else {
        for (int i = 0; i <= exp10; i++)
            inf__ct_sb_putc(sb, i < nd ? digits[i] : '0');
        inf__ct_sb_putc(sb, '.');
        if (nd > exp10 + 1)
            inf__ct_sb_append(sb, digits + exp10 + 1, (size_t)(nd - exp10 - 1));
        else
            inf__ct_sb_putc(sb, '0');
    }
}


/* str(v) as Python/Jinja would print it. */
void inf__ct_to_str(ct *c, val v, asb *sb) {
    switch (v.t) {
    case V_UNDEF: return;
    case V_NONE: inf__ct_sb_puts(sb, "None"); return;
    case V_BOOL: inf__ct_sb_puts(sb, v.b ? "True" : "False"); return;
    case V_INT: inf__ct_sb_printf(sb, "%lld", (long long)v.i); return;
    case V_FLOAT: inf__ct_fmt_float(sb, v.f); return;
    case V_STR: inf__ct_sb_append(sb, v.s.p, v.s.n); return;
    default: inf__ct_to_repr(c, v, sb, 0);
    }
}

void inf__ct_repr_str(asb *sb, const char *p, size_t n) {
    bool dq = memchr(p, '\'', n) && !memchr(p, '"', n);
    char q = dq ? '"' : '\'';
    inf__ct_sb_putc(sb, q);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '\\')
            inf__ct_sb_puts(sb, "\\\\");
        else if (ch == (unsigned char)q) {
            inf__ct_sb_putc(sb, '\\');
            inf__ct_sb_putc(sb, q);
        } else if (ch == '\n')
            inf__ct_sb_puts(sb, "\\n");
        else if (ch == '\t')
            inf__ct_sb_puts(sb, "\\t");
        else if (ch == '\r')
            inf__ct_sb_puts(sb, "\\r");
        else if (ch < 0x20 || ch == 0x7f)
            inf__ct_sb_printf(sb, "\\x%02x", ch);
        else
            inf__ct_sb_putc(sb, (char)ch);
    }
    inf__ct_sb_putc(sb, q);
}

void inf__ct_to_repr(ct *c, val v, asb *sb, int depth) {
    if (depth > CT_MAX_DEPTH) inf__ct_fail(c, "value nesting too deep");
    step(c);
    switch (v.t) {
    case V_STR: inf__ct_repr_str(sb, v.s.p, v.s.n); return;
    case V_LIST:
        inf__ct_sb_putc(sb, v.l->tuple ? '(' : '[');
        for (size_t i = 0; i < v.l->n; i++) {
            if (i) inf__ct_sb_puts(sb, ", ");
            inf__ct_to_repr(c, v.l->v[i], sb, depth + 1);
        }
        if (v.l->tuple && v.l->n == 1) inf__ct_sb_putc(sb, ',');
        inf__ct_sb_putc(sb, v.l->tuple ? ')' : ']');
        return;
    case V_DICT:
        inf__ct_sb_putc(sb, '{');
        for (size_t i = 0; i < v.d->n; i++) {
            if (i) inf__ct_sb_puts(sb, ", ");
            inf__ct_repr_str(sb, v.d->k[i].p, v.d->k[i].n);
            inf__ct_sb_puts(sb, ": ");
            inf__ct_to_repr(c, v.d->v[i], sb, depth + 1);
        }
        inf__ct_sb_putc(sb, '}');
        return;
    case V_UNDEF: inf__ct_sb_puts(sb, "Undefined"); return;
    case V_MACRO:
    case V_FUNC:
    case V_METHOD: inf__ct_sb_printf(sb, "<%s>", inf__ct_type_name(v)); return;
    default: inf__ct_to_str(c, v, sb);
    }
}

void inf__ct_json_str(asb *sb, const char *p, size_t n) {
    inf__ct_sb_putc(sb, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        switch (ch) {
        case '"': inf__ct_sb_puts(sb, "\\\""); break;
        case '\\': inf__ct_sb_puts(sb, "\\\\"); break;
        case '\n': inf__ct_sb_puts(sb, "\\n"); break;
        case '\r': inf__ct_sb_puts(sb, "\\r"); break;
        case '\t': inf__ct_sb_puts(sb, "\\t"); break;
        case '\b': inf__ct_sb_puts(sb, "\\b"); break;
        case '\f': inf__ct_sb_puts(sb, "\\f"); break;
        default:
            if (ch < 0x20 || ch == 0x7f)
                inf__ct_sb_printf(sb, "\\u%04x", ch);
            else
                inf__ct_sb_putc(sb, (char)ch);
        }
    }
    inf__ct_sb_putc(sb, '"');
}

void inf__ct_json_nl(asb *sb, int indent, int level) {
    inf__ct_sb_putc(sb, '\n');
    for (int i = 0; i < indent * level; i++)
        inf__ct_sb_putc(sb, ' ');
}

/* json.dumps(v, ensure_ascii=False, indent=indent) (indent < 0: none). */
void inf__ct_to_json(ct *c, val v, asb *sb, int indent, int level) {
    if (level > CT_MAX_DEPTH) inf__ct_fail(c, "value nesting too deep");
    step(c);
    switch (v.t) {
    case V_UNDEF:
    case V_NONE: inf__ct_sb_puts(sb, "null"); return;
    case V_BOOL: inf__ct_sb_puts(sb, v.b ? "true" : "false"); return;
    case V_INT: inf__ct_sb_printf(sb, "%lld", (long long)v.i); return;
    case V_FLOAT:
        if (isnan(v.f))
            inf__ct_sb_puts(sb, "NaN");
        else if (isinf(v.f))
            inf__ct_sb_puts(sb, v.f < 0 ? "-Infinity" : "Infinity");
        else
            inf__ct_fmt_float(sb, v.f);
        return;
    case V_STR: inf__ct_json_str(sb, v.s.p, v.s.n); return;
    case V_LIST:
        inf__ct_sb_putc(sb, '[');
        if (!v.l->n) {
            inf__ct_sb_putc(sb, ']');
            return;
        }
        for (size_t i = 0; i < v.l->n; i++) {
            if (i) inf__ct_sb_puts(sb, indent >= 0 ? "," : ", ");
            if (indent >= 0) inf__ct_json_nl(sb, indent, level + 1);
            inf__ct_to_json(c, v.l->v[i], sb, indent, level + 1);
        }
        if (indent >= 0) inf__ct_json_nl(sb, indent, level);
        inf__ct_sb_putc(sb, ']');
        return;
    case V_DICT:
        inf__ct_sb_putc(sb, '{');
        if (!v.d->n) {
            inf__ct_sb_putc(sb, '}');
            return;
        }
        for (size_t i = 0; i < v.d->n; i++) {
            if (i) inf__ct_sb_puts(sb, indent >= 0 ? "," : ", ");
            if (indent >= 0) inf__ct_json_nl(sb, indent, level + 1);
            inf__ct_json_str(sb, v.d->k[i].p, v.d->k[i].n);
            inf__ct_sb_puts(sb, ": ");
            inf__ct_to_json(c, v.d->v[i], sb, indent, level + 1);
        }
        if (indent >= 0) inf__ct_json_nl(sb, indent, level);
        inf__ct_sb_putc(sb, '}');
        return;
    default: inf__ct_fail(c, "cannot serialise a %s to JSON", inf__ct_type_name(v));
    }
}

/* The builder's bytes as a string value (both live in the arena). */
val inf__ct_sb_val(ct *c, asb *sb) {
    return mk_str(sb->p ? sb->p : "", sb->n);
}

val inf__ct_stringify(ct *c, val v) {
    if (v.t == V_STR) return v;
    asb sb = {c, NULL, 0, 0};
    inf__ct_to_str(c, v, &sb);
    return inf__ct_sb_val(c, &sb);
}

bool inf__ct_num(val v, double *f) {
    if (v.t == V_INT)
        *f = (double)v.i;
    else if (v.t == V_FLOAT)
        *f = v.f;
    else if (v.t == V_BOOL)
        *f = v.b;
    else
        return false;
    return true;
}

bool inf__ct_vequal(ct *c, val a, val b, int depth) {
    if (depth > CT_MAX_DEPTH) inf__ct_fail(c, "value nesting too deep");
    double x, y;
    if (inf__ct_num(a, &x) && inf__ct_num(b, &y)) return x == y;
    if (a.t != b.t) return false;
    switch (a.t) {
    case V_UNDEF:
    case V_NONE: return true;
    case V_STR: return a.s.n == b.s.n && !memcmp(a.s.p, b.s.p, a.s.n);
    case V_LIST:
        if (a.l->n != b.l->n) return false;
        for (size_t i = 0; i < a.l->n; i++)
            if (!inf__ct_vequal(c, a.l->v[i], b.l->v[i], depth + 1)) return false;
        return true;
    case V_DICT:
        if (a.d->n != b.d->n) return false;
        for (size_t i = 0; i < a.d->n; i++) {
            val *o = inf__ct_dict_find(b.d, a.d->k[i].p, a.d->k[i].n);
            if (!o || !inf__ct_vequal(c, a.d->v[i], *o, depth + 1)) return false;
        }
        return true;
    default: return a.m == b.m;
    }
}

int inf__ct_vcompare(ct *c, val a, val b, int line) {
    double x, y;
    if (inf__ct_num(a, &x) && inf__ct_num(b, &y)) return x < y ? -1 : x > y ? 1 : 0;
    if (a.t == V_STR && b.t == V_STR) {
        size_t n = INF_MIN(a.s.n, b.s.n);
        int r = memcmp(a.s.p, b.s.p, n);
        if (r) return r < 0 ? -1 : 1;
        return a.s.n < b.s.n ? -1 : a.s.n > b.s.n ? 1 : 0;
    }
    inf__ct_fail(c, "line %d: cannot compare %s and %s", line, inf__ct_type_name(a), inf__ct_type_name(b));
}

bool inf__ct_contains(ct *c, val hay, val needle, int line) {
    if (hay.t == V_STR) {
        if (needle.t != V_STR) inf__ct_fail(c, "line %d: 'in <string>' needs a string", line);
        if (!needle.s.n) return true;
        if (needle.s.n > hay.s.n) return false;
        for (size_t i = 0; i + needle.s.n <= hay.s.n; i++)
            if (!memcmp(hay.s.p + i, needle.s.p, needle.s.n)) return true;
        return false;
    }
    if (hay.t == V_LIST) {
        for (size_t i = 0; i < hay.l->n; i++)
            if (inf__ct_vequal(c, hay.l->v[i], needle, 0)) return true;
        return false;
    }
    if (hay.t == V_DICT) return needle.t == V_STR && inf__ct_dict_find(hay.d, needle.s.p, needle.s.n);
    if (hay.t == V_UNDEF || hay.t == V_NONE) return false;
    inf__ct_fail(c, "line %d: 'in' needs a string, list or dict, not %s", line, inf__ct_type_name(hay));
}

/* Normalises Python-style index i against length n; false when out of range. */
bool inf__ct_norm_index(int64_t i, size_t n, size_t *out) {
    if (i < 0) i += (int64_t)n;
    if (i < 0 || (uint64_t)i >= n) return false;
    *out = (size_t)i;
    return true;
}

val inf__ct_get_item(ct *c, val obj, val key, int line) {
    if (obj.t == V_DICT) {
        if (key.t != V_STR) return mk_undef();
        val *v = inf__ct_dict_find(obj.d, key.s.p, key.s.n);
        return v ? *v : mk_undef();
    }
    if (obj.t == V_LIST || obj.t == V_STR) {
        if (key.t != V_INT) {
            if (key.t == V_STR) return mk_undef();
            inf__ct_fail(c, "line %d: index must be an integer", line);
        }
        size_t n = obj.t == V_LIST ? obj.l->n : obj.s.n, k;
        if (!inf__ct_norm_index(key.i, n, &k)) return mk_undef();
        if (obj.t == V_LIST) return obj.l->v[k];
        return mk_str(obj.s.p + k, 1);
    }
    return mk_undef();
}

bool inf__ct_is_method_name(val obj, vstr name) {
    static const char *str_m[] = {"strip",   "lstrip", "rstrip", "startswith", "endswith",
                                  "split",   "upper",  "lower",  "title",      "capitalize",
                                  "replace", "find",   "count",  "join",       "splitlines",
                                  "format",  NULL};
    static const char *list_m[] = {"append", "pop", "index", "count", "insert", "extend", NULL};
    static const char *dict_m[] = {"items", "keys", "values", "get", "update", "pop", NULL};
    const char **tab = obj.t == V_STR    ? str_m
                       : obj.t == V_LIST ? list_m
                       : obj.t == V_DICT ? dict_m
                                         : NULL;
    for (int i = 0; tab && tab[i]; i++)
        if (vstr_is(name, tab[i])) return true;
    return false;
}

val inf__ct_get_attr(ct *c, val obj, vstr name) {
    if (inf__ct_is_method_name(obj, name)) {
        vmethod *m = inf__ct_alloc(c, sizeof *m);
        m->self = obj;
        m->name = name;
        return (val){.t = V_METHOD, .meth = m};
    }
    if (obj.t == V_DICT) {
        val *v = inf__ct_dict_find(obj.d, name.p, name.n);
        return v ? *v : mk_undef();
    }
    return mk_undef();
}
