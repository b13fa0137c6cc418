/*
 * chat_template_eval.c — evaluation half of the chat-template engine (see chat_template.c for
 * the supported Jinja subset): filters, tests, methods, calls, arithmetic,
 * statements, and inf_chat_template_apply. All memory comes from the render's arena.
 * Threads: reentrant.
 */
#include "chat/chat_template_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* ---- evaluation ----------------------------------------------------------------------------- */

static val eval(ct *c, frame *f, const node *nd);
static void exec(ct *c, frame *f, const node *nd);

static val lookup(frame *f, vstr name) {
    for (; f; f = f->parent) {
        val *v = inf__ct_dict_find(&f->vars, name.p, name.n);
        if (v) return *v;
    }
    return mk_undef();
}

typedef struct args {
    val *pos;
    int npos;
    vstr *kwn;
    val *kwv;
    int nkw;
} args;

static args eval_args(ct *c, frame *f, const node *nd) {
    args a = {0};
    a.npos = nd->nargs;
    a.pos = inf__ct_alloc_array(c, (size_t)nd->nargs + 1, sizeof(val));
    for (int i = 0; i < nd->nargs; i++)
        a.pos[i] = eval(c, f, nd->args[i]);
    a.nkw = nd->nkw;
    a.kwn = nd->kwn;
    a.kwv = inf__ct_alloc_array(c, (size_t)nd->nkw + 1, sizeof(val));
    for (int i = 0; i < nd->nkw; i++)
        a.kwv[i] = eval(c, f, nd->kwv[i]);
    return a;
}

/* Argument i by position, or by keyword name; undefined when absent. */
static val arg(const args *a, int i, const char *kw) {
    if (i >= 0 && i < a->npos) return a->pos[i];
    for (int k = 0; kw && k < a->nkw; k++)
        if (vstr_is(a->kwn[k], kw)) return a->kwv[k];
    return mk_undef();
}

static val need_str(ct *c, val v, const char *what, int line) {
    if (v.t != V_STR)
        inf__ct_fail(c, "line %d: %s needs a string, got %s", line, what, inf__ct_type_name(v));
    return v;
}

static bool is_space_ch(char ch, val chars) {
    if (chars.t == V_STR) return memchr(chars.s.p, ch, chars.s.n) != NULL;
    return is_ws(ch);
}

static val str_strip(val s, val chars, bool left, bool right) {
    size_t a = 0, b = s.s.n;
    if (left)
        while (a < b && is_space_ch(s.s.p[a], chars))
            a++;
    if (right)
        while (b > a && is_space_ch(s.s.p[b - 1], chars))
            b--;
    return mk_str(s.s.p + a, b - a);
}

static val str_case(ct *c, val s, int mode) { /* 0 upper, 1 lower, 2 title, 3 capitalize */
    char *d = inf__ct_alloc(c, s.s.n + 1);
    bool start = true;
    for (size_t i = 0; i < s.s.n; i++) {
        char ch = s.s.p[i];
        bool alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
        bool up = mode == 0 || (mode == 2 && start) || (mode == 3 && i == 0);
        if (up && ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 32);
        else if (!up && mode != 0 && ch >= 'A' && ch <= 'Z')
            ch = (char)(ch + 32);
        d[i] = ch;
        start = !alpha;
    }
    return mk_str(d, s.s.n);
}

static val str_replace(ct *c, val s, val from, val to, int64_t count) {
    if (!from.s.n) return s;
    asb sb = {c, NULL, 0, 0};
    size_t i = 0;
    int64_t done = 0;
    while (i < s.s.n) {
        if ((count < 0 || done < count) && i + from.s.n <= s.s.n &&
            !memcmp(s.s.p + i, from.s.p, from.s.n)) {
            inf__ct_sb_append(&sb, to.s.p, to.s.n);
            i += from.s.n;
            done++;
        } else {
            inf__ct_sb_putc(&sb, s.s.p[i++]);
        }
    }
    return inf__ct_sb_val(c, &sb);
}

static val str_split(ct *c, val s, val sep, int64_t maxsplit) {
    vlist *l = inf__ct_list_new(c, 8);
    size_t i = 0, n = s.s.n;
    const char *p = s.s.p;
    if (sep.t != V_STR) { /* whitespace split */
        while (i < n) {
            while (i < n && is_ws(p[i]))
                i++;
            if (i >= n) break;
            size_t j = i;
            if (maxsplit >= 0 && (int64_t)l->n >= maxsplit) {
                size_t e = n;
                while (e > i && is_ws(p[e - 1]))
                    e--;
                inf__ct_list_push(c, l, mk_str(p + i, e - i));
                break;
            }
            while (j < n && !is_ws(p[j]))
                j++;
            inf__ct_list_push(c, l, mk_str(p + i, j - i));
            i = j;
        }
        return mk_list(l);
    }
    if (!sep.s.n) inf__ct_fail(c, "empty separator");
    size_t start = 0;
    while (i + sep.s.n <= n) {
        if ((maxsplit < 0 || (int64_t)l->n < maxsplit) && !memcmp(p + i, sep.s.p, sep.s.n)) {
            inf__ct_list_push(c, l, mk_str(p + start, i - start));
            i += sep.s.n;
            start = i;
        } else {
            i++;
        }
        step(c);
    }
    inf__ct_list_push(c, l, mk_str(p + start, n - start));
    return mk_list(l);
}

static vlist *iter_list(ct *c, val v, int line) {
    if (v.t == V_LIST) return v.l;
    vlist *l = inf__ct_list_new(c, 8);
    if (v.t == V_DICT) {
        for (size_t i = 0; i < v.d->n; i++)
            inf__ct_list_push(c, l, mk_str(v.d->k[i].p, v.d->k[i].n));
    } else if (v.t == V_STR) {
        for (size_t i = 0; i < v.s.n;) {
            int k = inf__utf8_len((unsigned char)v.s.p[i]);
            if (k < 1 || i + (size_t)k > v.s.n) k = 1;
            inf__ct_list_push(c, l, mk_str(v.s.p + i, (size_t)k));
            i += (size_t)k;
        }
    } else if (v.t != V_UNDEF && v.t != V_NONE) {
        inf__ct_fail(c, "line %d: %s is not iterable", line, inf__ct_type_name(v));
    }
    return l;
}

static val dict_items(ct *c, vdict *d) {
    vlist *l = inf__ct_list_new(c, d->n);
    for (size_t i = 0; i < d->n; i++) {
        vlist *pair = inf__ct_list_new(c, 2);
        pair->tuple = true;
        inf__ct_list_push(c, pair, mk_str(d->k[i].p, d->k[i].n));
        inf__ct_list_push(c, pair, d->v[i]);
        inf__ct_list_push(c, l, mk_list(pair));
    }
    return mk_list(l);
}

