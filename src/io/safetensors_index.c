/* safetensors_index.c — a model's safetensors shards shown as one tensor list
 * (model.safetensors.index.json, or a single file); see safetensors.h. */
#include "io/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/json_util.h"

#define INDEX_NAME      "model.safetensors.index.json"
#define SINGLE_NAME     "model.safetensors"
#define MAX_INDEX_BYTES (64u << 20) /* real index files are tens of KB */

static char *join_path(rs_arena *a, const char *dir, const char *name) {
    size_t dl = strlen(dir), nl = strlen(name);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    char *p = rs_arena_alloc(a, dl + nl + 2, 1);
    if (!p) return NULL;
    memcpy(p, dir, dl); // NOLINT(bugprone-not-null-terminated-result): name's NUL ends it
    p[dl] = '/';
    memcpy(p + dl + 1, name, nl + 1);
    return p;
}

/* Folder part of a file path ("." when it has none), in the arena. */
static char *dir_of(rs_arena *a, const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return rs_arena_strdup(a, ".");
    if (slash == path) return rs_arena_strdup(a, "/");
    return rs_arena_strndup(a, path, (size_t)(slash - path));
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

const rs_tensor_info *rs_safetensors_set_find(const rs_safetensors_set *set, const char *name) {
    return rs_tensor_bsearch(set->by_name, set->n_tensors, name);
}

void rs_safetensors_set_close(rs_safetensors_set *set) {
    for (size_t i = 0; i < set->n_shards; i++) rs_safetensors_close(&set->shards[i]);
    free(set->shards);
    rs_meta_free(&set->meta);
    memset(set, 0, sizeof *set);
}

/* ---- the union of the shards' tensors ----------------------------------------------- */

static rs_status dup_error(const rs_safetensors_set *set, const char *name, rs_error *err) {
    const char *where[2] = {"?", "?"};
    int k = 0;
    for (uint64_t i = 0; i < set->n_tensors && k < 2; i++)
        if (strcmp(set->tensors[i].name, name) == 0)
            where[k++] = set->shard_names[set->shard_of[i]];
    return rs_error_set(err, RS_ERR_FORMAT, "tensor '%.200s' is stored in both %.200s and %.200s",
                        name, where[0], where[1]);
}

static rs_status build_union(rs_safetensors_set *set, rs_error *err) {
    uint64_t total = 0;
    for (size_t s = 0; s < set->n_shards; s++) total += set->shards[s].n_tensors;
    rs_arena *a = &set->meta.arena;
    set->tensors = rs_arena_calloc(a, total ? total : 1, sizeof *set->tensors);
    set->shard_of = rs_arena_calloc(a, total ? total : 1, sizeof *set->shard_of);
    // NOLINTNEXTLINE(bugprone-sizeof-expression): the elements are pointers
    set->by_name = rs_arena_calloc(a, total ? total : 1, sizeof *set->by_name);
    if (!set->tensors || !set->shard_of || !set->by_name)
        return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    for (size_t s = 0; s < set->n_shards; s++) { /* stored tensors first */
        const rs_safetensors *sh = &set->shards[s];
        for (uint64_t i = 0; i < sh->n_stored; i++) {
            set->shard_of[set->n_tensors] = (uint32_t)s;
            set->tensors[set->n_tensors++] = sh->tensors[i];
        }
    }
    for (uint64_t i = 0; i < set->n_tensors; i++) set->by_name[i] = &set->tensors[i];
    const char *dup;
    rs_tensor_sort_by_name(set->by_name, set->n_tensors, &dup);
    if (dup) return dup_error(set, dup, err);
    uint64_t n_stored = set->n_tensors;
    for (size_t s = 0; s < set->n_shards; s++) { /* then aliases not shadowed elsewhere */
        const rs_safetensors *sh = &set->shards[s];
        for (uint64_t i = sh->n_stored; i < sh->n_tensors; i++) {
            if (rs_tensor_bsearch(set->by_name, n_stored, sh->tensors[i].name)) continue;
            set->shard_of[set->n_tensors] = (uint32_t)s;
            set->tensors[set->n_tensors++] = sh->tensors[i];
        }
    }
    for (uint64_t i = 0; i < set->n_tensors; i++) set->by_name[i] = &set->tensors[i];
    rs_tensor_sort_by_name(set->by_name, set->n_tensors, &dup);
    if (dup) return dup_error(set, dup, err);
    for (size_t s = 0; s < set->n_shards; s++) set->file_bytes += set->shards[s].map.size;
    return RS_OK;
}

/* ---- single file ------------------------------------------------------------------- */

static rs_status open_single(rs_safetensors_set *set, const char *path, rs_error *err) {
    set->shards = calloc(1, sizeof *set->shards);
    set->shard_names = rs_arena_calloc(&set->meta.arena, 1, sizeof *set->shard_names);
    const char *base = strrchr(path, '/');
    if (set->shard_names)
        set->shard_names[0] = rs_arena_strdup(&set->meta.arena, base ? base + 1 : path);
    if (!set->shards || !set->shard_names || !set->shard_names[0])
        return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    rs_status s = rs_safetensors_open(&set->shards[0], path, err);
    if (s) return s;
    set->n_shards = 1;
    const rs_meta *m = &set->shards[0].meta;
    for (size_t i = 0; i < m->n; i++)
        if (rs_meta_set_value(&set->meta, m->kv[i].key, &m->kv[i].value))
            return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    return build_union(set, err);
}

/* ---- index.json ---------------------------------------------------------------------- */

static bool valid_shard_name(const char *s) {
    return s[0] != '\0' && !strchr(s, '/') && !strstr(s, "..");
}

/* Copies the index's "metadata" object: strings, numbers and bools (others skipped). */
static rs_status copy_index_metadata(rs_meta *m, const cJSON *md, rs_error *err) {
    if (!md || cJSON_IsNull(md)) return RS_OK;
    if (!cJSON_IsObject(md))
        return rs_error_set(err, RS_ERR_FORMAT, "\"metadata\" is a %s, expected an object",
                            rs_json_type_name(md));
    for (const cJSON *c = md->child; c; c = c->next) {
        rs_status s = RS_OK;
        uint64_t u;
        if (cJSON_IsString(c))
            s = rs_meta_set_str(m, c->string, c->valuestring, strlen(c->valuestring));
        else if (cJSON_IsBool(c))
            s = rs_meta_set_bool(m, c->string, cJSON_IsTrue(c));
        else if (cJSON_IsNumber(c) && !rs_json_get_uint(c, RS_JSON_MAX_EXACT_INT, &u))
            s = rs_meta_set_uint(m, c->string, RS_V_U64, u);
        else if (cJSON_IsNumber(c))
            s = rs_meta_set_float(m, c->string, RS_V_F64, c->valuedouble);
        if (s) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    }
    return RS_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Lists the distinct shard names of weight_map in order of first mention. */
static rs_status collect_shards(rs_safetensors_set *set, const cJSON *wm, rs_error *err) {
    size_t n = rs_json_count(wm);
    const char **sorted = rs_malloc_array(n ? n : 1, sizeof *sorted);
    size_t *order = rs_malloc_array(n ? n : 1, sizeof *order);
    set->shard_names = rs_arena_calloc(&set->meta.arena, n ? n : 1, sizeof *set->shard_names);
    if (!sorted || !order || !set->shard_names) {
        free(sorted);
        free(order);
        return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    }
    rs_status s = RS_OK;
    size_t k = 0;
    for (const cJSON *c = wm->child; c && !s; c = c->next) {
        if (!cJSON_IsString(c))
            s = rs_error_set(err, RS_ERR_FORMAT,
                             "weight_map['%.200s'] is a %s, expected a file name", c->string,
                             rs_json_type_name(c));
        else if (!valid_shard_name(c->valuestring))
            s = rs_error_set(err, RS_ERR_FORMAT,
                             "weight_map['%.200s']: shard name '%.200s' is empty or leaves the "
                             "folder ('/' or '..')",
                             c->string, c->valuestring);
        else
            sorted[k++] = c->valuestring;
    }
    if (!s) {
        qsort(sorted, k, sizeof *sorted, cmp_str);
        size_t u = 0;
        for (size_t i = 0; i < k; i++)
            if (u == 0 || strcmp(sorted[u - 1], sorted[i]) != 0) sorted[u++] = sorted[i];
        for (size_t i = 0; i < u; i++) order[i] = SIZE_MAX;
        for (const cJSON *c = wm->child; c; c = c->next) {
            const char **hit = bsearch(&c->valuestring, sorted, u, sizeof *sorted, cmp_str);
            size_t id = (size_t)(hit - sorted);
            if (order[id] != SIZE_MAX) continue;
            order[id] = set->n_shards;
            set->shard_names[set->n_shards] = rs_arena_strdup(&set->meta.arena, c->valuestring);
            if (!set->shard_names[set->n_shards++]) {
                s = rs_error_set(err, RS_ERR_NOMEM, "out of memory");
                break;
            }
        }
    }
    free(sorted);
    free(order);
    return s;
}

/* Opens every shard (their errors name their own file) and checks that each
 * weight_map entry is held by the shard it names. */
static rs_status open_shards(rs_safetensors_set *set, const char *index_path, const char *dir,
                             const cJSON *wm, rs_error *err) {
    size_t n = set->n_shards;
    set->n_shards = 0; /* counts the opened ones, for close */
    set->shards = calloc(n ? n : 1, sizeof *set->shards);
    if (!set->shards) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char *p = join_path(&set->meta.arena, dir, set->shard_names[i]);
        if (!p) return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
        rs_status s = rs_safetensors_open(&set->shards[i], p, err);
        if (s) return s;
        set->n_shards++;
    }
    for (const cJSON *c = wm->child; c; c = c->next) {
        size_t i = 0;
        while (strcmp(set->shard_names[i], c->valuestring) != 0) i++; /* present: collected above */
        if (!rs_safetensors_find(&set->shards[i], c->string))
            return rs_error_set(
                err, RS_ERR_FORMAT,
                "%s: weight_map puts tensor '%.200s' in %.200s, which does not hold it", index_path,
                c->string, c->valuestring);
    }
    return RS_OK;
}

/* Checks the index document and lists its shards; returns weight_map in *wm_out. */
static rs_status parse_index(rs_safetensors_set *set, const cJSON *root, const cJSON **wm_out,
                             rs_error *err) {
    if (!cJSON_IsObject(root))
        return rs_error_set(err, RS_ERR_FORMAT, "top level is a %s, expected an object",
                            rs_json_type_name(root));
    const char *dup;
    if (rs_json_find_duplicate_key(root, &dup))
        return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    if (dup) return rs_error_set(err, RS_ERR_FORMAT, "key '%.200s' appears twice", dup);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm))
        return rs_error_set(err, RS_ERR_FORMAT, "\"weight_map\" is %s, expected an object",
                            wm ? rs_json_type_name(wm) : "missing");
    if (rs_json_find_duplicate_key(wm, &dup))
        return rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    if (dup) return rs_error_set(err, RS_ERR_FORMAT, "weight_map lists tensor '%.200s' twice", dup);
    *wm_out = wm;
    rs_status s =
        copy_index_metadata(&set->meta, cJSON_GetObjectItemCaseSensitive(root, "metadata"), err);
    return s ? s : collect_shards(set, wm, err);
}

