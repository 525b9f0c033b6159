/* weft — safetensors reader and writer.
 *
 * Format: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
 * (an object: tensor name -> {"dtype", "shape", "data_offsets"}, plus an
 * optional "__metadata__" object of string -> string), then the raw
 * little-endian tensor data, offsets relative to the end of the header.
 *
 * The reader treats every byte as hostile.  It validates what the reference
 * implementation validates, plus a few things it lets through (duplicate
 * names, escaped NULs in names), and never allocates from a size it has not
 * checked against the size of the file.  Documented limits:
 *   - a file read with weft_st_read is at most ST_MAX_FILE (16 GiB);
 *   - the header is at most WEFT_ST_MAX_HEADER (100 MB);
 *   - a tensor has at most WEFT_ST_MAX_DIMS dimensions;
 *   - every shape dimension and data offset is an integer in [0, 2^53 - 1]
 *     (cJSON reads numbers as doubles; above 2^53 they would silently round).
 *     Being read as a double, an integral value written as 24.0 or 2.4e1 is
 *     accepted where the reference would insist on 24;
 *   - "__metadata__" must be an object (the reference also allows null);
 *   - F8 dtypes (F8_E4M3, F8_E5M2) are not supported: "unknown dtype";
 *   - names and metadata may not contain NUL characters.
 */
#define _GNU_SOURCE /* O_CLOEXEC, O_DIRECTORY */
#include "weft/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Tensor data is used in place (memcpy of little-endian bytes). */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "weft's safetensors I/O assumes a little-endian host"
#endif

#define ST_MAX_FILE ((uint64_t)16 << 30)
#define ST_MAX_INT 9007199254740991.0 /* 2^53 - 1 */
/* The file image is placed so that the data section starts on this
 * boundary, whatever the header length: tensors can be read in place. */
#define ST_ALIGN 16

static const struct {
    const char *name;
    size_t size;
} st_dtypes[] = {
    [WEFT_ST_BOOL] = {"BOOL", 1}, [WEFT_ST_U8] = {"U8", 1},
    [WEFT_ST_I8] = {"I8", 1},     [WEFT_ST_I16] = {"I16", 2},
    [WEFT_ST_U16] = {"U16", 2},   [WEFT_ST_F16] = {"F16", 2},
    [WEFT_ST_BF16] = {"BF16", 2}, [WEFT_ST_I32] = {"I32", 4},
    [WEFT_ST_U32] = {"U32", 4},   [WEFT_ST_F32] = {"F32", 4},
    [WEFT_ST_F64] = {"F64", 8},   [WEFT_ST_I64] = {"I64", 8},
    [WEFT_ST_U64] = {"U64", 8},
};
_Static_assert(sizeof st_dtypes / sizeof st_dtypes[0] == WEFT_ST_DTYPE_COUNT,
               "one st_dtypes row per weft_st_dtype");

const char *weft_st_dtype_name(weft_st_dtype t) {
    return (unsigned)t < WEFT_ST_DTYPE_COUNT ? st_dtypes[t].name : "?";
}

size_t weft_st_dtype_size(weft_st_dtype t) {
    return (unsigned)t < WEFT_ST_DTYPE_COUNT ? st_dtypes[t].size : 0;
}

static int st_dtype_parse(const char *s, weft_st_dtype *out) {
    for (int i = 0; i < WEFT_ST_DTYPE_COUNT; i++)
        if (strcmp(s, st_dtypes[i].name) == 0) {
            *out = (weft_st_dtype)i;
            return 1;
        }
    return 0;
}

/* "[4, 8]" into buf (always terminated). */
static char *st_dims_str(const int64_t *dim, int ndim, char *buf, size_t n) {
    size_t at = 0;
    at += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%" PRId64, i ? ", " : "", dim[i]);
    if (at < n)
        snprintf(buf + at, n - at, "]");
    return buf;
}

/* Element count times element size, or 0 (and *ok = 0) on overflow. */
static uint64_t st_nbytes(const int64_t *dim, int ndim, weft_st_dtype t, int *ok) {
    uint64_t n = weft_st_dtype_size(t);
    *ok = 1;
    for (int i = 0; i < ndim; i++)
        if (dim[i] < 0 || __builtin_mul_overflow(n, (uint64_t)dim[i], &n)) {
            *ok = 0;
            return 0;
        }
    return n;
}

/* Strict UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF).
 * Returns the offset of the first bad byte, or n. */
static size_t st_utf8_check(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned lo = 0x80, hi = 0xBF; /* range of the second byte */
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return i;
        }
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
        i += len;
    }
    return n;
}

static int st_json_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Checks JSON needs that cJSON does not: no raw control bytes (JSON allows
 * none, and cJSON would treat them as whitespace or string content), and
 * no "\u0000" escape in a string (cJSON would cut the string there, so two
 * different names could become one).  Returns the offset of the problem or
 * n; *what says which. */
static size_t st_json_scan(const unsigned char *s, size_t n, const char **what) {
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 && !st_json_space(s[i])) {
            *what = "a control byte";
            return i;
        }
        if (!in_string) {
            in_string = s[i] == '"';
        } else if (s[i] == '"') {
            in_string = 0;
        } else if (s[i] == '\\' && i + 1 < n) {
            if (s[i + 1] == 'u' && n - i >= 6 && memcmp(s + i + 2, "0000", 4) == 0) {
                *what = "an escaped NUL (\\u0000)";
                return i;
            }
            i++; /* skip the escaped character (it may be '"') */
        }
    }
    return n;
}