static val call_method(ct *c, vmethod *m, args *a, int line) {
    val s = m->self;
    vstr nm = m->name;
    if (s.t == V_STR) {
        if (vstr_is(nm, "strip")) return str_strip(s, arg(a, 0, "chars"), true, true);
        if (vstr_is(nm, "lstrip")) return str_strip(s, arg(a, 0, "chars"), true, false);
        if (vstr_is(nm, "rstrip")) return str_strip(s, arg(a, 0, "chars"), false, true);
        if (vstr_is(nm, "upper")) return str_case(c, s, 0);
        if (vstr_is(nm, "lower")) return str_case(c, s, 1);
        if (vstr_is(nm, "title")) return str_case(c, s, 2);
        if (vstr_is(nm, "capitalize")) return str_case(c, s, 3);
        if (vstr_is(nm, "startswith") || vstr_is(nm, "endswith")) {
            val x = arg(a, 0, NULL);
            vlist one = {&x, 1, 1, false};
            vlist *cands = x.t == V_LIST ? x.l : &one;
            bool start = vstr_is(nm, "startswith");
            for (size_t i = 0; i < cands->n; i++) {
                val p = need_str(c, cands->v[i], "startswith/endswith", line);
                if (p.s.n > s.s.n) continue;
                const char *at = start ? s.s.p : s.s.p + s.s.n - p.s.n;
                if (!memcmp(at, p.s.p, p.s.n)) return mk_bool(true);
            }
            return mk_bool(false);
        }
        if (vstr_is(nm, "split")) {
            val sep = arg(a, 0, "sep"), ms = arg(a, 1, "maxsplit");
            if (sep.t == V_NONE) sep = mk_undef();
            return str_split(c, s, sep, ms.t == V_INT ? ms.i : -1);
        }
        if (vstr_is(nm, "splitlines")) return str_split(c, s, mk_str("\n", 1), -1);
        if (vstr_is(nm, "replace")) {
            val from = need_str(c, arg(a, 0, NULL), "replace", line);
            val to = need_str(c, arg(a, 1, NULL), "replace", line);
            val cnt = arg(a, 2, "count");
            return str_replace(c, s, from, to, cnt.t == V_INT ? cnt.i : -1);
        }
        if (vstr_is(nm, "find") || vstr_is(nm, "count")) {
            val x = need_str(c, arg(a, 0, NULL), "find", line);
            int64_t cnt = 0;
            for (size_t i = 0; x.s.n && i + x.s.n <= s.s.n; i++)
                if (!memcmp(s.s.p + i, x.s.p, x.s.n)) {
                    if (vstr_is(nm, "find")) return mk_int((int64_t)i);
                    cnt++;
                    i += x.s.n - 1;
                }
            return mk_int(vstr_is(nm, "find") ? (x.s.n ? -1 : 0) : cnt);
        }
        if (vstr_is(nm, "join")) {
            vlist *l = iter_list(c, arg(a, 0, NULL), line);
            asb sb = {c, NULL, 0, 0};
            for (size_t i = 0; i < l->n; i++) {
                if (i) inf__ct_sb_append(&sb, s.s.p, s.s.n);
                inf__ct_to_str(c, l->v[i], &sb);
            }
            return inf__ct_sb_val(c, &sb);
        }
        if (vstr_is(nm, "format")) {
            asb sb = {c, NULL, 0, 0};
            int k = 0;
            for (size_t i = 0; i < s.s.n; i++) {
                if (s.s.p[i] == '{' && i + 1 < s.s.n && s.s.p[i + 1] == '}') {
                    inf__ct_to_str(c, arg(a, k++, NULL), &sb);
                    i++;
                } else {
                    inf__ct_sb_putc(&sb, s.s.p[i]);
                }
            }
            return inf__ct_sb_val(c, &sb);
        }
    } else if (s.t == V_LIST) {
        vlist *l = s.l;
        if (vstr_is(nm, "append")) {
            inf__ct_list_push(c, l, arg(a, 0, NULL));
            return mk_none();
        }
        if (vstr_is(nm, "extend")) {
            vlist *o = iter_list(c, arg(a, 0, NULL), line);
            for (size_t i = 0; i < o->n; i++)
                inf__ct_list_push(c, l, o->v[i]);
            return mk_none();
        }
        if (vstr_is(nm, "insert")) {
            val iv = arg(a, 0, NULL);
            if (iv.t != V_INT) inf__ct_fail(c, "line %d: insert needs an index", line);
            int64_t i = iv.i < 0 ? iv.i + (int64_t)l->n : iv.i;
            size_t at = i < 0 ? 0 : (uint64_t)i > l->n ? l->n : (size_t)i;
            inf__ct_list_push(c, l, mk_none());
            memmove(&l->v[at + 1], &l->v[at], (l->n - 1 - at) * sizeof(val));
            l->v[at] = arg(a, 1, NULL);
            return mk_none();
        }
        if (vstr_is(nm, "pop")) {
            val iv = arg(a, 0, NULL);
            size_t k;
            if (!inf__ct_norm_index(iv.t == V_INT ? iv.i : -1, l->n, &k))
                inf__ct_fail(c, "line %d: pop index out of range", line);
            val r = l->v[k];
            memmove(&l->v[k], &l->v[k + 1], (l->n - k - 1) * sizeof(val));
            l->n--;
            return r;
        }
        if (vstr_is(nm, "index") || vstr_is(nm, "count")) {
            val x = arg(a, 0, NULL);
            int64_t cnt = 0;
            for (size_t i = 0; i < l->n; i++)
                if (inf__ct_vequal(c, l->v[i], x, 0)) {
                    if (vstr_is(nm, "index")) return mk_int((int64_t)i);
                    cnt++;
                }
            if (vstr_is(nm, "index")) inf__ct_fail(c, "line %d: value not in list", line);
            return mk_int(cnt);
        }
    } else if (s.t == V_DICT) {
        vdict *d = s.d;
        if (vstr_is(nm, "items")) return dict_items(c, d);
        if (vstr_is(nm, "keys") || vstr_is(nm, "values")) {
            vlist *l = inf__ct_list_new(c, d->n);
            for (size_t i = 0; i < d->n; i++)
                inf__ct_list_push(c, l, vstr_is(nm, "keys") ? mk_str(d->k[i].p, d->k[i].n) : d->v[i]);
            return mk_list(l);
        }
        if (vstr_is(nm, "get") || vstr_is(nm, "pop")) {
            val k = arg(a, 0, NULL), def = arg(a, 1, NULL);
            val *v = k.t == V_STR ? inf__ct_dict_find(d, k.s.p, k.s.n) : NULL;
            if (!v) return a->npos > 1 ? def : mk_none();
            val r = *v;
            if (vstr_is(nm, "pop")) {
                size_t i = (size_t)(v - d->v);
                memmove(&d->k[i], &d->k[i + 1], (d->n - i - 1) * sizeof(vstr));
                memmove(&d->v[i], &d->v[i + 1], (d->n - i - 1) * sizeof(val));
                d->n--;
            }
            return r;
        }
        if (vstr_is(nm, "update")) {
            val o = arg(a, 0, NULL);
            if (o.t == V_DICT)
                for (size_t i = 0; i < o.d->n; i++)
                    inf__ct_dict_set(c, d, o.d->k[i].p, o.d->k[i].n, o.d->v[i]);
            for (int i = 0; i < a->nkw; i++)
                inf__ct_dict_set(c, d, a->kwn[i].p, a->kwn[i].n, a->kwv[i]);
            return mk_none();
        }
    }
    inf__ct_fail(c, "line %d: unknown method '%.*s' of %s", line, (int)nm.n, nm.p, inf__ct_type_name(s));
}

