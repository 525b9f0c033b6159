/* A word tokenizer and vocabulary like Keras's TextVectorization defaults
 * (see data.h): standardize = lower-case ASCII and delete ASCII punctuation
 * (so "don't" is "dont", as in Keras), split on white space. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"

enum { WORD_MAX = 64 }; /* longer words are cut (ASCII art, URLs) */

/* The next standardized token of *p into buf; 0 at the end. */
static int next_token(const char **p, char *buf) {
    const unsigned char *s = (const unsigned char *)*p;
    for (;;) {
        while (*s && isspace(*s)) s++;
        if (!*s) {
            *p = (const char *)s;
            return 0;
        }
        int n = 0;
        for (; *s && !isspace(*s); s++) {
            if (*s < 128 && ispunct(*s)) continue;
            if (n < WORD_MAX - 1) buf[n++] = (char)(*s < 128 ? tolower(*s) : *s);
        }
        buf[n] = 0;
        if (n > 0) { /* a run of punctuation alone is no token */
            *p = (const char *)s;
            return 1;
        }
    }
}

int words_count(const char *text) {
    char w[WORD_MAX];
    int n = 0;
    while (next_token(&text, w)) n++;
    return n;
}

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* A string table: words[] with counts, hashed by open addressing. */
typedef struct table {
    char **words;
    int64_t *count;
    int n, cap;
    int *slots;
    int nslots;
} table;

static int find_slot(char *const *words, const int *slots, int nslots, const char *w) {
    uint64_t i = hash(w) & (uint64_t)(nslots - 1);
    while (slots[i] >= 0 && strcmp(words[slots[i]], w)) i = (i + 1) & (uint64_t)(nslots - 1);
    return (int)i;
}

static int rehash(table *t) {
    int ns = t->nslots ? 2 * t->nslots : 1024;
    int *sl = malloc(sizeof *sl * (size_t)ns);
    if (!sl) return -1;
    for (int i = 0; i < ns; i++) sl[i] = -1;
    for (int k = 0; k < t->n; k++) sl[find_slot(t->words, sl, ns, t->words[k])] = k;
    free(t->slots);
    t->slots = sl;
    t->nslots = ns;
    return 0;
}

static int table_add(table *t, const char *w) {
    if (2 * (t->n + 1) > t->nslots && rehash(t)) return -1;
    int i = find_slot(t->words, t->slots, t->nslots, w);
    if (t->slots[i] >= 0) {
        t->count[t->slots[i]]++;
        return 0;
    }
    if (t->n == t->cap) {
        int nc = t->cap ? 2 * t->cap : 1024;
        char **nw = realloc(t->words, sizeof *nw * (size_t)nc);
        if (nw) t->words = nw;
        int64_t *cnt = realloc(t->count, sizeof *cnt * (size_t)nc);
        if (cnt) t->count = cnt;
        if (!nw || !cnt) return -1;
        t->cap = nc;
    }
    if (!(t->words[t->n] = strdup(w))) return -1;
    t->count[t->n] = 1;
    t->slots[i] = t->n++;
    return 0;
}

static const table *sort_table; /* qsort has no context argument */
static int by_count(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (sort_table->count[i] != sort_table->count[j])
        return sort_table->count[i] > sort_table->count[j] ? -1 : 1;
    return strcmp(sort_table->words[i], sort_table->words[j]);
}

void vocab_free(vocab *v) {
    for (int i = 0; v->words && i < v->n; i++) free(v->words[i]);
    free(v->words);
    free(v->slots);
    memset(v, 0, sizeof *v);
}

weft_status vocab_build(char *const *texts, int n, int max_tokens, vocab *out) {
    memset(out, 0, sizeof *out);
    if (max_tokens < 3) return weft_error(WEFT_ERR_ARG, "vocabulary: max_tokens %d < 3", max_tokens);
    table t = {0};
    weft_status s = WEFT_OK;
    char w[WORD_MAX];
    for (int i = 0; i < n && !s; i++) {
        const char *p = texts[i];
        while (next_token(&p, w) && !s)
            if (table_add(&t, w)) s = weft_error(WEFT_ERR_NOMEM, "vocabulary: out of memory");
    }
    int *order = s ? NULL : malloc(sizeof *order * (size_t)(t.n + 1));
    if (!s && !order) s = weft_error(WEFT_ERR_NOMEM, "vocabulary: out of memory");
    if (!s) {
        for (int i = 0; i < t.n; i++) order[i] = i;
        sort_table = &t;
        qsort(order, (size_t)t.n, sizeof *order, by_count);
        int keep = t.n < max_tokens - 2 ? t.n : max_tokens - 2;
        out->words = calloc((size_t)keep + 2, sizeof *out->words);
        if (!out->words) s = weft_error(WEFT_ERR_NOMEM, "vocabulary: out of memory");
        for (int i = 0; i < keep + 2 && !s; i++) {
            out->words[i] = strdup(i == 0 ? "" : i == 1 ? "[UNK]" : t.words[order[i - 2]]);
            if (!out->words[i]) s = weft_error(WEFT_ERR_NOMEM, "vocabulary: out of memory");
            else out->n = i + 1;
        }
        out->nslots = 1;
        while (!s && out->nslots < 2 * out->n) out->nslots *= 2;
        if (!s && !(out->slots = malloc(sizeof *out->slots * (size_t)out->nslots)))
            s = weft_error(WEFT_ERR_NOMEM, "vocabulary: out of memory");
        for (int i = 0; !s && i < out->nslots; i++) out->slots[i] = -1;
        for (int i = 2; !s && i < out->n; i++)
            out->slots[find_slot(out->words, out->slots, out->nslots, out->words[i])] = i;
    }
    free(order);
    for (int i = 0; i < t.n; i++) free(t.words[i]);
    free(t.words);
    free(t.count);
    free(t.slots);
    if (s) vocab_free(out);
    return s;
}

int vocab_id(const vocab *v, const char *word) {
    int i = v->slots[find_slot(v->words, v->slots, v->nslots, word)];
    return i >= 2 ? i : 1;
}

int vocab_encode(const vocab *v, const char *text, int32_t *ids, int max_len) {
    char w[WORD_MAX];
    int n = 0;
    while (n < max_len && next_token(&text, w)) ids[n++] = vocab_id(v, w);
    return n;
}
