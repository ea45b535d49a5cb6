/* realpath (the build defines _POSIX_C_SOURCE, which hides it) */
#define _DEFAULT_SOURCE
#include "data.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------ strings */

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    else lpm_fail(LPM_ERR_INTERNAL, "out of memory");
    return d;
}

static char *join_path(const char *dir, const char *name) {
    if (name[0] == '/') return dup_str(name);
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p) {
        lpm_fail(LPM_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int ends_with_ci(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static size_t nifti_stem_len(const char *name) {
    static const char *exts[] = {".nii.gz", ".nii", ".hdr.gz", ".hdr"};
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (ends_with_ci(name, exts[i])) return strlen(name) - strlen(exts[i]);
    return 0;
}

/* Does the file name carry key as one of its words (split at '_', '-', '.')? */
static int name_has_key(const char *name, const char *key) {
    size_t stem = nifti_stem_len(name), k = strlen(key);
    if (!stem || !k) return 0;
    for (size_t i = 0; i < stem;) {
        size_t j = i;
        while (j < stem && name[j] != '_' && name[j] != '-' && name[j] != '.') j++;
        if (j - i == k && strncasecmp(name + i, key, k) == 0) return 1;
        i = j + 1;
    }
    return 0;
}

static int cmp_str(const void *x, const void *y) {
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static void free_list(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* Sorted entries of a folder (without . and ..); *n set; NULL on error (message set). */
static char **list_dir(const char *dir, int *n) {
    DIR *d = opendir(dir);
    if (!d) {
        lpm_fail(LPM_ERR_INPUT, "%s: cannot open folder (%s)", dir, strerror(errno));
        return NULL;
    }
    int cap = 64, count = 0, oom = 0;
    char **names = malloc(sizeof(char *) * (size_t)cap);
    struct dirent *e;
    oom = !names;
    while (!oom && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (count == cap) {
            char **grown = realloc(names, sizeof(char *) * (size_t)(cap *= 2));
            if (!(oom = !grown)) names = grown;
        }
        if (!oom && !(oom = !(names[count] = dup_str(e->d_name)))) count++;
    }
    closedir(d);
    if (oom) {  /* a partial listing would silently drop cases */
        if (names) free_list(names, count);
        lpm_fail(LPM_ERR_INTERNAL, "out of memory listing %s", dir);
        return NULL;
    }
    qsort(names, (size_t)count, sizeof(char *), cmp_str);
    *n = count;
    return names;
}


/* ------------------------------------------------------------------ dataset */

/* Appends a case; takes ownership of a, b, mask and out (freed on failure). The name is
 * copied (NULL: named later, as a CSV's cases are). */
static lpm_status add_case(lpm_dataset *ds, const char *name, char *a, char *b, char *mask, char *out,
                           int line) {
    lpm_case *grown = realloc(ds->cases, sizeof *grown * ((size_t)ds->n + 1));
    if (grown) ds->cases = grown;
    char *name_copy = name ? dup_str(name) : NULL;
    if (!grown || (name && !name_copy) || !a || !b) {
        free(name_copy), free(a), free(b), free(mask), free(out);
        return lpm_fail(LPM_ERR_INTERNAL, "out of memory building the dataset");
    }
    ds->cases[ds->n++] = (lpm_case){name_copy, a, b, mask, out, line};
    return LPM_OK;
}

/* ------------------------------------------------------------ case names */

/* A case's name names output files: letters, digits, '-', '_' and '.' are kept, anything else
 * (a '/', a space, a quote) becomes '_'. */
static void make_filename_safe(char *s) {
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.') *s = '_';
}

/* Longest part of a file or folder name kept in a case name, so that NAME_METHOD.nii.gz stays
 * well within a file system's 255 bytes. */
enum { NAME_PART_MAX = 80 };

/* path's file name without folder and volume extension (.nii, .hdr, .img, each with or
 * without .gz, any case; or a bare .gz), at most NAME_PART_MAX characters, into out; "case"
 * when nothing is left (a path ending in '/'). */
static void volume_stem(const char *path, char *out, size_t n) {
    lpm_volume_stem(path, out, n < NAME_PART_MAX + 1 ? n : NAME_PART_MAX + 1);
    if (!out[0]) snprintf(out, n, "case");
}

/* The name of the folder holding path ("" when there is none), at most NAME_PART_MAX
 * characters, into out. */
static void parent_name(const char *path, char *out, size_t n) {
    const char *end = strrchr(path, '/'), *start = end;
    out[0] = '\0';
    if (!end) return;
    while (start > path && start[-1] != '/') start--;
    size_t len = (size_t)(end - start);
    if (len > NAME_PART_MAX) len = NAME_PART_MAX;
    snprintf(out, n, "%.*s", (int)len, start);
}

/* The last component of a folder's path ("data/sub01/" -> "sub01"), at most NAME_PART_MAX
 * characters, into out; "case" when it has none ("/", "."). */
static void last_component(const char *path, char *out, size_t n) {
    const char *end = path + strlen(path);
    while (end > path && end[-1] == '/') end--;
    const char *start = end;
    while (start > path && start[-1] != '/') start--;
    size_t len = (size_t)(end - start);
    if (len > NAME_PART_MAX) len = NAME_PART_MAX;
    snprintf(out, n, "%.*s", (int)len, start);
    if (!out[0] || !strcmp(out, ".") || !strcmp(out, "..")) snprintf(out, n, "case");
}

static int all_different(char **names, int n) {
    char **sorted = malloc(sizeof *sorted * ((size_t)n + 1));
    if (!sorted) return -1;
    memcpy(sorted, names, sizeof *sorted * (size_t)n);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_str);
    int different = 1;
    for (int i = 1; i < n && different; i++) different = strcmp(sorted[i - 1], sorted[i]) != 0;
    free(sorted);
    return different;
}

/* Names every case by the first of these schemes that gives every case its own name:
 * scheme 0: A's file stem ("t1"); 1: A's folder and stem ("sub01_t1"); 2: A's stem and the
 * CSV line ("t1_line3", always distinct: the text after the last '_' is the line number). */
static lpm_status name_csv_cases(lpm_dataset *ds) {
    char **names = calloc((size_t)ds->n + 1, sizeof *names);
    if (!names) return lpm_fail(LPM_ERR_INTERNAL, "out of memory naming the cases");
    lpm_status st = LPM_OK;
    for (int scheme = 0; scheme < 3 && !st; scheme++) {
        for (int i = 0; i < ds->n && !st; i++) {
            char stem[NAME_PART_MAX + 1], parent[NAME_PART_MAX + 1], name[2 * NAME_PART_MAX + 32];
            volume_stem(ds->cases[i].a, stem, sizeof stem);
            if (scheme == 0) {
                snprintf(name, sizeof name, "%s", stem);
            } else if (scheme == 1) {
                parent_name(ds->cases[i].a, parent, sizeof parent);
                snprintf(name, sizeof name, "%s_%s", parent, stem);
            } else {
                snprintf(name, sizeof name, "%s_line%d", stem, ds->cases[i].line);
            }
            make_filename_safe(name);
            free(names[i]);
            if (!(names[i] = dup_str(name))) st = LPM_ERR_INTERNAL;
        }
        int different = st ? 0 : all_different(names, ds->n);
        if (different < 0) st = lpm_fail(LPM_ERR_INTERNAL, "out of memory naming the cases");
        if (different > 0) break;
    }
    for (int i = 0; i < ds->n; i++) {
        if (!st) ds->cases[i].name = names[i];
        else free(names[i]);
    }
    free(names);
    return st;
}

/* A folder dataset's cases keep their subject folders' names, made filename-safe (and cut at
 * NAME_PART_MAX); should two then be equal ("a b" and "a_b"), each gets its position:
 * "a_b_1", "a_b_2". */
static lpm_status make_folder_names_safe(lpm_dataset *ds) {
    char **names = calloc((size_t)ds->n + 1, sizeof *names);
    if (!names) return lpm_fail(LPM_ERR_INTERNAL, "out of memory naming the cases");
    for (int i = 0; i < ds->n; i++) names[i] = ds->cases[i].name;
    for (int i = 0; i < ds->n; i++) {
        if (strlen(names[i]) > NAME_PART_MAX) names[i][NAME_PART_MAX] = '\0';
        make_filename_safe(names[i]);
    }
    int different = all_different(names, ds->n);
    lpm_status st = different < 0 ? lpm_fail(LPM_ERR_INTERNAL, "out of memory naming the cases") : LPM_OK;
    for (int i = 0; i < ds->n && !st && !different; i++) {
        size_t n = strlen(names[i]) + 16;
        char *numbered = malloc(n);
        if (!numbered) {
            st = lpm_fail(LPM_ERR_INTERNAL, "out of memory naming the cases");
            break;
        }
        snprintf(numbered, n, "%s_%d", names[i], i + 1);
        free(ds->cases[i].name);
        ds->cases[i].name = numbered;
    }
    free(names);
    return st;
}

/* Find the one file in dir carrying key; NULL with *status set when none or several. */
static char *find_modality(const char *dir, char **files, int nfiles, const char *key,
                           lpm_status *status) {
    char *found = NULL;
    for (int i = 0; i < nfiles; i++) {
        if (!name_has_key(files[i], key)) continue;
        if (found) {
            *status = lpm_fail(LPM_ERR_INPUT, "%s: several files match modality '%s' (%s, %s)",
                               dir, key, strrchr(found, '/') + 1, files[i]);
            free(found);
            return NULL;
        }
        found = join_path(dir, files[i]);
    }
    return found;
}

/* Scan one subject folder; adds a case when both modalities are there. */
static lpm_status scan_subject(lpm_dataset *ds, const char *dir, const char *name,
                               const char *key_a, const char *key_b, const char *mask_key,
                               int *added) {
    int nfiles;
    char **files = list_dir(dir, &nfiles);
    if (!files) return LPM_ERR_INPUT;
    lpm_status st = LPM_OK;
    char *a = find_modality(dir, files, nfiles, key_a, &st);
    char *b = st ? NULL : find_modality(dir, files, nfiles, key_b, &st);
    char *m = st || !mask_key ? NULL : find_modality(dir, files, nfiles, mask_key, &st);
    free_list(files, nfiles);
    *added = 0;
    if (st || !a || !b) {
        free(a), free(b), free(m);
        return st;
    }
    *added = 1;
    return add_case(ds, name, a, b, m, NULL, 0);
}

static lpm_status open_folder(lpm_dataset *ds, const char *dir, const char *pair,
                              const char *mask_key) {
    char key_a[64], key_b[64];
    const char *comma = pair ? strchr(pair, ',') : NULL;
    if (!comma || comma == pair || !comma[1] || (size_t)(comma - pair) >= sizeof key_a ||
        strlen(comma + 1) >= sizeof key_b || strchr(comma + 1, ','))
        return lpm_fail(LPM_ERR_USAGE, "%s: a dataset folder needs --pair A,B (modality keys, e.g. t1,t2)", dir);
    memcpy(key_a, pair, (size_t)(comma - pair));
    key_a[comma - pair] = '\0';
    strcpy(key_b, comma + 1);

    /* The folder itself may be one subject (e.g. a phantom folder), named after it. */
    char own_name[NAME_PART_MAX + 1], resolved[PATH_MAX];
    last_component(realpath(dir, resolved) ? resolved : dir, own_name, sizeof own_name);
    int added = 0;
    lpm_status st = scan_subject(ds, dir, own_name, key_a, key_b, mask_key, &added);
    if (st || added) return st;

    int n;
    char **subs = list_dir(dir, &n);
    if (!subs) return LPM_ERR_INPUT;
    for (int i = 0; i < n && !st; i++) {
        char *sub = join_path(dir, subs[i]);
        if (!sub) {
            st = LPM_ERR_INTERNAL;
            break;
        }
        if (is_dir(sub)) {
            st = scan_subject(ds, sub, subs[i], key_a, key_b, mask_key, &added);
            if (!st && !added)
                fprintf(stderr, "lpmnet: note: %s has no '%s' and '%s' pair; skipped\n", sub, key_a, key_b);
        }
        free(sub);
    }
    free_list(subs, n);
    if (!st && ds->n == 0)
        st = lpm_fail(LPM_ERR_INPUT, "%s: no subject folder holds both a '%s' and a '%s' volume", dir,
                      key_a, key_b);
    return st;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

static lpm_status open_csv(lpm_dataset *ds, const char *path) {
    lpm_status checked = lpm_check_input_file(path);  /* a FIFO would block fopen forever */
    if (checked) return checked;
    FILE *f = fopen(path, "r");
    if (!f) return lpm_fail(LPM_ERR_INPUT, "%s: cannot open (%s)", path, strerror(errno));
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else strcpy(dir, ".");

    char line[8192];
    int lineno = 0, mask_col = 0, out_col = 0, header_seen = 0;
    lpm_status st = LPM_OK;
    while (!st && fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            st = lpm_fail(LPM_ERR_INPUT, "%s:%d: line too long", path, lineno);
            break;
        }
        char *s = trim(line);
        if (lineno == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB &&
            (unsigned char)s[2] == 0xBF)
            s += 3;  /* UTF-8 byte-order mark (spreadsheet exports) */
        if (!*s || *s == '#') continue;
        char *fields[4] = {0};
        int nf = 0;
        for (char *tok = s; tok && nf < 4;) {
            char *c = strchr(tok, ',');
            if (c) *c = '\0';
            fields[nf++] = trim(tok);
            tok = c ? c + 1 : NULL;
        }
        if (!header_seen && nf >= 2 && !strcmp(fields[0], "a") && !strcmp(fields[1], "b")) {
            for (int c = 2; c < nf; c++) {
                if (!strcmp(fields[c], "mask")) mask_col = c;
                if (!strcmp(fields[c], "out")) out_col = c;
            }
            header_seen = 1;
            continue;
        }
        if (!header_seen) {
            st = lpm_fail(LPM_ERR_INPUT, "%s: the first line must be the header 'a,b' (optional columns: mask, out)", path);
            break;
        }
        int want = (mask_col > out_col ? mask_col : out_col) + 1;  /* fields a row needs */
        if (want < 2) want = 2;
        if (nf < want || !*fields[0] || !*fields[1] || (mask_col && !*fields[mask_col]) ||
            (out_col && !*fields[out_col])) {
            st = lpm_fail(LPM_ERR_INPUT, "%s:%d: expected %s%s%s", path, lineno, "a,b",
                          mask_col ? ",mask" : "", out_col ? ",out" : "");
            break;
        }
        st = add_case(ds, NULL, join_path(dir, fields[0]), join_path(dir, fields[1]),
                      mask_col ? join_path(dir, fields[mask_col]) : NULL,
                      out_col ? join_path(dir, fields[out_col]) : NULL, lineno);
    }
    fclose(f);
    if (!st && ds->n == 0) st = lpm_fail(LPM_ERR_INPUT, "%s: no rows", path);
    if (!st) st = name_csv_cases(ds);
    return st;
}

/* Keep only the cases listed in the authors' split file, when there is one. */
static lpm_status apply_split(lpm_dataset *ds, const char *dir, const char *split) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, !strcmp(split, "train") ? "IndicesTrain.txt" : "IndicesTest.txt");
    struct stat info;
    if (stat(path, &info) != 0) return LPM_OK;  /* no split file: every case */
    lpm_status checked = lpm_check_input_file(path);
    if (checked) return checked;
    FILE *f = fopen(path, "r");
    if (!f) return lpm_fail(LPM_ERR_INPUT, "%s: cannot open (%s)", path, strerror(errno));
    char *keep = calloc((size_t)ds->n + 1, 1);
    if (!keep) {
        fclose(f);
        return lpm_fail(LPM_ERR_INTERNAL, "out of memory");
    }
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *s = trim(line), *end;
        if (!*s) continue;
        /* a subject name first (folders named 001, 002, ... are names, not indices) */
        int named = 0;
        for (int i = 0; i < ds->n; i++)
            if (!strcmp(ds->cases[i].name, s)) keep[i] = named = 1;
        long idx = strtol(s, &end, 10);
        if (!named && !*end && idx >= 0 && idx < ds->n) keep[idx] = 1;
    }
    fclose(f);
    int j = 0;
    for (int i = 0; i < ds->n; i++) {
        lpm_case *c = &ds->cases[i];
        if (keep[i]) ds->cases[j++] = *c;
        else free(c->name), free(c->a), free(c->b), free(c->mask), free(c->out);
    }
    ds->n = j;
    free(keep);
    return j ? LPM_OK : lpm_fail(LPM_ERR_INPUT, "%s: selects no case", path);
}

lpm_status lpm_dataset_open(lpm_dataset *ds, const char *spec, const char *pair,
                            const char *mask_key, const char *split) {
    memset(ds, 0, sizeof *ds);
    lpm_status st;
    if (is_dir(spec)) {
        st = open_folder(ds, spec, pair, mask_key);
        if (!st && split) st = apply_split(ds, spec, split);  /* on the folders' own names */
        if (!st) st = make_folder_names_safe(ds);
    } else if (ends_with_ci(spec, ".csv")) {
        st = open_csv(ds, spec);
    } else {
        st = lpm_fail(LPM_ERR_INPUT, "%s: not a folder or a .csv file", spec);
    }
    if (st) lpm_dataset_free(ds);
    return st;
}

void lpm_dataset_free(lpm_dataset *ds) {
    if (!ds) return;
    for (int i = 0; ds->cases && i < ds->n; i++) {
        lpm_case *c = &ds->cases[i];
        free(c->name), free(c->a), free(c->b), free(c->mask), free(c->out);
    }
    free(ds->cases);
    memset(ds, 0, sizeof *ds);
}

/* FNV-1a, 64 bits: enough to tell two case lists apart, not a cryptographic identity. */
static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ULL;
    return h;
}