static val call_macro(ct *c, const node *m, args *a, int line) {
    frame fr = {.parent = c->globals};
    for (int i = 0; i < m->nkw; i++) {
        val v = arg(a, i, NULL);
        if (v.t == V_UNDEF)
            for (int k = 0; k < a->nkw; k++)
                if (vstr_eq(a->kwn[k], m->kwn[i].p, m->kwn[i].n)) v = a->kwv[k];
        if (v.t == V_UNDEF && m->kwv[i]) v = eval(c, c->globals, m->kwv[i]);
        inf__ct_dict_set(c, &fr.vars, m->kwn[i].p, m->kwn[i].n, v);
    }
    enter(c);
    asb *saved = c->out, sb = {c, NULL, 0, 0};
    c->out = &sb;
    exec(c, &fr, m->b);
    c->out = saved;
    c->brk = 0;
    leave(c);
    (void)line;
    return inf__ct_sb_val(c, &sb);
}

static val call_value(ct *c, val fn, args *a, int line) {
    if (fn.t == V_METHOD) return call_method(c, fn.meth, a, line);
    if (fn.t == V_MACRO) return call_macro(c, fn.m, a, line);
    if (fn.t != V_FUNC) inf__ct_fail(c, "line %d: %s is not callable", line, inf__ct_type_name(fn));
    switch (fn.fn) {
    case FN_RAISE: {
        val msg = inf__ct_stringify(c, arg(a, 0, NULL));
        inf__ct_fail(c, "%.*s", (int)INF_MIN(msg.s.n, 200), msg.s.p);
    }
    case FN_RANGE: {
        int64_t lo = 0, hi, st = 1;
        val x = arg(a, 0, NULL), y = arg(a, 1, NULL), z = arg(a, 2, NULL);
        if (x.t != V_INT) inf__ct_fail(c, "line %d: range() needs integers", line);
        if (y.t == V_INT) {
            lo = x.i;
            hi = y.i;
            if (z.t == V_INT) st = z.i;
        } else {
            hi = x.i;
        }
        if (st == 0) inf__ct_fail(c, "line %d: range() step is zero", line);
        vlist *l = inf__ct_list_new(c, 8);
        for (int64_t i = lo; st > 0 ? i < hi : i > hi;) {
            step(c);
            inf__ct_list_push(c, l, mk_int(i));
            if (__builtin_add_overflow(i, st, &i)) break; /* past any int64 bound */
        }
        return mk_list(l);
    }
    case FN_NAMESPACE:
    case FN_DICT: {
        vdict *d = inf__ct_dict_new(c);
        val base = arg(a, 0, NULL);
        if (base.t == V_DICT)
            for (size_t i = 0; i < base.d->n; i++)
                inf__ct_dict_set(c, d, base.d->k[i].p, base.d->k[i].n, base.d->v[i]);
        for (int i = 0; i < a->nkw; i++)
            inf__ct_dict_set(c, d, a->kwn[i].p, a->kwn[i].n, a->kwv[i]);
        return mk_dict(d);
    }
    case FN_STRFTIME: {
        val fmt = need_str(c, arg(a, 0, NULL), "strftime_now", line);
        char *z = inf__ct_strndup(c, fmt.s.p, fmt.s.n);
        time_t now = time(NULL);
        struct tm tmv;
        localtime_r(&now, &tmv);
        char buf[256];
        size_t n = strftime(buf, sizeof buf, z, &tmv);
        return mk_str(inf__ct_strndup(c, buf, n), n);
    }
    }
    inf__ct_fail(c, "line %d: bad function", line);
}

static bool run_test(ct *c, vstr name, val v, args *a, int line) {
    double x;
    if (vstr_is(name, "defined")) return v.t != V_UNDEF;
    if (vstr_is(name, "undefined")) return v.t == V_UNDEF;
    if (vstr_is(name, "none")) return v.t == V_NONE;
    if (vstr_is(name, "boolean")) return v.t == V_BOOL;
    if (vstr_is(name, "true")) return v.t == V_BOOL && v.b;
    if (vstr_is(name, "false")) return v.t == V_BOOL && !v.b;
    if (vstr_is(name, "string")) return v.t == V_STR;
    if (vstr_is(name, "number")) return v.t == V_INT || v.t == V_FLOAT;
    if (vstr_is(name, "integer")) return v.t == V_INT;
    if (vstr_is(name, "float")) return v.t == V_FLOAT;
    if (vstr_is(name, "mapping")) return v.t == V_DICT;
    if (vstr_is(name, "sequence")) return v.t == V_LIST || v.t == V_STR || v.t == V_DICT;
    if (vstr_is(name, "iterable")) return v.t == V_LIST || v.t == V_STR || v.t == V_DICT;
    if (vstr_is(name, "callable")) return v.t == V_MACRO || v.t == V_FUNC || v.t == V_METHOD;
    if (vstr_is(name, "odd") || vstr_is(name, "even")) {
        if (v.t != V_INT) inf__ct_fail(c, "line %d: odd/even need an integer", line);
        return (v.i % 2 != 0) == vstr_is(name, "odd");
    }
    if (vstr_is(name, "divisibleby")) {
        val d = arg(a, 0, NULL);
        if (v.t != V_INT || d.t != V_INT || d.i == 0)
            inf__ct_fail(c, "line %d: bad divisibleby", line);
        return v.i % d.i == 0;
    }
    if (vstr_is(name, "eq") || vstr_is(name, "equalto") || vstr_is(name, "sameas") ||
        vstr_is(name, "=="))
        return inf__ct_vequal(c, v, arg(a, 0, NULL), 0);
    if (vstr_is(name, "ne") || vstr_is(name, "!=")) return !inf__ct_vequal(c, v, arg(a, 0, NULL), 0);
    if (vstr_is(name, "lt")) return inf__ct_vcompare(c, v, arg(a, 0, NULL), line) < 0;
    if (vstr_is(name, "le")) return inf__ct_vcompare(c, v, arg(a, 0, NULL), line) <= 0;
    if (vstr_is(name, "gt")) return inf__ct_vcompare(c, v, arg(a, 0, NULL), line) > 0;
    if (vstr_is(name, "ge")) return inf__ct_vcompare(c, v, arg(a, 0, NULL), line) >= 0;
    if (vstr_is(name, "in")) return inf__ct_contains(c, arg(a, 0, NULL), v, line);
    (void)x;
    inf__ct_fail(c, "line %d: unknown test '%.*s'", line, (int)name.n, name.p);
}

