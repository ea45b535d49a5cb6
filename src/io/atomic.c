/* Atomic output files: write beside the target, then rename, so a reader never sees a
 * half-written file and a failure leaves the old file (or nothing) in place. */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static atomic_uint temp_counter;

/* Split path into its folder ("." when none) and base name. */
static void split_path(const char *path, char *dir, size_t ndir, const char **base) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, ndir, ".");
        *base = path;
    } else if (slash == path) {
        snprintf(dir, ndir, "/");
        *base = slash + 1;
    } else {
        snprintf(dir, ndir, "%.*s", (int)(slash - path), path);
        *base = slash + 1;
    }
}

/* Why a file in path's folder cannot be created: the folder missing, not a folder, ... */
static lpm_status fail_create(const char *path, int err) {
    char dir[4096];
    const char *base;
    split_path(path, dir, sizeof dir, &base);
    struct stat st;
    if (stat(dir, &st) != 0)
        return lpm_fail(LPM_ERR_INPUT, "%s: cannot write: folder %s: %s", path, dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return lpm_fail(LPM_ERR_INPUT, "%s: cannot write: %s is not a folder", path, dir);
    return lpm_fail(LPM_ERR_INPUT, "%s: cannot write: %s", path, strerror(err));
}

lpm_status lpm_atomic_open(lpm_atomic_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    if (!path || !*path) return lpm_fail(LPM_ERR_USAGE, "empty output path");
    size_t len = strlen(path);
    if (len >= sizeof f->path - 24)
        return lpm_fail(LPM_ERR_INPUT, "%s: path too long", path);
    if (path[len - 1] == '/') return lpm_fail(LPM_ERR_INPUT, "%s: is a folder, not a file", path);
    memcpy(f->path, path, len + 1);
    /* O_EXCL with our own suffix instead of mkstemp so the final file gets the usual
     * 0666 & ~umask permissions rather than mkstemp's 0600. */
    uint64_t seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)time(NULL);
    for (int attempt = 0; attempt < 100; attempt++) {
        uint64_t x = seed + 0x632be59bd9b4e019ULL * (atomic_fetch_add(&temp_counter, 1) + 1u);
        x ^= x >> 29;
        x *= 0xbf58476d1ce4e5b9ULL;
        x ^= x >> 32;
        snprintf(f->tmp, sizeof f->tmp, "%s.tmp.%06llx", path, (unsigned long long)(x & 0xffffff));
        int fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0) {
            if (errno == EEXIST) continue;
            int err = errno;
            f->tmp[0] = '\0';
            return fail_create(path, err);
        }
        f->fp = fdopen(fd, "wb");
        if (!f->fp) {
            int err = errno;
            close(fd);
            unlink(f->tmp);
            f->tmp[0] = '\0';
            return lpm_fail(LPM_ERR_INTERNAL, "%s: cannot write: %s", path, strerror(err));
        }
        return LPM_OK;
    }
    f->tmp[0] = '\0';
    return lpm_fail(LPM_ERR_INTERNAL, "%s: cannot find a free temporary name", path);
}

/* fsync the folder so the rename itself survives a crash; best effort. */
static void sync_folder(const char *path) {
    char dir[4096];
    const char *base;
    split_path(path, dir, sizeof dir, &base);
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

lpm_status lpm_atomic_commit(lpm_atomic_file *f) {
    if (!f->fp) return lpm_fail(LPM_ERR_INTERNAL, "%s: file is not open", f->path);
    int err = 0;
    if (fflush(f->fp) != 0 || ferror(f->fp)) err = errno ? errno : EIO;
    if (!err && fsync(fileno(f->fp)) != 0) err = errno;
    if (fclose(f->fp) != 0 && !err) err = errno ? errno : EIO;
    f->fp = NULL;
    if (!err && rename(f->tmp, f->path) != 0) err = errno;
    if (err) {
        unlink(f->tmp);
        f->tmp[0] = '\0';
        return lpm_fail(LPM_ERR_INTERNAL, "%s: write failed: %s", f->path, strerror(err));
    }
    f->tmp[0] = '\0';
    sync_folder(f->path);
    return LPM_OK;
}

void lpm_atomic_abort(lpm_atomic_file *f) {
    if (f->fp) fclose(f->fp);
    f->fp = NULL;
    if (f->tmp[0]) unlink(f->tmp);
    f->tmp[0] = '\0';
}

lpm_status lpm_temp_name_like(char *tmp, size_t n, const char *path, const char *ext) {
    char dir[4096];
    const char *base;
    if (!path || !*path) return lpm_fail(LPM_ERR_USAGE, "empty output path");
    if (strlen(path) >= sizeof dir) return lpm_fail(LPM_ERR_INPUT, "%s: path too long", path);
    split_path(path, dir, sizeof dir, &base);
    if (!*base) return lpm_fail(LPM_ERR_INPUT, "%s: is a folder, not a file", path);
    unsigned count = atomic_fetch_add(&temp_counter, 1);
    int len = snprintf(tmp, n, "%s/.%s.tmp.%ld.%u%s", dir, base, (long)getpid(), count,
                       ext ? ext : "");
    if (len < 0 || (size_t)len >= n) return lpm_fail(LPM_ERR_INPUT, "%s: path too long", path);
    return LPM_OK;
}

/* ------------------------------------------------------------ whole-file read */

lpm_status lpm_read_file(const char *path, unsigned char **buf, size_t *size) {
    *buf = NULL;
    *size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        if (errno == ENOENT) return lpm_fail(LPM_ERR_INPUT, "%s: no such file", path);
        return lpm_fail(LPM_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return lpm_fail(LPM_ERR_INPUT, "%s: not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    unsigned char *b = lpm_malloc(n ? n : 1, 1);
    if (!b) {
        fclose(fp);
        return LPM_ERR_INTERNAL;
    }
    size_t got = n ? fread(b, 1, n, fp) : 0;
    int err = ferror(fp);
    fclose(fp);
    if (got != n || err) {
        free(b);
        return lpm_fail(LPM_ERR_INPUT, "%s: read error%s", path, err ? "" : " (file shrank)");
    }
    *buf = b;
    *size = n;
    return LPM_OK;
}
