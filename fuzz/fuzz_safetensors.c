/* libFuzzer target: the safetensors reader on arbitrary bytes.  Every
 * accepted file is also read back through weft_st_get, which converts
 * each tensor to the weft dtype its kind allows. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    weft_st_file *f = NULL;
    if (weft_st_parse(data, size, "fuzz", &f) != WEFT_OK)
        return 0;
    for (int i = 0; i < weft_st_count(f); i++) {
        const weft_st_tensor *t = weft_st_at(f, i);
        if (weft_st_find(f, t->name) != t)
            abort(); /* names are unique, so find must return this one */
        if (t->ndim > WEFT_MAX_DIMS)
            continue;
        weft_shape s = {t->ndim, {0}};
        for (int d = 0; d < t->ndim; d++)
            s.dim[d] = t->shape[d];
        int is_float = t->dtype == WEFT_ST_F16 || t->dtype == WEFT_ST_BF16 ||
                       t->dtype == WEFT_ST_F32 || t->dtype == WEFT_ST_F64;
        size_t n = t->nbytes / weft_st_dtype_size(t->dtype);
        void *dst = malloc(n * 8 + 1); /* nbytes is bounded by the input size */
        if (!dst)
            break;
        weft_st_get(f, t->name, is_float ? WEFT_F64 : WEFT_I32, s, dst);
        if (is_float)
            weft_st_get(f, t->name, WEFT_F32, s, dst);
        free(dst);
    }
    weft_st_metadata(f, "format");
    weft_st_free(f);
    return 0;
}
