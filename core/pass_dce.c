/* Dead-code elimination: keep only what the outputs need. */
#include "pass.h"

weft_status weft_pass_dce(weft_rw *rw) {
    for (int i = 0; i < rw->src->n; i++) {
        if (rw->live[i]) rw->map[i] = weft_rw_copy(rw, i);
        else rw->changes++;
    }
    return WEFT_OK;
}