/* ------------------------------------------------------------------ reader */

typedef struct st_meta {
    char *key, *value;
} st_meta;

struct weft_st_file {
    unsigned char *alloc;      /* owns the file image */
    const unsigned char *data; /* the data section, ST_ALIGN-aligned */
    size_t data_size;
    char *label;
    int count;
    weft_st_tensor *tensors;   /* in header order */
    int *by_name;              /* tensor indices sorted by name */
    int nmeta;
    st_meta *meta;             /* sorted by key */
};

void weft_st_free(weft_st_file *f) {
    if (!f)
        return;
    for (int i = 0; i < f->count; i++)
        free((char *)f->tensors[i].name);
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->tensors);
    free(f->by_name);
    free(f->meta);
    free(f->label);
    free(f->alloc);
    free(f);
}

int weft_st_count(const weft_st_file *f) { return f ? f->count : 0; }

const weft_st_tensor *weft_st_at(const weft_st_file *f, int i) {
    return f && i >= 0 && i < f->count ? &f->tensors[i] : NULL;
}

const weft_st_tensor *weft_st_find(const weft_st_file *f, const char *name) {
    if (!f || !name)
        return NULL;
    int lo = 0, hi = f->count - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const weft_st_tensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

const char *weft_st_metadata(const weft_st_file *f, const char *key) {
    if (!f || !key)
        return NULL;
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta[i].key, key) == 0)
            return f->meta[i].value;
    return NULL;
}

static int st_cmp_name_ptr(const void *a, const void *b) {
    const weft_st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static int st_cmp_meta(const void *a, const void *b) {
    return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key);
}

typedef struct st_span {
    uint64_t start, end;
    int idx;
} st_span;

static int st_cmp_span(const void *a, const void *b) {
    const st_span *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* An exact integer in [0, 2^53 - 1] from a JSON number; 0 on failure with
 * the rule broken in *why. */
static int st_json_uint(const cJSON *v, uint64_t *out, const char **why) {
    if (!cJSON_IsNumber(v)) {
        *why = "is not a number";
        return 0;
    }
    double d = v->valuedouble;
    if (d < 0) {
        *why = "is negative";
        return 0;
    }
    if (!isfinite(d) || d > ST_MAX_INT) {
        *why = "is larger than 2^53 - 1";
        return 0;
    }
    if (d != floor(d)) {
        *why = "is not an integer";
        return 0;
    }
    *out = (uint64_t)d;
    return 1;
}

static weft_status st_parse_metadata(weft_st_file *f, const cJSON *m) {
    if (!cJSON_IsObject(m))
        return weft_error(WEFT_ERR_FORMAT, "%s: __metadata__ is not an object", f->label);
    int n = cJSON_GetArraySize(m);
    f->meta = calloc((size_t)n + 1, sizeof *f->meta);
    if (!f->meta)
        return weft_error(WEFT_ERR_NOMEM, "%s: out of memory reading __metadata__", f->label);
    for (const cJSON *e = m->child; e; e = e->next) {
        if (!cJSON_IsString(e))
            return weft_error(WEFT_ERR_FORMAT, "%s: __metadata__ value for '%s' is not a string",
                              f->label, e->string);
        st_meta *mm = &f->meta[f->nmeta];
        mm->key = strdup(e->string);
        mm->value = strdup(e->valuestring);
        f->nmeta++;
        if (!mm->key || !mm->value)
            return weft_error(WEFT_ERR_NOMEM, "%s: out of memory reading __metadata__", f->label);
    }
    qsort(f->meta, (size_t)f->nmeta, sizeof *f->meta, st_cmp_meta);
    for (int i = 1; i < f->nmeta; i++)
        if (strcmp(f->meta[i - 1].key, f->meta[i].key) == 0)
            return weft_error(WEFT_ERR_FORMAT, "%s: __metadata__ key '%s' appears twice",
                              f->label, f->meta[i].key);
    return WEFT_OK;
}

/* One header entry into f->tensors[f->count] and its byte span. */
static weft_status st_parse_entry(weft_st_file *f, const cJSON *e, st_span *span) {
    const char *lab = f->label, *name = e->string;
    weft_st_tensor *t = &f->tensors[f->count];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name)))
        return weft_error(WEFT_ERR_NOMEM, "%s: out of memory", lab);
    span->idx = f->count++;
    if (!cJSON_IsObject(e))
        return weft_error(WEFT_ERR_FORMAT, "%s: tensor '%s': entry is not an object", lab, name);

    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    const char *missing = !dt ? "dtype" : !sh ? "shape" : !off ? "data_offsets" : NULL;
    if (missing)
        return weft_error(WEFT_ERR_FORMAT, "%s: tensor '%s': missing \"%s\"", lab, name, missing);

    if (!cJSON_IsString(dt))
        return weft_error(WEFT_ERR_FORMAT, "%s: tensor '%s': \"dtype\" is not a string", lab, name);
    if (!st_dtype_parse(dt->valuestring, &t->dtype))
        return weft_error(WEFT_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", lab, name,
                          dt->valuestring);

    if (!cJSON_IsArray(sh))
        return weft_error(WEFT_ERR_FORMAT, "%s: tensor '%s': \"shape\" is not an array", lab, name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > WEFT_ST_MAX_DIMS)
        return weft_error(WEFT_ERR_FORMAT,
                          "%s: tensor '%s': shape has %d dimensions, more than the limit of %d",
                          lab, name, nd, WEFT_ST_MAX_DIMS);
    const char *why;
    int k = 0;
    for (const cJSON *d = sh->child; d; d = d->next, k++) {
        uint64_t v;
        if (!st_json_uint(d, &v, &why))
            return weft_error(WEFT_ERR_FORMAT, "%s: tensor '%s': shape dimension %d %s", lab,
                              name, k, why);
        t->shape[k] = (int64_t)v;
    }
    t->ndim = nd;

    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return weft_error(WEFT_ERR_FORMAT,
                          "%s: tensor '%s': \"data_offsets\" is not an array of 2 integers", lab,
                          name);
    if (!st_json_uint(off->child, &span->start, &why) ||
        !st_json_uint(off->child->next, &span->end, &why))
        return weft_error(WEFT_ERR_FORMAT, "%s: tensor '%s': a data offset %s", lab, name, why);

    char sbuf[160];
    st_dims_str(t->shape, t->ndim, sbuf, sizeof sbuf);
    if (span->end < span->start)
        return weft_error(WEFT_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                          "] are reversed (end before start)",
                          lab, name, span->start, span->end);
    int ok;
    uint64_t need = st_nbytes(t->shape, t->ndim, t->dtype, &ok);
    if (!ok)
        return weft_error(WEFT_ERR_FORMAT,
                          "%s: tensor '%s': shape %s of %s overflows 64 bits when multiplied out",
                          lab, name, sbuf, weft_st_dtype_name(t->dtype));
    if (span->end - span->start != need)
        return weft_error(WEFT_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] give %" PRIu64
                          " bytes but shape %s of %s needs %" PRIu64,
                          lab, name, span->start, span->end, span->end - span->start, sbuf,
                          weft_st_dtype_name(t->dtype), need);
    if (span->end > f->data_size)
        return weft_error(WEFT_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                          "] run past the end of the data (%zu bytes)",
                          lab, name, span->start, span->end, f->data_size);
    t->data = f->data + span->start;
    t->nbytes = (size_t)need;
    return WEFT_OK;
}

