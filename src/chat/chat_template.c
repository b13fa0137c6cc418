/*
 * chat_template.c — a Jinja2 subset, enough to render the chat templates that GGUF files carry
 * in tokenizer.chat_template (Llama 2/3, ChatML/Qwen, Mistral, Phi-3, Gemma, Zephyr, …).
 *
 * Semantics follow Hugging Face's apply_chat_template environment: trim_blocks and
 * lstrip_blocks on, `{%-`/`-%}`/`{%+` whitespace control, loop controls (break/continue),
 * raise_exception(), strftime_now(), and a tojson filter like json.dumps(ensure_ascii=False).
 * Supported: {{ }}, {% if/elif/else %}, {% for x[, y] in … [if …] %} with loop.* and else,
 * {% set %} (also ns.attr and block form), {% macro %}, {% generation %} (rendered as-is),
 * literals, lists, dicts, attributes, subscripts, slices, calls, filters, tests, and the
 * arithmetic/logic/comparison operators. Undefined values are lenient: they print as "", are
 * falsy, and attribute access on them stays undefined.
 *
 * Invariants: every allocation of one render goes to one arena (freed at the end, capped), so a
 * failure can unwind with longjmp from any depth without leaking; the result is copied out with
 * malloc. Work is bounded: nesting depth, evaluation steps, arena bytes and output bytes all have
 * hard limits, so hostile templates or messages cannot hang or exhaust memory.
 * Threads: reentrant (no globals).
 */
#include "chat/chat_template_int.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- arena ---- */

_Noreturn void inf__ct_fail(ct *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    longjmp(c->jb, 1);
}

void *inf__ct_alloc(ct *c, size_t size) {
    size = (size + 15) & ~(size_t)15;
    if (!size) size = 16;
    if (!c->blk || c->blk->cap - c->blk->used < size) {
        size_t cap = size > 65536 ? size : 65536;
        if (c->arena_total + cap > CT_MAX_ARENA)
            inf__ct_fail(c, "template evaluation uses too much memory");
        ct_blk *b = malloc(sizeof *b + cap);
        if (!b) inf__ct_fail(c, "out of memory");
        b->next = c->blk;
        b->used = 0;
        b->cap = cap;
        c->blk = b;
        c->arena_total += cap;
    }
    void *p = c->blk->data + c->blk->used;
    c->blk->used += size;
    return p;
}

void *inf__ct_alloc_array(ct *c, size_t n, size_t size) {
    if (n && size > SIZE_MAX / n) inf__ct_fail(c, "template evaluation uses too much memory");
    return inf__ct_alloc(c, n * size);
}

char *inf__ct_strndup(ct *c, const char *s, size_t n) {
    char *d = inf__ct_alloc(c, n + 1);
    if (n) memcpy(d, s, n);
    d[n] = 0;
    return d;
}
void inf__ct_sb_append(asb *b, const char *s, size_t n) {
    if (!n) return;
    if (b->n + n > CT_MAX_OUTPUT) inf__ct_fail(b->c, "template output too long");
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *np = inf__ct_alloc(b->c, cap);
        if (b->n) memcpy(np, b->p, b->n);
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void inf__ct_sb_puts(asb *b, const char *s) {
    inf__ct_sb_append(b, s, strlen(s));
}
void inf__ct_sb_putc(asb *b, char ch) {
    inf__ct_sb_append(b, &ch, 1);
}

void inf__ct_sb_printf(asb *b, const char *fmt, ...) {
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) inf__ct_sb_append(b, buf, (size_t)INF_MIN((size_t)n, sizeof buf - 1));
}

/* ---- lexer ---------------------------------------------------------------------------------- */

static void push_tok(ct *c, tok t) {
    if (c->ntoks == c->captoks) {
        size_t cap = c->captoks ? c->captoks * 2 : 256;
        tok *nt = inf__ct_alloc_array(c, cap, sizeof(tok));
        if (c->ntoks) memcpy(nt, c->toks, c->ntoks * sizeof(tok));
        c->toks = nt;
        c->captoks = cap;
    }
    c->toks[c->ntoks++] = t;
}

static bool is_ident0(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}
static bool is_digit(char ch) {
    return ch >= '0' && ch <= '9';
}