/* selectattr/rejectattr/select/reject: keeps items whose (attribute) passes the test. */
static val filter_select(ct *c, val v, args *a, bool attr, bool keep, int line) {
    vlist *l = iter_list(c, v, line), *r = inf__ct_list_new(c, l->n);
    val aname = attr ? need_str(c, arg(a, 0, NULL), "selectattr", line) : mk_undef();
    int first = attr ? 1 : 0;
    val tname = arg(a, first, NULL);
    args rest = {0};
    if (a->npos > first + 1) {
        rest.pos = a->pos + first + 1;
        rest.npos = a->npos - first - 1;
    }
    for (size_t i = 0; i < l->n; i++) {
        val x = attr ? inf__ct_get_attr(c, l->v[i], (vstr){aname.s.p, aname.s.n}) : l->v[i];
        bool ok = tname.t == V_STR ? run_test(c, (vstr){tname.s.p, tname.s.n}, x, &rest, line)
                                   : inf__ct_truthy(x);
        if (ok == keep) inf__ct_list_push(c, r, l->v[i]);
    }
    return mk_list(r);
}

static val apply_filter(ct *c, vstr name, val v, args *a, int line) {
    if (vstr_is(name, "trim")) {
        if (v.t != V_STR) v = inf__ct_stringify(c, v);
        return str_strip(v, arg(a, 0, "chars"), true, true);
    }
    if (vstr_is(name, "upper") || vstr_is(name, "lower") || vstr_is(name, "title") ||
        vstr_is(name, "capitalize")) {
        v = inf__ct_stringify(c, v);
        int mode = vstr_is(name, "upper")   ? 0
                   : vstr_is(name, "lower") ? 1
                   : vstr_is(name, "title") ? 2
                                            : 3;
        return str_case(c, v, mode);
    }
    if (vstr_is(name, "length") || vstr_is(name, "count")) {
        if (v.t == V_STR) {
            int64_t n = 0;
            for (size_t i = 0; i < v.s.n; i++)
                if (((unsigned char)v.s.p[i] & 0xc0) != 0x80) n++;
            return mk_int(n);
        }
        if (v.t == V_LIST) return mk_int((int64_t)v.l->n);
        if (v.t == V_DICT) return mk_int((int64_t)v.d->n);
        if (v.t == V_UNDEF) return mk_int(0);
        inf__ct_fail(c, "line %d: %s has no length", line, inf__ct_type_name(v));
    }
    if (vstr_is(name, "first") || vstr_is(name, "last")) {
        vlist *l = iter_list(c, v, line);
        if (!l->n) return mk_undef();
        return vstr_is(name, "first") ? l->v[0] : l->v[l->n - 1];
    }
    if (vstr_is(name, "default") || vstr_is(name, "d")) {
        bool boolean = inf__ct_truthy(arg(a, 1, "boolean"));
        if (v.t == V_UNDEF || (boolean && !inf__ct_truthy(v))) {
            val d = arg(a, 0, "default_value");
            return d.t == V_UNDEF ? mk_str("", 0) : d;
        }
        return v;
    }
    if (vstr_is(name, "join")) {
        vlist *l = iter_list(c, v, line);
        val sep = arg(a, 0, "d"), at = arg(a, 1, "attribute");
        if (sep.t != V_UNDEF) sep = inf__ct_stringify(c, sep);
        asb sb = {c, NULL, 0, 0};
        for (size_t i = 0; i < l->n; i++) {
            if (i && sep.t == V_STR) inf__ct_sb_append(&sb, sep.s.p, sep.s.n);
            val x = l->v[i];
            if (at.t == V_STR) x = inf__ct_get_attr(c, x, (vstr){at.s.p, at.s.n});
            inf__ct_to_str(c, x, &sb);
        }
        return inf__ct_sb_val(c, &sb);
    }
    if (vstr_is(name, "tojson")) {
        val ind = arg(a, 0, "indent");
        asb sb = {c, NULL, 0, 0};
        inf__ct_to_json(c, v, &sb, ind.t == V_INT ? (int)INF_MIN(INF_MAX(ind.i, 0), 16) : -1, 0);
        return inf__ct_sb_val(c, &sb);
    }
    if (vstr_is(name, "string")) return inf__ct_stringify(c, v);
    if (vstr_is(name, "safe") || vstr_is(name, "e") || vstr_is(name, "escape")) {
        if (vstr_is(name, "safe")) return v;
        v = inf__ct_stringify(c, v);
        asb sb = {c, NULL, 0, 0};
        for (size_t i = 0; i < v.s.n; i++) {
            char ch = v.s.p[i];
            if (ch == '&')
                inf__ct_sb_puts(&sb, "&amp;");
            else if (ch == '<')
                inf__ct_sb_puts(&sb, "&lt;");
            else if (ch == '>')
                inf__ct_sb_puts(&sb, "&gt;");
            else if (ch == '"')
                inf__ct_sb_puts(&sb, "&#34;");
            else if (ch == '\'')
                inf__ct_sb_puts(&sb, "&#39;");
            else
                inf__ct_sb_putc(&sb, ch);
        }
        return inf__ct_sb_val(c, &sb);
    }
    if (vstr_is(name, "int")) {
        double x;
        if (v.t == V_INT) return v;
        if (inf__ct_num(v, &x)) {
            if (isnan(x)) return mk_int(0); /* jinja2: the default on ValueError */
            if (!(x >= -0x1p63 && x < 0x1p63)) /* the doubles that fit int64 */
                inf__ct_fail(c, "line %d: int: %g out of range", line, x);
            return mk_int((int64_t)x);
        }
        if (v.t == V_STR) {
            char *z = inf__ct_strndup(c, v.s.p, v.s.n);
            return mk_int(strtoll(z, NULL, 10));
        }
        return mk_int(0);
    }
    if (vstr_is(name, "float")) {
        double x;
        if (inf__ct_num(v, &x)) return mk_float(x);
        if (v.t == V_STR) return mk_float(strtod(inf__ct_strndup(c, v.s.p, v.s.n), NULL));
        return mk_float(0);
    }
    if (vstr_is(name, "abs")) {
        if (v.t == V_INT && v.i == INT64_MIN) return mk_float(-(double)v.i);
        if (v.t == V_INT) return mk_int(v.i < 0 ? -v.i : v.i);
        if (v.t == V_FLOAT) return mk_float(fabs(v.f));
        inf__ct_fail(c, "line %d: abs needs a number", line);
    }
    if (vstr_is(name, "round")) {
        double x;
        if (!inf__ct_num(v, &x)) inf__ct_fail(c, "line %d: round needs a number", line);
        val p = arg(a, 0, "precision");
        double s = pow(10, p.t == V_INT ? (double)p.i : 0);
        return mk_float(round(x * s) / s);
    }
    if (vstr_is(name, "list")) {
        vlist *l = iter_list(c, v, line), *r = inf__ct_list_new(c, l->n);
        for (size_t i = 0; i < l->n; i++)
            inf__ct_list_push(c, r, l->v[i]);
        return mk_list(r);
    }
    if (vstr_is(name, "reverse")) {
        if (v.t == V_STR) {
            char *d = inf__ct_alloc(c, v.s.n + 1);
            for (size_t i = 0; i < v.s.n; i++)
                d[i] = v.s.p[v.s.n - 1 - i];
            return mk_str(d, v.s.n);
        }
        vlist *l = iter_list(c, v, line), *r = inf__ct_list_new(c, l->n);
        for (size_t i = l->n; i-- > 0;)
            inf__ct_list_push(c, r, l->v[i]);
        return mk_list(r);
    }
    if (vstr_is(name, "replace")) {
        v = inf__ct_stringify(c, v);
        val from = inf__ct_stringify(c, arg(a, 0, "old")), to = inf__ct_stringify(c, arg(a, 1, "new"));
        val cnt = arg(a, 2, "count");
        return str_replace(c, v, from, to, cnt.t == V_INT ? cnt.i : -1);
    }
    if (vstr_is(name, "items")) {
        if (v.t == V_DICT) return dict_items(c, v.d);
        if (v.t == V_UNDEF) return mk_list(inf__ct_list_new(c, 1));
        inf__ct_fail(c, "line %d: items needs a dict", line);
    }
    if (vstr_is(name, "selectattr")) return filter_select(c, v, a, true, true, line);
    if (vstr_is(name, "rejectattr")) return filter_select(c, v, a, true, false, line);
    if (vstr_is(name, "select")) return filter_select(c, v, a, false, true, line);
    if (vstr_is(name, "reject")) return filter_select(c, v, a, false, false, line);
    if (vstr_is(name, "map")) {
        vlist *l = iter_list(c, v, line), *r = inf__ct_list_new(c, l->n);
        val at = arg(a, -1, "attribute"), fname = arg(a, 0, NULL);
        for (size_t i = 0; i < l->n; i++) {
            if (at.t == V_STR) {
                inf__ct_list_push(c, r, inf__ct_get_attr(c, l->v[i], (vstr){at.s.p, at.s.n}));
            } else if (fname.t == V_STR) {
                args none = {0};
                inf__ct_list_push(c, r,
                          apply_filter(c, (vstr){fname.s.p, fname.s.n}, l->v[i], &none, line));
            } else {
                inf__ct_fail(c, "line %d: map needs attribute= or a filter name", line);
            }
        }
        return mk_list(r);
    }
    if (vstr_is(name, "unique")) {
        vlist *l = iter_list(c, v, line), *r = inf__ct_list_new(c, l->n);
        for (size_t i = 0; i < l->n; i++)
            if (!inf__ct_contains(c, mk_list(r), l->v[i], line)) inf__ct_list_push(c, r, l->v[i]);
        return mk_list(r);
    }
    if (vstr_is(name, "indent")) {
        v = inf__ct_stringify(c, v);
        val w = arg(a, 0, "width"), first = arg(a, 1, "first");
        int width = w.t == V_INT ? (int)INF_MIN(INF_MAX(w.i, 0), 64) : 4;
        asb sb = {c, NULL, 0, 0};
        for (size_t i = 0; i < v.s.n; i++) {
            if (i == 0 && inf__ct_truthy(first))
                for (int k = 0; k < width; k++)
                    inf__ct_sb_putc(&sb, ' ');
            inf__ct_sb_putc(&sb, v.s.p[i]);
            if (v.s.p[i] == '\n' && i + 1 < v.s.n && v.s.p[i + 1] != '\n')
                for (int k = 0; k < width; k++)
                    inf__ct_sb_putc(&sb, ' ');
        }
        return inf__ct_sb_val(c, &sb);
    }
    if (vstr_is(name, "wordcount")) {
        v = inf__ct_stringify(c, v);
        return mk_int((int64_t)str_split(c, v, mk_undef(), -1).l->n);
    }
    if (vstr_is(name, "min") || vstr_is(name, "max") || vstr_is(name, "sum")) {
        vlist *l = iter_list(c, v, line);
        if (vstr_is(name, "sum")) {
            double s = 0;
            int64_t si = 0; /* exact while every term is an int and the sum fits */
            bool fl = false;
            for (size_t i = 0; i < l->n; i++) {
                double x;
                val t = l->v[i];
                if (!inf__ct_num(t, &x)) inf__ct_fail(c, "line %d: sum needs numbers", line);
                fl |= t.t == V_FLOAT ||
                      __builtin_add_overflow(si, t.t == V_INT ? t.i : t.t == V_BOOL, &si);
                s += x;
            }
            return fl ? mk_float(s) : mk_int(si);
        }
        if (!l->n) return mk_undef();
        val best = l->v[0];
        for (size_t i = 1; i < l->n; i++) {
            int r = inf__ct_vcompare(c, l->v[i], best, line);
            if (vstr_is(name, "min") ? r < 0 : r > 0) best = l->v[i];
        }
        return best;
    }
    if (vstr_is(name, "dictsort")) {
        if (v.t != V_DICT) inf__ct_fail(c, "line %d: dictsort needs a dict", line);
        val items = dict_items(c, v.d);
        vlist *l = items.l;
        for (size_t i = 1; i < l->n; i++) /* insertion sort: dicts here are small */
            for (size_t j = i; j > 0 && inf__ct_vcompare(c, l->v[j - 1].l->v[0], l->v[j].l->v[0], line) > 0;
                 j--) {
                val t = l->v[j];
                l->v[j] = l->v[j - 1];
                l->v[j - 1] = t;
            }
        return items;
    }
    inf__ct_fail(c, "line %d: unknown filter '%.*s'", line, (int)name.n, name.p);
}