/* Data must be exactly the tensors' spans laid end to end from 0. */
static weft_status st_check_layout(weft_st_file *f, st_span *spans) {
    qsort(spans, (size_t)f->count, sizeof *spans, st_cmp_span);
    uint64_t at = 0;
    for (int i = 0; i < f->count; i++) {
        const st_span *s = &spans[i];
        const char *name = f->tensors[s->idx].name;
        if (s->start == at) {
            at = s->end;
            continue;
        }
        if (i == 0)
            return weft_error(WEFT_ERR_FORMAT,
                              "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                              "]: the data must start at offset 0",
                              f->label, name, s->start, s->end);
        const st_span *p = &spans[i - 1];
        return weft_error(WEFT_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] %s tensor '%s' [%" PRIu64
                          ", %" PRIu64 "]: tensors must be contiguous",
                          f->label, name, s->start, s->end,
                          s->start < at ? "overlap" : "leave a gap after", f->tensors[p->idx].name,
                          p->start, p->end);
    }
    if (at != f->data_size)
        return weft_error(WEFT_ERR_FORMAT,
                          "%s: %" PRIu64 " trailing bytes after the tensor data (data ends at %" PRIu64
                          ", the data section has %zu bytes)",
                          f->label, (uint64_t)f->data_size - at, at, f->data_size);
    return WEFT_OK;
}

static weft_status st_parse_header(weft_st_file *f, const unsigned char *hdr, size_t hlen) {
    const char *lab = f->label;
    size_t bad = st_utf8_check(hdr, hlen);
    if (bad < hlen)
        return weft_error(WEFT_ERR_FORMAT,
                          "%s: header is not valid UTF-8 (byte 0x%02x at header offset %zu)", lab,
                          hdr[bad], bad);
    /* The reference requires this too: it rules out a BOM, leading spaces
     * and anything but an object at the top. */
    if (hlen == 0 || hdr[0] != '{')
        return weft_error(WEFT_ERR_FORMAT, "%s: header is not a JSON object (it must start with '{')",
                          lab);
    const char *what = NULL;
    bad = st_json_scan(hdr, hlen, &what);
    if (bad < hlen)
        return weft_error(WEFT_ERR_FORMAT, "%s: header is not JSON: %s at header offset %zu", lab,
                          what, bad);

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)hdr, hlen, &end, 0);
    if (!root) {
        size_t at = end ? (size_t)((const unsigned char *)end - hdr) : 0;
        return weft_error(WEFT_ERR_FORMAT, "%s: header is not JSON (error near header offset %zu)",
                          lab, at);
    }
    weft_status st = WEFT_OK;
    st_span *spans = NULL;
    const weft_st_tensor **sorted = NULL;
    for (size_t i = (size_t)((const unsigned char *)end - hdr); i < hlen; i++)
        if (!st_json_space(hdr[i])) {
            st = weft_error(WEFT_ERR_FORMAT,
                            "%s: header is not JSON: unexpected text after the object at header "
                            "offset %zu",
                            lab, i);
            goto done;
        }

    /* Entry count is bounded by the header length (each takes bytes). */
    int n = cJSON_GetArraySize(root);
    f->tensors = calloc((size_t)n + 1, sizeof *f->tensors);
    spans = calloc((size_t)n + 1, sizeof *spans);
    if (!f->tensors || !spans) {
        st = weft_error(WEFT_ERR_NOMEM, "%s: out of memory for %d header entries", lab, n);
        goto done;
    }
    const cJSON *meta = NULL;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (meta) {
                st = weft_error(WEFT_ERR_FORMAT, "%s: '__metadata__' appears twice in the header",
                                lab);
                goto done;
            }
            meta = e;
            continue;
        }
        if ((st = st_parse_entry(f, e, &spans[f->count])) != WEFT_OK)
            goto done;
    }

    /* Names must be unique: cJSON keeps duplicate keys, and which one a
     * lookup would find is an accident of the implementation. */
    sorted = malloc(((size_t)f->count + 1) * sizeof *sorted);
    f->by_name = malloc(((size_t)f->count + 1) * sizeof *f->by_name);
    if (!sorted || !f->by_name) {
        st = weft_error(WEFT_ERR_NOMEM, "%s: out of memory", lab);
        goto done;
    }
    for (int i = 0; i < f->count; i++)
        sorted[i] = &f->tensors[i];
    qsort(sorted, (size_t)f->count, sizeof *sorted, st_cmp_name_ptr);
    for (int i = 0; i < f->count; i++) {
        f->by_name[i] = (int)(sorted[i] - f->tensors);
        if (i > 0 && strcmp(sorted[i - 1]->name, sorted[i]->name) == 0) {
            st = weft_error(WEFT_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", lab,
                            sorted[i]->name);
            goto done;
        }
    }
    if (meta && (st = st_parse_metadata(f, meta)) != WEFT_OK)
        goto done;
    st = st_check_layout(f, spans);
