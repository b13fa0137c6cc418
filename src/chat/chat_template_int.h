/*
 * chat_template_int.h — internals shared by chat_template.c (arena, string builder, lexer,
 * parser), chat_template_value.c (lists, dicts, truthiness, comparison, printing) and
 * chat_template_eval.c (filters, tests, evaluation, the entry point). Other modules include
 * chat/chat.h instead.
 */
#ifndef INF_CHAT_TEMPLATE_INT_H
#define INF_CHAT_TEMPLATE_INT_H

#include "chat/chat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <string.h>

#define CT_MAX_DEPTH 200
#define CT_MAX_STEPS 20000000LL
#define CT_MAX_ARENA ((size_t)256 << 20)
#define CT_MAX_OUTPUT ((size_t)64 << 20)

typedef struct ct ct;

/* Arena-backed string builder (no cleanup needed: the arena owns the bytes). */
typedef struct asb {
    ct *c;
    char *p;
    size_t n, cap;
} asb;

/* ---- arena ---------------------------------------------------------------------------------- */

typedef struct ct_blk {
    struct ct_blk *next;
    size_t used, cap;
    _Alignas(16) char data[];
} ct_blk;

/* ---- values --------------------------------------------------------------------------------- */

enum { V_UNDEF, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_LIST, V_DICT, V_MACRO, V_FUNC, V_METHOD };

typedef struct vlist vlist;
typedef struct vdict vdict;
typedef struct vmethod vmethod;
typedef struct node node;

typedef struct val {
    int t;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        vlist *l;
        vdict *d;
        const node *m;
        int fn;
        vmethod *meth;
    };
} val;

struct vlist {
    val *v;
    size_t n, cap;
    bool tuple; /* prints as (a, b) */
};
typedef struct vstr {
    const char *p;
    size_t n;
} vstr;
struct vdict {
    vstr *k;
    val *v;
    size_t n, cap;
};
struct vmethod {
    val self;
    vstr name;
};

enum { FN_RANGE = 1, FN_NAMESPACE, FN_RAISE, FN_STRFTIME, FN_DICT };

/* ---- tokens and AST ------------------------------------------------------------------------- */

enum {
    TK_EOF,
    TK_TEXT,
    TK_VAR_BEGIN,
    TK_VAR_END,
    TK_BLOCK_BEGIN,
    TK_BLOCK_END,
    TK_NAME,
    TK_STR,
    TK_INT,
    TK_FLOAT,
    TK_OP
};

typedef struct tok {
    int kind;
    int line;
    const char *s; /* TEXT, NAME, STR (decoded), OP (the operator text) */
    size_t n;
    int64_t i;
    double f;
} tok;

enum {
    N_LIT,
    N_NAME,
    N_LIST,
    N_DICT,
    N_ATTR,
    N_INDEX,
    N_SLICE,
    N_CALL,
    N_FILTER,
    N_TEST,
    N_NEG,
    N_POS,
    N_NOT,
    N_AND,
    N_OR,
    N_BIN,
    N_COND,
    S_SEQ,
    S_TEXT,
    S_OUT,
    S_IF,
    S_FOR,
    S_SET,
    S_SETBLOCK,
    S_MACRO,
    S_BREAK,
    S_CONTINUE
};

struct node {
    int kind, line;
    char op[3];       /* N_BIN operator, N_TEST negation ("!") */
    val lit;          /* N_LIT, S_TEXT */
    vstr name, name2; /* names: variable, attribute, filter/test, set target (name2: ns attr) */
    node *a, *b, *c, *d;
    node **args; /* positional args, list items, dict pairs (k0, v0, k1, v1…), statements */
    int nargs;
    vstr *kwn;  /* keyword argument names / macro parameter names / for targets */
    node **kwv; /* keyword argument values / macro parameter defaults (NULL: none) */
    int nkw;
};

/* ---- interpreter state ---------------------------------------------------------------------- */

typedef struct frame {
    struct frame *parent;
    vdict vars;
} frame;

