/* Atomic output files: write beside the target, then rename, so a reader never sees a
 * half-written file and a failure leaves the old file (or nothing) in place. */
#include "io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static atomic_uint temp_counter;

/* ------------------------------------------------------------ live temporary files
 * A signal handler may have to remove them, so the registry is plain static memory: a
 * fixed number of slots with fixed-size names, claimed and released with lock-free atomics
 * (no malloc, no lock that the interrupted thread could hold). */
enum { MAX_LIVE_TEMPS = 32, SLOT_FREE = 0, SLOT_FILLING = 1, SLOT_LIVE = 2 };
static atomic_int live_state[MAX_LIVE_TEMPS];
static char live_path[MAX_LIVE_TEMPS][4096];

void lpm_temp_register(const char *tmp) {
    size_t len = strlen(tmp);
    if (len >= sizeof live_path[0]) return;
    for (int i = 0; i < MAX_LIVE_TEMPS; i++) {
        int expected = SLOT_FREE;
        if (!atomic_compare_exchange_strong(&live_state[i], &expected, SLOT_FILLING)) continue;
        memcpy(live_path[i], tmp, len + 1);
        atomic_store(&live_state[i], SLOT_LIVE);
        return;
    }
    /* all slots taken (never with lpmnet's few outputs at a time): the file is still
     * removed on every ordinary path, only a signal would leave it */
}

void lpm_temp_forget(const char *tmp) {
    for (int i = 0; i < MAX_LIVE_TEMPS; i++)
        if (atomic_load(&live_state[i]) == SLOT_LIVE && strcmp(live_path[i], tmp) == 0) {
            atomic_store(&live_state[i], SLOT_FREE);
            return;
        }
}

/* Async-signal-safe: atomics, unlink, sigaction, sigprocmask and raise only. */
static void on_fatal_signal(int sig) {
    for (int i = 0; i < MAX_LIVE_TEMPS; i++)
        if (atomic_load(&live_state[i]) == SLOT_LIVE) unlink(live_path[i]);
    /* die of the signal itself, so the parent sees it (exit status 128 + sig in a shell) */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
}

void lpm_cleanup_on_signals(void) {
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    for (size_t k = 0; k < sizeof sigs / sizeof sigs[0]; k++) {
        struct sigaction old, sa;
        /* a signal ignored by whoever started us (nohup, a background job) stays ignored */
        if (sigaction(sigs[k], NULL, &old) != 0 || old.sa_handler == SIG_IGN) continue;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_fatal_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        sigaction(sigs[k], &sa, NULL);
    }
}

/* Skips the decimal (hex: lower-case hex) digits at *p; whether there was at least one. */
static int skip_digits(const char **p, int hex) {
    const char *s = *p;
    while (hex ? ((**p >= '0' && **p <= '9') || (**p >= 'a' && **p <= 'f')) : (**p >= '0' && **p <= '9'))
        (*p)++;
    return *p > s;
}

/* A temporary file left by a process that no longer exists: name is exactly
 * "<prefix><pid>.<suffix>" where suffix is lower-case hex (lpm_atomic_open) or a counter
 * plus an optional extension such as ".hdr.gz" (lpm_temp_name_like). */
