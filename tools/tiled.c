#include "tiled.h"

#include <graphviz/gvc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TILE_PARAMS, TILE_STEP, TILE_REST };

typedef struct tile {
    int kind, l, d, t, bwd; /* REST: l, d of its container (-1 = none) */
    Agraph_t *cluster;      /* its cluster in the big graph; NULL for the root's rest */
    int nodes;
    double w, h;            /* laid-out size with margins */
    double x0, y0;          /* lower-left corner on the page */
    int row, col;
} tile;

typedef struct tiling {
    Agraph_t *G;
    tile *tiles;
    int n_tiles, cap_tiles;
    int n_idx;              /* node index space: n<id> and e<k> */
    int *tile_of;
    double *rx, *ry, *nw, *nh; /* position in its tile, size (points) */
    int max_id;
} tiling;

static const double MARGIN = 8, LABEL = 18, GAP = 24;

/* n<id> -> id, e<k> -> max_id + 1 + k; -1 for anything else. */
static int node_idx(const tiling *s, Agnode_t *n) {
    const char *name = agnameof(n);
    char *end;
    long v = strtol(name + 1, &end, 10);
    if (*end || end == name + 1) return -1;
    if (name[0] == 'n' && v >= 0 && v <= s->max_id) return (int)v;
    if (name[0] == 'e' && v >= 0 && s->max_id + 1 + v < s->n_idx) return s->max_id + 1 + (int)v;
    return -1;
}

static int new_tile(tiling *s, tile t) {
    if (s->n_tiles == s->cap_tiles) {
        int cap = s->cap_tiles ? 2 * s->cap_tiles : 64;
        tile *p = realloc(s->tiles, (size_t)cap * sizeof *p);
        if (!p) return -1;
        s->tiles = p;
        s->cap_tiles = cap;
    }
    s->tiles[s->n_tiles] = t;
    return s->n_tiles++;
}

static void assign(tiling *s, Agraph_t *sg, int tid) {
    for (Agnode_t *n = agfstnode(sg); n; n = agnxtnode(sg, n)) {
        int i = node_idx(s, n);
        if (i >= 0) s->tile_of[i] = tid;
    }
}

/* Every node of sg goes to rest tile `rest`, then its clusters override:
 * steps and the parameters become tiles; layer and direction clusters get
 * a rest tile of their own. */
static int classify(tiling *s, Agraph_t *sg, int rest) {
    assign(s, sg, rest);
    for (Agraph_t *c = agfstsubg(sg); c; c = agnxtsubg(c)) {
        const char *name = agnameof(c);
        int l, d, t, len = 0;
        tile tl = {.cluster = c, .l = -1, .d = -1, .t = -1};
        if (!strcmp(name, "cluster_params")) {
            tl.kind = TILE_PARAMS;
        } else if (sscanf(name, "cluster_l%d_d%d_t%d%n", &l, &d, &t, &len) == 3 &&
                   (name[len] == 0 || !strcmp(name + len, "_bwd"))) {
            tl = (tile){.kind = TILE_STEP, .cluster = c, .l = l, .d = d, .t = t, .bwd = name[len] != 0};
        } else if (sscanf(name, "cluster_l%d%n", &l, &len) == 1) {
            tl.kind = TILE_REST;
            tl.l = l;
            if (sscanf(name, "cluster_l%d_d%d", &l, &d) == 2) tl.d = d;
            int id = new_tile(s, tl);
            if (id < 0 || classify(s, c, id)) return -1;
            continue;
        } else { /* a fused group outside a step: part of its container */
            if (classify(s, c, rest)) return -1;
            continue;
        }
        int id = new_tile(s, tl);
        if (id < 0) return -1;
        assign(s, c, id);
    }
    return 0;
}