done:
    free(sorted);
    free(spans);
    cJSON_Delete(root);
    return st;
}

static uint64_t st_le64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Where in an allocation to put a file image so that its data section is
 * ST_ALIGN-aligned, given its first bytes (any n). */
static size_t st_image_pad(const unsigned char *head, size_t n) {
    if (n < 8)
        return 0;
    uint64_t hlen = st_le64(head);
    if (hlen > n - 8)
        return 0;
    return (ST_ALIGN - (size_t)((8 + hlen) % ST_ALIGN)) % ST_ALIGN;
}

/* Validates the image at alloc + pad (n bytes); takes ownership of alloc. */
static weft_status st_parse_image(unsigned char *alloc, size_t pad, size_t n, const char *label,
                                  weft_st_file **out) {
    *out = NULL;
    weft_st_file *f = calloc(1, sizeof *f);
    if (!f) {
        free(alloc);
        return weft_error(WEFT_ERR_NOMEM, "%s: out of memory", label);
    }
    f->alloc = alloc;
    f->label = strdup(label);
    if (!f->label) {
        weft_st_free(f);
        return weft_error(WEFT_ERR_NOMEM, "%s: out of memory", label);
    }
    const unsigned char *img = alloc + pad;
    weft_status st;
    if (n < 8) {
        st = weft_error(WEFT_ERR_FORMAT,
                        "%s: file is %zu bytes, shorter than the 8-byte header length field",
                        label, n);
        goto fail;
    }
    uint64_t hlen = st_le64(img);
    if (hlen > WEFT_ST_MAX_HEADER) {
        st = weft_error(WEFT_ERR_FORMAT, "%s: header length %" PRIu64
                        " exceeds the limit of %u bytes", label, hlen, WEFT_ST_MAX_HEADER);
        goto fail;
    }
    if (hlen > n - 8) {
        st = weft_error(WEFT_ERR_FORMAT,
                        "%s: header length %" PRIu64 " runs past the end of the file (%zu bytes "
                        "after the length field)",
                        label, hlen, n - 8);
        goto fail;
    }
    f->data = img + 8 + hlen;
    f->data_size = n - 8 - (size_t)hlen;
    if ((st = st_parse_header(f, img + 8, (size_t)hlen)) != WEFT_OK)
        goto fail;
    *out = f;
    return WEFT_OK;
fail:
    weft_st_free(f);
    return st;
}

weft_status weft_st_parse(const void *bytes, size_t n, const char *label, weft_st_file **out) {
    if (!out)
        return weft_error(WEFT_ERR_ARG, "weft_st_parse: out is NULL");
    *out = NULL;
    if (!label)
        label = "<memory>";
    if (!bytes && n)
        return weft_error(WEFT_ERR_ARG, "%s: bytes is NULL", label);
    size_t pad = st_image_pad(bytes, n);
    unsigned char *alloc = malloc(n + pad + 1);
    if (!alloc)
        return weft_error(WEFT_ERR_NOMEM, "%s: out of memory for %zu bytes", label, n);
    if (n)
        memcpy(alloc + pad, bytes, n);
    return st_parse_image(alloc, pad, n, label, out);
}

