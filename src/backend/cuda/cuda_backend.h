/* cuda_backend.h — the CUDA implementation of the backend interface.
 *
 * Built only when nvcc is available; otherwise src/backend/cuda_none.c makes
 * rs_cuda_backend_create report that CUDA support was not compiled in. */
#ifndef RUSTY_CUDA_BACKEND_H
#define RUSTY_CUDA_BACKEND_H

#include <stdbool.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Creates a backend on CUDA device 0. RS_ERR_UNSUPPORTED without CUDA support,
 * RS_ERR_DEVICE when no usable GPU is present. */
rs_status rs_cuda_backend_create(rs_backend **out, rs_error *err);

/* True when this build contains the CUDA backend. */
bool rs_cuda_compiled(void);

#ifdef __cplusplus
}
#endif

#endif
