/* mapping.c — mmap-backed read-only file views (see mapping.h). */
#include "io/mapping.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

rs_status rs_mapping_open(rs_mapping *map, const char *path, rs_error *err) {
    map->data = NULL;
    map->size = 0;
    map->owned = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return rs_error_set(err, RS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return rs_error_set(err, RS_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return rs_error_set(err, RS_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return RS_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file alive */
    if (p == MAP_FAILED)
        return rs_error_set(err, RS_ERR_IO, "%s: mmap failed: %s", path, strerror(e));
    map->data = p;
    map->size = (size_t)st.st_size;
    map->owned = 1;
    return RS_OK;
}

void rs_mapping_wrap(rs_mapping *map, const void *data, size_t size) {
    map->data = data;
    map->size = size;
    map->owned = 0;
}

void rs_mapping_close(rs_mapping *map) {
    if (map->owned && map->data) munmap((void *)map->data, map->size);
    map->data = NULL;
    map->size = 0;
    map->owned = 0;
}
