/* Graphviz dot export of a graph (forward and backward).  The richer viewer
 * (clusters per step, rolled view, rendering through libgvc) builds on this. */
#include <string.h>

#include "graph_internal.h"
#include "op.h"

char *weft_dot_escape(const char *s, char *buf, size_t n) {
    size_t k = 0;
    if (!n) return buf;
    for (; s && *s && k + 3 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { buf[k++] = '\\'; buf[k++] = (char)c; }
        else if (c == '\n') { buf[k++] = '\\'; buf[k++] = 'n'; }
        else if (c == '\r' || c == '\t') buf[k++] = ' ';
        else if (c < 0x20 || c == 0x7f) buf[k++] = '?';
        else buf[k++] = (char)c;
    }
    buf[k] = 0;
    return buf;
}

static const char *style_of(const weft_node_rec *r) {
    if (r->kind == WEFT_NODE_PARAM) return "shape=box, style=\"rounded,filled\", fillcolor=\"#cfe2ff\"";
    if (r->kind == WEFT_NODE_INPUT) return "shape=box, style=filled, fillcolor=\"#d1f0d1\"";
    if (r->kind == WEFT_NODE_CONST) return "shape=box, style=filled, fillcolor=\"#e8e8e8\"";
    if (r->backward) return "shape=ellipse, style=\"filled,dashed\", fillcolor=\"#ffe0c0\", color=\"#c05000\"";
    return "shape=ellipse, style=filled, fillcolor=\"#ffffff\"";
}

weft_status weft_graph_write_dot(const weft_graph *g, FILE *f, const weft_dot_options *opt) {
    char name[512], sh[96], title[512];
    weft_dot_options o = opt ? *opt : (weft_dot_options){0};
    fprintf(f, "digraph weft {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n"
               "  edge [color=\"#404040\"];\n");
    if (o.title) fprintf(f, "  label=\"%s\";\n  labelloc=t;\n", weft_dot_escape(o.title, title, sizeof title));
    for (int i = 0; i < g->n; i++) {
        const weft_node_rec *r = &g->nodes[i];
        const char *op = r->kind == WEFT_NODE_OP ? weft_ops[r->op].name : weft_node_op_name(g, i);
        weft_dot_escape(r->name ? r->name : "", name, sizeof name);
        weft_shape_str(r->shape, sh, sizeof sh);
        fprintf(f, "  n%d [label=\"%s%s%s\\n%s%s%s\", %s];\n", i, name, *name ? "\\n" : "", op, sh,
                r->dtype == WEFT_F32 ? "" : " ", r->dtype == WEFT_F32 ? "" : weft_dtype_name(r->dtype),
                style_of(r));
    }
    for (int i = 0; i < g->n; i++) {
        const weft_node_rec *r = &g->nodes[i];
        for (int j = 0; j < r->n_in; j++)
            fprintf(f, "  n%d -> n%d%s;\n", (int)g->edges[r->in_off + j], i,
                    r->backward ? " [style=dashed, color=\"#c05000\"]" : "");
        if (o.show_grad_links && r->backward && r->grad_of != WEFT_NONE)
            fprintf(f, "  n%d -> n%d [style=dotted, color=\"#a0a0a0\", arrowhead=none, constraint=false];\n", i,
                    (int)r->grad_of);
    }
    fprintf(f, "}\n");
    return ferror(f) ? weft_error(WEFT_ERR_IO, "dot: write failed") : WEFT_OK;
}