/* Lays out the nodes of tile `tid` (and the edges among them) with dot. */
static int layout_tile(tiling *s, GVC_t *gvc, int tid) {
    Agraph_t *G = s->G;
    Agraph_t *tg = agopen("tile", Agdirected, NULL);
    if (!tg) return -1;
    static const char *const gattrs[] = {"rankdir", "nodesep", "ranksep"};
    for (size_t k = 0; k < sizeof gattrs / sizeof gattrs[0]; k++) {
        char *v = agget(G, (char *)gattrs[k]);
        if (v && *v) agsafeset(tg, (char *)gattrs[k], v, "");
    }
    for (Agsym_t *a = agnxtattr(G, AGNODE, NULL); a; a = agnxtattr(G, AGNODE, a))
        agattr(tg, AGNODE, a->name, a->defval);
    for (Agsym_t *a = agnxtattr(G, AGEDGE, NULL); a; a = agnxtattr(G, AGEDGE, a))
        agattr(tg, AGEDGE, a->name, a->defval);
    for (Agnode_t *n = agfstnode(G); n; n = agnxtnode(G, n)) {
        int i = node_idx(s, n);
        if (i < 0 || s->tile_of[i] != tid) continue;
        Agnode_t *m = agnode(tg, agnameof(n), 1);
        for (Agsym_t *a = agnxtattr(G, AGNODE, NULL); a; a = agnxtattr(G, AGNODE, a))
            agset(m, a->name, agxget(n, a));
    }
    for (Agnode_t *n = agfstnode(G); n; n = agnxtnode(G, n)) {
        int i = node_idx(s, n);
        if (i < 0 || s->tile_of[i] != tid) continue;
        for (Agedge_t *e = agfstout(G, n); e; e = agnxtout(G, e)) {
            int j = node_idx(s, aghead(e));
            if (j < 0 || s->tile_of[j] != tid) continue;
            Agedge_t *f = agedge(tg, agnode(tg, agnameof(n), 0), agnode(tg, agnameof(aghead(e)), 0), NULL, 1);
            for (Agsym_t *a = agnxtattr(G, AGEDGE, NULL); a; a = agnxtattr(G, AGEDGE, a))
                agset(f, a->name, agxget(e, a));
        }
    }
    int rc = gvLayout(gvc, tg, "dot");
    if (rc == 0) {
        boxf bb = GD_bb(tg);
        /* dot's edge curves inside the tile, relative to its corner, kept
         * as the edge's pos until the tile is placed */
        for (Agnode_t *m = agfstnode(tg); m; m = agnxtnode(tg, m))
            for (Agedge_t *f = agfstout(tg, m); f; f = agnxtout(tg, f)) {
                if (!ED_spl(f) || ED_spl(f)->size < 1) continue;
                const bezier *bz = &ED_spl(f)->list[0];
                char *buf = malloc((size_t)bz->size * 40 + 96);
                if (!buf) continue;
                size_t k = 0;
                if (bz->eflag) k += (size_t)sprintf(buf + k, "e,%.2f,%.2f ", bz->ep.x - bb.LL.x, bz->ep.y - bb.LL.y);
                if (bz->sflag) k += (size_t)sprintf(buf + k, "s,%.2f,%.2f ", bz->sp.x - bb.LL.x, bz->sp.y - bb.LL.y);
                for (int q = 0; q < bz->size; q++)
                    k += (size_t)sprintf(buf + k, "%.2f,%.2f ", bz->list[q].x - bb.LL.x, bz->list[q].y - bb.LL.y);
                if (k) buf[k - 1] = 0;
                Agedge_t *e = agedge(G, agnode(G, agnameof(agtail(f)), 0), agnode(G, agnameof(aghead(f)), 0), NULL, 0);
                if (e) agsafeset(e, "pos", buf, "");
                free(buf);
            }
        tile *t = &s->tiles[tid];
        for (Agnode_t *m = agfstnode(tg); m; m = agnxtnode(tg, m)) {
            int i = node_idx(s, agnode(G, agnameof(m), 0));
            s->rx[i] = ND_coord(m).x - bb.LL.x;
            s->ry[i] = ND_coord(m).y - bb.LL.y;
            s->nw[i] = ND_width(m) * 72;
            s->nh[i] = ND_height(m) * 72;
        }
        t->w = bb.UR.x - bb.LL.x + 2 * MARGIN;
        t->h = bb.UR.y - bb.LL.y + 2 * MARGIN + (t->cluster && t->kind != TILE_REST ? LABEL : 0);
        gvFreeLayout(gvc, tg);
    }
    agclose(tg);
    return rc;
}

typedef struct vbox { double x0, y0, x1, y1; int empty; } vbox;

static void box_add(vbox *b, double x0, double y0, double x1, double y1) {
    if (b->empty) { *b = (vbox){x0, y0, x1, y1, 0}; return; }
    if (x0 < b->x0) b->x0 = x0;
    if (y0 < b->y0) b->y0 = y0;
    if (x1 > b->x1) b->x1 = x1;
    if (y1 > b->y1) b->y1 = y1;
}

static void set_bb(Agraph_t *g, vbox b) {
    char buf[128];
    snprintf(buf, sizeof buf, "%.2f,%.2f,%.2f,%.2f", b.x0, b.y0, b.x1, b.y1);
    agsafeset(g, "bb", buf, "");
}

/* The bounding vbox of cluster c: its tile, or its sub-clusters' boxes and
 * its own nodes', with room for the label; sets "bb" on every cluster. */