static int is_stale_temp(const char *name, const char *prefix) {
    size_t np = strlen(prefix);
    if (strncmp(name, prefix, np) != 0) return 0;
    const char *p = name + np, *digits = p;
    if (!skip_digits(&p, 0) || *p != '.' || p - digits > 9) return 0;
    long pid = strtol(digits, NULL, 10);
    p++;
    if (!skip_digits(&p, 1)) return 0;
    if (*p) {
        /* an extension: dots and lower-case letters/digits, short */
        if (*p != '.' || strlen(p) > 16) return 0;
        for (const char *q = p; *q; q++)
            if (!(*q == '.' || (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9'))) return 0;
    }
    if (pid <= 0 || pid == (long)getpid()) return 0;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* Remove dir/<prefix><dead pid>.* files: what a killed writer of the same output left. */
static void remove_stale_temps(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    if (!d) return;
    char full[8200];
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_stale_temp(e->d_name, prefix)) continue;
        int n = snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        if (n > 0 && (size_t)n < sizeof full) unlink(full);
    }
    closedir(d);
}

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
    if (len >= sizeof f->path - 40)
        return lpm_fail(LPM_ERR_INPUT, "%s: path too long", path);
    if (path[len - 1] == '/') return lpm_fail(LPM_ERR_INPUT, "%s: is a folder, not a file", path);
    memcpy(f->path, path, len + 1);
    char dir[4096], prefix[4200];
    const char *base;
    split_path(path, dir, sizeof dir, &base);
    snprintf(prefix, sizeof prefix, "%s.tmp.", base);
    remove_stale_temps(dir, prefix);
    /* O_EXCL with our own suffix instead of mkstemp so the final file gets the usual
     * 0666 & ~umask permissions rather than mkstemp's 0600; the pid in the name lets a
     * later run tell a dead writer's leftover from a live one's file. */
    long pid = (long)getpid();
    uint64_t seed = (uint64_t)pid * 0x9e3779b97f4a7c15ULL ^ (uint64_t)time(NULL);
    for (int attempt = 0; attempt < 100; attempt++) {
        uint64_t x = seed + 0x632be59bd9b4e019ULL * (atomic_fetch_add(&temp_counter, 1) + 1u);
        x ^= x >> 29;
        x *= 0xbf58476d1ce4e5b9ULL;
        x ^= x >> 32;
        snprintf(f->tmp, sizeof f->tmp, "%s.tmp.%ld.%06llx", path, pid, (unsigned long long)(x & 0xffffff));
        /* registered before it exists, so a signal right after open still removes it */
        lpm_temp_register(f->tmp);
        int fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0) {
            int err = errno;
            lpm_temp_forget(f->tmp);
            if (err == EEXIST) continue;
            f->tmp[0] = '\0';
            return fail_create(path, err);
        }
        f->fp = fdopen(fd, "wb");
        if (!f->fp) {
            int err = errno;
            close(fd);
            unlink(f->tmp);
            lpm_temp_forget(f->tmp);
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
    if (err) unlink(f->tmp);
    lpm_temp_forget(f->tmp);
    f->tmp[0] = '\0';
    if (err) return lpm_fail(LPM_ERR_INTERNAL, "%s: write failed: %s", f->path, strerror(err));
    sync_folder(f->path);
    return LPM_OK;
}

void lpm_atomic_abort(lpm_atomic_file *f) {
    if (f->fp) fclose(f->fp);
    f->fp = NULL;
    if (f->tmp[0]) {
        unlink(f->tmp);
        lpm_temp_forget(f->tmp);
    }
    f->tmp[0] = '\0';
}

lpm_status lpm_temp_name_like(char *tmp, size_t n, const char *path, const char *ext) {
    char dir[4096];
    const char *base;
    if (!path || !*path) return lpm_fail(LPM_ERR_USAGE, "empty output path");
    if (strlen(path) >= sizeof dir) return lpm_fail(LPM_ERR_INPUT, "%s: path too long", path);
    split_path(path, dir, sizeof dir, &base);
    if (!*base) return lpm_fail(LPM_ERR_INPUT, "%s: is a folder, not a file", path);
    char prefix[4200];
    snprintf(prefix, sizeof prefix, ".%s.tmp.", base);
    remove_stale_temps(dir, prefix);
    unsigned count = atomic_fetch_add(&temp_counter, 1);
    int len = snprintf(tmp, n, "%s/.%s.tmp.%ld.%u%s", dir, base, (long)getpid(), count,
                       ext ? ext : "");
    if (len < 0 || (size_t)len >= n) return lpm_fail(LPM_ERR_INPUT, "%s: path too long", path);
    lpm_temp_register(tmp);
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
