/* Learning-curve plots with cairo (see plot.h): side-by-side panels, each
 * with axes, round-number ticks, one line per series and a legend. */
#include "plot.h"

#include <string.h>

#ifdef WEFT_HAVE_CAIRO
#include <cairo-svg.h>
#include <cairo.h>
#include <math.h>
#include <stdio.h>


enum { PW = 520, PH = 380, ML = 64, MR = 16, MT = 34, MB = 48 };

static const double COLORS[][3] = {
    {0.12, 0.47, 0.71}, {1.00, 0.50, 0.05}, {0.17, 0.63, 0.17}, {0.84, 0.15, 0.16},
    {0.58, 0.40, 0.74}, {0.55, 0.34, 0.29}, {0.89, 0.47, 0.76}, {0.50, 0.50, 0.50},
};
#define NCOLORS ((int)(sizeof COLORS / sizeof COLORS[0]))

/* A round tick step giving about 5 ticks over [lo, hi]. */
static double tick_step(double lo, double hi) {
    double raw = (hi - lo) / 5, p = pow(10, floor(log10(raw))), f = raw / p;
    return p * (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10);
}

static void text_at(cairo_t *cr, double x, double y, const char *s, double ax, double ay) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - ax * e.width - e.x_bearing, y - ay * e.height - e.y_bearing);
    cairo_show_text(cr, s);
}

static void panel(cairo_t *cr, double ox, const plot_panel *p) {
    double x0 = HUGE_VAL, x1 = -HUGE_VAL, y0 = HUGE_VAL, y1 = -HUGE_VAL;
    for (int s = 0; s < p->nseries; s++)
        for (int i = 0; i < p->series[s].n; i++) {
            double x = p->series[s].x[i], y = p->series[s].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            x0 = fmin(x0, x), x1 = fmax(x1, x), y0 = fmin(y0, y), y1 = fmax(y1, y);
        }
    if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
    if (x1 - x0 < 1e-12) x0 -= 0.5, x1 += 0.5;
    if (y1 - y0 < 1e-12) y0 -= fabs(y0) * 0.05 + 0.05, y1 += fabs(y1) * 0.05 + 0.05;
    double pad = (y1 - y0) * 0.06, xpad = (x1 - x0) * 0.03;
    y0 -= pad, y1 += pad, x0 -= xpad, x1 += xpad;
    double L = ox + ML, R = ox + PW - MR, T = MT, B = PH - MB;
#define SX(v) (L + ((v) - x0) / (x1 - x0) * (R - L))
#define SY(v) (B - ((v) - y0) / (y1 - y0) * (B - T))
    char buf[32];
    cairo_set_font_size(cr, 11);
    cairo_set_line_width(cr, 1);
    /* grid and ticks */
    double ys = tick_step(y0, y1), xs = tick_step(x0, x1);
    if (xs < 1 && x1 - x0 >= 2) xs = 1; /* epochs are whole */
    for (double v = ceil(y0 / ys) * ys; v <= y1 + 1e-9 * ys; v += ys) {
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, L, SY(v)), cairo_line_to(cr, R, SY(v)), cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        snprintf(buf, sizeof buf, "%g", fabs(v) < ys * 1e-6 ? 0 : v);
        text_at(cr, L - 6, SY(v), buf, 1, 0.5);
    }
    for (double v = ceil(x0 / xs) * xs; v <= x1 + 1e-9 * xs; v += xs) {
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, SX(v), T), cairo_line_to(cr, SX(v), B), cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        snprintf(buf, sizeof buf, "%g", v);
        text_at(cr, SX(v), B + 6, buf, 0.5, 0);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_rectangle(cr, L, T, R - L, B - T);
    cairo_stroke(cr);
    text_at(cr, (L + R) / 2, PH - 8, p->xlabel, 0.5, 1);
    cairo_set_font_size(cr, 14);
    text_at(cr, (L + R) / 2, 10, p->title, 0.5, 0);
    /* lines, with a dot at each point */
    cairo_set_line_width(cr, 2);
    for (int s = 0; s < p->nseries; s++) {
        const plot_series *q = &p->series[s];
        const double *c = COLORS[s % NCOLORS];
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        int pen = 0;
        for (int i = 0; i < q->n; i++) {
            if (!isfinite(q->y[i])) { pen = 0; continue; }
            if (pen) cairo_line_to(cr, SX(q->x[i]), SY(q->y[i]));
            else cairo_move_to(cr, SX(q->x[i]), SY(q->y[i]));
            pen = 1;
        }
        cairo_stroke(cr);
        for (int i = 0; i < q->n; i++)
            if (isfinite(q->y[i])) {
                cairo_arc(cr, SX(q->x[i]), SY(q->y[i]), 2.5, 0, 2 * M_PI);
                cairo_fill(cr);
            }
    }
    /* legend inside the axes, in the corner that hides the fewest points */
    cairo_set_font_size(cr, 11);
    double w = 0, h = 16.0 * p->nseries + 6;
    for (int s = 0; s < p->nseries; s++) {
        cairo_text_extents_t e;
        cairo_text_extents(cr, p->series[s].label, &e);
        w = fmax(w, e.x_advance);
    }
    double lx = R - w - 40, ly = T + 8;
    int fewest = -1;
    for (int corner = 0; corner < 4; corner++) {
        double cx = corner & 1 ? L + 12 : R - w - 40, cy = corner & 2 ? B - h - 4 : T + 8;
        int hidden = 0;
        for (int s = 0; s < p->nseries; s++)
            for (int i = 0; i < p->series[s].n; i++) {
                double px = SX(p->series[s].x[i]), py = SY(p->series[s].y[i]);
                hidden += px > cx - 12 && px < cx + w + 40 && py > cy - 10 && py < cy + h + 6;
            }
        if (fewest < 0 || hidden < fewest) fewest = hidden, lx = cx, ly = cy;
    }
    cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
    cairo_rectangle(cr, lx - 6, ly - 4, w + 40, h);
    cairo_fill(cr);
    for (int s = 0; s < p->nseries; s++) {
        const double *c = COLORS[s % NCOLORS];
        double yy = ly + 16.0 * s + 7;
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_move_to(cr, lx, yy), cairo_line_to(cr, lx + 22, yy), cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        text_at(cr, lx + 28, yy, p->series[s].label, 0, 0.5);
    }
