/* cuda_loader.c — finds and opens the CUDA backend module (see cuda/cuda_backend.h).
 *
 * Looked for, in order: $RUSTY_CUDA_MODULE; librusty_cuda.so next to the running
 * executable; the dynamic linker's search path. Opened only when the machine has
 * an NVIDIA driver (/dev/nvidiactl), so that CPU-only machines never pay for it. */
#include "backend/cuda/cuda_backend.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char module_name[] = "librusty_cuda.so";

/* Path of the module next to the executable; false if it cannot be formed. */
static bool module_beside_exe(char *buf, size_t cap) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return false;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return false;
    *slash = '\0';
    return snprintf(buf, cap, "%s/%s", exe, module_name) < (int)cap;
}

bool rs_cuda_compiled(void) {
    const char *forced = getenv("RUSTY_CUDA_MODULE");
    if (forced && *forced) return access(forced, R_OK) == 0;
    char path[PATH_MAX + 32];
    return module_beside_exe(path, sizeof path) && access(path, R_OK) == 0;
}

rs_status rs_cuda_backend_create(rs_backend **out, rs_error *err) {
    *out = NULL;
    if (access("/dev/nvidiactl", F_OK) != 0)
        return rs_error_set(err, RS_ERR_DEVICE,
                            "no NVIDIA GPU driver on this machine (/dev/nvidiactl)");
    const char *forced = getenv("RUSTY_CUDA_MODULE");
    char path[PATH_MAX + 32];
    const char *tries[2];
    int n = 0;
    if (forced && *forced)
        tries[n++] = forced;
    else {
        if (module_beside_exe(path, sizeof path)) tries[n++] = path;
        tries[n++] = module_name;
    }
    void *h = NULL;
    char why[256] = "not found";
    for (int i = 0; i < n && !h; i++) {
        h = dlopen(tries[i], RTLD_NOW | RTLD_LOCAL);
        if (!h) snprintf(why, sizeof why, "%s", dlerror());
    }
    if (!h)
        return rs_error_set(err, RS_ERR_UNSUPPORTED, "CUDA backend module %s cannot be loaded: %s",
                            module_name, why);
    /* The module stays loaded for the process's lifetime: backends it made may be
     * alive anywhere, and unloading CUDA runtimes at exit is a known source of crashes. */
    rs_cuda_create_fn create;
    void *sym = dlsym(h, "rs_cuda_backend_create_impl");
    memcpy(&create, &sym, sizeof create); /* object pointer to function pointer, POSIX-sanctioned */
    if (!create)
        return rs_error_set(err, RS_ERR_UNSUPPORTED, "%s has no rs_cuda_backend_create_impl",
                            module_name);
    return create(out, err);
}
