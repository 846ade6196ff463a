/* cuda_backend.h — the CUDA implementation of the backend interface.
 *
 * The CUDA code (the .cu files of src/backend/cuda) is built, when nvcc is found, into a
 * module, librusty_cuda.so, that sits next to the rusty executable. The core
 * library only holds a loader (src/backend/cuda_loader.c): it opens the module
 * the first time a CUDA backend is asked for, and only on machines with an
 * NVIDIA driver. So CPU-only runs never load the CUDA runtime or cuBLAS (about
 * 200 MB of resident memory), and one binary runs on machines without them. */
#ifndef RUSTY_CUDA_BACKEND_H
#define RUSTY_CUDA_BACKEND_H

#include <stdbool.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Creates a backend on CUDA device 0 through the module. RS_ERR_UNSUPPORTED when
 * the module is missing or cannot load, RS_ERR_DEVICE when no usable GPU is
 * present. The module path can be forced with env RUSTY_CUDA_MODULE. */
rs_status rs_cuda_backend_create(rs_backend **out, rs_error *err);

/* True when the CUDA module is installed next to the executable (or forced). */
bool rs_cuda_compiled(void);

/* The module's entry point (what the loader resolves); tests that link the CUDA
 * code directly call it. */
rs_status rs_cuda_backend_create_impl(rs_backend **out, rs_error *err);
typedef rs_status (*rs_cuda_create_fn)(rs_backend **out, rs_error *err);

#ifdef __cplusplus
}
#endif

#endif
