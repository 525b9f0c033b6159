/* Line plots of learning curves to PNG or SVG (by the file's extension),
 * drawn with cairo when weft is built with it (WEFT_HAVE_CAIRO); without it
 * plot_write fails with a message saying so. */
#ifndef WEFT_TOOLS_PLOT_H
#define WEFT_TOOLS_PLOT_H

#include "weft/weft.h"

typedef struct plot_series {
    const char *label;
    int n;
    const double *x, *y;
} plot_series;

/* One set of axes: a title, the x axis label, its lines and a legend. */
typedef struct plot_panel {
    const char *title, *xlabel;
    const plot_series *series;
    int nseries;
} plot_panel;

/* Draws the panels side by side into path (.png or .svg). */
weft_status plot_write(const char *path, const plot_panel *panels, int npanels);
/* WEFT_OK when path can be drawn: weft has cairo, and it is .png or .svg. */
weft_status plot_check(const char *path);

#endif