weft_status weft_st_read(const char *path, weft_st_file **out) {
    if (!out)
        return weft_error(WEFT_ERR_ARG, "weft_st_read: out is NULL");
    *out = NULL;
    if (!path)
        return weft_error(WEFT_ERR_ARG, "weft_st_read: path is NULL");
    /* Non-blocking open: a FIFO without a writer must not hang the reader;
     * it is refused below as not a regular file. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return weft_error(WEFT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    int fl = fcntl(fd, F_GETFL);
    if (fl != -1) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        int err = errno;
        close(fd);
        return weft_error(WEFT_ERR_IO, "%s: cannot open: %s", path, strerror(err));
    }
    struct stat sb;
    weft_status st;
    unsigned char *alloc = NULL;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = weft_error(WEFT_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    if ((uint64_t)sb.st_size > ST_MAX_FILE || (uint64_t)sb.st_size > SIZE_MAX - ST_ALIGN) {
        st = weft_error(WEFT_ERR_FORMAT, "%s: file is %" PRIu64 " bytes, more than the limit of %"
                        PRIu64, path, (uint64_t)sb.st_size, ST_MAX_FILE);
        goto fail;
    }
    size_t n = (size_t)sb.st_size;
    unsigned char head[8];
    size_t got = fread(head, 1, n < 8 ? n : 8, fp);
    size_t pad = st_image_pad(head, got == 8 ? n : got);
    alloc = malloc(n + pad + 1);
    if (!alloc) {
        st = weft_error(WEFT_ERR_NOMEM, "%s: out of memory for %zu bytes", path, n);
        goto fail;
    }
    memcpy(alloc + pad, head, got);
    if (got < (n < 8 ? n : 8) || fread(alloc + pad + got, 1, n - got, fp) != n - got ||
        fgetc(fp) != EOF) {
        st = weft_error(WEFT_ERR_IO, "%s: read failed or the file changed while reading", path);
        goto fail;
    }
    fclose(fp);
    return st_parse_image(alloc, pad, n, path, out);
fail:
    free(alloc);
    fclose(fp);
    return st;
}

/* ------------------------------------------------------------- conversion */

static float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: value = man * 2^-24 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static double st_load_float(weft_st_dtype t, const unsigned char *p) {
    switch (t) {
    case WEFT_ST_F16: { uint16_t h; memcpy(&h, p, 2); return st_f16_to_f32(h); }
    case WEFT_ST_BF16: {
        uint16_t h; memcpy(&h, p, 2);
        uint32_t bits = (uint32_t)h << 16;
        float f; memcpy(&f, &bits, 4);
        return f;
    }
    case WEFT_ST_F32: { float f; memcpy(&f, p, 4); return f; }
    default: { double d; memcpy(&d, p, 8); return d; }
    }
}

/* An integer element; 0 if it does not fit in int64 (only U64 can fail). */
static int st_load_int(weft_st_dtype t, const unsigned char *p, int64_t *v) {
    switch (t) {
    case WEFT_ST_BOOL: case WEFT_ST_U8: *v = p[0]; return 1;
    case WEFT_ST_I8: *v = (int8_t)p[0]; return 1;
    case WEFT_ST_I16: { int16_t x; memcpy(&x, p, 2); *v = x; return 1; }
    case WEFT_ST_U16: { uint16_t x; memcpy(&x, p, 2); *v = x; return 1; }
    case WEFT_ST_I32: { int32_t x; memcpy(&x, p, 4); *v = x; return 1; }
    case WEFT_ST_U32: { uint32_t x; memcpy(&x, p, 4); *v = x; return 1; }
    case WEFT_ST_I64: { int64_t x; memcpy(&x, p, 8); *v = x; return 1; }
    default: { uint64_t x; memcpy(&x, p, 8); *v = (int64_t)x; return x <= INT64_MAX; }
    }
}

static int st_is_float(weft_st_dtype t) {
    return t == WEFT_ST_F16 || t == WEFT_ST_BF16 || t == WEFT_ST_F32 || t == WEFT_ST_F64;
}

static const char *st_want_name(weft_dtype t) {
    return t == WEFT_F32 ? "F32" : t == WEFT_F64 ? "F64" : t == WEFT_I32 ? "I32" : "?";
}

weft_status weft_st_get(const weft_st_file *f, const char *name, weft_dtype want, weft_shape shape,
                        void *dst) {
    if (!f || !name)
        return weft_error(WEFT_ERR_ARG, "weft_st_get: NULL argument");
    const weft_st_tensor *t = weft_st_find(f, name);
    if (!t)
        return weft_error(WEFT_ERR_NOT_FOUND, "%s: no tensor '%s'", f->label, name);
    int same = t->ndim == shape.ndim && shape.ndim >= 0 && shape.ndim <= WEFT_MAX_DIMS;
    for (int i = 0; same && i < t->ndim; i++)
        same = t->shape[i] == shape.dim[i];
    if (!same) {
        char a[160], b[160];
        st_dims_str(t->shape, t->ndim, a, sizeof a);
        if (shape.ndim >= 0 && shape.ndim <= WEFT_MAX_DIMS)
            st_dims_str(shape.dim, shape.ndim, b, sizeof b);
        else
            snprintf(b, sizeof b, "(bad shape, ndim %d)", shape.ndim);
        return weft_error(WEFT_ERR_SHAPE, "%s: tensor '%s' has shape %s but %s was expected",
                          f->label, name, a, b);
    }
    int src_float = st_is_float(t->dtype);
    if ((want == WEFT_I32) == src_float || (want != WEFT_F32 && want != WEFT_F64 && want != WEFT_I32))
        return weft_error(WEFT_ERR_DTYPE,
                          "%s: tensor '%s' is %s, which cannot be read as %s (float tensors "
                          "convert to F32/F64, integer tensors to I32)",
                          f->label, name, weft_st_dtype_name(t->dtype), st_want_name(want));
    if (!dst && t->nbytes)
        return weft_error(WEFT_ERR_ARG, "weft_st_get: tensor '%s': dst is NULL", name);
    size_t es = weft_st_dtype_size(t->dtype);
    size_t n = t->nbytes / es;
    if ((want == WEFT_F32 && t->dtype == WEFT_ST_F32) ||
        (want == WEFT_F64 && t->dtype == WEFT_ST_F64) ||
        (want == WEFT_I32 && t->dtype == WEFT_ST_I32)) {
        if (t->nbytes)
            memcpy(dst, t->data, t->nbytes);
        return WEFT_OK;
    }
    const unsigned char *p = t->data;
    for (size_t i = 0; i < n; i++, p += es) {
        if (want == WEFT_I32) {
            int64_t v;
            if (!st_load_int(t->dtype, p, &v) || v < INT32_MIN || v > INT32_MAX) {
                char num[32];
                if (t->dtype == WEFT_ST_U64)
                    snprintf(num, sizeof num, "%" PRIu64, (uint64_t)v);
                else
                    snprintf(num, sizeof num, "%" PRId64, v);
                return weft_error(WEFT_ERR_NUMERIC, "%s: tensor '%s': element %zu (%s) does not "
                                  "fit in I32", f->label, name, i, num);
            }
            ((int32_t *)dst)[i] = (int32_t)v;
        } else if (want == WEFT_F64) {
            ((double *)dst)[i] = st_load_float(t->dtype, p);
        } else {
            double d = st_load_float(t->dtype, p);
            float x = (float)d;
            if (isfinite(d) && !isfinite(x))
                return weft_error(WEFT_ERR_NUMERIC, "%s: tensor '%s': element %zu (%g) overflows F32",
                                  f->label, name, i, d);
            ((float *)dst)[i] = x;
        }
    }
    return WEFT_OK;
}

/* ------------------------------------------------------------------ writer */

typedef struct st_entry {
    char *name;
    weft_st_dtype dtype;
    int ndim;
    int64_t shape[WEFT_ST_MAX_DIMS];
    unsigned char *data;
    size_t nbytes;
} st_entry;

struct weft_st_writer {
    st_entry *e;
    int n, cap;
    st_meta *meta;
    int nmeta, metacap;
};

weft_st_writer *weft_st_writer_new(void) { return calloc(1, sizeof(weft_st_writer)); }

void weft_st_writer_free(weft_st_writer *w) {
    if (!w)
        return;
    for (int i = 0; i < w->n; i++) {
        free(w->e[i].name);
        free(w->e[i].data);
    }
    for (int i = 0; i < w->nmeta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->e);
    free(w->meta);
    free(w);
}

/* Grows *p (an array of *cap items of size sz) to hold one more than n. */
static int st_grow(void *p, int *cap, int n, size_t sz) {
    if (n < *cap)
        return 1;
    int nc = *cap ? *cap * 2 : 16;
    void *q = realloc(*(void **)p, (size_t)nc * sz);
    if (!q)
        return 0;
    *(void **)p = q;
    *cap = nc;
    return 1;
}

static int st_valid_string(const char *s) {
    size_t n = strlen(s);
    return st_utf8_check((const unsigned char *)s, n) == n;
}

/* Everything about a new tensor that can be checked before copying it. */
static weft_status st_writer_check(const weft_st_writer *w, const char *name, weft_st_dtype t,
                                   int ndim, const int64_t *shape, size_t nbytes) {
    if (!w || !name || (ndim > 0 && !shape))
        return weft_error(WEFT_ERR_ARG, "safetensors writer: NULL argument");
    if (!st_valid_string(name) || strcmp(name, "__metadata__") == 0)
        return weft_error(WEFT_ERR_ARG, "safetensors writer: invalid tensor name '%s'", name);
    if ((unsigned)t >= WEFT_ST_DTYPE_COUNT)
        return weft_error(WEFT_ERR_DTYPE, "safetensors writer: tensor '%s': bad dtype %d", name, (int)t);
    if (ndim < 0 || ndim > WEFT_ST_MAX_DIMS)
        return weft_error(WEFT_ERR_SHAPE, "safetensors writer: tensor '%s': %d dimensions (limit %d)",
                          name, ndim, WEFT_ST_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || (double)shape[i] > ST_MAX_INT)
            return weft_error(WEFT_ERR_SHAPE, "safetensors writer: tensor '%s': dimension %d is %" PRId64,
                              name, i, shape[i]);
    int ok;
    uint64_t need = st_nbytes(shape, ndim, t, &ok);
    char sbuf[160];
    if (!ok)
        return weft_error(WEFT_ERR_SHAPE,
                          "safetensors writer: tensor '%s': shape %s of %s overflows 64 bits", name,
                          st_dims_str(shape, ndim, sbuf, sizeof sbuf), weft_st_dtype_name(t));
    if (need != nbytes) {
        return weft_error(WEFT_ERR_SHAPE,
                          "safetensors writer: tensor '%s': %zu bytes given but shape %s of %s needs %" PRIu64,
                          name, nbytes, st_dims_str(shape, ndim, sbuf, sizeof sbuf),
                          weft_st_dtype_name(t), need);
    }
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0)
            return weft_error(WEFT_ERR_ARG, "safetensors writer: tensor '%s' added twice", name);
    return WEFT_OK;
}

