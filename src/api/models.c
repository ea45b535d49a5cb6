/* The public API's bundled models by family name (include/lpmnet.h), and the version.
 * Where the models are installed is fixed relative to the library by cmake/library.cmake
 * (LPM_LIB_TO_MODELS, LPM_BIN_TO_MODELS), so a moved install tree still finds them. */
#define _GNU_SOURCE  /* dladdr */
#include "core/core.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef LPM_LIB_TO_MODELS
#define LPM_LIB_TO_MODELS "../share/lpmnet"
#endif
#ifndef LPM_BIN_TO_MODELS
#define LPM_BIN_TO_MODELS "../share/lpmnet"
#endif

const char *lpm_version(void) { return LPM_VERSION; }

static const lpm_model_family FAMILIES[] = {
    {"mri", "MR/MR: T1, T2, FLAIR, PD and their contrast-enhanced forms"},
    {"ct-mr", "CT/MR: CT (Hounsfield units) with an MR contrast"},
    {"pet-mr", "PET/MR and SPECT/MR: a functional volume with an MR contrast"},
    {"pet-ct", "PET/CT and SPECT/CT: a functional volume with CT"},
    {NULL, NULL}};

const lpm_model_family *lpm_model_families(void) { return FAMILIES; }

int lpm_model_known(const char *name) {
    for (const lpm_model_family *f = FAMILIES; name && f->name; f++)
        if (!strcmp(f->name, name)) return 1;
    return 0;
}

static void family_names(char *buf, size_t n) {
    buf[0] = '\0';
    for (const lpm_model_family *f = FAMILIES; f->name; f++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", f == FAMILIES ? "" : ", ", f->name);
}

/* The folder of the file that holds this code: liblpmnet.so, or the program that linked
 * liblpmnet.a. 0 when it cannot be found. */
static int code_folder(char *dir, size_t n) {
    char file[PATH_MAX] = "";
    Dl_info info;
    /* for code in the main program dladdr may give no usable path: ask the kernel */
    if (dladdr((void *)&lpm_model_path, &info) && info.dli_fname && strchr(info.dli_fname, '/')) {
        if (!realpath(info.dli_fname, file)) file[0] = '\0';
    }
    if (!file[0]) {
        ssize_t len = readlink("/proc/self/exe", file, sizeof file - 1);
        if (len <= 0) return 0;
        file[len] = '\0';
    }
    char *slash = strrchr(file, '/');
    if (!slash || (size_t)(slash - file) + 1 > n) return 0;
    *slash = '\0';
    snprintf(dir, n, "%s", file[0] ? file : "/");
    return 1;
}

/* The source tree (a build tree's files): LPM_SOURCE_MODELS is <source>/models. */
static int source_folder(char *dir, size_t n) {
#ifdef LPM_SOURCE_MODELS
    int len = snprintf(dir, n, "%s", LPM_SOURCE_MODELS);
    char *slash = strrchr(dir, '/');
    if (len < 0 || (size_t)len >= n || !slash) return 0;
    *slash = '\0';
    return 1;
#else
    (void)dir, (void)n;
    return 0;
#endif
}

lpm_status lpm_share_path(const char *relative, char *path, size_t size) {
    if (!relative || !*relative || !path) return lpm_fail(LPM_ERR_USAGE, "lpm_share_path: no file name");
    char dir[PATH_MAX], where[6][PATH_MAX + 32];
    int n = 0;
    if (code_folder(dir, sizeof dir)) {
        snprintf(where[n++], sizeof where[0], "%s/%s", dir, LPM_LIB_TO_MODELS);
        if (strcmp(LPM_LIB_TO_MODELS, LPM_BIN_TO_MODELS) != 0)
            snprintf(where[n++], sizeof where[0], "%s/%s", dir, LPM_BIN_TO_MODELS);
    }
    /* a build tree's own files before those of an older install in the configured prefix */
    if (source_folder(dir, sizeof dir)) {
        snprintf(where[n++], sizeof where[0], "%s/models", dir);
        snprintf(where[n++], sizeof where[0], "%s/vendor", dir);
    }
#ifdef LPM_INSTALL_MODELS
    snprintf(where[n++], sizeof where[0], "%s", LPM_INSTALL_MODELS);
#endif
    for (int k = 0; k < n; k++) {
        char candidate[2 * PATH_MAX];
        int len = snprintf(candidate, sizeof candidate, "%s/%s", where[k], relative);
        if (len < 0 || (size_t)len >= sizeof candidate || access(candidate, R_OK) != 0) continue;
        if ((size_t)len >= size)
            return lpm_fail(LPM_ERR_USAGE, "%s: the path does not fit in %zu bytes", candidate, size);
        memcpy(path, candidate, (size_t)len + 1);
        return LPM_OK;
    }
    char looked[6 * (PATH_MAX + 34)] = "";
    for (int k = 0; k < n; k++)
        snprintf(looked + strlen(looked), sizeof looked - strlen(looked), "%s%s", k ? ", " : "", where[k]);
    return lpm_fail(LPM_ERR_INPUT, "no %s in %s", relative, looked[0] ? looked : "(no folder to look in)");
}

lpm_status lpm_model_path(const char *family, const char *ext, char *path, size_t size) {
    if (!lpm_model_known(family)) {
        char names[128];
        family_names(names, sizeof names);
        return lpm_fail(LPM_ERR_USAGE, "unknown model '%s': the bundled models are %s (or pass a "
                        ".safetensors file)", family ? family : "(null)", names);
    }
    char file[128];
    snprintf(file, sizeof file, "lpmnet-%s%s", family, ext ? ext : ".safetensors");
    lpm_status st = lpm_share_path(file, path, size);
    if (st == LPM_ERR_INPUT) {
        char msg[4096];
        snprintf(msg, sizeof msg, "%s", lpm_last_error());
        /* the tool's exit code for it: a name that cannot be used here, as an unknown one */
        return lpm_fail(LPM_ERR_USAGE, "model '%s' is not installed here: %s", family, msg);
    }
    return st;
}

lpm_status lpm_model_resolve(const char *name_or_file, char *path, size_t size) {
    if (!name_or_file) name_or_file = "mri";
    /* a path (a folder separator or the weights' extension) is taken as given: the loader
     * names it if it is missing */
    if (strchr(name_or_file, '/') || strstr(name_or_file, ".safetensors") ||
        (!lpm_model_known(name_or_file) && access(name_or_file, F_OK) == 0)) {
        size_t len = strlen(name_or_file);
        if (len >= size)
            return lpm_fail(LPM_ERR_USAGE, "%s: the path does not fit in %zu bytes", name_or_file, size);
        memcpy(path, name_or_file, len + 1);
        return LPM_OK;
    }
    return lpm_model_path(name_or_file, ".safetensors", path, size);
}

lpm_status lpm_weights_load_model(lpm_weights *w, const char *name_or_file) {
    char path[PATH_MAX + 64];
    *w = (lpm_weights){0};
    lpm_status st = lpm_model_resolve(name_or_file, path, sizeof path);
    if (!st) st = lpm_weights_alloc(w);
    if (!st) st = lpm_weights_load(w, path);
    if (st) lpm_weights_free(w);
    return st;
}
