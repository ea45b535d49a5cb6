/* Shared by the libFuzzer harnesses (fuzz_*.c): one scratch folder per process, file writing,
 * and the library settings every harness wants. Header-only so each harness is one file. */
#ifndef LPM_FUZZ_UTIL_H
#define LPM_FUZZ_UTIL_H

#include "core/core.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Real declarations far above this are refused by the readers before allocating, so an
 * allocation that reaches libFuzzer's -malloc_limit_mb (= -rss_limit_mb) is a finding. */
#define FUZZ_MAX_MEMORY (256ull << 20)

static char fuzz_dir_path[512];

/* The folder dir and everything under it (the harnesses make at most two levels). */
static void fuzz_remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[1024];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (unlink(path) != 0) fuzz_remove_tree(path);
        }
    closedir(d);
    rmdir(dir);
}

/* The scratch folder is removed at exit; a crash leaves it behind, which is what one wants
 * when looking at what the reader was given. */
static void fuzz_remove_dir(void) { fuzz_remove_tree(fuzz_dir_path); }

/* The scratch folder: in $TMPDIR when set, else /dev/shm (memory, no disk wear), else /tmp,
 * named lpmfuzz.<pid>.XXXXXX so that fuzz/run.sh can remove those of processes that died of a
 * finding (which skips atexit). Made on the first call; also sets the memory cap and one
 * thread. */
static const char *fuzz_dir(void) {
    if (fuzz_dir_path[0]) return fuzz_dir_path;
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/lpmfuzz.%ld.XXXXXX", base, (long)getpid());
    if (!mkdtemp(fuzz_dir_path)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fuzz_remove_dir);
    lpm_set_max_memory(FUZZ_MAX_MEMORY);
    lpm_set_threads(1);
    return fuzz_dir_path;
}

/* dst = <scratch folder>/<name>. */
static void fuzz_path(char *dst, size_t n, const char *name) {
    snprintf(dst, n, "%s/%s", fuzz_dir(), name);
}

/* Write bytes to path, replacing it; a harness that cannot write its input is broken. */
static void fuzz_write(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

/* Read every float so ASan checks the buffer holds as many as the reader claims; the sum
 * is returned so the loop is not optimised away. */
static double fuzz_touch(const float *p, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += p[i];
    return s;
}

#endif