static void put_utf8(asb *sb, uint32_t cp) {
    char b[4];
    inf__ct_sb_append(sb, b, inf__utf8_put(cp, b));
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Lexes the expression tokens of one tag starting at s[*i]; stops at the closing "}}"/"%}"
 * (at bracket depth 0), leaving *i at the closing delimiter (or its '-'). */
static void lex_tag(ct *c, const char *s, size_t n, size_t *ip, char close, int *line) {
    size_t i = *ip;
    int depth = 0;
    for (;;) {
        while (i < n && is_ws(s[i])) {
            if (s[i] == '\n') (*line)++;
            i++;
        }
        if (i >= n) inf__ct_fail(c, "line %d: unterminated tag", *line);
        if (depth == 0) {
            if (s[i] == '-' && i + 2 < n && s[i + 1] == close && s[i + 2] == '}') break;
            if (s[i] == '+' && i + 2 < n && s[i + 1] == close && s[i + 2] == '}') break;
            if (s[i] == close && i + 1 < n && s[i + 1] == '}') break;
        }
        tok t = {.line = *line};
        char ch = s[i];
        if (is_ident0(ch)) {
            size_t j = i;
            while (j < n && (is_ident0(s[j]) || is_digit(s[j])))
                j++;
            t.kind = TK_NAME;
            t.s = s + i;
            t.n = j - i;
            i = j;
        } else if (is_digit(ch)) {
            size_t j = i;
            bool fl = false;
            while (j < n && (is_digit(s[j]) || s[j] == '_'))
                j++;
            if (j + 1 < n && s[j] == '.' && is_digit(s[j + 1])) {
                fl = true;
                j++;
                while (j < n && is_digit(s[j]))
                    j++;
            }
            if (j < n && (s[j] == 'e' || s[j] == 'E')) {
                size_t k = j + 1;
                if (k < n && (s[k] == '+' || s[k] == '-')) k++;
                if (k < n && is_digit(s[k])) {
                    fl = true;
                    j = k;
                    while (j < n && is_digit(s[j]))
                        j++;
                }
            }
            char *tmp = inf__ct_alloc(c, j - i + 1);
            size_t m = 0;
            for (size_t k = i; k < j; k++)
                if (s[k] != '_') tmp[m++] = s[k];
            tmp[m] = 0;
            if (fl) {
                t.kind = TK_FLOAT;
                t.f = strtod(tmp, NULL);
            } else {
                t.kind = TK_INT;
                char *end;
                unsigned long long v = strtoull(tmp, &end, 10);
                if (v > (unsigned long long)INT64_MAX)
                    inf__ct_fail(c, "line %d: integer too large", *line);
                t.i = (int64_t)v;
            }
            i = j;
        } else if (ch == '\'' || ch == '"') {
            asb sb = {c, NULL, 0, 0};
            size_t j = i + 1;
            for (;;) {
                if (j >= n) inf__ct_fail(c, "line %d: unterminated string", *line);
                char d = s[j];
                if (d == ch) break;
                if (d == '\n') (*line)++;
                if (d == '\\' && j + 1 < n) {
                    char e = s[j + 1];
                    j += 2;
                    switch (e) {
                    case 'n': inf__ct_sb_putc(&sb, '\n'); break;
                    case 't': inf__ct_sb_putc(&sb, '\t'); break;
                    case 'r': inf__ct_sb_putc(&sb, '\r'); break;
                    case 'b': inf__ct_sb_putc(&sb, '\b'); break;
                    case 'f': inf__ct_sb_putc(&sb, '\f'); break;
                    case 'v': inf__ct_sb_putc(&sb, '\v'); break;
                    case '0': inf__ct_sb_putc(&sb, '\0'); break;
                    case '\\': inf__ct_sb_putc(&sb, '\\'); break;
                    case '\'': inf__ct_sb_putc(&sb, '\''); break;
                    case '"': inf__ct_sb_putc(&sb, '"'); break;
                    case '\n': break;
                    case 'x':
                    case 'u':
                    case 'U': {
                        int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                        uint32_t cp = 0;
                        int k = 0;
                        for (; k < nd && j + (size_t)k < n && hexval(s[j + k]) >= 0; k++)
                            cp = cp * 16 + (uint32_t)hexval(s[j + k]);
                        if (k != nd || cp > 0x10ffff)
                            inf__ct_fail(c, "line %d: bad escape in string", *line);
                        j += (size_t)nd;
                        put_utf8(&sb, cp);
                        break;
                    }
                    default: inf__ct_sb_putc(&sb, '\\'); inf__ct_sb_putc(&sb, e);
                    }
                    continue;
                }
                inf__ct_sb_putc(&sb, d);
                j++;
            }
            t.kind = TK_STR;
            t.n = sb.n;
            t.s = sb.p ? sb.p : "";
            i = j + 1;
        } else {
            static const char *ops2[] = {"==", "!=", "<=", ">=", "//", "**"};
            t.kind = TK_OP;
            t.s = s + i;
            t.n = 1;
            for (size_t k = 0; k < INF_ARRAY_LEN(ops2); k++)
                if (i + 1 < n && s[i] == ops2[k][0] && s[i + 1] == ops2[k][1]) t.n = 2;
            if (t.n == 1 && !strchr("()[]{},.:|+-*/%~<>=!", ch))
                inf__ct_fail(c, "line %d: unexpected character '%c' in tag", *line, ch);
            if (ch == '(' || ch == '[' || ch == '{') depth++;
            if ((ch == ')' || ch == ']' || ch == '}') && depth > 0) depth--;
            i += t.n;
        }
        push_tok(c, t);
    }
    *ip = i;
}

typedef struct piece {
    int kind;          /* 0 text, 1 var, 2 block, 3 comment */
    size_t start, end; /* text range (text pieces) */
    bool lminus, lplus, rminus;
    size_t tok_first, tok_last; /* token range of var/block */
} piece;

/* Splits the source into pieces, applies the whitespace rules, and emits the token stream. */
static void lex(ct *c, const char *s, size_t n) {
    size_t cap = 64, np = 0;
    piece *ps = inf__ct_alloc_array(c, cap, sizeof(piece));
    size_t i = 0;
    int line = 1;
    bool raw = false;
    while (i <= n) {
        size_t j = i;
        while (j < n && !(s[j] == '{' && j + 1 < n &&
                          (s[j + 1] == '{' || s[j + 1] == '%' || s[j + 1] == '#')))
            j++;
        if (raw) { /* inside {% raw %}: only {% endraw %} ends the text */
            for (j = i;; j++) {
                if (j + 1 >= n) inf__ct_fail(c, "unterminated raw block");
                if (s[j] != '{' || s[j + 1] != '%') continue;
                size_t k = j + 2;
                if (k < n && (s[k] == '-' || s[k] == '+')) k++;
                while (k < n && is_ws(s[k]))
                    k++;
                if (n - k >= 6 && !memcmp(s + k, "endraw", 6)) break;
            }
            raw = false;
        }
        if (np + 2 >= cap) {
            piece *nps = inf__ct_alloc_array(c, cap * 2, sizeof(piece));
            memcpy(nps, ps, np * sizeof(piece));
            ps = nps;
            cap *= 2;
        }
        ps[np++] = (piece){.kind = 0, .start = i, .end = j};
        for (size_t k = i; k < j; k++)
            if (s[k] == '\n') line++;
        if (j >= n) break;
        piece p = {0};
        char open = s[j + 1];
        size_t k = j + 2;
        if (k < n && s[k] == '-') {
            p.lminus = true;
            k++;
        } else if (k < n && s[k] == '+') {
            p.lplus = true;
            k++;
        }
        if (open == '#') {
            p.kind = 3;
            size_t e = k;
            while (e + 1 < n && !(s[e] == '#' && s[e + 1] == '}')) {
                if (s[e] == '\n') line++;
                e++;
            }
            if (e + 1 >= n) inf__ct_fail(c, "line %d: unterminated comment", line);
            p.rminus = e > k && s[e - 1] == '-';
            i = e + 2;
        } else {
            char close = open == '{' ? '}' : '%';
            p.kind = open == '{' ? 1 : 2;
            p.tok_first = c->ntoks;
            lex_tag(c, s, n, &k, close, &line);
            p.tok_last = c->ntoks;
            if (s[k] == '-') {
                p.rminus = true;
                k++;
            } else if (s[k] == '+') {
                k++;
            }
            i = k + 2;
            if (p.kind == 2 && p.tok_last > p.tok_first) {
                tok *t = &c->toks[p.tok_first];
                if (t->kind == TK_NAME && t->n == 3 && !memcmp(t->s, "raw", 3)) raw = true;
            }
        }
        ps[np++] = p;
    }
    /* Emit tokens with whitespace control applied to the text pieces. */
    tok *tag_toks = c->toks;
    c->toks = NULL;
    c->ntoks = c->captoks = 0;
    line = 1;
    for (size_t q = 0; q < np; q++) {
        piece *p = &ps[q];
        if (p->kind == 0) {
            size_t a = p->start, b = p->end;
            const piece *prev = q > 0 ? &ps[q - 1] : NULL, *next = q + 1 < np ? &ps[q + 1] : NULL;
            size_t raw_a = a;
            if (prev && prev->rminus) {
                while (a < b && is_ws(s[a]))
                    a++;
            } else if (prev && (prev->kind == 2 || prev->kind == 3)) {
                if (a < b && s[a] == '\n')
                    a++;
                else if (a + 1 < b && s[a] == '\r' && s[a + 1] == '\n')
                    a += 2;
            }
            if (next && next->lminus) {
                while (b > a && is_ws(s[b - 1]))
                    b--;
            } else if (next && (next->kind == 2 || next->kind == 3) && !next->lplus) {
                /* lstrip_blocks: spaces/tabs between a line start and a block tag go */
                size_t e = b;
                while (e > raw_a && (s[e - 1] == ' ' || s[e - 1] == '\t'))
                    e--;
                bool line_start = e == raw_a ? q == 0 : s[e - 1] == '\n';
                if (line_start) b = e > a ? e : a;
            }
            for (size_t k = p->start; k < p->end; k++)
                if (s[k] == '\n') line++;
            if (b > a) push_tok(c, (tok){.kind = TK_TEXT, .s = s + a, .n = b - a, .line = line});
        } else if (p->kind == 1 || p->kind == 2) {
            int tl = p->tok_last > p->tok_first ? tag_toks[p->tok_first].line : line;
            push_tok(c, (tok){.kind = p->kind == 1 ? TK_VAR_BEGIN : TK_BLOCK_BEGIN, .line = tl});
            for (size_t k = p->tok_first; k < p->tok_last; k++)
                push_tok(c, tag_toks[k]);
            push_tok(c, (tok){.kind = p->kind == 1 ? TK_VAR_END : TK_BLOCK_END, .line = tl});
        }
    }
    push_tok(c, (tok){.kind = TK_EOF, .line = line});
}

/* ---- parser --------------------------------------------------------------------------------- */

static tok *peek(ct *c) {
    return &c->toks[c->pos];
}
static tok *next(ct *c) {
    tok *t = &c->toks[c->pos];
    if (t->kind != TK_EOF) c->pos++;
    return t;
}
static bool is_op(const tok *t, const char *op) {
    return t->kind == TK_OP && t->n == strlen(op) && !memcmp(t->s, op, t->n);
}
static bool is_name(const tok *t, const char *name) {
    return t->kind == TK_NAME && t->n == strlen(name) && !memcmp(t->s, name, t->n);
}
static void expect_op(ct *c, const char *op) {
    tok *t = next(c);
    if (!is_op(t, op)) inf__ct_fail(c, "line %d: expected '%s'", t->line, op);
}
static vstr expect_name(ct *c) {
    tok *t = next(c);
    if (t->kind != TK_NAME) inf__ct_fail(c, "line %d: expected a name", t->line);
    return (vstr){t->s, t->n};
}
static void expect_kind(ct *c, int kind, const char *what) {
    tok *t = next(c);
    if (t->kind != kind) inf__ct_fail(c, "line %d: expected %s", t->line, what);
}

static node *new_node(ct *c, int kind, int line) {
    node *nd = inf__ct_alloc(c, sizeof *nd);
    memset(nd, 0, sizeof *nd);
    nd->kind = kind;
    nd->line = line;
    return nd;
}

typedef struct nodevec {
    node **v;
    int n, cap;
} nodevec;

static void nv_push(ct *c, nodevec *nv, node *x) {
    if (nv->n == nv->cap) {
        int cap = nv->cap ? nv->cap * 2 : 4;
        node **nn = inf__ct_alloc_array(c, (size_t)cap, sizeof(node *));
        if (nv->n) memcpy(nn, nv->v, (size_t)nv->n * sizeof(node *));
        nv->v = nn;
        nv->cap = cap;
    }
    nv->v[nv->n++] = x;
}

static node *parse_expr(ct *c);
static node *parse_or(ct *c);
static node *parse_unary(ct *c);

/* Call arguments after '(' up to ')': positional into args, name=value into kw. */
static void parse_call_args(ct *c, node *nd) {
    nodevec pos = {0}, kwv = {0};
    vstr *kwn = NULL;
    int nkw = 0, capkw = 0;
    while (!is_op(peek(c), ")")) {
        tok *t = peek(c);
        if (t->kind == TK_NAME && is_op(&c->toks[c->pos + 1], "=")) {
            next(c);
            next(c);
            if (nkw == capkw) {
                capkw = capkw ? capkw * 2 : 4;
                vstr *nn = inf__ct_alloc_array(c, (size_t)capkw, sizeof(vstr));
                if (nkw) memcpy(nn, kwn, (size_t)nkw * sizeof(vstr));
                kwn = nn;
            }
            kwn[nkw++] = (vstr){t->s, t->n};
            nv_push(c, &kwv, parse_expr(c));
        } else {
            nv_push(c, &pos, parse_expr(c));
        }
        if (!is_op(peek(c), ",")) break;
        next(c);
    }
    expect_op(c, ")");
    nd->args = pos.v;
    nd->nargs = pos.n;
    nd->kwn = kwn;
    nd->kwv = kwv.v;
    nd->nkw = nkw;
}

static node *parse_primary(ct *c) {
    tok *t = next(c);
    node *nd;
    switch (t->kind) {
    case TK_STR: {
        nd = new_node(c, N_LIT, t->line);
        nd->lit = mk_str(t->s, t->n);
        /* adjacent string literals concatenate */
        while (peek(c)->kind == TK_STR) {
            tok *u = next(c);
            char *cat = inf__ct_alloc(c, nd->lit.s.n + u->n + 1);
            memcpy(cat, nd->lit.s.p, nd->lit.s.n);
            memcpy(cat + nd->lit.s.n, u->s, u->n);
            nd->lit = mk_str(cat, nd->lit.s.n + u->n);
        }
        return nd;
    }
    case TK_INT:
        nd = new_node(c, N_LIT, t->line);
        nd->lit = mk_int(t->i);
        return nd;
    case TK_FLOAT:
        nd = new_node(c, N_LIT, t->line);
        nd->lit = mk_float(t->f);
        return nd;
    case TK_NAME:
        nd = new_node(c, N_LIT, t->line);
        if (is_name(t, "true") || is_name(t, "True"))
            nd->lit = mk_bool(true);
        else if (is_name(t, "false") || is_name(t, "False"))
            nd->lit = mk_bool(false);
        else if (is_name(t, "none") || is_name(t, "None"))
            nd->lit = mk_none();
        else {
            nd->kind = N_NAME;
            nd->name = (vstr){t->s, t->n};
        }
        return nd;
    case TK_OP:
        if (is_op(t, "(")) {
            if (is_op(peek(c), ")")) {
                next(c);
                nd = new_node(c, N_LIST, t->line);
                nd->op[0] = 't';
                return nd;
            }
            node *e = parse_expr(c);
            if (is_op(peek(c), ",")) { /* tuple: treated as a list */
                nodevec items = {0};
                nv_push(c, &items, e);
                while (is_op(peek(c), ",")) {
                    next(c);
                    if (is_op(peek(c), ")")) break;
                    nv_push(c, &items, parse_expr(c));
                }
                e = new_node(c, N_LIST, t->line);
                e->op[0] = 't';
                e->args = items.v;
                e->nargs = items.n;
            }
            expect_op(c, ")");
            return e;
        }
        if (is_op(t, "[")) {
            nodevec items = {0};
            while (!is_op(peek(c), "]")) {
                nv_push(c, &items, parse_expr(c));
                if (!is_op(peek(c), ",")) break;
                next(c);
            }
            expect_op(c, "]");
            nd = new_node(c, N_LIST, t->line);
            nd->args = items.v;
            nd->nargs = items.n;
            return nd;
        }
        if (is_op(t, "{")) {
            nodevec items = {0};
            while (!is_op(peek(c), "}")) {
                nv_push(c, &items, parse_expr(c));
                expect_op(c, ":");
                nv_push(c, &items, parse_expr(c));
                if (!is_op(peek(c), ",")) break;
                next(c);
            }
            expect_op(c, "}");
            nd = new_node(c, N_DICT, t->line);
            nd->args = items.v;
            nd->nargs = items.n;
            return nd;
        }
        break;
    default: break;
    }
    inf__ct_fail(c, "line %d: unexpected token in expression", t->line);
}

static node *parse_postfix(ct *c, node *e) {
    for (;;) {
        tok *t = peek(c);
        if (is_op(t, ".")) {
            next(c);
            tok *u = next(c);
            node *nd = new_node(c, N_ATTR, u->line);
            nd->a = e;
            if (u->kind == TK_NAME) {
                nd->name = (vstr){u->s, u->n};
            } else if (u->kind == TK_INT) {
                nd->kind = N_INDEX;
                nd->b = new_node(c, N_LIT, u->line);
                nd->b->lit = mk_int(u->i);
            } else {
                inf__ct_fail(c, "line %d: expected an attribute name", u->line);
            }
            e = nd;
        } else if (is_op(t, "[")) {
            next(c);
            node *nd = new_node(c, N_INDEX, t->line);
            nd->a = e;
            node *parts[3] = {NULL, NULL, NULL};
            int np = 0;
            bool slice = false;
            for (;;) {
                if (is_op(peek(c), ":")) {
                    next(c);
                    slice = true;
                    if (++np > 2) inf__ct_fail(c, "line %d: bad slice", t->line);
                    continue;
                }
                if (is_op(peek(c), "]")) break;
                if (parts[np]) inf__ct_fail(c, "line %d: bad subscript", t->line);
                parts[np] = parse_expr(c);
            }
            expect_op(c, "]");
            if (slice) {
                nd->kind = N_SLICE;
                nd->b = parts[0];
                nd->c = parts[1];
                nd->d = parts[2];
            } else {
                if (!parts[0]) inf__ct_fail(c, "line %d: empty subscript", t->line);
                nd->b = parts[0];
            }
            e = nd;
        } else if (is_op(t, "(")) {
            next(c);
            node *nd = new_node(c, N_CALL, t->line);
            nd->a = e;
            parse_call_args(c, nd);
            e = nd;
        } else {
            return e;
        }
    }
}

static bool starts_test_arg(ct *c) {
    tok *t = peek(c);
    if (t->kind == TK_STR || t->kind == TK_INT || t->kind == TK_FLOAT) return true;
    if (t->kind == TK_NAME)
        return !is_name(t, "else") && !is_name(t, "or") && !is_name(t, "and") &&
               !is_name(t, "if") && !is_name(t, "is") && !is_name(t, "in") && !is_name(t, "not");
    return is_op(t, "(") || is_op(t, "[") || is_op(t, "{");
}

static node *parse_filters(ct *c, node *e) {
    for (;;) {
        tok *t = peek(c);
        if (is_op(t, "|")) {
            next(c);
            node *nd = new_node(c, N_FILTER, t->line);
            nd->a = e;
            nd->name = expect_name(c);
            if (is_op(peek(c), "(")) {
                next(c);
                parse_call_args(c, nd);
            }
            e = nd;
        } else if (is_name(t, "is")) {
            next(c);
            node *nd = new_node(c, N_TEST, t->line);
            nd->a = e;
            if (is_name(peek(c), "not")) {
                next(c);
                nd->op[0] = '!';
            }
            tok *u = next(c);
            if (u->kind != TK_NAME) inf__ct_fail(c, "line %d: expected a test name", u->line);
            nd->name = (vstr){u->s, u->n};
            if (is_op(peek(c), "(")) {
                next(c);
                parse_call_args(c, nd);
            } else if (starts_test_arg(c)) {
                nd->args = inf__ct_alloc(c, sizeof(node *));
                nd->args[0] = parse_postfix(c, parse_primary(c));
                nd->nargs = 1;
            }
            e = nd;
        } else {
            return e;
        }
    }
}

/* Unary minus binds tighter than filters (Jinja: `-3 | abs` is abs(-3)). */
static node *parse_unary_f(ct *c, bool with_filter) {
    tok *t = peek(c);
    enter(c);
    node *r;
    if (is_op(t, "-") || is_op(t, "+")) {
        next(c);
        r = new_node(c, is_op(t, "-") ? N_NEG : N_POS, t->line);
        r->a = parse_unary_f(c, false);
    } else {
        r = parse_postfix(c, parse_primary(c));
    }
    if (with_filter) r = parse_filters(c, r);
    leave(c);
    return r;
}

static node *parse_unary(ct *c) {
    return parse_unary_f(c, true);
}

static node *bin(ct *c, const char *op, node *a, node *b, int line) {
    node *nd = new_node(c, N_BIN, line);
    snprintf(nd->op, sizeof nd->op, "%s", op);
    nd->a = a;
    nd->b = b;
    return nd;
}

static node *parse_pow(ct *c) {
    node *e = parse_unary(c);
    while (is_op(peek(c), "**")) {
        int line = next(c)->line;
        e = bin(c, "**", e, parse_unary(c), line);
    }
    return e;
}

static node *parse_math2(ct *c) {
    node *e = parse_pow(c);
    for (;;) {
        tok *t = peek(c);
        const char *op = is_op(t, "*")    ? "*"
                         : is_op(t, "/")  ? "/"
                         : is_op(t, "//") ? "//"
                         : is_op(t, "%")  ? "%"
                                          : NULL;
        if (!op) return e;
        next(c);
        e = bin(c, op, e, parse_pow(c), t->line);
    }
}

static node *parse_concat(ct *c) {
    node *e = parse_math2(c);
    while (is_op(peek(c), "~")) {
        int line = next(c)->line;
        e = bin(c, "~", e, parse_math2(c), line);
    }
    return e;
}

static node *parse_math1(ct *c) {
    node *e = parse_concat(c);
    for (;;) {
        tok *t = peek(c);
        const char *op = is_op(t, "+") ? "+" : is_op(t, "-") ? "-" : NULL;
        if (!op) return e;
        next(c);
        e = bin(c, op, e, parse_concat(c), t->line);
    }
}

static node *parse_compare(ct *c) {
    node *e = parse_math1(c);
    for (;;) {
        tok *t = peek(c);
        const char *op = NULL;
        static const char *cmp[] = {"==", "!=", "<", "<=", ">", ">="};
        for (size_t k = 0; k < INF_ARRAY_LEN(cmp); k++)
            if (is_op(t, cmp[k])) op = cmp[k];
        if (op) {
            next(c);
            e = bin(c, op, e, parse_math1(c), t->line);
        } else if (is_name(t, "in")) {
            next(c);
            e = bin(c, "in", e, parse_math1(c), t->line);
        } else if (is_name(t, "not") && is_name(&c->toks[c->pos + 1], "in")) {
            next(c);
            next(c);
            e = bin(c, "ni", e, parse_math1(c), t->line);
        } else {
            return e;
        }
    }
}

static node *parse_not(ct *c) {
    tok *t = peek(c);
    if (is_name(t, "not")) {
        next(c);
        enter(c);
        node *nd = new_node(c, N_NOT, t->line);
        nd->a = parse_not(c);
        leave(c);
        return nd;
    }
    return parse_compare(c);
}

static node *parse_and(ct *c) {
    node *e = parse_not(c);
    while (is_name(peek(c), "and")) {
        node *nd = new_node(c, N_AND, next(c)->line);
        nd->a = e;
        nd->b = parse_not(c);
        e = nd;
    }
    return e;
}

static node *parse_or(ct *c) {
    node *e = parse_and(c);
    while (is_name(peek(c), "or")) {
        node *nd = new_node(c, N_OR, next(c)->line);
        nd->a = e;
        nd->b = parse_and(c);
        e = nd;
    }
    return e;
}

static node *parse_expr(ct *c) {
    enter(c);
    node *e = parse_or(c);
    while (is_name(peek(c), "if")) {
        node *nd = new_node(c, N_COND, next(c)->line);
        nd->a = parse_or(c); /* condition */
        nd->b = e;           /* value when true */
        if (is_name(peek(c), "else")) {
            next(c);
            nd->c = parse_expr(c);
        }
        e = nd;
    }
    leave(c);
    return e;
}

/* Statements. parse_body stops at a block tag whose first name is one of ends (NULL-terminated)
 * and returns with the parser just after that name; *which receives its index. */
static node *parse_body(ct *c, const char *const *ends, int *which);

static void end_tag(ct *c) {
    expect_kind(c, TK_BLOCK_END, "'%}'");
}

static node *parse_if(ct *c, int line) {
    node *nd = new_node(c, S_IF, line);
    nd->a = parse_expr(c);
    end_tag(c);
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    int w;
    nd->b = parse_body(c, ends, &w);
    if (w == 0) {
        nd->c = parse_if(c, peek(c)->line);
    } else if (w == 1) {
        end_tag(c);
        static const char *const ends2[] = {"endif", NULL};
        nd->c = parse_body(c, ends2, &w);
        end_tag(c);
    } else {
        end_tag(c);
    }
    return nd;
}

static node *parse_stmt(ct *c) {
    tok *t = next(c); /* the tag's first name */
    int line = t->line;
    if (t->kind != TK_NAME) inf__ct_fail(c, "line %d: expected a statement", line);
    int w;
    if (is_name(t, "if")) return parse_if(c, line);
    if (is_name(t, "for")) {
        node *nd = new_node(c, S_FOR, line);
        vstr *names = inf__ct_alloc_array(c, 4, sizeof(vstr));
        int nn = 0;
        bool paren = is_op(peek(c), "(");
        if (paren) next(c);
        for (;;) {
            if (nn == 4) inf__ct_fail(c, "line %d: too many loop targets", line);
            names[nn++] = expect_name(c);
            if (!is_op(peek(c), ",")) break;
            next(c);
        }
        if (paren) expect_op(c, ")");
        nd->kwn = names;
        nd->nkw = nn;
        if (!is_name(next(c), "in")) inf__ct_fail(c, "line %d: expected 'in'", line);
        nd->a = parse_or(c);
        if (is_name(peek(c), "if")) {
            next(c);
            nd->d = parse_expr(c);
        }
        if (is_name(peek(c), "recursive"))
            inf__ct_fail(c, "line %d: recursive loops unsupported", line);
        end_tag(c);
        static const char *const ends[] = {"else", "endfor", NULL};
        nd->b = parse_body(c, ends, &w);
        end_tag(c);
        if (w == 0) {
            static const char *const ends2[] = {"endfor", NULL};
            nd->c = parse_body(c, ends2, &w);
            end_tag(c);
        }
        return nd;
    }
    if (is_name(t, "set")) {
        node *nd = new_node(c, S_SET, line);
        nd->name = expect_name(c);
        if (is_op(peek(c), ".")) {
            next(c);
            nd->name2 = expect_name(c);
        }
        if (is_op(peek(c), "=")) {
            next(c);
            nd->a = parse_expr(c);
            end_tag(c);
            return nd;
        }
        if (nd->name2.p) inf__ct_fail(c, "line %d: block set needs a plain name", line);
        end_tag(c);
        nd->kind = S_SETBLOCK;
        static const char *const ends[] = {"endset", NULL};
        nd->b = parse_body(c, ends, &w);
        end_tag(c);
        return nd;
    }
    if (is_name(t, "macro")) {
        node *nd = new_node(c, S_MACRO, line);
        nd->name = expect_name(c);
        expect_op(c, "(");
        vstr *names = NULL;
        nodevec defs = {0};
        int np = 0, cap = 0;
        while (!is_op(peek(c), ")")) {
            if (np == cap) {
                cap = cap ? cap * 2 : 4;
                vstr *nn = inf__ct_alloc_array(c, (size_t)cap, sizeof(vstr));
                if (np) memcpy(nn, names, (size_t)np * sizeof(vstr));
                names = nn;
            }
            names[np++] = expect_name(c);
            node *def = NULL;
            if (is_op(peek(c), "=")) {
                next(c);
                def = parse_expr(c);
            }
            nv_push(c, &defs, def);
            if (!is_op(peek(c), ",")) break;
            next(c);
        }
        expect_op(c, ")");
        end_tag(c);
        nd->kwn = names;
        nd->kwv = defs.v;
        nd->nkw = np;
        static const char *const ends[] = {"endmacro", NULL};
        nd->b = parse_body(c, ends, &w);
        end_tag(c);
        return nd;
    }
    if (is_name(t, "break") || is_name(t, "continue")) {
        node *nd = new_node(c, is_name(t, "break") ? S_BREAK : S_CONTINUE, line);
        end_tag(c);
        return nd;
    }
    if (is_name(t, "generation")) {
        end_tag(c);
        static const char *const ends[] = {"endgeneration", NULL};
        node *nd = parse_body(c, ends, &w);
        end_tag(c);
        return nd;
    }
    if (is_name(t, "raw")) {
        end_tag(c);
        node *nd = new_node(c, S_SEQ, line);
        nodevec items = {0};
        while (peek(c)->kind == TK_TEXT) {
            tok *u = next(c);
            node *x = new_node(c, S_TEXT, u->line);
            x->lit = mk_str(u->s, u->n);
            nv_push(c, &items, x);
        }
        expect_kind(c, TK_BLOCK_BEGIN, "'{% endraw %}'");
        if (!is_name(next(c), "endraw")) inf__ct_fail(c, "line %d: expected endraw", line);
        end_tag(c);
        nd->args = items.v;
        nd->nargs = items.n;
        return nd;
    }
    inf__ct_fail(c, "line %d: unsupported tag '%.*s'", line, (int)t->n, t->s);
}

static node *parse_body(ct *c, const char *const *ends, int *which) {
    enter(c);
    node *seq = new_node(c, S_SEQ, peek(c)->line);
    nodevec items = {0};
    for (;;) {
        tok *t = next(c);
        if (t->kind == TK_EOF) {
            if (!ends) break;
            inf__ct_fail(c, "unexpected end of template (missing '%s')", ends[0]);
        }
        if (t->kind == TK_TEXT) {
            node *x = new_node(c, S_TEXT, t->line);
            x->lit = mk_str(t->s, t->n);
            nv_push(c, &items, x);
        } else if (t->kind == TK_VAR_BEGIN) {
            node *x = new_node(c, S_OUT, t->line);
            x->a = parse_expr(c);
            expect_kind(c, TK_VAR_END, "'}}'");
            nv_push(c, &items, x);
        } else if (t->kind == TK_BLOCK_BEGIN) {
            tok *u = peek(c);
            bool ended = false;
            for (int k = 0; ends && ends[k]; k++)
                if (is_name(u, ends[k])) {
                    next(c);
                    *which = k;
                    ended = true;
                    break;
                }
            if (ended) break;
            nv_push(c, &items, parse_stmt(c));
        } else {
            inf__ct_fail(c, "line %d: unexpected token", t->line);
        }
    }
    seq->args = items.v;
    seq->nargs = items.n;
    leave(c);
    return seq;
}

node *inf__ct_parse(ct *c, const char *tmpl, size_t n) {
    lex(c, tmpl, n);
    c->pos = 0;
    return parse_body(c, NULL, NULL);
}