/* path with the dataset's own folder prefix removed, so that the hash does not depend on
 * where the dataset lies or how --data is spelled. */
static const char *relative_to(const char *path, const char *prefix) {
    size_t n = strlen(prefix);
    return n && !strncmp(path, prefix, n) && path[n] == '/' ? path + n + 1 : path;
}

lpm_status lpm_dataset_hash(const lpm_dataset *ds, const char *spec, uint64_t *hash) {
    char prefix[4096];
    snprintf(prefix, sizeof prefix, "%s", spec);
    if (!is_dir(spec)) {  /* a CSV: its paths are relative to its folder */
        char *slash = strrchr(prefix, '/');
        if (slash) *slash = '\0';
        else strcpy(prefix, ".");
    }
    uint64_t h = 0xCBF29CE484222325ULL;
    for (int i = 0; i < ds->n; i++) {
        const char *files[3] = {ds->cases[i].a, ds->cases[i].b, ds->cases[i].mask};
        for (int k = 0; k < 3; k++) {
            const char *rel = files[k] ? relative_to(files[k], prefix) : "-";
            h = fnv1a(h, rel, strlen(rel) + 1);
            struct stat info;
            if (!files[k]) continue;
            if (stat(files[k], &info) != 0)
                return lpm_fail(LPM_ERR_INPUT, "case %s: %s: cannot read (%s)", ds->cases[i].name, files[k],
                                strerror(errno));
            uint64_t size = (uint64_t)info.st_size;
            h = fnv1a(h, &size, sizeof size);
        }
    }
    *hash = h;
    return LPM_OK;
}