static val arith(ct *c, const char *op, val x, val y, int line) {
    if (!strcmp(op, "~")) {
        asb sb = {c, NULL, 0, 0};
        inf__ct_to_str(c, x, &sb);
        inf__ct_to_str(c, y, &sb);
        return inf__ct_sb_val(c, &sb);
    }
    if (!strcmp(op, "+")) {
        if (x.t == V_UNDEF && y.t == V_STR) return y;
        if (y.t == V_UNDEF && x.t == V_STR) return x;
        if (x.t == V_STR && y.t == V_STR) {
            size_t n = x.s.n + y.s.n;
            if (n > CT_MAX_OUTPUT) inf__ct_fail(c, "string too long");
            char *d = inf__ct_alloc(c, n + 1);
            memcpy(d, x.s.p, x.s.n);
            memcpy(d + x.s.n, y.s.p, y.s.n);
            return mk_str(d, n);
        }
        if (x.t == V_LIST && y.t == V_LIST) {
            vlist *l = inf__ct_list_new(c, x.l->n + y.l->n);
            for (size_t i = 0; i < x.l->n; i++)
                inf__ct_list_push(c, l, x.l->v[i]);
            for (size_t i = 0; i < y.l->n; i++)
                inf__ct_list_push(c, l, y.l->v[i]);
            return mk_list(l);
        }
    }
    if (!strcmp(op, "*") && ((x.t == V_STR && y.t == V_INT) || (x.t == V_INT && y.t == V_STR))) {
        val s = x.t == V_STR ? x : y;
        int64_t k = x.t == V_INT ? x.i : y.i;
        if (k <= 0 || !s.s.n) return mk_str("", 0);
        if ((uint64_t)k > CT_MAX_OUTPUT / s.s.n) inf__ct_fail(c, "string too long");
        char *d = inf__ct_alloc(c, s.s.n * (size_t)k + 1);
        for (int64_t i = 0; i < k; i++)
            memcpy(d + (size_t)i * s.s.n, s.s.p, s.s.n);
        return mk_str(d, s.s.n * (size_t)k);
    }
    double a, b;
    if (!inf__ct_num(x, &a) || !inf__ct_num(y, &b))
        inf__ct_fail(c, "line %d: unsupported operand types for %s: %s and %s", line, op,
                     inf__ct_type_name(x), inf__ct_type_name(y));
    bool ints = x.t != V_FLOAT && y.t != V_FLOAT;
    if (!strcmp(op, "/")) {
        if (b == 0) inf__ct_fail(c, "line %d: division by zero", line);
        return mk_float(a / b);
    }
    if (ints) {
        int64_t p = x.t == V_BOOL ? x.b : x.i, q = y.t == V_BOOL ? y.b : y.i, r;
        if (!strcmp(op, "+") && !__builtin_add_overflow(p, q, &r)) return mk_int(r);
        if (!strcmp(op, "-") && !__builtin_sub_overflow(p, q, &r)) return mk_int(r);
        if (!strcmp(op, "*") && !__builtin_mul_overflow(p, q, &r)) return mk_int(r);
        if (!strcmp(op, "//") || !strcmp(op, "%")) {
            if (q == 0) inf__ct_fail(c, "line %d: division by zero", line);
            if (p == INT64_MIN && q == -1) inf__ct_fail(c, "line %d: integer overflow", line);
            int64_t dq = p / q, m = p % q;
            if (m != 0 && ((m < 0) != (q < 0))) {
                dq--;
                m += q;
            }
            return mk_int(!strcmp(op, "//") ? dq : m);
        }
        if (!strcmp(op, "**") && q >= 0) {
            /* square-and-multiply: O(log q) steps, so 1 ** 10**18 cannot hang; |p| >= 2 makes
             * every factor at least as large as a squared base that overflows */
            int64_t acc = 1, base = p;
            for (uint64_t e = (uint64_t)q; e; e >>= 1) {
                if ((e & 1) && __builtin_mul_overflow(acc, base, &acc))
                    inf__ct_fail(c, "line %d: overflow", line);
                if (e > 1 && __builtin_mul_overflow(base, base, &base))
                    inf__ct_fail(c, "line %d: overflow", line);
            }
            return mk_int(acc);
        }
    }
    if (!strcmp(op, "+")) return mk_float(a + b);
    if (!strcmp(op, "-")) return mk_float(a - b);
    if (!strcmp(op, "*")) return mk_float(a * b);
    if (!strcmp(op, "**")) return mk_float(pow(a, b));
    if (b == 0) inf__ct_fail(c, "line %d: division by zero", line);
    if (!strcmp(op, "//")) return mk_float(floor(a / b));
    double m = fmod(a, b);
    if (m != 0 && ((m < 0) != (b < 0))) m += b;
    return mk_float(m);
}