static vbox place_clusters(tiling *s, Agraph_t *c, int is_root) {
    vbox b = {.empty = 1};
    for (int k = 0; k < s->n_tiles; k++) {
        tile *t = &s->tiles[k];
        if (t->cluster == c && t->kind != TILE_REST && t->nodes) {
            b = (vbox){t->x0, t->y0, t->x0 + t->w, t->y0 + t->h, 0};
            set_bb(c, b);
            return b;
        }
    }
    for (Agraph_t *sub = agfstsubg(c); sub; sub = agnxtsubg(sub)) {
        vbox sb = place_clusters(s, sub, 0);
        if (!sb.empty) box_add(&b, sb.x0, sb.y0, sb.x1, sb.y1);
    }
    for (Agnode_t *n = agfstnode(c); n; n = agnxtnode(c, n)) {
        int i = node_idx(s, n);
        if (i < 0 || s->tile_of[i] < 0) continue;
        const tile *t = &s->tiles[s->tile_of[i]];
        double x = t->x0 + MARGIN + s->rx[i], y = t->y0 + MARGIN + s->ry[i];
        box_add(&b, x - s->nw[i] / 2, y - s->nh[i] / 2, x + s->nw[i] / 2, y + s->nh[i] / 2);
    }
    if (!b.empty && !is_root) {
        b.x0 -= MARGIN / 2; b.y0 -= MARGIN / 2; b.x1 += MARGIN / 2; b.y1 += MARGIN / 2 + LABEL;
        set_bb(c, b);
    }
    return b;
}