lpm_status lpm_dataset_check(const lpm_dataset *ds, const int64_t *crop) {
    for (int i = 0; i < ds->n; i++) {
        const lpm_case *c = &ds->cases[i];
        lpm_volume a = {0}, b = {0}, m = {0};
        /* the header reader refuses a FIFO (which would wait forever) and any other non-file */
        lpm_status st = lpm_volume_read_header(c->a, &a);
        if (!st) st = lpm_volume_read_header(c->b, &b);
        if (!st) st = lpm_check_same_grid(&a, &b, c->a, c->b);
        if (!st && c->mask) st = lpm_volume_read_header(c->mask, &m);
        if (!st && c->mask) st = lpm_check_same_grid(&a, &m, c->a, c->mask);
        if (!st && crop && (a.nz < crop[0] || a.ny < crop[1] || a.nx < crop[2]))
            st = lpm_fail(LPM_ERR_INPUT, "%s: %lldx%lldx%lld (D,H,W) is smaller than the crop %lldx%lldx%lld",
                          c->a, (long long)a.nz, (long long)a.ny, (long long)a.nx, (long long)crop[0],
                          (long long)crop[1], (long long)crop[2]);
        lpm_volume_free(&a);
        lpm_volume_free(&b);
        lpm_volume_free(&m);
        if (st) return lpm_prefix_error(st, "case %s", c->name);
    }
    return LPM_OK;
}