/* Appends a checked tensor; takes ownership of data (freed on failure). */
static weft_status st_writer_push(weft_st_writer *w, const char *name, weft_st_dtype t, int ndim,
                                  const int64_t *shape, unsigned char *data, size_t nbytes) {
    char *nm = strdup(name);
    if (!nm || !st_grow(&w->e, &w->cap, w->n, sizeof *w->e)) {
        free(nm);
        free(data);
        return weft_error(WEFT_ERR_NOMEM, "safetensors writer: out of memory");
    }
    st_entry *e = &w->e[w->n++];
    memset(e, 0, sizeof *e);
    e->name = nm;
    e->dtype = t;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        e->shape[i] = shape[i];
    e->data = data;
    e->nbytes = nbytes;
    return WEFT_OK;
}

weft_status weft_st_writer_add(weft_st_writer *w, const char *name, weft_st_dtype t, int ndim,
                               const int64_t *shape, const void *data, size_t nbytes) {
    weft_status st = st_writer_check(w, name, t, ndim, shape, nbytes);
    if (st != WEFT_OK)
        return st;
    if (nbytes && !data)
        return weft_error(WEFT_ERR_ARG, "safetensors writer: tensor '%s': data is NULL", name);
    unsigned char *copy = malloc(nbytes + 1);
    if (!copy)
        return weft_error(WEFT_ERR_NOMEM, "safetensors writer: out of memory for %zu bytes", nbytes);
    if (nbytes)
        memcpy(copy, data, nbytes);
    return st_writer_push(w, name, t, ndim, shape, copy, nbytes);
}

