/* Bounded behaviour of the safetensors reader at sizes and file kinds the
 * crafted corpus (tests/safetensors/bad, test_safetensors.c) does not
 * cover: hundreds of thousands of tensors or metadata keys, megabyte names,
 * megabytes of header whitespace, special files.  Each gives a result or a
 * clean error, in time proportional to the input (the timeouts are loose
 * bounds that catch a quadratic pass, not benchmarks).  The cell
 * language's limits are tested in test_cell_lang.c. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "weft/safetensors.h"

/* A safetensors image: 8-byte length, header, data. */
static unsigned char *image(const char *hdr, size_t hlen, size_t data, size_t *n) {
    *n = 8 + hlen + data;
    unsigned char *b = malloc(*n);
    cr_assert(b);
    uint64_t h = hlen;
    memcpy(b, &h, 8);
    memcpy(b + 8, hdr, hlen);
    memset(b + 8 + hlen, 7, data);
    return b;
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { MANY = 200000 };

Test(bounded, many_tensors, .timeout = 60) {
    char *h = malloc((size_t)MANY * 80 + 16);
    size_t k = (size_t)sprintf(h, "{");
    for (int i = 0; i < MANY; i++)
        k += (size_t)sprintf(h + k, "%s\"t%06d\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[%d,%d]}",
                             i ? "," : "", i, i, i + 1);
    k += (size_t)sprintf(h + k, "}");
    size_t n;
    unsigned char *b = image(h, k, MANY, &n);
    double t0 = seconds();
    weft_st_file *f;
    cr_assert_eq(weft_st_parse(b, n, "many", &f), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(weft_st_count(f), MANY);
    const weft_st_tensor *t = weft_st_find(f, "t123456");
    cr_assert(t && t->nbytes == 1);
    weft_st_free(f);

    /* the same with one duplicate name at the very end: found, named */
    memcpy(strstr(h + k - 80, "\"t199999\""), "\"t000007\"", 9);
    memcpy(b + 8, h, k);
    cr_assert_eq(weft_st_parse(b, n, "many", &f), WEFT_ERR_FORMAT);
    cr_assert(strstr(weft_last_error(), "t000007") || strstr(weft_last_error(), "duplicate"), "%s",
              weft_last_error());
    fprintf(stderr, "bounded: %d tensors parsed twice in %.2f s\n", MANY, seconds() - t0);
    free(b);
    free(h);
}

Test(bounded, many_metadata_keys, .timeout = 60) {
    char *h = malloc((size_t)MANY * 40 + 64);
    size_t k = (size_t)sprintf(h, "{\"__metadata__\":{");
    for (int i = 0; i < MANY; i++) k += (size_t)sprintf(h + k, "%s\"k%d\":\"v%d\"", i ? "," : "", i, i);
    k += (size_t)sprintf(h + k, "}}");
    size_t n;
    unsigned char *b = image(h, k, 0, &n);
    weft_st_file *f;
    cr_assert_eq(weft_st_parse(b, n, "meta", &f), WEFT_OK, "%s", weft_last_error());
    cr_assert_str_eq(weft_st_metadata(f, "k199998"), "v199998");
    cr_assert_null(weft_st_metadata(f, "k200000"));
    weft_st_free(f);
    free(b);
    free(h);
}

/* A 1 MiB tensor name is valid (the format sets no limit) and works. */
Test(bounded, megabyte_name) {
    size_t L = (size_t)1 << 20;
    char *h = malloc(L + 128), *name = malloc(L + 1);
    memset(name, 'a', L);
    name[L] = 0;
    size_t k = (size_t)sprintf(h, "{\"%s\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", name);
    size_t n;
    unsigned char *b = image(h, k, 4, &n);
    weft_st_file *f;
    cr_assert_eq(weft_st_parse(b, n, "longname", &f), WEFT_OK, "%s", weft_last_error());
    cr_assert(weft_st_find(f, name));
    weft_st_free(f);
    free(b);
    free(h);
    free(name);
}

/* 20 MB of JSON whitespace around an empty object. */
Test(bounded, whitespace_header, .timeout = 60) {
    size_t L = 20u << 20;
    char *h = malloc(L);
    memset(h, ' ', L);
    h[0] = '{';
    h[L / 2] = '}';
    size_t n;
    unsigned char *b = image(h, L, 0, &n);
    weft_st_file *f;
    cr_assert_eq(weft_st_parse(b, n, "spaces", &f), WEFT_OK, "%s", weft_last_error());
    cr_assert_eq(weft_st_count(f), 0);
    weft_st_free(f);
    free(b);
    free(h);
}

/* Devices, directories and files whose size is not what stat says. */
Test(bounded, special_files) {
    const char *paths[] = {"/dev/zero", "/dev/null", "/", "/proc/self/status"};
    for (int i = 0; i < 4; i++) {
        weft_st_file *f = NULL;
        cr_assert_eq(weft_st_read(paths[i], &f), WEFT_ERR_IO, "%s", paths[i]);
        cr_assert_null(f);
        cr_assert(!strncmp(weft_last_error(), paths[i], strlen(paths[i])),
                  "the message names the file: %s", weft_last_error());
    }
}

/* A FIFO with no writer: refused at once as not a regular file (it used to
 * block in fopen forever). */
Test(bounded, fifo_is_refused_without_hanging, .timeout = 10) {
    char path[] = "/tmp/weft_fifo_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    unlink(path);
    cr_assert_eq(mkfifo(path, 0600), 0);
    weft_st_file *f = NULL;
    weft_status s = weft_st_read(path, &f);
    unlink(path);
    cr_assert_eq(s, WEFT_ERR_IO);
    cr_assert(strstr(weft_last_error(), "not a regular file"), "%s", weft_last_error());
    cr_assert_null(f);
}