/* ------------------------------------------------------------------ samples */

void lpm_sample_free(lpm_sample *s) {
    free(s->a);
    free(s->b);
    memset(s, 0, sizeof *s);
}

static void flip_axis(float *v, int64_t D, int64_t H, int64_t W, int axis) {
    int64_t n[3] = {D, H, W};
    int64_t stride[3] = {H * W, W, 1};
    int64_t len = n[axis], st = stride[axis];
    int64_t total = D * H * W;
    for (int64_t base = 0; base < total; base++) {
        /* visit each line once: from voxels whose coordinate on the axis is 0 */
        if ((base / st) % len != 0) continue;
        for (int64_t i = 0, j = len - 1; i < j; i++, j--) {
            float t = v[base + i * st];
            v[base + i * st] = v[base + j * st];
            v[base + j * st] = t;
        }
    }
}

/* Separable Gaussian along one axis, mirror boundaries (d c b | a b c d | c b a). */
static lpm_status gauss_axis(float *v, const int64_t n[3], int axis, double sigma) {
    int radius = (int)(4.0 * sigma + 0.5);
    if (radius < 1) return LPM_OK;
    double *k = malloc(sizeof(double) * (size_t)(2 * radius + 1));
    int64_t len = n[axis];
    float *line = lpm_malloc((size_t)len, sizeof(float));
    if (!k || !line) {
        free(k), free(line);
        return lpm_fail(LPM_ERR_INTERNAL, "out of memory in resize");
    }
    double sum = 0;
    for (int i = -radius; i <= radius; i++) sum += k[i + radius] = exp(-0.5 * i * i / (sigma * sigma));
    for (int i = 0; i <= 2 * radius; i++) k[i] /= sum;
    int64_t stride = axis == 0 ? n[1] * n[2] : axis == 1 ? n[2] : 1;
    int64_t total = n[0] * n[1] * n[2];
    for (int64_t base = 0; base < total; base++) {
        if ((base / stride) % len != 0) continue;
        for (int64_t i = 0; i < len; i++) line[i] = v[base + i * stride];
        for (int64_t i = 0; i < len; i++) {
            double acc = 0;
            for (int t = -radius; t <= radius; t++) {
                int64_t j = i + t;
                if (len == 1) j = 0;
                while (j < 0 || j >= len) j = j < 0 ? -j : 2 * (len - 1) - j;
                acc += k[t + radius] * line[j];
            }
            v[base + i * stride] = (float)acc;
        }
    }
    free(k);
    free(line);
    return LPM_OK;
}