static rs_status open_index(rs_safetensors_set *set, const char *path, rs_error *err) {
    rs_mapping map;
    rs_status s = rs_mapping_open(&map, path, err);
    if (s) return s;
    cJSON *root = NULL;
    const cJSON *wm = NULL;
    if (map.size > MAX_INDEX_BYTES)
        s = rs_error_set(err, RS_ERR_FORMAT, "%s: %zu bytes, more than the %u-byte limit", path,
                         map.size, MAX_INDEX_BYTES);
    else
        s = rs_json_parse(&root, (const char *)map.data, map.size, path, err);
    if (!s && (s = parse_index(set, root, &wm, err)) != RS_OK) rs_error_prefix(err, "%s", path);
    char *dir = s ? NULL : dir_of(&set->meta.arena, path);
    if (!s && !dir) s = rs_error_set(err, RS_ERR_NOMEM, "out of memory");
    if (!s) s = open_shards(set, path, dir, wm, err);
    cJSON_Delete(root);
    rs_mapping_close(&map);
    if (!s && (s = build_union(set, err)) != RS_OK) rs_error_prefix(err, "%s", path);
    return s;
}

rs_status rs_safetensors_set_open(rs_safetensors_set *set, const char *path, rs_error *err) {
    memset(set, 0, sizeof *set);
    rs_status s;
    if (is_dir(path)) {
        char *idx = join_path(&set->meta.arena, path, INDEX_NAME);
        char *one = join_path(&set->meta.arena, path, SINGLE_NAME);
        if (!idx || !one)
            s = rs_error_set(err, RS_ERR_NOMEM, "out of memory");
        else if (exists(idx))
            s = open_index(set, idx, err);
        else if (exists(one))
            s = open_single(set, one, err);
        else
            s = rs_error_set(err, RS_ERR_NOT_FOUND, "%s: holds neither %s nor %s", path, INDEX_NAME,
                             SINGLE_NAME);
    } else {
        size_t n = strlen(path);
        if (n >= 5 && strcmp(path + n - 5, ".json") == 0)
            s = open_index(set, path, err);
        else
            s = open_single(set, path, err);
    }
    if (s) {
        rs_error_one_line(err);
        rs_safetensors_set_close(set);
    }
    return s;
}
