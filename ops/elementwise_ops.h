/* The elementwise primitives as expressions, one line each.  Expanded by
 * ops/elementwise.c (one kernel per op) and ops/fused.c (the instruction
 * interpreter of fused regions), so an op's arithmetic is written once.
 * `a`, `b`, `c` are the operands (of type T), `p` the op's scalar attribute. */
#ifndef WEFT_OPS_ELEMENTWISE_OPS_H
#define WEFT_OPS_ELEMENTWISE_OPS_H

#define UNARY_OPS(X)                                                           \
    X(neg, -a)                                                                 \
    X(exp, exp(a))                                                             \
    X(log, log(a))                                                             \
    X(tanh, WEFT_TANH(a))                                                      \
    X(sigmoid, WEFT_SIGMOID(a))                                                \
    X(relu, a > 0 ? a : (T)0)                                                  \
    X(sqrt, sqrt(a))                                                           \
    X(abs, fabs(a))

#define BINARY_OPS(X)                                                          \
    X(add, a + b)                                                              \
    X(sub, a - b)                                                              \
    X(mul, a * b)                                                              \
    X(div, a / b)                                                              \
    X(maximum, (a > b || a != a) ? a : b) /* NaN propagates, as in PyTorch */  \
    X(greater, a > b ? (T)1 : (T)0)

/* The remaining elementwise rows with their own shapes of use. */
#define POW_EXPR pow(a, (T)p)
#define SELECT_EXPR (a != (T)0 ? b : c) /* a: condition, b: if true, c: if false */

#endif
