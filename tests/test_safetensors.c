/* safetensors reader and writer: round trips, conversions, the crafted
 * bad-file corpus (tests/safetensors/gen_bad_files.py), truncation and
 * junk, and atomic saves. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "weft/safetensors.h"

#define CORPUS WEFT_SOURCE_DIR "/tests/safetensors"

/* Directories made by this test (each test runs in its own process),
 * removed with their files when it ends. */
static char made[8][512];
static int nmade;

static void remove_made(void) {
    for (int i = 0; i < nmade; i++) {
        DIR *d = opendir(made[i]);
        if (!d)
            continue;
        char p[1100];
        for (struct dirent *e; (e = readdir(d));)
            if (e->d_name[0] != '.' &&
                snprintf(p, sizeof p, "%s/%s", made[i], e->d_name) < (int)sizeof p)
                unlink(p);
        closedir(d);
        rmdir(made[i]);
    }
    nmade = 0;
}

TestSuite(safetensors, .fini = remove_made);

/* A fresh directory under the build dir for this test's files. */
static char *tmpdir(char *buf, size_t n) {
    snprintf(buf, n, "%s/st_test_XXXXXX", WEFT_BINARY_DIR);
    cr_assert_not_null(mkdtemp(buf), "mkdtemp: %s", strerror(errno));
    if (nmade < 8)
        snprintf(made[nmade++], sizeof made[0], "%s", buf);
    return buf;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    cr_assert_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* Number of entries in dir whose name contains s. */
static int count_entries(const char *dir, const char *s) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, s) != NULL;
    closedir(d);
    return n;
}

static void assert_error_has(weft_status st, const char *want) {
    cr_assert_neq(st, WEFT_OK, "expected an error containing \"%s\"", want);
    cr_assert(strstr(weft_last_error(), want), "error \"%s\" lacks \"%s\"", weft_last_error(),
              want);
}

/* A writer holding one tensor of every dtype, each with its own bytes. */
static weft_st_writer *writer_all_dtypes(void) {
    weft_st_writer *w = weft_st_writer_new();
    cr_assert_not_null(w);
    for (int t = 0; t < WEFT_ST_DTYPE_COUNT; t++) {
        int64_t shape[2] = {2, t + 1};
        size_t nb = 2 * (size_t)(t + 1) * weft_st_dtype_size((weft_st_dtype)t);
        unsigned char buf[256];
        for (size_t i = 0; i < nb; i++)
            buf[i] = (unsigned char)(i * 7 + (size_t)t);
        char name[32];
        snprintf(name, sizeof name, "t_%s", weft_st_dtype_name((weft_st_dtype)t));
        cr_assert_eq(weft_st_writer_add(w, name, (weft_st_dtype)t, 2, shape, buf, nb), WEFT_OK,
                     "%s", weft_last_error());
    }
    cr_assert_eq(weft_st_writer_meta(w, "format", "pt"), WEFT_OK);
    cr_assert_eq(weft_st_writer_meta(w, "step", "1"), WEFT_OK);
    cr_assert_eq(weft_st_writer_meta(w, "step", "12"), WEFT_OK); /* replaces */
    cr_assert_eq(weft_st_writer_meta(w, "note", "tab\there \"quoted\" é"), WEFT_OK);
    return w;
}

Test(safetensors, dtype_table) {
    cr_assert_str_eq(weft_st_dtype_name(WEFT_ST_BF16), "BF16");
    cr_assert_eq(weft_st_dtype_size(WEFT_ST_BF16), 2);
    cr_assert_eq(weft_st_dtype_size(WEFT_ST_U64), 8);
    cr_assert_eq(weft_st_dtype_size(WEFT_ST_BOOL), 1);
    cr_assert_str_eq(weft_st_dtype_name(WEFT_ST_DTYPE_COUNT), "?");
}

