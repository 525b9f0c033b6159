/* Shapes, dtypes and strided tensor views. */
#include <string.h>

#include "graph_internal.h"
#include "op.h"

size_t weft_dtype_size(weft_dtype t) {
    switch (t) {
    case WEFT_F32: return 4;
    case WEFT_F64: return 8;
    case WEFT_I32: return 4;
    }
    return 0;
}

const char *weft_dtype_name(weft_dtype t) {
    switch (t) {
    case WEFT_F32: return "f32";
    case WEFT_F64: return "f64";
    case WEFT_I32: return "i32";
    }
    return "?";
}

weft_shape weft_shape_make(int ndim, const int64_t *dim) {
    weft_shape s = {0, {0}};
    WEFT_ASSERT(ndim >= 0 && ndim <= WEFT_MAX_DIMS);
    s.ndim = ndim;
    for (int i = 0; i < ndim; i++) s.dim[i] = dim[i];
    return s;
}

int64_t weft_shape_numel(weft_shape s) {
    int64_t n = 1;
    for (int i = 0; i < s.ndim; i++) n *= s.dim[i];
    return n;
}

int weft_shape_eq(weft_shape a, weft_shape b) {
    if (a.ndim != b.ndim) return 0;
    for (int i = 0; i < a.ndim; i++)
        if (a.dim[i] != b.dim[i]) return 0;
    return 1;
}

char *weft_shape_str(weft_shape s, char *buf, size_t n) {
    size_t k = 0;
    if (!n) return buf;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < s.ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)s.dim[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

void weft_tensor_contiguous_strides(const weft_shape *s, int64_t *stride) {
    int64_t st = 1;
    for (int i = s->ndim - 1; i >= 0; i--) {
        stride[i] = st;
        st *= s->dim[i];
    }
}

int weft_tensor_is_contiguous(const weft_tensor *t) {
    int64_t st = 1;
    for (int i = t->shape.ndim - 1; i >= 0; i--) {
        if (t->shape.dim[i] != 1 && t->stride[i] != st) return 0;
        st *= t->shape.dim[i];
    }
    return 1;
}

weft_iter4 weft_iter4_of(const weft_tensor *t, const weft_shape *to) {
    weft_iter4 it;
    int pad = 4 - to->ndim, off = to->ndim - t->shape.ndim;
    for (int i = 0; i < 4; i++) { it.n[i] = 1; it.s[i] = 0; }
    for (int i = 0; i < to->ndim; i++) {
        it.n[pad + i] = to->dim[i];
        int j = i - off;
        if (j >= 0 && t->shape.dim[j] != 1) it.s[pad + i] = t->stride[j];
    }
    return it;
}

/* Offset (in elements) of logical element i of t. */
static int64_t offset_of(const weft_tensor *t, int64_t i) {
    int64_t off = 0;
    for (int d = t->shape.ndim - 1; d >= 0; d--) {
        int64_t n = t->shape.dim[d];
        off += (i % n) * t->stride[d];
        i /= n;
    }
    return off;
}

double weft_tensor_get(const weft_tensor *t, int64_t i) {
    int64_t o = offset_of(t, i);
    switch (t->dtype) {
    case WEFT_F32: return ((const float *)t->data)[o];
    case WEFT_F64: return ((const double *)t->data)[o];
    case WEFT_I32: return ((const int32_t *)t->data)[o];
    }
    return 0;
}

void weft_tensor_copy_to(const weft_tensor *t, void *dst) {
    size_t es = weft_dtype_size(t->dtype);
    int64_t n = weft_shape_numel(t->shape);
    if (weft_tensor_is_contiguous(t)) {
        memcpy(dst, t->data, (size_t)n * es);
        return;
    }
    weft_iter4 it = weft_iter4_of(t, &t->shape);
    char *o = dst;
    const char *src = t->data;
    for (int64_t a = 0; a < it.n[0]; a++)
        for (int64_t b = 0; b < it.n[1]; b++)
            for (int64_t c = 0; c < it.n[2]; c++) {
                const char *p = src + (a * it.s[0] + b * it.s[1] + c * it.s[2]) * (int64_t)es;
                for (int64_t d = 0; d < it.n[3]; d++) {
                    memcpy(o, p + d * it.s[3] * (int64_t)es, es);
                    o += es;
                }
            }
}

int weft_shape_broadcast(weft_shape a, weft_shape b, weft_shape *out) {
    int nd = a.ndim > b.ndim ? a.ndim : b.ndim;
    weft_shape r = {nd, {0}};
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a.ndim), ib = i - (nd - b.ndim);
        int64_t da = ia >= 0 ? a.dim[ia] : 1, db = ib >= 0 ? b.dim[ib] : 1;
        if (da != db && da != 1 && db != 1) return 0;
        r.dim[i] = da == 1 ? db : da;
    }
    *out = r;
    return 1;
}

int weft_axis(int axis, int ndim) {
    if (axis < 0) axis += ndim;
    return axis >= 0 && axis < ndim ? axis : -1;
}