static val eval_slice(ct *c, frame *f, const node *nd, val obj) {
    val lo = nd->b ? eval(c, f, nd->b) : mk_none(), hi = nd->c ? eval(c, f, nd->c) : mk_none();
    val st = nd->d ? eval(c, f, nd->d) : mk_none();
    if ((lo.t != V_NONE && lo.t != V_INT) || (hi.t != V_NONE && hi.t != V_INT) ||
        (st.t != V_NONE && st.t != V_INT))
        inf__ct_fail(c, "line %d: slice indices must be integers", nd->line);
    int64_t n = obj.t == V_LIST ? (int64_t)obj.l->n : obj.t == V_STR ? (int64_t)obj.s.n : -1;
    if (n < 0) {
        if (obj.t == V_UNDEF || obj.t == V_NONE) return mk_undef();
        inf__ct_fail(c, "line %d: cannot slice %s", nd->line, inf__ct_type_name(obj));
    }
    int64_t s = st.t == V_INT ? st.i : 1;
    if (s == 0) inf__ct_fail(c, "line %d: slice step is zero", nd->line);
    int64_t a, b;
    if (s > 0) {
        a = lo.t == V_INT ? lo.i : 0;
        b = hi.t == V_INT ? hi.i : n;
        if (a < 0) a = INF_MAX(a + n, 0);
        if (b < 0) b = INF_MAX(b + n, 0);
        a = INF_MIN(a, n);
        b = INF_MIN(b, n);
    } else {
        a = lo.t == V_INT ? lo.i : n - 1;
        b = hi.t == V_INT ? hi.i : -n - 1;
        if (a < 0) a += n;
        if (b < 0) b += n;
        a = INF_MIN(a, n - 1);
        if (b < -1) b = -1;
    }
    if (obj.t == V_STR && s == 1) return mk_str(obj.s.p + a, b > a ? (size_t)(b - a) : 0);
    vlist *r = inf__ct_list_new(c, 8);
    asb sb = {c, NULL, 0, 0};
    for (int64_t i = a; s > 0 ? i < b : i > b;) {
        if (obj.t == V_LIST)
            inf__ct_list_push(c, r, obj.l->v[i]);
        else
            inf__ct_sb_putc(&sb, obj.s.p[i]);
        if (__builtin_add_overflow(i, s, &i)) break; /* a huge step leaves the sequence */
    }
    if (obj.t == V_STR) return inf__ct_sb_val(c, &sb);
    return mk_list(r);
}

