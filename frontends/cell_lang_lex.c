/* weft — the cell language: arena, diagnostics and the lexer.
 *
 * Diagnostics look like a compiler's:
 *
 *   lstm.cell:7:26: unknown name 'cc'
 *       7 |   h' = sigmoid(o) * tanh(cc)
 *         |                          ^~
 *   hint: did you mean 'c'?
 *
 * Columns count characters (UTF-8 code points), from 1. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cell_lang.h"

/* ------------------------------------------------------------- arena */

struct cl_arena {
    struct cl_arena *next;      /* chunks, newest first */
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

cl_arena *cl_arena_new(void) {
    cl_arena *a = malloc(sizeof *a + 4096);
    if (!a) return NULL;
    a->next = NULL;
    a->used = 0;
    a->cap = 4096;
    return a;
}

void cl_arena_free(cl_arena *a) {
    while (a) {
        cl_arena *n = a->next;
        free(a);
        a = n;
    }
}

/* The head chunk stays first (the cell points at it); new chunks go after. */
void *cl_alloc(cl_ctx *x, size_t n) {
    cl_arena *head = x->cell->arena;
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    cl_arena *a = head->next && head->next->cap - head->next->used >= n ? head->next : head;
    if (a->cap - a->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        if (n > ((size_t)1 << 30)) cap = 0; /* no single parse needs a GiB */
        a = cap ? malloc(sizeof *a + cap) : NULL;
        if (!a) {
            x->status = WEFT_ERR_NOMEM;
            x->msg = NULL;
            longjmp(x->jb, 1);
        }
        a->used = 0;
        a->cap = cap;
        a->next = head->next;
        head->next = a;
    }
    void *p = a->data + a->used;
    a->used += n;
    memset(p, 0, n);
    return p;
}

void *cl_grow(cl_ctx *x, void *p, int *cap, int need, size_t size) {
    if (need <= *cap) return p;
    int nc = *cap ? *cap : 8;
    while (nc < need) nc *= 2;
    void *q = cl_alloc(x, (size_t)nc * size);
    if (p) memcpy(q, p, (size_t)*cap * size);
    *cap = nc;
    return q;
}

/* ------------------------------------------------------------- UTF-8 */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static int utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int len;
    unsigned min;
    if (c >= 0xc2 && c <= 0xdf) len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, min = 0x10000;
    else return 0;
    if ((size_t)len > n) return 0;
    unsigned cp = c & (0x7f >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

static unsigned utf8_cp(const unsigned char *s, int len) {
    unsigned cp = len == 1 ? s[0] : s[0] & (0x7f >> len);
    for (int i = 1; i < len; i++) cp = cp << 6 | (s[i] & 0x3f);
    return cp;
}

/* Characters in [a, b): valid sequences count once, stray bytes once each. */
static int count_chars(const char *t, size_t a, size_t b) {
    int k = 0;
    while (a < b) {
        int l = utf8_len((const unsigned char *)t + a, b - a);
        a += l ? (size_t)l : 1;
        k++;
    }
    return k;
}

/* -------------------------------------------------------- diagnostics */

/* Start of the line holding off; a byte order mark is no column. */
static size_t line_start(const cl_cell *c, size_t off) {
    size_t ls = off;
    while (ls > 0 && c->text[ls - 1] != '\n') ls--;
    if (ls == 0 && off >= 3 && !memcmp(c->text, "\xef\xbb\xbf", 3)) ls = 3;
    return ls;
}

void cl_line_col(const cl_cell *c, cl_span at, int *line, int *col) {
    size_t off = at.off <= c->n ? at.off : c->n, ls = line_start(c, off);
    *line = 1;
    for (size_t i = 0; i < ls; i++) *line += c->text[i] == '\n';
    *col = count_chars(c->text, ls, off) + 1;
}

char *cl_where(const cl_cell *c, cl_span at, char *buf, size_t n) {
    int line, col;
    cl_line_col(c, at, &line, &col);
    snprintf(buf, n, "%d:%d", line, col);
    return buf;
}

static void buf_add(char **b, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void buf_add(char **b, size_t *len, size_t *cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[1024];
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    size_t add = (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1;
    if (*len + add + 1 > *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        while (nc < *len + add + 1) nc *= 2;
        char *nb = realloc(*b, nc);
        if (!nb) return;
        *b = nb;
        *cap = nc;
    }
    memcpy(*b + *len, tmp, add);
    *len += add;
    (*b)[*len] = 0;
}

/* Append "label:line:col: <kind>msg", the source line, a caret line and the
 * hint to a growing buffer. */
static void format_diag(const cl_cell *c, cl_span at, const char *kind, const char *msg,
                        const char *hint, char **b, size_t *len, size_t *cap) {
    const char *t = c->text;
    size_t off = at.off <= c->n ? at.off : c->n;
    size_t ls = line_start(c, off);
    int line, col;
    cl_line_col(c, at, &line, &col);
    size_t le = off;
    while (le < c->n && t[le] != '\n') le++;
    if (le > off && t[le - 1] == '\r') le--; /* CRLF files */

    buf_add(b, len, cap, "%s:%d:%d: %s%s\n", c->label, line, col, kind, msg);

    /* Show a window of the line around the column, at most ~120 chars,
     * found by stepping back from the column (linear, however long the
     * line).  The text before an error is valid UTF-8 (it was validated in
     * order), so skipping continuation bytes lands on characters. */
    size_t ws = off;
    for (int k = 0; k < 60 && ws > ls; k++) {
        ws--;
        while (ws > ls && ((unsigned char)t[ws] & 0xc0) == 0x80) ws--;
    }
    size_t we = ws;
    for (int k = 0; we < le && k < 120; k++) {
        int l = utf8_len((const unsigned char *)t + we, le - we);
        we += l ? (size_t)l : 1;
    }
    char gutter[16];
    int gw = snprintf(gutter, sizeof gutter, "%d", line);
    char src[1024], car[1024];
    size_t sn = 0, cn = 0;
    size_t end = at.off + (at.len ? at.len : 1);
    for (size_t i = ws; i < we && sn + 5 < sizeof src && cn + 5 < sizeof car;) {
        int l = utf8_len((const unsigned char *)t + i, we - i);
        unsigned ch = (unsigned char)t[i];
        int printable = l > 1 || (l == 1 && (ch >= 0x20 || ch == '\t') && ch != 0x7f);
        if (printable) memcpy(src + sn, t + i, (size_t)l), sn += (size_t)l;
        else src[sn++] = '?';
        char mark = i < off ? (ch == '\t' ? '\t' : ' ') : i == off ? '^' : i < end ? '~' : 0;
        if (mark) car[cn++] = mark;
        i += l ? (size_t)l : 1;
    }
    if (off >= we && cn + 2 < sizeof car) car[cn++] = '^'; /* at the end of the line */
    src[sn] = 0;
    car[cn] = 0;
    buf_add(b, len, cap, "  %s | %s\n  %*s | %s\n", gutter, src, gw, "", car);
    if (hint && *hint) buf_add(b, len, cap, "hint: %s\n", hint);
}

_Noreturn void cl_fail(cl_ctx *x, cl_span at, const char *hint, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *b = NULL;
    size_t len = 0, cap = 0;
    format_diag(x->cell, at, "", msg, hint, &b, &len, &cap);
    if (b) {
        /* Into the arena, so the unwind frees it with everything else. */
        x->msg = cl_alloc(x, len + 1);
        memcpy(x->msg, b, len + 1);
        free(b);
    }
    x->status = WEFT_ERR_PARSE;
    longjmp(x->jb, 1);
}

void cl_warn(cl_ctx *x, cl_span at, const char *fmt, ...) {
    /* A bounded number, so a file of many unused names stays cheap. */
    if (++x->nwarnings > CL_MAX_WARNINGS) return;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cl_cell *c = x->cell;
    /* Warnings outlive the parse: a malloc'd buffer owned by the cell. */
    format_diag(c, at, "warning: ", msg, NULL, &c->warnings, &c->wlen, &c->wcap);
}

/* -------------------------------------------------------- spans, names */

cl_span cl_span_join(cl_span a, cl_span b) {
    uint32_t lo = a.off < b.off ? a.off : b.off;
    uint32_t ea = a.off + a.len, eb = b.off + b.len;
    return (cl_span){lo, (ea > eb ? ea : eb) - lo};
}

int cl_span_is(const cl_cell *c, cl_span s, const char *word) {
    size_t n = strlen(word);
    return s.len == n && !memcmp(c->text + s.off, word, n);
}

int cl_span_eq(const cl_cell *c, cl_span a, cl_span b) {
    return a.len == b.len && !memcmp(c->text + a.off, c->text + b.off, a.len);
}

char *cl_span_str(const cl_cell *c, cl_span s, char *buf, size_t n) {
    size_t k = s.len < n - 1 ? s.len : n - 1;
    memcpy(buf, c->text + s.off, k);
    buf[k] = 0;
    return buf;
}

char *cl_snippet(const cl_cell *c, cl_span s, char *buf, size_t n) {
    size_t k = 0;
    int space = 0;
    for (uint32_t i = 0; i < s.len && k + 4 < n; i++) {
        char ch = c->text[s.off + i];
        if (ch == '#') { /* a comment inside a multi-line expression */
            while (i + 1 < s.len && c->text[s.off + i + 1] != '\n') i++;
            continue;
        }
        if (ch == '\n' || ch == '\t' || ch == '\r' || ch == ' ') {
            space = k > 0;
            continue;
        }
        if (space) buf[k++] = ' ';
        space = 0;
        buf[k++] = ch;
    }
    if (k + 4 >= n && n > 4) memcpy(buf + n - 4, "...", 3), k = n - 1;
    buf[k] = 0;
    return buf;
}

static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 1000;
    int row[65];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int sub = diag + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            int best = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;
            row[j] = sub < best ? sub : best;
            diag = up;
        }
    }
    return row[lb];
}

const char *cl_closest(const char *name, const char *const *cands, int n) {
    const char *best = NULL;
    int bd = 1000;
    int len = (int)strlen(name);
    int limit = len <= 3 ? 1 : len <= 6 ? 2 : 3;
    for (int i = 0; i < n; i++) {
        if (!cands[i] || !strcmp(cands[i], name)) continue;
        int d = edit_distance(name, cands[i]);
        if (d < bd) bd = d, best = cands[i];
    }
    return bd <= limit ? best : NULL;
}

/* ------------------------------------------------------------- lexer */

static cl_span sp(size_t off, size_t len) { return (cl_span){(uint32_t)off, (uint32_t)len}; }

static void push(cl_ctx *x, cl_tok t) {
    x->toks = cl_grow(x, x->toks, &x->cap_toks, x->ntoks + 1, sizeof *x->toks);
    x->toks[x->ntoks++] = t;
}

static int ident_start(int c) { return isalpha(c) || c == '_'; }
static int ident_char(int c) { return isalnum(c) || c == '_'; }

/* NUL bytes and invalid UTF-8 anywhere are rejected before anything else,
 * so later stages only ever see well-formed text. */
static void validate(cl_ctx *x) {
    const cl_cell *c = x->cell;
    const unsigned char *t = (const unsigned char *)c->text;
    for (size_t i = 0; i < c->n;) {
        if (t[i] == 0)
            cl_fail(x, sp(i, 1), "a cell file is UTF-8 text", "NUL byte in the file");
        int l = utf8_len(t + i, c->n - i);
        if (!l)
            cl_fail(x, sp(i, 1), "a cell file is UTF-8 text",
                    "invalid UTF-8 (byte 0x%02x)", t[i]);
        i += (size_t)l;
    }
}

void cl_lex(cl_ctx *x) {
    const cl_cell *c = x->cell;
    const char *t = c->text;
    size_t n = c->n;
    validate(x);
    int depth = 0; /* ( and [ nesting: newlines inside do not end statements */
    size_t i = 0;
    if (n >= 3 && !memcmp(t, "\xef\xbb\xbf", 3)) i = 3; /* a UTF-8 byte order mark */
    while (i < n) {
        unsigned char ch = (unsigned char)t[i];
        if (ch == ' ' || ch == '\t' || ch == '\r') { i++; continue; }
        if (ch == '#') {
            while (i < n && t[i] != '\n') i++;
            continue;
        }
        if (ch == '\n') {
            if (depth == 0 && x->ntoks > 0 && x->toks[x->ntoks - 1].kind != TK_NL)
                push(x, (cl_tok){.kind = TK_NL, .span = sp(i, 1)});
            i++;
            continue;
        }
        if (ident_start(ch)) {
            size_t s = i;
            while (i < n && ident_char((unsigned char)t[i])) i++;
            if (i - s > CL_MAX_IDENT)
                cl_fail(x, sp(s, i - s), NULL, "name is too long (%zu characters; the limit is %d)",
                        i - s, CL_MAX_IDENT);
            cl_tok k = {.kind = TK_IDENT, .name_len = (uint32_t)(i - s)};
            if (i < n && t[i] == '\'') {
                k.prime = 1;
                i++;
                if (i < n && t[i] == '\'')
                    cl_fail(x, sp(i, 1), "h' is the next value of state h; there is no h''",
                            "a name takes at most one prime");
            }
            k.span = sp(s, i - s);
            push(x, k);
            continue;
        }
        if (isdigit(ch) || (ch == '.' && i + 1 < n && isdigit((unsigned char)t[i + 1]))) {
            size_t s = i;
            while (i < n && isdigit((unsigned char)t[i])) i++;
            if (i < n && t[i] == '.') {
                i++;
                while (i < n && isdigit((unsigned char)t[i])) i++;
            }
            if (i < n && (t[i] == 'e' || t[i] == 'E')) {
                size_t e = i + 1;
                if (e < n && (t[e] == '+' || t[e] == '-')) e++;
                if (e < n && isdigit((unsigned char)t[e])) {
                    i = e;
                    while (i < n && isdigit((unsigned char)t[i])) i++;
                }
            }
            if (i < n && ident_char((unsigned char)t[i])) {
                char num[48], name[48];
                cl_span_str(c, sp(s, i - s), num, sizeof num);
                size_t e = i;
                while (e < n && ident_char((unsigned char)t[e])) e++;
                cl_span_str(c, sp(i, e - i), name, sizeof name);
                char hint[160];
                snprintf(hint, sizeof hint, "write %s*%s", num, name);
                cl_fail(x, sp(s, e - s), hint, "a number cannot run into a name");
            }
            if (i - s > 40)
                cl_fail(x, sp(s, i - s), NULL, "number is too long (%zu characters)", i - s);
            char buf[48];
            cl_span_str(c, sp(s, i - s), buf, sizeof buf);
            double v = strtod(buf, NULL);
            if (!isfinite(v))
                cl_fail(x, sp(s, i - s), NULL, "number %s is too large", buf);
            push(x, (cl_tok){.kind = TK_NUM, .num = v, .span = sp(s, i - s)});
            continue;
        }
        if (ch == '"') {
            size_t s = i++;
            while (i < n && t[i] != '"') {
                if (t[i] == '\\') {
                    if (i + 1 >= n) break;
                    char e = t[i + 1];
                    if (e != '"' && e != '\\' && e != 'n' && e != 't')
                        cl_fail(x, sp(i, 2), "the escapes are \\\" \\\\ \\n \\t",
                                "unknown escape '\\%c' in a string", isprint((unsigned char)e) ? e : '?');
                    i += 2;
                    continue;
                }
                i++;
            }
            if (i >= n)
                cl_fail(x, sp(s, 1), "close it with '\"'", "unterminated string");
            i++;
            push(x, (cl_tok){.kind = TK_STR, .span = sp(s, i - s)});
            continue;
        }
        if (strchr("()[]{},;=+-*/@^:", ch)) {
            if (ch == '(' || ch == '[') depth++;
            if ((ch == ')' || ch == ']') && depth > 0) depth--;
            /* A '}' or '{' resets: a missing ')' must not swallow the body. */
            if (ch == '{' || ch == '}') depth = 0;
            push(x, (cl_tok){.kind = TK_PUNCT, .ch = ch, .span = sp(i, 1)});
            i++;
            continue;
        }
        if (ch == '\'')
            cl_fail(x, sp(i, 1), "write the prime right after a state's name, as in h'",
                    "stray prime (')");
        if (ch >= 0x80) {
            int l = utf8_len((const unsigned char *)t + i, n - i);
            cl_fail(x, sp(i, (size_t)l), "names are ASCII letters, digits and '_'",
                    "unexpected character U+%04X", utf8_cp((const unsigned char *)t + i, l));
        }
        if (isprint(ch))
            cl_fail(x, sp(i, 1), NULL, "unexpected character '%c'", ch);
        cl_fail(x, sp(i, 1), NULL, "unexpected control character 0x%02x", ch);
    }
    if (x->ntoks > 0 && x->toks[x->ntoks - 1].kind != TK_NL)
        push(x, (cl_tok){.kind = TK_NL, .span = sp(n, 0)});
    push(x, (cl_tok){.kind = TK_EOF, .span = sp(n, 0)});
}

/* ------------------------------------------------------- dims, shapes */

int cl_dim_eq(cl_dim a, cl_dim b) {
    for (int k = 0; k < CL_NSYM; k++)
        if (a.c[k] != b.c[k]) return 0;
    return 1;
}

char *cl_dim_str(cl_dim d, char *buf, size_t n) {
    static const char *const sym[CL_NSYM] = {"", "I", "H", "B"};
    static const int order[CL_NSYM] = {CL_B, CL_I, CL_H, CL_K};
    size_t k = 0;
    buf[0] = 0;
    int any = 0;
    for (int j = 0; j < CL_NSYM; j++) {
        int s = order[j];
        long long v = (long long)d.c[s];
        if (!v) continue;
        long long a = v < 0 ? -v : v;
        const char *sign = v < 0 ? (any ? " - " : "-") : (any ? " + " : "");
        int w;
        if (s == CL_K) w = snprintf(buf + k, n - k, "%s%lld", sign, a);
        else if (a == 1) w = snprintf(buf + k, n - k, "%s%s", sign, sym[s]);
        else w = snprintf(buf + k, n - k, "%s%lld*%s", sign, a, sym[s]);
        if (w < 0 || (size_t)w >= n - k) return buf;
        k += (size_t)w;
        any = 1;
    }
    if (!any) snprintf(buf, n, "0");
    return buf;
}

char *cl_shape_str(const cl_shape *s, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < s->rank && k < n; i++) {
        char d[96];
        k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? ", " : "", cl_dim_str(s->d[i], d, sizeof d));
    }
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

int64_t cl_dim_eval(cl_dim d, int64_t B, int64_t I, int64_t H, int *ok) {
    int64_t v[CL_NSYM] = {1, I, H, B};
    int64_t r = 0;
    for (int k = 0; k < CL_NSYM; k++) {
        int64_t p;
        if (__builtin_mul_overflow(d.c[k], v[k], &p) || __builtin_add_overflow(r, p, &r)) {
            *ok = 0;
            return 0;
        }
    }
    return r;
}
