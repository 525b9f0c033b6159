#include "render.h"

#include <graphviz/gvc.h>
#include <stdlib.h>
#include <string.h>

weft_status weft_render_dot(const char *dot_text, const char *format, const char *path) {
    GVC_t *gvc = gvContext();
    if (!gvc) return weft_error(WEFT_ERR_NOMEM, "graphviz: no context");
    Agraph_t *gr = agmemread(dot_text);
    weft_status s = WEFT_OK;
    if (!gr) {
        s = weft_error(WEFT_ERR_FORMAT, "graphviz could not read the generated dot text");
    } else if (gvLayout(gvc, gr, "dot") != 0) {
        s = weft_error(WEFT_ERR_IO, "graphviz layout failed");
    } else {
        if (gvRenderFilename(gvc, gr, format, path) != 0)
            s = weft_error(WEFT_ERR_IO, "graphviz could not render %s as %s", path, format);
        gvFreeLayout(gvc, gr);
    }
    if (gr) agclose(gr);
    gvFreeContext(gvc);
    return s;
}

const char *weft_render_format_of(const char *path) {
    const char *dot = strrchr(path, '.');
    if (dot && (!strcmp(dot, ".svg") || !strcmp(dot, ".png") || !strcmp(dot, ".pdf"))) return dot + 1;
    return "dot";
}

weft_status weft_write_graph_file(const weft_graph *g, const weft_dot_options *opt, const char *path) {
    const char *fmt = weft_render_format_of(path);
    if (!strcmp(fmt, "dot")) {
        FILE *f = fopen(path, "w");
        if (!f) return weft_error(WEFT_ERR_IO, "%s: cannot open for writing", path);
        weft_status s = weft_graph_write_dot(g, f, opt);
        if (fclose(f) != 0 && !s) s = weft_error(WEFT_ERR_IO, "%s: write failed", path);
        return s;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m) return weft_error(WEFT_ERR_NOMEM, "out of memory");
    weft_status s = weft_graph_write_dot(g, m, opt);
    fclose(m);
    if (!s) s = weft_render_dot(buf, fmt, path);
    free(buf);
    return s;
}
