/* Reading Debian's fortune cookie files (see data.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data.h"

void fortunes_free(fortune_set *s) {
    for (int i = 0; s->text && i < s->n; i++) free(s->text[i]);
    free(s->text);
    free(s->label);
    free(s->index);
    memset(s, 0, sizeof *s);
}

void fortunes_free_names(char **names, int n) {
    for (int i = 0; names && i < n; i++) free(names[i]);
    free(names);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of dir with no '.' in its name, sorted. */
static weft_status list_dir(const char *dir, char ***out, int *n) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return weft_error(WEFT_ERR_IO, "%s: %s", dir, strerror(errno));
    char **names = NULL;
    int cap = 0;
    weft_status s = WEFT_OK;
    struct dirent *e;
    while ((e = readdir(d)) && !s) {
        if (strchr(e->d_name, '.')) continue;
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) || !S_ISREG(st.st_mode)) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **m = realloc(names, sizeof *m * (size_t)cap);
            if (!m) { s = weft_error(WEFT_ERR_NOMEM, "out of memory"); break; }
            names = m;
        }
        if (!(names[*n] = strdup(e->d_name))) s = weft_error(WEFT_ERR_NOMEM, "out of memory");
        else (*n)++;
    }
    closedir(d);
    if (!s && *n == 0)
        s = weft_error(WEFT_ERR_NOT_FOUND, "%s: no fortune files (apt-get install fortunes "
                       "fortunes-min)", dir);
    if (s) {
        fortunes_free_names(names, *n);
        *n = 0;
        return s;
    }
    qsort(names, (size_t)*n, sizeof *names, cmp_str);
    *out = names;
    return WEFT_OK;
}

static weft_status push(fortune_set *s, int *cap, char *text, int label, int index) {
    if (s->n == *cap) {
        int nc = *cap ? 2 * *cap : 1024;
        char **t = realloc(s->text, sizeof *t * (size_t)nc);
        if (t) s->text = t;
        int *l = realloc(s->label, sizeof *l * (size_t)nc);
        if (l) s->label = l;
        int *x = realloc(s->index, sizeof *x * (size_t)nc);
        if (x) s->index = x;
        if (!t || !l || !x) {
            free(text);
            return weft_error(WEFT_ERR_NOMEM, "out of memory");
        }
        *cap = nc;
    }
    s->text[s->n] = text;
    s->label[s->n] = label;
    s->index[s->n] = index;
    s->n++;
    return WEFT_OK;
}

/* The cookies of one file. */
static weft_status read_file(const char *path, int label, fortune_set *s, int *cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return weft_error(WEFT_ERR_IO, "%s: %s", path, strerror(errno));
    char *buf = NULL, *line = NULL;
    size_t len = 0, bcap = 0, lcap = 0;
    ssize_t got;
    int index = 0;
    weft_status st = WEFT_OK;
    for (;;) {
        got = getline(&line, &lcap, f);
        int sep = got < 0 || !strcmp(line, "%\n") || !strcmp(line, "%");
        if (sep) {
            if (len > 0) {
                buf[len] = 0;
                st = push(s, cap, buf, label, index++);
                buf = NULL;
                len = bcap = 0;
                if (st) break;
            }
            if (got < 0) break;
            continue;
        }
        if (len + (size_t)got + 1 > bcap) {
            bcap = 2 * (len + (size_t)got + 1);
            char *b = realloc(buf, bcap);
            if (!b) { st = weft_error(WEFT_ERR_NOMEM, "out of memory"); break; }
            buf = b;
        }
        memcpy(buf + len, line, (size_t)got);
        len += (size_t)got;
    }
    if (!st && ferror(f)) st = weft_error(WEFT_ERR_IO, "%s: read error", path);
    free(buf);
    free(line);
    fclose(f);
    return st;
}

weft_status fortunes_read(const char *dir, const char *const *files, int nfiles,
                          fortune_set *out, char ***names_out, int *nnames_out) {
    memset(out, 0, sizeof *out);
    char **all = NULL;
    int nall = 0;
    weft_status s = WEFT_OK;
    if (!files) {
        if ((s = list_dir(dir, &all, &nall))) return s;
        files = (const char *const *)all;
        nfiles = nall;
    }
    int cap = 0;
    for (int i = 0; i < nfiles && !s; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        s = read_file(path, i, out, &cap);
    }
    if (!s && out->n == 0) s = weft_error(WEFT_ERR_FORMAT, "%s: no cookies found", dir);
    if (s) fortunes_free(out);
    if (names_out && !s) {
        *names_out = all;
        *nnames_out = nall;
    } else {
        fortunes_free_names(all, nall);
    }
    return s;
}
