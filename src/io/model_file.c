/* model_file.c — opens a .gguf file or an HF folder behind one view (see model_file.h). */
#include "io/model_file.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/gguf.h"
#include "io/hf_model.h"

rs_status rs_model_file_open(rs_model_file *mf, const char *path, rs_error *err) {
    memset(mf, 0, sizeof *mf);
    struct stat st;
    if (stat(path, &st) != 0)
        return rs_error_set(err, RS_ERR_IO, "%s: no such file or folder", path);
    if (S_ISDIR(st.st_mode)) return rs_hf_model_open(mf, path, err);
    rs_gguf *g = calloc(1, sizeof *g);
    if (!g) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    rs_status s = rs_gguf_open(g, path, err);
    if (s) {
        free(g);
        return s;
    }
    mf->format = RS_FORMAT_GGUF;
    mf->meta = &g->meta;
    mf->tensors = g->tensors;
    mf->n_tensors = g->n_tensors;
    mf->file_bytes = g->map.size;
    mf->gguf_version = g->version;
    mf->impl = g;
    return RS_OK;
}

void rs_model_file_close(rs_model_file *mf) {
    if (!mf->impl) return;
    if (mf->format == RS_FORMAT_HF) {
        rs_hf_model_close(mf);
        return;
    }
    rs_gguf_close(mf->impl);
    free(mf->impl);
    memset(mf, 0, sizeof *mf);
}

const rs_tensor_info *rs_model_file_find(const rs_model_file *mf, const char *name) {
    for (uint64_t i = 0; i < mf->n_tensors; i++)
        if (strcmp(mf->tensors[i].name, name) == 0) return &mf->tensors[i];
    return NULL;
}
