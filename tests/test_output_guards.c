/* The writer's own guards, below the command line: lpm_volume_write refuses a volume with a
 * NaN or Inf voxel before creating any file (every output kind); temporary names carry the
 * pid, are registered for the signal handler and forgotten again; a dead process's
 * temporary files of the same output are removed by the next write, nothing else is. */
#include "io/io.h"
#include "test.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[1024];

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Entries of the scratch folder (leftovers of any kind). */
static int entries(void) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

static void touch(const char *name) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *fp = fopen(path, "w");
    if (fp) fclose(fp);
}

static int present(const char *name) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    return exists(path);
}

/* A pid that existed a moment ago and no longer does. */
static long dead_pid(void) {
    pid_t p = fork();
    if (p == 0) _exit(0);
    waitpid(p, NULL, 0);
    return (long)p;
}

static void test_non_finite_refused(void) {
    lpm_volume v;
    CHECK(lpm_volume_alloc(&v, 6, 5, 4) == LPM_OK, "alloc");
    for (int i = 0; i < 120; i++) v.data[i] = (float)i / 120.0f;
    static const char *const names[] = {"o.nii", "o.nii.gz", "o.hdr", "o.img.gz"};
    const float bad[2] = {NAN, INFINITY};
    for (int b = 0; b < 2; b++) {
        v.data[7] = bad[b];
        for (int k = 0; k < 4; k++) {
            char path[2048];
            snprintf(path, sizeof path, "%s/%s", tmpdir, names[k]);
            lpm_status st = lpm_volume_write(path, &v, NULL);
            CHECK(st == LPM_ERR_INTERNAL, "%s with %g: status %d", names[k], bad[b], (int)st);
            CHECK(strstr(lpm_last_error(), "1 non-finite voxels") && strstr(lpm_last_error(), "nothing written"),
                  "message: %s", lpm_last_error());
            CHECK(entries() == 0, "%s with %g: %d files left", names[k], bad[b], entries());
        }
    }
    v.data[7] = 0.5f;
    char path[2048];
    snprintf(path, sizeof path, "%s/ok.hdr.gz", tmpdir);
    CHECK(lpm_volume_write(path, &v, NULL) == LPM_OK, "finite volume: %s", lpm_last_error());
    CHECK(entries() == 2 && present("ok.hdr.gz") && present("ok.img.gz"), "finite volume: %d files", entries());
    unlink(path);
    snprintf(path, sizeof path, "%s/ok.img.gz", tmpdir);
    unlink(path);
    lpm_volume_free(&v);
    printf("  ok   non-finite volumes refused before any file exists\n");
}

static void test_temp_names(void) {
    char path[2048], tmp[4096], want[64];
    snprintf(path, sizeof path, "%s/t.nii", tmpdir);
    snprintf(want, sizeof want, ".tmp.%ld.", (long)getpid());
    lpm_atomic_file f;
    CHECK(lpm_atomic_open(&f, path) == LPM_OK, "open: %s", lpm_last_error());
    CHECK(strstr(f.tmp, want) != NULL, "atomic temp name %s lacks %s", f.tmp, want);
    lpm_atomic_abort(&f);
    CHECK(lpm_temp_name_like(tmp, sizeof tmp, path, ".nii") == LPM_OK, "name");
    CHECK(strstr(tmp, want) != NULL, "temp name %s lacks %s", tmp, want);
    lpm_temp_forget(tmp);
    /* the registry has 32 slots: registering and forgetting many times never fills it */
    for (int i = 0; i < 1000; i++) {
        CHECK(lpm_atomic_open(&f, path) == LPM_OK, "open %d", i);
        if (i % 2) lpm_atomic_abort(&f);
        else CHECK(lpm_atomic_commit(&f) == LPM_OK, "commit %d", i);
    }
    unlink(path);
    CHECK(entries() == 0, "%d files left", entries());
    printf("  ok   temporary names carry the pid; 1000 opens, no leftovers\n");
}

/* A child registers a temporary file, then dies of SIGTERM: the handler removes the file
 * and the child's status is the signal's. */
static void test_signal_cleanup(void) {
    char path[2048];
    snprintf(path, sizeof path, "%s/s.nii", tmpdir);
    pid_t p = fork();
    if (p == 0) {
        lpm_cleanup_on_signals();
        lpm_atomic_file f;
        if (lpm_atomic_open(&f, path) != LPM_OK) _exit(3);
        fputs("partial", f.fp);
        fflush(f.fp);
        raise(SIGTERM);
        _exit(4);
    }
    int status = 0;
    waitpid(p, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "child status %#x", status);
    CHECK(entries() == 0, "SIGTERM left %d files", entries());
    printf("  ok   SIGTERM removes a registered temporary file and kills with SIGTERM\n");
}

static void test_stale_removed(void) {
    long dead = dead_pid(), me = (long)getpid();
    char name[256];
    const char *stale_fmt[] = {".o.hdr.tmp.%ld.3.hdr", ".o.hdr.tmp.%ld.3.img.gz", "o.nii.gz.tmp.%ld.a1b2c3"};
    const char *kept_fmt[] = {".other.hdr.tmp.%ld.1.hdr", ".o.hdr.tmp.%ld.x", "o.nii.gz.tmp.%ld.XYZ", "o.nii.gz.tmp.%ldx.1"};
    for (int k = 0; k < 3; k++) snprintf(name, sizeof name, stale_fmt[k], dead), touch(name);
    for (int k = 0; k < 3; k++) snprintf(name, sizeof name, stale_fmt[k], me), touch(name);
    for (int k = 0; k < 4; k++) snprintf(name, sizeof name, kept_fmt[k], dead), touch(name);

    lpm_volume v;
    CHECK(lpm_volume_alloc(&v, 4, 4, 4) == LPM_OK, "alloc");
    v.data[0] = 1;
    char path[2048];
    snprintf(path, sizeof path, "%s/o.img", tmpdir); /* the pair's header is o.hdr */
    CHECK(lpm_volume_write(path, &v, NULL) == LPM_OK, "write: %s", lpm_last_error());
    snprintf(path, sizeof path, "%s/o.nii.gz", tmpdir);
    lpm_atomic_file f;
    CHECK(lpm_atomic_open(&f, path) == LPM_OK, "open");
    lpm_atomic_abort(&f);
    lpm_volume_free(&v);
    for (int k = 0; k < 3; k++) {
        snprintf(name, sizeof name, stale_fmt[k], dead);
        CHECK(!present(name), "dead pid's %s still there", name);
        snprintf(name, sizeof name, stale_fmt[k], me);
        CHECK(present(name), "live pid's %s removed", name);
    }
    for (int k = 0; k < 4; k++) {
        snprintf(name, sizeof name, kept_fmt[k], dead);
        CHECK(present(name), "non-matching %s removed", name);
    }
    printf("  ok   a dead pid's temporary files of the same output are removed, nothing else\n");
}

int main(void) {
    const char *base = test_env("LPM_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/test_output_guards.%ld", base ? base : "/tmp", (long)getpid());
    char cmd[2200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", tmpdir, tmpdir);
    if (system(cmd) != 0) return 1;
    test_non_finite_refused();
    test_temp_names();
    test_signal_cleanup();
    test_stale_removed();
    printf("%d passed, %d failed\n", test_passed, test_failed);
    if (!test_failed) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) return 1;
    }
    return test_failed ? 1 : 0;
}