static val eval(ct *c, frame *f, const node *nd) {
    step(c);
    enter(c);
    val r;
    switch (nd->kind) {
    case N_LIT: r = nd->lit; break;
    case N_NAME: r = lookup(f, nd->name); break;
    case N_LIST: {
        vlist *l = inf__ct_list_new(c, (size_t)nd->nargs);
        l->tuple = nd->op[0] == 't';
        for (int i = 0; i < nd->nargs; i++)
            inf__ct_list_push(c, l, eval(c, f, nd->args[i]));
        r = mk_list(l);
        break;
    }
    case N_DICT: {
        vdict *d = inf__ct_dict_new(c);
        for (int i = 0; i + 1 < nd->nargs; i += 2) {
            val k = eval(c, f, nd->args[i]);
            if (k.t != V_STR) k = inf__ct_stringify(c, k);
            inf__ct_dict_set(c, d, k.s.p, k.s.n, eval(c, f, nd->args[i + 1]));
        }
        r = mk_dict(d);
        break;
    }
    case N_ATTR: r = inf__ct_get_attr(c, eval(c, f, nd->a), nd->name); break;
    case N_INDEX: {
        val obj = eval(c, f, nd->a), key = eval(c, f, nd->b);
        if (key.t == V_STR && inf__ct_is_method_name(obj, (vstr){key.s.p, key.s.n}) && obj.t != V_DICT)
            r = inf__ct_get_attr(c, obj, (vstr){key.s.p, key.s.n});
        else
            r = inf__ct_get_item(c, obj, key, nd->line);
        break;
    }
    case N_SLICE: r = eval_slice(c, f, nd, eval(c, f, nd->a)); break;
    case N_CALL: {
        val fn = eval(c, f, nd->a);
        args a = eval_args(c, f, nd);
        r = call_value(c, fn, &a, nd->line);
        break;
    }
    case N_FILTER: {
        val v = eval(c, f, nd->a);
        args a = eval_args(c, f, nd);
        r = apply_filter(c, nd->name, v, &a, nd->line);
        break;
    }
    case N_TEST: {
        val v = eval(c, f, nd->a);
        args a = eval_args(c, f, nd);
        bool ok = run_test(c, nd->name, v, &a, nd->line);
        r = mk_bool(nd->op[0] == '!' ? !ok : ok);
        break;
    }
    case N_NEG:
    case N_POS: {
        val v = eval(c, f, nd->a);
        if (v.t == V_INT && nd->kind == N_NEG && v.i == INT64_MIN)
            r = mk_float(-(double)v.i); /* like + - * on overflow: a float, never UB */
        else if (v.t == V_INT)
            r = mk_int(nd->kind == N_NEG ? -v.i : v.i);
        else if (v.t == V_FLOAT)
            r = mk_float(nd->kind == N_NEG ? -v.f : v.f);
        else
            inf__ct_fail(c, "line %d: bad operand for unary minus: %s", nd->line, inf__ct_type_name(v));
        break;
    }
    case N_NOT: r = mk_bool(!inf__ct_truthy(eval(c, f, nd->a))); break;
    case N_AND: {
        val x = eval(c, f, nd->a);
        r = inf__ct_truthy(x) ? eval(c, f, nd->b) : x;
        break;
    }
    case N_OR: {
        val x = eval(c, f, nd->a);
        r = inf__ct_truthy(x) ? x : eval(c, f, nd->b);
        break;
    }
    case N_COND:
        if (inf__ct_truthy(eval(c, f, nd->a)))
            r = eval(c, f, nd->b);
        else
            r = nd->c ? eval(c, f, nd->c) : mk_undef();
        break;
    case N_BIN: {
        val x = eval(c, f, nd->a), y = eval(c, f, nd->b);
        const char *op = nd->op;
        if (!strcmp(op, "=="))
            r = mk_bool(inf__ct_vequal(c, x, y, 0));
        else if (!strcmp(op, "!="))
            r = mk_bool(!inf__ct_vequal(c, x, y, 0));
        else if (!strcmp(op, "<"))
            r = mk_bool(inf__ct_vcompare(c, x, y, nd->line) < 0);
        else if (!strcmp(op, "<="))
            r = mk_bool(inf__ct_vcompare(c, x, y, nd->line) <= 0);
        else if (!strcmp(op, ">"))
            r = mk_bool(inf__ct_vcompare(c, x, y, nd->line) > 0);
        else if (!strcmp(op, ">="))
            r = mk_bool(inf__ct_vcompare(c, x, y, nd->line) >= 0);
        else if (!strcmp(op, "in"))
            r = mk_bool(inf__ct_contains(c, y, x, nd->line));
        else if (!strcmp(op, "ni"))
            r = mk_bool(!inf__ct_contains(c, y, x, nd->line));
        else
            r = arith(c, op, x, y, nd->line);
        break;
    }
    default: inf__ct_fail(c, "line %d: bad expression", nd->line);
    }
    leave(c);
    return r;
}

static void emit(ct *c, const char *p, size_t n) {
    inf__ct_sb_append(c->out, p, n);
}

static void exec_for(ct *c, frame *f, const node *nd) {
    vlist *src = iter_list(c, eval(c, f, nd->a), nd->line);
    frame fr = {.parent = f};
    vlist *items = src;
    if (nd->d) { /* loop filter: evaluated per item with the targets bound */
        items = inf__ct_list_new(c, src->n);
        for (size_t i = 0; i < src->n; i++) {
            frame tf = {.parent = f};
            if (nd->nkw == 1) {
                inf__ct_dict_set(c, &tf.vars, nd->kwn[0].p, nd->kwn[0].n, src->v[i]);
            } else if (src->v[i].t == V_LIST) {
                for (int k = 0; k < nd->nkw && (size_t)k < src->v[i].l->n; k++)
                    inf__ct_dict_set(c, &tf.vars, nd->kwn[k].p, nd->kwn[k].n, src->v[i].l->v[k]);
            }
            if (inf__ct_truthy(eval(c, &tf, nd->d))) inf__ct_list_push(c, items, src->v[i]);
        }
    }
    size_t n = items->n;
    if (!n) {
        if (nd->c) exec(c, f, nd->c);
        return;
    }
    vdict *loop = inf__ct_dict_new(c);
    for (size_t i = 0; i < n; i++) {
        step(c);
        fr.vars.n = 0;
        val it = items->v[i];
        if (nd->nkw == 1) {
            inf__ct_dict_set(c, &fr.vars, nd->kwn[0].p, nd->kwn[0].n, it);
        } else {
            vlist *parts = iter_list(c, it, nd->line);
            if ((int)parts->n != nd->nkw)
                inf__ct_fail(c, "line %d: cannot unpack %zu values into %d targets", nd->line,
                             parts->n, nd->nkw);
            for (int k = 0; k < nd->nkw; k++)
                inf__ct_dict_set(c, &fr.vars, nd->kwn[k].p, nd->kwn[k].n, parts->v[k]);
        }
        loop = inf__ct_dict_new(c); /* a fresh dict: the previous one may have been captured */
        inf__ct_dict_set(c, loop, "index", 5, mk_int((int64_t)i + 1));
        inf__ct_dict_set(c, loop, "index0", 6, mk_int((int64_t)i));
        inf__ct_dict_set(c, loop, "revindex", 8, mk_int((int64_t)(n - i)));
        inf__ct_dict_set(c, loop, "revindex0", 9, mk_int((int64_t)(n - i - 1)));
        inf__ct_dict_set(c, loop, "first", 5, mk_bool(i == 0));
        inf__ct_dict_set(c, loop, "last", 4, mk_bool(i + 1 == n));
        inf__ct_dict_set(c, loop, "length", 6, mk_int((int64_t)n));
        inf__ct_dict_set(c, loop, "previtem", 8, i > 0 ? items->v[i - 1] : mk_undef());
        inf__ct_dict_set(c, loop, "nextitem", 8, i + 1 < n ? items->v[i + 1] : mk_undef());
        inf__ct_dict_set(c, &fr.vars, "loop", 4, mk_dict(loop));
        exec(c, &fr, nd->b);
        if (c->brk == 1) {
            c->brk = 0;
            break;
        }
        c->brk = 0;
    }
}

