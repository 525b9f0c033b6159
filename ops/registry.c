/* The op table, generated from ops.def. */
#include "op.h"

#define WEFT_OP(id, nm, ar, fl)                                                \
    [WEFT_OP_##id] = {.name = nm, .arity = ar, .flags = fl,                   \
                      .infer = weft_##id##_infer, .kernel = weft_##id##_kernel, \
                      .view = weft_##id##_view, .vjp = weft_##id##_vjp},
const weft_op_def weft_ops[WEFT_OP_COUNT] = {
#include "ops.def"
};
#undef WEFT_OP

_Static_assert(sizeof weft_ops / sizeof weft_ops[0] == WEFT_OP_COUNT,
               "ops.def and the op table disagree");

weft_status weft_ops_check(void) {
    for (int i = 0; i < WEFT_OP_COUNT; i++) {
        const weft_op_def *d = &weft_ops[i];
        if (!d->name || !d->infer || !d->kernel)
            return weft_error(WEFT_ERR_GRAPH, "op %d is missing its shape rule or kernel", i);
        if (!(d->flags & WEFT_OPF_NONDIFF) && !d->vjp)
            return weft_error(WEFT_ERR_GRAPH, "op '%s' is differentiable but has no VJP rule", d->name);
        if ((d->flags & WEFT_OPF_VIEW) && !d->view)
            return weft_error(WEFT_ERR_GRAPH, "op '%s' is a view op without a view rule", d->name);
    }
    return WEFT_OK;
}
