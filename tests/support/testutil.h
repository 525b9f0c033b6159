/* Small helpers shared by the tests. */
#ifndef WEFT_TESTUTIL_H
#define WEFT_TESTUTIL_H
#include <stdint.h>

#include "weft/compile.h"
#include "weft/weft.h"

/* Deterministic uniform values in [lo, hi) with a random sign when
 * signed_ (magnitudes in [lo, hi)), from a seed. */
void tu_fill(double *p, int64_t n, uint64_t seed, double lo, double hi, int signed_);
/* A parameter of dtype t filled by tu_fill. */
weft_node tu_param(weft_graph *g, const char *name, weft_dtype t, weft_shape s, uint64_t seed,
                   double lo, double hi, int signed_);
/* A constant of dtype t filled by tu_fill. */
weft_node tu_const(weft_graph *g, weft_dtype t, weft_shape s, uint64_t seed, double lo, double hi);
/* sum(y * R) for a fixed random R: a scalar loss that weighs every element differently. */
weft_node tu_weighted_sum(weft_graph *g, weft_node y, uint64_t seed);
/* The report line of the first pass called name, NULL when none ran by it. */
const weft_pass_stat *tu_pass_stat(const weft_compile_report *r, const char *name);
/* Nodes of g running op `name` (a compiled graph's, for what the passes made). */
int tu_count_op(const weft_graph *g, const char *name);
/* Those of them whose shape is s. */
int tu_count_op_shaped(const weft_graph *g, const char *name, weft_shape s);
#endif