static void exec(ct *c, frame *f, const node *nd) {
    step(c);
    enter(c);
    switch (nd->kind) {
    case S_SEQ:
        for (int i = 0; i < nd->nargs && !c->brk; i++)
            exec(c, f, nd->args[i]);
        break;
    case S_TEXT: emit(c, nd->lit.s.p, nd->lit.s.n); break;
    case S_OUT: {
        val v = eval(c, f, nd->a);
        if (v.t == V_STR) {
            emit(c, v.s.p, v.s.n);
        } else {
            asb sb = {c, NULL, 0, 0};
            inf__ct_to_str(c, v, &sb);
            emit(c, sb.p, sb.n);
        }
        break;
    }
    case S_IF:
        if (inf__ct_truthy(eval(c, f, nd->a)))
            exec(c, f, nd->b);
        else if (nd->c)
            exec(c, f, nd->c);
        break;
    case S_FOR: exec_for(c, f, nd); break;
    case S_SET: {
        val v = eval(c, f, nd->a);
        if (nd->name2.p) {
            val ns = lookup(f, nd->name);
            if (ns.t != V_DICT)
                inf__ct_fail(c, "line %d: '%.*s' is not a namespace", nd->line, (int)nd->name.n,
                             nd->name.p);
            inf__ct_dict_set(c, ns.d, nd->name2.p, nd->name2.n, v);
        } else {
            inf__ct_dict_set(c, &f->vars, nd->name.p, nd->name.n, v);
        }
        break;
    }
    case S_SETBLOCK: {
        asb *saved = c->out, sb = {c, NULL, 0, 0};
        c->out = &sb;
        exec(c, f, nd->b);
        c->out = saved;
        inf__ct_dict_set(c, &f->vars, nd->name.p, nd->name.n, inf__ct_sb_val(c, &sb));
        break;
    }
    case S_MACRO:
        inf__ct_dict_set(c, &f->vars, nd->name.p, nd->name.n, (val){.t = V_MACRO, .m = nd});
        break;
    case S_BREAK: c->brk = 1; break;
    case S_CONTINUE: c->brk = 2; break;
    default: inf__ct_fail(c, "line %d: bad statement", nd->line);
    }
    leave(c);
}

/* ---- entry point ---------------------------------------------------------------------------- */

static const char fallback_tmpl[] =
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

typedef struct ct_input {
    const char *tmpl;
    const inf_chat_message *msgs;
    size_t n;
    bool add_generation_prompt;
    const char *bos_text, *eos_text;
} ct_input;

static char *render(ct *c) {
    const ct_input *in = c->input;
    node *root = inf__ct_parse(c, in->tmpl, strlen(in->tmpl));
    frame *g = inf__ct_alloc(c, sizeof *g);
    memset(g, 0, sizeof *g);
    c->globals = g;
    vlist *ml = inf__ct_list_new(c, in->n);
    for (size_t i = 0; i < in->n; i++) {
        const inf_chat_message *m = &in->msgs[i];
        if (!m->role || !m->content) inf__ct_fail(c, "message %zu has no role or content", i);
        vdict *d = inf__ct_dict_new(c);
        inf__ct_dict_set(c, d, "role", 4, mk_str(m->role, strlen(m->role)));
        inf__ct_dict_set(c, d, "content", 7, mk_str(m->content, strlen(m->content)));
        inf__ct_list_push(c, ml, mk_dict(d));
    }
    inf__ct_dict_set(c, &g->vars, "messages", 8, mk_list(ml));
    inf__ct_dict_set(c, &g->vars, "add_generation_prompt", 21, mk_bool(in->add_generation_prompt));
    inf__ct_dict_set(c, &g->vars, "bos_token", 9, mk_str(in->bos_text, strlen(in->bos_text)));
    inf__ct_dict_set(c, &g->vars, "eos_token", 9, mk_str(in->eos_text, strlen(in->eos_text)));
    inf__ct_dict_set(c, &g->vars, "range", 5, (val){.t = V_FUNC, .fn = FN_RANGE});
    inf__ct_dict_set(c, &g->vars, "namespace", 9, (val){.t = V_FUNC, .fn = FN_NAMESPACE});
    inf__ct_dict_set(c, &g->vars, "dict", 4, (val){.t = V_FUNC, .fn = FN_DICT});
    inf__ct_dict_set(c, &g->vars, "raise_exception", 15, (val){.t = V_FUNC, .fn = FN_RAISE});
    inf__ct_dict_set(c, &g->vars, "strftime_now", 12, (val){.t = V_FUNC, .fn = FN_STRFTIME});
    asb *result = inf__ct_alloc(c, sizeof *result);
    *result = (asb){c, NULL, 0, 0};
    c->out = result;
    exec(c, g, root);
    return inf__strndup(result->p ? result->p : "", result->n);
}

int inf_chat_template_apply(const char *tmpl, const inf_chat_message *msgs, size_t n,
                            bool add_generation_prompt, const char *bos_text, const char *eos_text,
                            char **out) {
    if (!out || (n && !msgs)) return inf__err(INF_EINVAL, "chat template: NULL argument");
    *out = NULL;
    ct_input in = {
        tmpl ? tmpl : fallback_tmpl, msgs, n, add_generation_prompt, bos_text ? bos_text : "",
        eos_text ? eos_text : ""};
    ct *c = calloc(1, sizeof *c);
    if (!c) return inf__err(INF_ENOMEM, "chat template");
    c->input = &in;
    int rc = 0;
    /* Everything the interpreter touches after setjmp lives in the arena or in *c. */
    if (setjmp(c->jb)) {
        rc = inf__err(c->globals ? INF_EINVAL : INF_EFORMAT, "chat template: %s", c->err);
    } else {
        *out = render(c);
        if (!*out) rc = inf__err(INF_ENOMEM, "chat template");
    }
    while (c->blk) {
        ct_blk *b = c->blk;
        c->blk = b->next;
        free(b);
    }
    free(c);
    return rc;
}