/* Gathers a strided view into contiguous row-major dst. */
static void st_gather(const weft_tensor *t, size_t es, int64_t numel, unsigned char *dst) {
    int nd = t->shape.ndim;
    int64_t idx[WEFT_MAX_DIMS] = {0};
    const unsigned char *base = t->data;
    for (int64_t k = 0; k < numel; k++) {
        int64_t off = 0;
        for (int d = 0; d < nd; d++)
            off += idx[d] * t->stride[d];
        memcpy(dst + (size_t)k * es, base + off * (int64_t)es, es);
        for (int d = nd - 1; d >= 0 && ++idx[d] == t->shape.dim[d]; d--)
            idx[d] = 0;
    }
}

weft_status weft_st_writer_add_tensor(weft_st_writer *w, const char *name, const weft_tensor *t) {
    if (!t)
        return weft_error(WEFT_ERR_ARG, "safetensors writer: tensor '%s' is NULL", name ? name : "?");
    weft_st_dtype st_t;
    switch (t->dtype) {
    case WEFT_F32: st_t = WEFT_ST_F32; break;
    case WEFT_F64: st_t = WEFT_ST_F64; break;
    case WEFT_I32: st_t = WEFT_ST_I32; break;
    default:
        return weft_error(WEFT_ERR_DTYPE, "safetensors writer: tensor '%s': unknown weft dtype %d",
                          name ? name : "?", (int)t->dtype);
    }
    int nd = t->shape.ndim;
    if (nd < 0 || nd > WEFT_MAX_DIMS)
        return weft_error(WEFT_ERR_SHAPE, "safetensors writer: tensor '%s': ndim %d",
                          name ? name : "?", nd);
    int ok;
    uint64_t nbytes = st_nbytes(t->shape.dim, nd, st_t, &ok);
    weft_status st = st_writer_check(w, name, st_t, nd, t->shape.dim, ok ? nbytes : 0);
    if (st != WEFT_OK)
        return st;
    size_t es = weft_st_dtype_size(st_t);
    int64_t numel = (int64_t)(nbytes / es);
    if (numel && !t->data)
        return weft_error(WEFT_ERR_ARG, "safetensors writer: tensor '%s': data is NULL", name);
    unsigned char *buf = malloc(nbytes + 1);
    if (!buf)
        return weft_error(WEFT_ERR_NOMEM, "safetensors writer: out of memory for %" PRIu64 " bytes",
                          nbytes);
    st_gather(t, es, numel, buf);
    return st_writer_push(w, name, st_t, nd, t->shape.dim, buf, (size_t)nbytes);
}

weft_status weft_st_writer_meta(weft_st_writer *w, const char *key, const char *value) {
    if (!w || !key || !value)
        return weft_error(WEFT_ERR_ARG, "safetensors writer: NULL metadata argument");
    if (!st_valid_string(key) || !st_valid_string(value))
        return weft_error(WEFT_ERR_ARG, "safetensors writer: metadata '%s' is not valid UTF-8", key);
    char *v = strdup(value);
    if (!v)
        return weft_error(WEFT_ERR_NOMEM, "safetensors writer: out of memory");
    for (int i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta[i].key, key) == 0) { /* a later value replaces */
            free(w->meta[i].value);
            w->meta[i].value = v;
            return WEFT_OK;
        }
    char *k = strdup(key);
    if (!k || !st_grow(&w->meta, &w->metacap, w->nmeta, sizeof *w->meta)) {
        free(k);
        free(v);
        return weft_error(WEFT_ERR_NOMEM, "safetensors writer: out of memory");
    }
    w->meta[w->nmeta++] = (st_meta){k, v};
    return WEFT_OK;
}

/* Adds a JSON integer written exactly (cJSON would print 1e+15 for large
 * doubles, which strict readers reject). */
static int st_json_add_int(cJSON *arr, uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    cJSON *r = cJSON_CreateRaw(buf);
    return r && cJSON_AddItemToArray(arr, r);
}

/* The order in which tensor data is laid out: by element size, largest
 * first (stable), as the reference writer does, so that every tensor starts
 * on a multiple of its element size and can be used in place. */