#undef SX
#undef SY
}

static int has_ext(const char *path, const char *ext) {
    size_t n = strlen(path), e = strlen(ext);
    return n > e && !strcmp(path + n - e, ext);
}

weft_status plot_check(const char *path) {
    if (has_ext(path, ".svg") || has_ext(path, ".png")) return WEFT_OK;
    return weft_error(WEFT_ERR_ARG, "%s: a plot is a .png or .svg file", path);
}

weft_status plot_write(const char *path, const plot_panel *panels, int npanels) {
    weft_status s = plot_check(path);
    if (s) return s;
    int svg = has_ext(path, ".svg");
    double W = PW * (npanels > 0 ? npanels : 1);
    cairo_surface_t *sf = svg ? cairo_svg_surface_create(path, W, PH)
                              : cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)W, PH);
    if (cairo_surface_status(sf)) {
        cairo_surface_destroy(sf);
        return weft_error(WEFT_ERR_IO, "%s: cannot create the plot", path);
    }
    cairo_t *cr = cairo_create(sf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    for (int i = 0; i < npanels; i++) panel(cr, PW * i, &panels[i]);
    cairo_destroy(cr);
    cairo_status_t st = svg ? CAIRO_STATUS_SUCCESS : cairo_surface_write_to_png(sf, path);
    cairo_surface_finish(sf);
    if (!st) st = cairo_surface_status(sf);
    cairo_surface_destroy(sf);
    if (st) return weft_error(WEFT_ERR_IO, "%s: %s", path, cairo_status_to_string(st));
    return WEFT_OK;
}

#else

weft_status plot_check(const char *path) {
    return weft_error(WEFT_ERR_UNSUPPORTED,
                      "%s: weft was built without cairo, so it cannot draw plots "
                      "(apt-get install libcairo2-dev, then reconfigure)", path);
}

weft_status plot_write(const char *path, const plot_panel *panels, int npanels) {
    (void)panels, (void)npanels;
    return plot_check(path);
}

#endif