struct ct {
    jmp_buf jb;
    char err[256];
    ct_blk *blk;
    size_t arena_total;
    tok *toks;
    size_t ntoks, captoks, pos;
    int64_t steps;
    int depth;
    int brk; /* 1: break, 2: continue pending */
    asb *out;
    frame *globals;
    const void *input; /* the entry point's arguments */
};

/* Records the message and unwinds to the entry point (longjmp). */
_Noreturn void inf__ct_fail(ct *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Arena allocation, 16-byte aligned; fails (unwinds) beyond CT_MAX_ARENA. */
void *inf__ct_alloc(ct *c, size_t size);
void *inf__ct_alloc_array(ct *c, size_t n, size_t size);
char *inf__ct_strndup(ct *c, const char *s, size_t n);
void inf__ct_sb_append(asb *b, const char *s, size_t n);
void inf__ct_sb_puts(asb *b, const char *s);
void inf__ct_sb_putc(asb *b, char ch);
void inf__ct_sb_printf(asb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Values (chat_template_value.c). */
vlist *inf__ct_list_new(ct *c, size_t cap);
void inf__ct_list_push(ct *c, vlist *l, val v);
val *inf__ct_dict_find(vdict *d, const char *k, size_t n);
void inf__ct_dict_set(ct *c, vdict *d, const char *k, size_t n, val v);
vdict *inf__ct_dict_new(ct *c);
bool inf__ct_truthy(val v);
const char *inf__ct_type_name(val v);
void inf__ct_fmt_float(asb *sb, double f);
void inf__ct_to_repr(ct *c, val v, asb *sb, int depth);
void inf__ct_to_str(ct *c, val v, asb *sb);
void inf__ct_repr_str(asb *sb, const char *p, size_t n);
void inf__ct_json_str(asb *sb, const char *p, size_t n);
void inf__ct_json_nl(asb *sb, int indent, int level);
void inf__ct_to_json(ct *c, val v, asb *sb, int indent, int level);
val inf__ct_sb_val(ct *c, asb *sb);
val inf__ct_stringify(ct *c, val v);
bool inf__ct_num(val v, double *f);
bool inf__ct_vequal(ct *c, val a, val b, int depth);
int inf__ct_vcompare(ct *c, val a, val b, int line);
bool inf__ct_contains(ct *c, val hay, val needle, int line);
bool inf__ct_norm_index(int64_t i, size_t n, size_t *out);
val inf__ct_get_item(ct *c, val obj, val key, int line);
bool inf__ct_is_method_name(val obj, vstr name);
val inf__ct_get_attr(ct *c, val obj, vstr name);
/* Lexes and parses a template into a statement sequence (S_SEQ). */
node *inf__ct_parse(ct *c, const char *tmpl, size_t n);

static inline bool is_ws(char ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}
static inline void enter(ct *c) {
    if (++c->depth > CT_MAX_DEPTH) inf__ct_fail(c, "template nesting too deep");
}
static inline void leave(ct *c) {
    c->depth--;
}
static inline void step(ct *c) {
    if (++c->steps > CT_MAX_STEPS) inf__ct_fail(c, "template evaluation takes too many steps");
}

static inline val mk_str(const char *p, size_t n) {
    val v = {.t = V_STR};
    v.s.p = p;
    v.s.n = n;
    return v;
}
static inline val mk_int(int64_t i) {
    return (val){.t = V_INT, .i = i};
}
static inline val mk_float(double f) {
    return (val){.t = V_FLOAT, .f = f};
}
static inline val mk_bool(bool b) {
    return (val){.t = V_BOOL, .b = b};
}
static inline val mk_undef(void) {
    return (val){.t = V_UNDEF};
}
static inline val mk_none(void) {
    return (val){.t = V_NONE};
}

static inline val mk_list(vlist *l) {
    return (val){.t = V_LIST, .l = l};
}
static inline val mk_dict(vdict *d) {
    return (val){.t = V_DICT, .d = d};
}

static inline bool vstr_eq(vstr a, const char *p, size_t n) {
    return a.n == n && !memcmp(a.p, p, n);
}
static inline bool vstr_is(vstr a, const char *z) {
    return vstr_eq(a, z, strlen(z));
}

#endif