static int st_cmp_layout(const void *a, const void *b, void *ctx) {
    const weft_st_writer *w = ctx;
    int x = *(const int *)a, y = *(const int *)b;
    size_t sx = weft_st_dtype_size(w->e[x].dtype), sy = weft_st_dtype_size(w->e[y].dtype);
    if (sx != sy)
        return sx > sy ? -1 : 1;
    return (x > y) - (x < y);
}

/* The header JSON, padded with spaces to a multiple of 8 bytes as the
 * reference writer does; entries in the order added, data offsets per
 * `order`.  NULL when out of memory. */
static char *st_header_json(const weft_st_writer *w, const int *order, size_t *len) {
    cJSON *root = cJSON_CreateObject();
    char *out = NULL;
    int ok = root != NULL;
    if (ok && w->nmeta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        ok = m != NULL;
        for (int i = 0; ok && i < w->nmeta; i++)
            ok = cJSON_AddStringToObject(m, w->meta[i].key, w->meta[i].value) != NULL;
    }
    uint64_t *start = malloc(((size_t)w->n + 1) * sizeof *start), at = 0;
    ok = ok && start;
    for (int i = 0; ok && i < w->n; i++) {
        start[order[i]] = at;
        at += w->e[order[i]].nbytes;
    }
    for (int i = 0; ok && i < w->n; i++) {
        const st_entry *e = &w->e[i];
        cJSON *o = cJSON_AddObjectToObject(root, e->name);
        cJSON *sh = o && cJSON_AddStringToObject(o, "dtype", weft_st_dtype_name(e->dtype))
                        ? cJSON_AddArrayToObject(o, "shape") : NULL;
        cJSON *off = sh ? cJSON_AddArrayToObject(o, "data_offsets") : NULL;
        ok = off != NULL;
        for (int d = 0; ok && d < e->ndim; d++)
            ok = st_json_add_int(sh, (uint64_t)e->shape[d]);
        ok = ok && st_json_add_int(off, start[i]) && st_json_add_int(off, start[i] + e->nbytes);
    }
    free(start);
    char *s = ok ? cJSON_PrintUnformatted(root) : NULL;
    if (s) {
        size_t n = strlen(s), padded = (n + 7) / 8 * 8;
        out = malloc(padded + 1);
        if (out) {
            memcpy(out, s, n);
            memset(out + n, ' ', padded - n);
            out[padded] = '\0';
            *len = padded;
        }
        cJSON_free(s);
    }
    cJSON_Delete(root);
    return out;
}

/* fsync the directory holding path, so that the rename itself is durable.
 * Filesystems that cannot sync a directory (EINVAL) are accepted. */
static int st_sync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    if (r != 0 && (errno == EINVAL || errno == ENOTSUP))
        r = 0;
    close(fd);
    return r;
}

weft_status weft_st_writer_save(weft_st_writer *w, const char *path) {
    if (!w || !path)
        return weft_error(WEFT_ERR_ARG, "weft_st_writer_save: NULL argument");
    size_t hlen = 0;
    int *order = malloc(((size_t)w->n + 1) * sizeof *order);
    if (!order)
        return weft_error(WEFT_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < w->n; i++)
        order[i] = i;
    qsort_r(order, (size_t)w->n, sizeof *order, st_cmp_layout, w);
    char *hdr = st_header_json(w, order, &hlen);
    if (!hdr) {
        free(order);
        return weft_error(WEFT_ERR_NOMEM, "%s: out of memory building the header", path);
    }
    if (hlen > WEFT_ST_MAX_HEADER) {
        free(hdr);
        free(order);
        return weft_error(WEFT_ERR_ARG, "%s: header of %zu bytes exceeds the limit of %u", path,
                          hlen, WEFT_ST_MAX_HEADER);
    }
    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp) {
        free(hdr);
        free(order);
        return weft_error(WEFT_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());

    const char *step = "create";
    FILE *fp = NULL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
        goto fail;
    step = "write";
    if (!(fp = fdopen(fd, "wb"))) {
        close(fd);
        goto fail;
    }
    unsigned char len8[8];
    uint64_t h64 = hlen;
    memcpy(len8, &h64, 8);
    int ok = fwrite(len8, 1, 8, fp) == 8 && fwrite(hdr, 1, hlen, fp) == hlen;
    for (int i = 0; ok && i < w->n; i++)
        ok = fwrite(w->e[order[i]].data, 1, w->e[order[i]].nbytes, fp) == w->e[order[i]].nbytes;
    if (!ok || fflush(fp) != 0)
        goto fail;
    step = "sync";
    if (fsync(fileno(fp)) != 0)
        goto fail;
    step = "close";
    int rc = fclose(fp);
    fp = NULL;
    if (rc != 0)
        goto fail;
    step = "rename";
    if (rename(tmp, path) != 0)
        goto fail;
    free(tmp);
    free(hdr);
    free(order);
    if (st_sync_dir(path) != 0)
        return weft_error(WEFT_ERR_IO, "%s: written, but syncing its directory failed: %s", path,
                          strerror(errno));
    return WEFT_OK;
fail:;
    int err = errno;
    if (fp)
        fclose(fp);
    unlink(tmp);
    weft_status st = weft_error(WEFT_ERR_IO, "%s: cannot save (%s of %s failed: %s)", path, step,
                                tmp, strerror(err));
    free(tmp);
    free(hdr);
    free(order);
    return st;
}