/* Mirror an index into [0, n): x[-i] = x[i], x[n-1+i] = x[n-1-i] (scipy's 'mirror'). */
static int64_t mirror_index(int64_t i, int64_t n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
}

/* Output sample o on an axis of n inputs: the two neighbours and the weight of the second,
 * pixel centres aligned (x_in = (o + 0.5) scale - 0.5). */
static double interp_at(int64_t o, double scale, int64_t n, int64_t *i0, int64_t *i1) {
    double p = ((double)o + 0.5) * scale - 0.5;
    double f = floor(p);
    *i0 = mirror_index((int64_t)f, n);
    *i1 = mirror_index((int64_t)f + 1, n);
    return p - f;
}

lpm_status lpm_resize(float *out, int64_t d, int64_t h, int64_t w, const float *in, int64_t D,
                      int64_t H, int64_t W) {
    int64_t n[3] = {D, H, W}, m[3] = {d, h, w};
    size_t total = (size_t)(D * H * W);
    float *tmp = lpm_malloc(total, sizeof(float));
    if (!tmp) return LPM_ERR_INTERNAL;
    memcpy(tmp, in, total * sizeof(float));
    double scale[3];
    for (int ax = 0; ax < 3; ax++) {
        scale[ax] = (double)n[ax] / (double)m[ax];
        if (scale[ax] > 1) {
            lpm_status st = gauss_axis(tmp, n, ax, (scale[ax] - 1) / 2);
            if (st) {
                free(tmp);
                return st;
            }
        }
    }
#pragma omp parallel for schedule(static)
    for (int64_t z = 0; z < d; z++) {
        int64_t z0, z1, y0, y1, x0, x1;
        double fz = interp_at(z, scale[0], D, &z0, &z1);
        for (int64_t y = 0; y < h; y++) {
            double fy = interp_at(y, scale[1], H, &y0, &y1);
            for (int64_t x = 0; x < w; x++) {
                double fx = interp_at(x, scale[2], W, &x0, &x1);
#define V(a, b, c) (double)tmp[((a) * H + (b)) * W + (c)]
                double c00 = V(z0, y0, x0) * (1 - fx) + V(z0, y0, x1) * fx;
                double c01 = V(z0, y1, x0) * (1 - fx) + V(z0, y1, x1) * fx;
                double c10 = V(z1, y0, x0) * (1 - fx) + V(z1, y0, x1) * fx;
                double c11 = V(z1, y1, x0) * (1 - fx) + V(z1, y1, x1) * fx;
#undef V
                double c0 = c00 * (1 - fy) + c01 * fy, c1 = c10 * (1 - fy) + c11 * fy;
                out[(z * h + y) * w + x] = (float)(c0 * (1 - fz) + c1 * fz);
            }
        }
    }
    free(tmp);
    return LPM_OK;
}

