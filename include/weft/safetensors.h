/* weft — safetensors files: read (validated like the reference
 * implementation) and write (atomically: temp file, fsync, rename). */
#ifndef WEFT_SAFETENSORS_H
#define WEFT_SAFETENSORS_H

#include "weft.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_ST_MAX_DIMS 8
/* Header length limit, as the reference implementation's (100 MB). */
#define WEFT_ST_MAX_HEADER (100u * 1000u * 1000u)

typedef enum weft_st_dtype {
    WEFT_ST_BOOL, WEFT_ST_U8, WEFT_ST_I8, WEFT_ST_I16, WEFT_ST_U16,
    WEFT_ST_F16, WEFT_ST_BF16, WEFT_ST_I32, WEFT_ST_U32, WEFT_ST_F32,
    WEFT_ST_F64, WEFT_ST_I64, WEFT_ST_U64, WEFT_ST_DTYPE_COUNT
} weft_st_dtype;

const char *weft_st_dtype_name(weft_st_dtype t);   /* "F32", ... */
size_t weft_st_dtype_size(weft_st_dtype t);

typedef struct weft_st_tensor {
    const char *name;
    weft_st_dtype dtype;
    int ndim;
    int64_t shape[WEFT_ST_MAX_DIMS];
    const void *data;      /* little-endian, contiguous, inside the file image */
    size_t nbytes;
} weft_st_tensor;

typedef struct weft_st_file weft_st_file;

/* Reads and validates the whole file.  On error returns a status and
 * weft_last_error() names the file, the tensor and the rule broken. */
weft_status weft_st_read(const char *path, weft_st_file **out);
/* Same, from memory (used by the fuzzer); `label` names it in errors. */
weft_status weft_st_parse(const void *bytes, size_t n, const char *label,
                          weft_st_file **out);
void weft_st_free(weft_st_file *f);
int weft_st_count(const weft_st_file *f);
const weft_st_tensor *weft_st_at(const weft_st_file *f, int i);
const weft_st_tensor *weft_st_find(const weft_st_file *f, const char *name);
/* A __metadata__ value, or NULL. */
const char *weft_st_metadata(const weft_st_file *f, const char *key);

/* Copy tensor `name` into dst as weft dtype `want` (F32/F64/I32; integer
 * files may be I32 or I64, float files F32 or F64 — converted), checking
 * that its shape equals `shape`.  Errors name the file, tensor and shapes. */
weft_status weft_st_get(const weft_st_file *f, const char *name, weft_dtype want,
                        weft_shape shape, void *dst);

typedef struct weft_st_writer weft_st_writer;
weft_st_writer *weft_st_writer_new(void);
void weft_st_writer_free(weft_st_writer *w);
/* Copies the data.  Duplicate names are an error. */
weft_status weft_st_writer_add(weft_st_writer *w, const char *name, weft_st_dtype t,
                               int ndim, const int64_t *shape, const void *data,
                               size_t nbytes);
/* Convenience: a weft tensor (any strides) as F32/F64/I32. */
weft_status weft_st_writer_add_tensor(weft_st_writer *w, const char *name,
                                      const weft_tensor *t);
weft_status weft_st_writer_meta(weft_st_writer *w, const char *key, const char *value);
/* Writes path atomically: path.tmp.<pid>, fsync, rename, fsync the dir.
 * On failure the old file, if any, is untouched and no temp file remains. */
weft_status weft_st_writer_save(weft_st_writer *w, const char *path);

#ifdef __cplusplus
}
#endif
#endif