weft_status weft_render_tiled(const char *dot_text, const char *format, const char *path) {
    GVC_t *gvc = gvContext();
    if (!gvc) return weft_error(WEFT_ERR_NOMEM, "graphviz: no context");
    tiling s = {0};
    weft_status st = WEFT_OK;
    s.G = agmemread(dot_text);
    if (!s.G) { st = weft_error(WEFT_ERR_FORMAT, "graphviz could not read the generated dot text"); goto done; }
    s.max_id = -1;
    int n_el = 0;
    for (Agnode_t *n = agfstnode(s.G); n; n = agnxtnode(s.G, n)) {
        const char *name = agnameof(n);
        int v = atoi(name + 1);
        if (name[0] == 'n' && v > s.max_id) s.max_id = v;
        if (name[0] == 'e' && v + 1 > n_el) n_el = v + 1;
    }
    s.n_idx = s.max_id + 1 + n_el;
    size_t ni = (size_t)(s.n_idx ? s.n_idx : 1);
    s.tile_of = malloc(ni * sizeof *s.tile_of);
    s.rx = calloc(ni, sizeof *s.rx); s.ry = calloc(ni, sizeof *s.ry);
    s.nw = calloc(ni, sizeof *s.nw); s.nh = calloc(ni, sizeof *s.nh);
    if (!s.tile_of || !s.rx || !s.ry || !s.nw || !s.nh) { st = weft_error(WEFT_ERR_NOMEM, "out of memory"); goto done; }
    for (int i = 0; i < s.n_idx; i++) s.tile_of[i] = -1;
    int root = new_tile(&s, (tile){.kind = TILE_REST, .l = -1, .d = -1, .t = -1});
    if (root < 0 || classify(&s, s.G, root)) { st = weft_error(WEFT_ERR_NOMEM, "out of memory"); goto done; }
    for (int i = 0; i < s.n_idx; i++)
        if (s.tile_of[i] >= 0) s.tiles[s.tile_of[i]].nodes++;

    /* the grid: row 0 the parameters, row 1 + t step t, then the rest;
     * column (l*D + d)*2 + backward */
    int L = 1, D = 1, T = 0;
    for (int k = 0; k < s.n_tiles; k++) {
        const tile *t = &s.tiles[k];
        if (t->kind != TILE_STEP) continue;
        if (t->l + 1 > L) L = t->l + 1;
        if (t->d + 1 > D) D = t->d + 1;
        if (t->t + 1 > T) T = t->t + 1;
    }
    int rows = T + 4, cols = 2 * L * D + 1;
    for (int k = 0; k < s.n_tiles; k++) {
        tile *t = &s.tiles[k];
        if (!t->nodes) continue;
        if (layout_tile(&s, gvc, k)) { st = weft_error(WEFT_ERR_IO, "graphviz layout failed"); goto done; }
        switch (t->kind) {
        case TILE_PARAMS: t->row = 0; t->col = 0; break;
        case TILE_STEP: t->row = 1 + t->t; t->col = (t->l * D + t->d) * 2 + t->bwd; break;
        default:
            if (t->l < 0) { t->row = T + 3; t->col = 0; }
            else if (t->d < 0) { t->row = T + 2; t->col = t->l * D * 2; }
            else { t->row = T + 1; t->col = (t->l * D + t->d) * 2; }
        }
    }
    double *colw = calloc((size_t)cols, sizeof *colw), *rowh = calloc((size_t)rows, sizeof *rowh);
    if (!colw || !rowh) { free(colw); free(rowh); st = weft_error(WEFT_ERR_NOMEM, "out of memory"); goto done; }
    for (int k = 0; k < s.n_tiles; k++) {
        const tile *t = &s.tiles[k];
        if (!t->nodes) continue;
        /* the parameters and the rest may be wider than one column: they
         * only widen it when nothing else is there */
        if ((t->kind == TILE_STEP || T == 0) && t->w > colw[t->col]) colw[t->col] = t->w;
        if (t->h > rowh[t->row]) rowh[t->row] = t->h;
    }
    /* below the parameters, room for the labels of the layer and direction
     * clusters that wrap the steps */
    if (rowh[0]) rowh[0] += 2 * (MARGIN / 2 + LABEL);
    double total_h = 0;
    for (int r = 0; r < rows; r++) total_h += rowh[r] ? rowh[r] + GAP : 0;
    for (int k = 0; k < s.n_tiles; k++) {
        tile *t = &s.tiles[k];
        if (!t->nodes) continue;
        double x = 0, y = total_h;
        for (int c = 0; c < t->col; c++) x += colw[c] ? colw[c] + GAP : 0;
        for (int r = 0; r < t->row; r++) y -= rowh[r] ? rowh[r] + GAP : 0;
        t->x0 = x;
        t->y0 = y - t->h;
    }
    free(colw);
    free(rowh);

    /* positions in points, cluster boxes, straight edges */
    char buf[64];
    for (Agnode_t *n = agfstnode(s.G); n; n = agnxtnode(s.G, n)) {
        int i = node_idx(&s, n);
        if (i < 0 || s.tile_of[i] < 0) continue;
        const tile *t = &s.tiles[s.tile_of[i]];
        snprintf(buf, sizeof buf, "%.2f,%.2f", t->x0 + MARGIN + s.rx[i], t->y0 + MARGIN + s.ry[i]);
        agsafeset(n, "pos", buf, "");
    }
    /* move the tiles' edge curves with their tiles */
    for (Agnode_t *n = agfstnode(s.G); n; n = agnxtnode(s.G, n))
        for (Agedge_t *e = agfstout(s.G, n); e; e = agnxtout(s.G, e)) {
            char *pos = agget(e, "pos");
            int i = node_idx(&s, n), j = node_idx(&s, aghead(e));
            if (!pos || !*pos || i < 0 || j < 0 || s.tile_of[i] != s.tile_of[j]) continue;
            const tile *t = &s.tiles[s.tile_of[i]];
            double dx = t->x0 + MARGIN, dy = t->y0 + MARGIN;
            char *out = malloc(strlen(pos) * 2 + 64), *p = pos;
            if (!out) continue;
            size_t k = 0;
            while (*p) {
                while (*p == ' ') p++;
                if (!*p) break;
                if ((p[0] == 'e' || p[0] == 's') && p[1] == ',') {
                    out[k++] = p[0];
                    out[k++] = ',';
                    p += 2;
                }
                char *end;
                double x = strtod(p, &end);
                if (*end != ',') break;
                double y = strtod(end + 1, &end);
                k += (size_t)sprintf(out + k, "%.2f,%.2f ", x + dx, y + dy);
                p = end;
            }
            if (k) out[k - 1] = 0;
            else out[0] = 0;
            agsafeset(e, "pos", out, "");
            free(out);
        }
    vbox all = place_clusters(&s, s.G, 1);
    if (!all.empty) set_bb(s.G, (vbox){all.x0 - MARGIN, all.y0 - MARGIN, all.x1 + MARGIN, all.y1 + 2 * LABEL, 0});
    agsafeset(s.G, "splines", "line", "");
    agsafeset(s.G, "outputorder", "edgesfirst", "");
    if (gvLayout(gvc, s.G, "nop2") != 0) {
        st = weft_error(WEFT_ERR_IO, "graphviz layout failed");
    } else {
        if (gvRenderFilename(gvc, s.G, format, path) != 0)
            st = weft_error(WEFT_ERR_IO, "graphviz could not render %s as %s", path, format);
        gvFreeLayout(gvc, s.G);
    }
done:
    if (s.G) agclose(s.G);
    free(s.tiles); free(s.tile_of); free(s.rx); free(s.ry); free(s.nw); free(s.nh);
    gvFreeContext(gvc);
    return st;
}
