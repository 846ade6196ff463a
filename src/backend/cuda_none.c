/* cuda_none.c — stands in for the CUDA backend in builds without nvcc. */
#include "backend/cuda/cuda_backend.h"

rs_status rs_cuda_backend_create(rs_backend **out, rs_error *err) {
    *out = NULL;
    return rs_error_set(err, RS_ERR_UNSUPPORTED, "this build of rusty has no CUDA support");
}

bool rs_cuda_compiled(void) { return false; }