/* Fraction of voxels of a crop where A or B shows tissue. */
static double foreground(const float *a, const float *b, int64_t H, int64_t W, const int64_t off[3],
                         const int64_t c[3]) {
    int64_t fg = 0;
    for (int64_t z = 0; z < c[0]; z += 2)
        for (int64_t y = 0; y < c[1]; y += 2)
            for (int64_t x = 0; x < c[2]; x += 2) {
                size_t i = (size_t)(((off[0] + z) * H + off[1] + y) * W + off[2] + x);
                fg += a[i] > 0.05f || b[i] > 0.05f;
            }
    int64_t total = ((c[0] + 1) / 2) * ((c[1] + 1) / 2) * ((c[2] + 1) / 2);
    return (double)fg / (double)total;
}

static lpm_status crop_pair(lpm_sample *s, const lpm_volume *a, const lpm_volume *b,
                            const int64_t c[3], lpm_rng *rng) {
    int64_t n[3] = {a->nz, a->ny, a->nx};
    size_t total = (size_t)(c[0] * c[1] * c[2]);
    s->a = lpm_calloc(total, sizeof(float));
    s->b = lpm_calloc(total, sizeof(float));
    if (!s->a || !s->b) return LPM_ERR_INTERNAL;
    /* Crops with almost no tissue teach nothing: redraw up to 20 times, keep the best. */
    int64_t best[3] = {0, 0, 0}, off[3], fit[3];
    for (int ax = 0; ax < 3; ax++) fit[ax] = c[ax] < n[ax] ? c[ax] : n[ax];
    double best_fg = -1;
    for (int attempt = 0; attempt < 20 && best_fg < 0.25; attempt++) {
        for (int ax = 0; ax < 3; ax++)
            off[ax] = (int64_t)(lpm_rng_uniform(rng) * (double)(n[ax] - fit[ax] + 1));
        double fg = foreground(a->data, b->data, n[1], n[2], off, fit);
        if (fg > best_fg) best_fg = fg, memcpy(best, off, sizeof best);
    }
    for (int64_t z = 0; z < fit[0]; z++)
        for (int64_t y = 0; y < fit[1]; y++) {
            size_t src = (size_t)(((best[0] + z) * n[1] + best[1] + y) * n[2] + best[2]);
            size_t dst = (size_t)((z * c[1] + y) * c[2]);
            memcpy(s->a + dst, a->data + src, sizeof(float) * (size_t)fit[2]);
            memcpy(s->b + dst, b->data + src, sizeof(float) * (size_t)fit[2]);
        }
    s->D = c[0], s->H = c[1], s->W = c[2];
    return LPM_OK;
}

