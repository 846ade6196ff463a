/* cpu_backend.h — the CPU implementation of the backend interface. */
#ifndef RUSTY_CPU_BACKEND_H
#define RUSTY_CPU_BACKEND_H

#include "backend/backend.h"

/* A CPU backend with its own pool of n_threads threads (>= 1). */
rs_status rs_cpu_backend_create(rs_backend **out, int n_threads, rs_error *err);

#endif