Test(safetensors, round_trip_every_dtype) {
    char dir[512], path[600];
    snprintf(path, sizeof path, "%s/all.safetensors", tmpdir(dir, sizeof dir));
    weft_st_writer *w = writer_all_dtypes();
    cr_assert_eq(weft_st_writer_save(w, path), WEFT_OK, "%s", weft_last_error());
    weft_st_writer_free(w);
    cr_assert_eq(count_entries(dir, ".tmp."), 0, "temp file left behind");

    weft_st_file *f;
    cr_assert_eq(weft_st_read(path, &f), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(weft_st_count(f), WEFT_ST_DTYPE_COUNT);
    for (int t = 0; t < WEFT_ST_DTYPE_COUNT; t++) {
        const weft_st_tensor *x = weft_st_at(f, t);
        char name[32];
        snprintf(name, sizeof name, "t_%s", weft_st_dtype_name((weft_st_dtype)t));
        cr_assert_str_eq(x->name, name);
        cr_assert_eq(weft_st_find(f, name), x);
        cr_assert_eq((int)x->dtype, t);
        cr_assert_eq(x->ndim, 2);
        cr_assert_eq(x->shape[0], 2);
        cr_assert_eq(x->shape[1], t + 1);
        cr_assert_eq(x->nbytes, 2 * (size_t)(t + 1) * weft_st_dtype_size((weft_st_dtype)t));
        cr_assert_eq((uintptr_t)x->data % weft_st_dtype_size(x->dtype), 0, "%s misaligned", name);
        const unsigned char *b = x->data;
        for (size_t i = 0; i < x->nbytes; i++)
            cr_assert_eq(b[i], (unsigned char)(i * 7 + (size_t)t), "%s byte %zu", name, i);
    }
    cr_assert_null(weft_st_at(f, WEFT_ST_DTYPE_COUNT));
    cr_assert_null(weft_st_at(f, -1));
    cr_assert_null(weft_st_find(f, "missing"));
    cr_assert_str_eq(weft_st_metadata(f, "format"), "pt");
    cr_assert_str_eq(weft_st_metadata(f, "step"), "12");
    cr_assert_str_eq(weft_st_metadata(f, "note"), "tab\there \"quoted\" é");
    cr_assert_null(weft_st_metadata(f, "absent"));
    weft_st_free(f);
}

/* The exact bytes, compared with what the reference writer produces for
 * the same tensor: keys dtype/shape/data_offsets, header padded with
 * spaces to a multiple of 8. */
Test(safetensors, writer_exact_bytes) {
    char dir[512], path[600];
    snprintf(path, sizeof path, "%s/x.safetensors", tmpdir(dir, sizeof dir));
    weft_st_writer *w = weft_st_writer_new();
    float v[2] = {1.0f, -2.0f};
    int64_t shape[1] = {2};
    cr_assert_eq(weft_st_writer_add(w, "x", WEFT_ST_F32, 1, shape, v, sizeof v), WEFT_OK);
    cr_assert_eq(weft_st_writer_save(w, path), WEFT_OK, "%s", weft_last_error());
    weft_st_writer_free(w);
    size_t n;
    unsigned char *b = slurp(path, &n);
    const char *json = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t jl = strlen(json), hl = (jl + 7) / 8 * 8;
    cr_assert_eq(n, 8 + hl + 8);
    uint64_t len;
    memcpy(&len, b, 8);
    cr_assert_eq(len, hl);
    cr_assert(memcmp(b + 8, json, jl) == 0, "header is %.*s", (int)hl, (const char *)b + 8);
    for (size_t i = jl; i < hl; i++)
        cr_assert_eq(b[8 + i], ' ');
    cr_assert(memcmp(b + 8 + hl, v, 8) == 0);
    free(b);
}

Test(safetensors, empty_writer) {
    char dir[512], path[600];
    snprintf(path, sizeof path, "%s/e.safetensors", tmpdir(dir, sizeof dir));
    weft_st_writer *w = weft_st_writer_new();
    cr_assert_eq(weft_st_writer_save(w, path), WEFT_OK, "%s", weft_last_error());
    weft_st_writer_free(w);
    weft_st_file *f;
    cr_assert_eq(weft_st_read(path, &f), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(weft_st_count(f), 0);
    weft_st_free(f);
}

/* add_tensor walks strides: a transposed view is written row-major. */
Test(safetensors, add_tensor_strided) {
    char dir[512], path[600];
    snprintf(path, sizeof path, "%s/s.safetensors", tmpdir(dir, sizeof dir));
    float base[6] = {0, 1, 2, 3, 4, 5}; /* [2, 3] */
    weft_tensor tr = {base, WEFT_F32, {2, {3, 2}}, {1, 3}}; /* its transpose [3, 2] */
    double d[4] = {1.5, 2.5, 3.5, 4.5};
    weft_tensor every_other = {d, WEFT_F64, {1, {2}}, {2}};
    int32_t iv[3] = {7, -8, 9};
    weft_tensor rev = {iv + 2, WEFT_I32, {1, {3}}, {-1}};
    float s = 42.0f;
    weft_tensor scalar = {&s, WEFT_F32, {0, {0}}, {0}};
    weft_st_writer *w = weft_st_writer_new();
    cr_assert_eq(weft_st_writer_add_tensor(w, "tr", &tr), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(weft_st_writer_add_tensor(w, "odd \"name\"\n/é", &every_other), WEFT_OK);
    cr_assert_eq(weft_st_writer_add_tensor(w, "rev", &rev), WEFT_OK);
    cr_assert_eq(weft_st_writer_add_tensor(w, "s", &scalar), WEFT_OK);
    assert_error_has(weft_st_writer_add_tensor(w, "s", &scalar), "tensor 's' added twice");
    cr_assert_eq(weft_st_writer_save(w, path), WEFT_OK, "%s", weft_last_error());
    weft_st_writer_free(w);

    weft_st_file *f;
    cr_assert_eq(weft_st_read(path, &f), WEFT_OK, "%s", weft_last_error());
    float out[6];
    cr_assert_eq(weft_st_get(f, "tr", WEFT_F32, (weft_shape){2, {3, 2}}, out), WEFT_OK);
    const float want[6] = {0, 3, 1, 4, 2, 5};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(out[i], want[i], "tr[%d] = %g", i, out[i]);
    double dout[2];
    cr_assert_eq(weft_st_get(f, "odd \"name\"\n/é", WEFT_F64, (weft_shape){1, {2}}, dout), WEFT_OK);
    cr_assert(dout[0] == 1.5 && dout[1] == 3.5);
    int32_t io[3];
    cr_assert_eq(weft_st_get(f, "rev", WEFT_I32, (weft_shape){1, {3}}, io), WEFT_OK);
    cr_assert(io[0] == 9 && io[1] == -8 && io[2] == 7);
    cr_assert_eq(weft_st_find(f, "s")->ndim, 0);
    cr_assert_eq(weft_st_get(f, "s", WEFT_F32, (weft_shape){0, {0}}, out), WEFT_OK);
    cr_assert_eq(out[0], 42.0f);
    weft_st_free(f);
}

/* Parses a writer's output from memory (saved to a temp path first). */
static weft_st_file *save_and_read(weft_st_writer *w, const char *label) {
    char dir[512], path[600];
    snprintf(path, sizeof path, "%s/%s", tmpdir(dir, sizeof dir), label);
    cr_assert_eq(weft_st_writer_save(w, path), WEFT_OK, "%s", weft_last_error());
    weft_st_writer_free(w);
    weft_st_file *f;
    cr_assert_eq(weft_st_read(path, &f), WEFT_OK, "%s", weft_last_error());
    return f;
}

Test(safetensors, get_conversions) {
    weft_st_writer *w = weft_st_writer_new();
    double d[3] = {0.1, -2.0, 1e300};
    float fl[2] = {0.25f, -3.0f};
    int64_t l[3] = {5, -6, 5000000000LL};
    uint16_t h[3] = {0x3C00, 0xC000, 0x0001};   /* F16: 1, -2, 2^-24 */
    uint16_t bf[2] = {0x3F80, 0xC040};          /* BF16: 1, -3 */
    uint8_t u8[2] = {200, 1};
    int64_t s3 = 3, s2 = 2;
    cr_assert_eq(weft_st_writer_add(w, "d", WEFT_ST_F64, 1, &s3, d, sizeof d), WEFT_OK);
    cr_assert_eq(weft_st_writer_add(w, "d2", WEFT_ST_F64, 1, &s2, d, 16), WEFT_OK);
    cr_assert_eq(weft_st_writer_add(w, "f", WEFT_ST_F32, 1, &s2, fl, sizeof fl), WEFT_OK);
    cr_assert_eq(weft_st_writer_add(w, "l", WEFT_ST_I64, 1, &s3, l, sizeof l), WEFT_OK);
    cr_assert_eq(weft_st_writer_add(w, "l2", WEFT_ST_I64, 1, &s2, l, 16), WEFT_OK);
    cr_assert_eq(weft_st_writer_add(w, "h", WEFT_ST_F16, 1, &s3, h, sizeof h), WEFT_OK);
    cr_assert_eq(weft_st_writer_add(w, "bf", WEFT_ST_BF16, 1, &s2, bf, sizeof bf), WEFT_OK);
    cr_assert_eq(weft_st_writer_add(w, "u8", WEFT_ST_U8, 1, &s2, u8, sizeof u8), WEFT_OK);
    weft_st_file *f = save_and_read(w, "conv.safetensors");

    float fo[3];
    double dout[3];
    int32_t io[3];
    weft_shape two = {1, {2}}, three = {1, {3}};
    cr_assert_eq(weft_st_get(f, "d2", WEFT_F32, two, fo), WEFT_OK, "%s", weft_last_error());
    cr_assert(fo[0] == 0.1f && fo[1] == -2.0f);
    assert_error_has(weft_st_get(f, "d", WEFT_F32, three, fo),
                     "conv.safetensors: tensor 'd': element 2 (1e+300) overflows F32");
    cr_assert_eq(weft_st_get(f, "d", WEFT_F64, three, dout), WEFT_OK);
    cr_assert(dout[0] == 0.1 && dout[2] == 1e300);
    cr_assert_eq(weft_st_get(f, "f", WEFT_F64, two, dout), WEFT_OK);
    cr_assert(dout[0] == 0.25 && dout[1] == -3.0);
    cr_assert_eq(weft_st_get(f, "l2", WEFT_I32, two, io), WEFT_OK, "%s", weft_last_error());
    cr_assert(io[0] == 5 && io[1] == -6);
    assert_error_has(weft_st_get(f, "l", WEFT_I32, three, io),
                     "tensor 'l': element 2 (5000000000) does not fit in I32");
    cr_assert_eq(weft_st_get(f, "h", WEFT_F32, three, fo), WEFT_OK);
    cr_assert(fo[0] == 1.0f && fo[1] == -2.0f && fo[2] == 0x1p-24f, "%g %g %g", fo[0], fo[1], fo[2]);
    cr_assert_eq(weft_st_get(f, "bf", WEFT_F64, two, dout), WEFT_OK);
    cr_assert(dout[0] == 1.0 && dout[1] == -3.0);
    cr_assert_eq(weft_st_get(f, "u8", WEFT_I32, two, io), WEFT_OK);
    cr_assert(io[0] == 200 && io[1] == 1);

    assert_error_has(weft_st_get(f, "f", WEFT_I32, two, io),
                     "conv.safetensors: tensor 'f' is F32, which cannot be read as I32");
    assert_error_has(weft_st_get(f, "l2", WEFT_F32, two, fo), "tensor 'l2' is I64, which cannot be read as F32");
    weft_status st = weft_st_get(f, "d", WEFT_F64, (weft_shape){2, {3, 1}}, dout);
    cr_assert_eq(st, WEFT_ERR_SHAPE);
    assert_error_has(st, "conv.safetensors: tensor 'd' has shape [3] but [3, 1] was expected");
    st = weft_st_get(f, "nope", WEFT_F32, two, fo);
    cr_assert_eq(st, WEFT_ERR_NOT_FOUND);
    assert_error_has(st, "conv.safetensors: no tensor 'nope'");
    weft_st_free(f);
}

Test(safetensors, writer_rejects_bad_tensors) {
    weft_st_writer *w = weft_st_writer_new();
    float v[6] = {0};
    int64_t shape[2] = {2, 3}, neg[2] = {2, -3}, huge[3] = {1LL << 40, 1LL << 40, 1LL << 40};
    assert_error_has(weft_st_writer_add(w, "a", WEFT_ST_F32, 2, shape, v, 20),
                     "tensor 'a': 20 bytes given but shape [2, 3] of F32 needs 24");
    assert_error_has(weft_st_writer_add(w, "a", WEFT_ST_F32, 2, neg, v, 24), "dimension 1 is -3");
    assert_error_has(weft_st_writer_add(w, "a", WEFT_ST_F32, 3, huge, v, 24),
                     "shape [1099511627776, 1099511627776, 1099511627776] of F32 overflows 64 bits");
    assert_error_has(weft_st_writer_add(w, "a", WEFT_ST_F32, 9, shape, v, 24), "9 dimensions");
    assert_error_has(weft_st_writer_add(w, "__metadata__", WEFT_ST_F32, 2, shape, v, 24),
                     "invalid tensor name '__metadata__'");
    assert_error_has(weft_st_writer_add(w, "bad\xff", WEFT_ST_F32, 2, shape, v, 24),
                     "invalid tensor name");
    assert_error_has(weft_st_writer_add(w, "a", WEFT_ST_DTYPE_COUNT, 2, shape, v, 24), "bad dtype");
    cr_assert_eq(weft_st_writer_add(w, "a", WEFT_ST_F32, 2, shape, v, 24), WEFT_OK);
    assert_error_has(weft_st_writer_add(w, "a", WEFT_ST_F32, 2, shape, v, 24), "tensor 'a' added twice");
    assert_error_has(weft_st_writer_meta(w, "k", "\xc0\xaf"), "metadata 'k' is not valid UTF-8");
    weft_st_writer_free(w);
}

/* Every crafted file fails with its own specific message, naming the file,
 * both through weft_st_read and weft_st_parse. */
Test(safetensors, bad_corpus) {
    FILE *list = fopen(CORPUS "/bad/expected.txt", "r");
    cr_assert_not_null(list, "run tests/safetensors/gen_bad_files.py");
    char line[1024];
    int cases = 0;
    while (fgets(line, sizeof line, list)) {
        line[strcspn(line, "\n")] = 0;
        char *tab = strchr(line, '\t');
        cr_assert_not_null(tab, "bad line in expected.txt: %s", line);
        *tab = 0;
        const char *file = line, *want = tab + 1;
        char path[1200];
        snprintf(path, sizeof path, "%s/bad/%s", CORPUS, file);
        weft_st_file *f = (weft_st_file *)1;
        weft_status st = weft_st_read(path, &f);
        cr_expect_neq(st, WEFT_OK, "%s was accepted", file);
        cr_expect_null(f, "%s: out set on failure", file);
        cr_expect(strstr(weft_last_error(), want) != NULL, "%s: error \"%s\" lacks \"%s\"", file,
                  weft_last_error(), want);
        cr_expect(strncmp(weft_last_error(), path, strlen(path)) == 0,
                  "%s: error does not start with the path: %s", file, weft_last_error());

        size_t n;
        unsigned char *b = slurp(path, &n);
        st = weft_st_parse(b, n, "mem.safetensors", &f);
        cr_expect_neq(st, WEFT_OK);
        cr_expect(strstr(weft_last_error(), want) != NULL, "%s (memory): \"%s\"", file,
                  weft_last_error());
        cr_expect(strncmp(weft_last_error(), "mem.safetensors: ", 17) == 0);
        free(b);
        cases++;
    }
    fclose(list);
    cr_assert_geq(cases, 50, "only %d cases in expected.txt", cases);
}

Test(safetensors, good_corpus) {
    static const char *files[] = {"two_tensors", "empty_header", "metadata", "unordered",
                                  "zero_size", "extra_fields_unpadded", "eight_dims"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/good/%s.safetensors", CORPUS, files[i]);
        weft_st_file *f;
        cr_assert_eq(weft_st_read(path, &f), WEFT_OK, "%s: %s", files[i], weft_last_error());
        weft_st_free(f);
    }
    weft_st_file *f;
    float a[6];
    int32_t b[2];
    cr_assert_eq(weft_st_read(CORPUS "/good/unordered.safetensors", &f), WEFT_OK);
    cr_assert_str_eq(weft_st_at(f, 0)->name, "b");
    cr_assert_eq(weft_st_get(f, "a", WEFT_F32, (weft_shape){2, {2, 3}}, a), WEFT_OK);
    cr_assert(a[0] == 1 && a[5] == 6);
    cr_assert_eq(weft_st_get(f, "b", WEFT_I32, (weft_shape){1, {2}}, b), WEFT_OK);
    cr_assert(b[0] == 7 && b[1] == -8);
    weft_st_free(f);

    cr_assert_eq(weft_st_read(CORPUS "/good/zero_size.safetensors", &f), WEFT_OK);
    cr_assert_eq(weft_st_find(f, "e")->nbytes, 0);
    cr_assert_eq(weft_st_get(f, "f", WEFT_F32, (weft_shape){2, {4, 0}}, NULL), WEFT_OK);
    cr_assert_eq(weft_st_get(f, "s", WEFT_F32, (weft_shape){0, {0}}, a), WEFT_OK);
    cr_assert_eq(a[0], 2.5f);
    weft_st_free(f);

    cr_assert_eq(weft_st_read(CORPUS "/good/extra_fields_unpadded.safetensors", &f), WEFT_OK);
    cr_assert_eq((uintptr_t)weft_st_find(f, "a")->data % 8, 0, "data of an unpadded file aligned");
    weft_st_free(f);

    cr_assert_eq(weft_st_read(CORPUS "/good/metadata.safetensors", &f), WEFT_OK);
    cr_assert_str_eq(weft_st_metadata(f, "step"), "12");
    weft_st_free(f);
}

/* A valid multi-tensor file with metadata, as bytes. */
static unsigned char *valid_image(size_t *n) {
    weft_st_writer *w = writer_all_dtypes();
    char dir[512], path[600];
    snprintf(path, sizeof path, "%s/v.safetensors", tmpdir(dir, sizeof dir));
    cr_assert_eq(weft_st_writer_save(w, path), WEFT_OK);
    weft_st_writer_free(w);
    return slurp(path, n);
}

Test(safetensors, every_truncation_fails_cleanly) {
    size_t n;
    unsigned char *b = valid_image(&n);
    weft_st_file *f;
    cr_assert_eq(weft_st_parse(b, n, "v", &f), WEFT_OK, "%s", weft_last_error());
    weft_st_free(f);
    for (size_t len = 0; len < n; len++) {
        /* A fresh, exact-size copy so ASan sees any read past the end. */
        unsigned char *c = malloc(len ? len : 1);
        memcpy(c, b, len);
        weft_status st = weft_st_parse(c, len, "v", &f);
        cr_assert_neq(st, WEFT_OK, "truncated to %zu of %zu bytes was accepted", len, n);
        cr_assert_null(f);
        cr_assert(strncmp(weft_last_error(), "v: ", 3) == 0 && strlen(weft_last_error()) > 8,
                  "at %zu: %s", len, weft_last_error());
        free(c);
    }
    free(b);
}

Test(safetensors, appended_junk_fails_cleanly) {
    size_t n;
    unsigned char *b = valid_image(&n);
    unsigned char *c = malloc(n + 64);
    memcpy(c, b, n);
    for (size_t extra = 1; extra <= 64; extra++) {
        c[n + extra - 1] = (unsigned char)(extra * 37);
        weft_st_file *f;
        char want[64];
        snprintf(want, sizeof want, "v: %zu trailing bytes after the tensor data", extra);
        assert_error_has(weft_st_parse(c, n + extra, "v", &f), want);
    }
    free(c);
    free(b);
}

/* Flipping any header byte either still parses or gives an error naming
 * the file; under the sanitizers this also checks memory safety. */
Test(safetensors, header_byte_flips) {
    size_t n;
    unsigned char *b = valid_image(&n);
    uint64_t hlen;
    memcpy(&hlen, b, 8);
    int rejected = 0;
    static const unsigned char vals[] = {0x00, 0x22, 0x5c, 0x7d, 0x30, 0x2d, 0xff, 0x80};
    for (size_t i = 0; i < 8 + hlen; i++)
        for (size_t k = 0; k < sizeof vals; k++) {
            unsigned char old = b[i];
            b[i] = vals[k];
            weft_st_file *f;
            weft_status st = weft_st_parse(b, n, "flip", &f);
            if (st == WEFT_OK)
                weft_st_free(f);
            else {
                rejected++;
                cr_assert(strncmp(weft_last_error(), "flip: ", 6) == 0, "%s", weft_last_error());
            }
            b[i] = old;
        }
    cr_assert_gt(rejected, (int)(8 + hlen) * 4);
    free(b);
}

Test(safetensors, read_errors) {
    weft_st_file *f;
    weft_status st = weft_st_read(WEFT_BINARY_DIR "/no/such/file.safetensors", &f);
    cr_assert_eq(st, WEFT_ERR_IO);
    assert_error_has(st, "no/such/file.safetensors: cannot open");
    assert_error_has(weft_st_read(WEFT_BINARY_DIR, &f), "not a regular file");
}

Test(safetensors, save_replaces_atomically) {
    char dir[512], path[600];
    snprintf(path, sizeof path, "%s/ck.safetensors", tmpdir(dir, sizeof dir));
    int64_t one = 1;
    for (int round = 0; round < 3; round++) {
        weft_st_writer *w = weft_st_writer_new();
        float v = (float)round;
        cr_assert_eq(weft_st_writer_add(w, "v", WEFT_ST_F32, 1, &one, &v, 4), WEFT_OK);
        cr_assert_eq(weft_st_writer_save(w, path), WEFT_OK, "%s", weft_last_error());
        weft_st_writer_free(w);
        weft_st_file *f;
        cr_assert_eq(weft_st_read(path, &f), WEFT_OK);
        float got;
        cr_assert_eq(weft_st_get(f, "v", WEFT_F32, (weft_shape){1, {1}}, &got), WEFT_OK);
        cr_assert_eq(got, (float)round);
        weft_st_free(f);
    }
    cr_assert_eq(count_entries(dir, ".tmp."), 0);

    weft_st_writer *w = weft_st_writer_new();
    char bad[700];
    snprintf(bad, sizeof bad, "%s/missing_dir/x.safetensors", dir);
    weft_status st = weft_st_writer_save(w, bad);
    cr_assert_eq(st, WEFT_ERR_IO);
    assert_error_has(st, "missing_dir/x.safetensors: cannot save (create of");
    weft_st_writer_free(w);
}

/* A full disk (simulated by RLIMIT_FSIZE) gives an error, keeps the old
 * file intact and leaves no temp file. */
Test(safetensors, save_full_disk_keeps_old_file) {
    char dir[512], path[600];
    snprintf(path, sizeof path, "%s/ck.safetensors", tmpdir(dir, sizeof dir));
    weft_st_writer *w = weft_st_writer_new();
    int64_t one = 1;
    float v = 7.0f;
    cr_assert_eq(weft_st_writer_add(w, "v", WEFT_ST_F32, 1, &one, &v, 4), WEFT_OK);
    cr_assert_eq(weft_st_writer_save(w, path), WEFT_OK);
    weft_st_writer_free(w);
    size_t n0;
    unsigned char *before = slurp(path, &n0);

    w = weft_st_writer_new();
    int64_t big = 1 << 20;
    float *data = calloc((size_t)big, sizeof *data);
    cr_assert_eq(weft_st_writer_add(w, "v", WEFT_ST_F32, 1, &big, data, (size_t)big * 4), WEFT_OK);
    free(data);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 64 * 1024;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    weft_status st = weft_st_writer_save(w, path);
    setrlimit(RLIMIT_FSIZE, &old);
    weft_st_writer_free(w);
    cr_assert_eq(st, WEFT_ERR_IO);
    assert_error_has(st, "ck.safetensors: cannot save (write of");

    size_t n1;
    unsigned char *after = slurp(path, &n1);
    cr_assert(n0 == n1 && memcmp(before, after, n0) == 0, "old checkpoint changed");
    cr_assert_eq(count_entries(dir, ".tmp."), 0, "temp file left behind");
    free(before);
    free(after);
}