/* v (in [0, 1]) raised to a power log-uniform in [1/gamma_max, gamma_max]: a random contrast
 * curve that keeps 0, 1 and the order of the intensities. */
static void random_power(float *v, size_t n, double gamma_max, lpm_rng *rng) {
    const float g = (float)exp((2 * lpm_rng_uniform(rng) - 1) * log(gamma_max));
    for (size_t i = 0; i < n; i++)
        if (v[i] > 0) v[i] = powf(v[i], g);
}

/* v (in [0, 1]) plus Gaussian noise of a standard deviation uniform in [0, noise_max], on its
 * nonzero voxels (a zero background, which fuse keeps at 0, stays 0), clipped to [0, 1]. */
static void random_noise(float *v, size_t n, double noise_max, lpm_rng *rng) {
    const double sd = lpm_rng_uniform(rng) * noise_max;
    for (size_t i = 0; i < n; i++)
        if (v[i] > 0) {
            const float x = v[i] + (float)(sd * lpm_rng_normal(rng));
            v[i] = x < 0 ? 0 : x > 1 ? 1 : x;
        }
}

/* Each (H, W) slice of v (D, H, W with H == W) turned by k quarter turns: out[y][x] =
 * in[x][n-1-y] per turn. tmp holds one slice. */
static void quarter_turns(float *v, int64_t D, int64_t n, int k, float *tmp) {
    for (int t = 0; t < k; t++)
        for (int64_t z = 0; z < D; z++) {
            float *s = v + z * n * n;
            memcpy(tmp, s, sizeof(float) * (size_t)(n * n));
            for (int64_t y = 0; y < n; y++)
                for (int64_t x = 0; x < n; x++) s[y * n + x] = tmp[x * n + (n - 1 - y)];
        }
}

/* Min-max normalise v to [0, 1] over the voxels inside the mask (nonzero) and set the voxels
 * outside it to 0: the network then learns from the masked region only (a brain mask keeps
 * the background, often a constant of a z-scored scan, out of every loss term). */
lpm_status lpm_make_sample(lpm_sample *out, const lpm_dataset *ds, int i,
                           const lpm_sample_spec *spec, lpm_rng *rng) {
    lpm_volume a = {0}, b = {0};
    uint8_t *mask = NULL;
    const lpm_case *c = &ds->cases[i];
    memset(out, 0, sizeof *out);
    out->case_index = i;
    lpm_status st = lpm_volume_read(c->a, &a);
    if (!st) st = lpm_volume_read(c->b, &b);
    if (!st) st = lpm_check_same_grid(&a, &b, c->a, c->b);
    if (!st && c->mask) st = lpm_mask_read(c->mask, &a, c->a, &mask);
    /* scaled (inside the mask, 0 outside) before the flips: the same voxels either way */
    if (!st) st = lpm_prep_inputs(&spec->prep, &a, c->a, &b, c->b, mask);
    if (!st && spec->aug.flip)
        for (int ax = 0; ax < 3; ax++)
            if (lpm_rng_uniform(rng) < 0.5) {
                flip_axis(a.data, a.nz, a.ny, a.nx, ax);
                flip_axis(b.data, b.nz, b.ny, b.nx, ax);
            }
    if (!st && spec->mode == 1) {
        st = crop_pair(out, &a, &b, spec->crop, rng);
    } else if (!st) {
        const int64_t *s = spec->shape;
        size_t total = (size_t)(s[0] * s[1] * s[2]);
        out->a = lpm_malloc(total, sizeof(float));
        out->b = lpm_malloc(total, sizeof(float));
        st = !out->a || !out->b ? LPM_ERR_INTERNAL : LPM_OK;
        if (!st) st = lpm_resize(out->a, s[0], s[1], s[2], a.data, a.nz, a.ny, a.nx);
        if (!st) st = lpm_resize(out->b, s[0], s[1], s[2], b.data, b.nz, b.ny, b.nx);
        out->D = s[0], out->H = s[1], out->W = s[2];
    }
    /* each drawn only when asked for, so runs without it keep their crops and masks */
    const size_t n = st ? 0 : (size_t)(out->D * out->H * out->W);
    if (!st && spec->aug.rotate) {
        if (out->H != out->W) st = lpm_fail(LPM_ERR_USAGE, "quarter turns need a sample with H == W");
        float *tmp = st ? NULL : lpm_malloc((size_t)(out->H * out->W), sizeof(float));
        if (!st && !tmp) st = lpm_fail(LPM_ERR_INTERNAL, "out of memory turning a sample");
        const int k = st ? 0 : (int)(lpm_rng_u64(rng) % 4);
        if (!st) {
            quarter_turns(out->a, out->D, out->H, k, tmp);
            quarter_turns(out->b, out->D, out->H, k, tmp);
        }
        free(tmp);
    }
    if (!st && spec->aug.gamma_max > 1) {
        random_power(out->a, n, spec->aug.gamma_max, rng);
        random_power(out->b, n, spec->aug.gamma_max, rng);
    }
    if (!st && spec->aug.noise_max > 0) {
        random_noise(out->a, n, spec->aug.noise_max, rng);
        random_noise(out->b, n, spec->aug.noise_max, rng);
    }
    lpm_volume_free(&a);
    lpm_volume_free(&b);
    free(mask);
    if (st) lpm_sample_free(out);
    return st;
}

void lpm_epoch_order(int *order, int n, uint64_t seed, int64_t epoch) {
    lpm_rng r;
    lpm_rng_seed(&r, seed * 0x9E3779B97F4A7C15ULL + (uint64_t)epoch + 1);
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {  /* Fisher-Yates */
        int j = (int)(lpm_rng_u64(&r) % (uint64_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* ------------------------------------------------------------------ loader */

static lpm_status make_kth(lpm_loader *L, int64_t k, lpm_sample *out) {
    int n = L->ds->n;
    int *order = malloc(sizeof(int) * (size_t)n);
    if (!order) return lpm_fail(LPM_ERR_INTERNAL, "out of memory");
    lpm_epoch_order(order, n, L->seed, k / n);
    int i = order[k % n];
    free(order);
    lpm_rng r;
    lpm_rng_seed(&r, L->seed ^ (0xD1B54A32D192ED03ULL * (uint64_t)(k + 1)));
    return lpm_make_sample(out, L->ds, i, &L->spec, &r);
}

static void *loader_main(void *arg) {
    lpm_loader *L = arg;
    pthread_mutex_lock(&L->mu);
    while (!L->stop) {
        if (L->ready) {
            pthread_cond_wait(&L->cv, &L->mu);
            continue;
        }
        int64_t k = L->next_k;
        pthread_mutex_unlock(&L->mu);
        lpm_sample s;
        lpm_status st = make_kth(L, k, &s);
        pthread_mutex_lock(&L->mu);
        L->slot = s;
        L->status = st;
        if (st) snprintf(L->error, sizeof L->error, "%s", lpm_last_error());
        L->ready = 1;
        pthread_cond_broadcast(&L->cv);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

/* Index of the i-th sample this loader takes. */
static int64_t share_k(const lpm_loader *L, int64_t i) {
    return (L->first_step + i / L->count) * L->batch + L->first + i % L->count;
}

lpm_status lpm_loader_start(lpm_loader *L, const lpm_dataset *ds, const lpm_sample_spec *spec,
                            uint64_t seed, int64_t first_k) {
    return lpm_loader_start_share(L, ds, spec, seed, first_k, 1, 0, 1);
}

lpm_status lpm_loader_start_share(lpm_loader *L, const lpm_dataset *ds, const lpm_sample_spec *spec,
                                  uint64_t seed, int64_t first_step, int64_t batch, int64_t first,
                                  int64_t count) {
    memset(L, 0, sizeof *L);
    if (batch < 1 || count < 1 || first < 0 || first + count > batch)
        return lpm_fail(LPM_ERR_USAGE, "loader share %lld+%lld of a batch of %lld: not within the batch",
                        (long long)first, (long long)count, (long long)batch);
    L->ds = ds;
    L->spec = *spec;
    L->seed = seed;
    L->steps_per_epoch = ds->n;
    L->batch = batch, L->first = first, L->count = count, L->first_step = first_step;
    L->next_k = share_k(L, 0);
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv, NULL);
    if (pthread_create(&L->thread, NULL, loader_main, L) != 0)
        return lpm_fail(LPM_ERR_INTERNAL, "cannot start the data loader thread");
    L->running = 1;
    return LPM_OK;
}

lpm_status lpm_loader_next(lpm_loader *L, lpm_sample *out) {
    pthread_mutex_lock(&L->mu);
    while (!L->ready) pthread_cond_wait(&L->cv, &L->mu);
    lpm_status st = L->status;
    *out = L->slot;
    memset(&L->slot, 0, sizeof L->slot);
    if (st) lpm_fail(st, "%s", L->error);
    L->ready = 0;
    L->next_k = share_k(L, ++L->taken);
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    return st;
}

void lpm_loader_stop(lpm_loader *L) {
    if (!L->running) return;
    pthread_mutex_lock(&L->mu);
    L->stop = 1;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    pthread_join(L->thread, NULL);
    lpm_sample_free(&L->slot);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv);
    L->running = 0;
}
