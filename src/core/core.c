/* madvise and MADV_HUGEPAGE (the build defines _POSIX_C_SOURCE, which hides them) */
#define _DEFAULT_SOURCE
#include "core.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/mman.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

static _Thread_local char last_error[1024];

const char *lpm_last_error(void) { return last_error; }
void lpm_clear_error(void) { last_error[0] = '\0'; }

lpm_status lpm_fail(lpm_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

lpm_status lpm_prefix_error(lpm_status code, const char *fmt, ...) {
    char prefix[sizeof last_error], message[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(message, last_error, sizeof message);
    return lpm_fail(code, "%s: %s", prefix, message);  /* cut to the buffer where too long */
}

size_t lpm_mul_size(size_t a, size_t b, int *ok) {
    if (a != 0 && b > SIZE_MAX / a) {
        if (ok) *ok = 0;
        return 0;
    }
    return a * b;
}

void *lpm_malloc(size_t n, size_t size) {
    int ok = 1;
    size_t bytes = lpm_mul_size(n, size, &ok);
    if (!ok || bytes > SIZE_MAX - 64) {
        lpm_fail(LPM_ERR_INTERNAL, "allocation of %zu x %zu bytes overflows", n, size);
        return NULL;
    }
    /* Volumes (from 8 MB) on 2 MB boundaries, in whole 2 MB pages, marked for the kernel's
     * transparent huge pages: a branch walking the volume with a stride of kilobytes
     * touches a new 4 KB page at every voxel, and first touches fault 512x less often. */
    const size_t huge = (size_t)2 << 20;
    const int big = bytes >= 4 * huge && bytes <= SIZE_MAX - huge;
    const size_t align = big ? huge : 64;
    size_t rounded = (bytes + align - 1) / align * align;
    void *p = aligned_alloc(align, rounded ? rounded : align);
    if (!p) lpm_fail(LPM_ERR_INTERNAL, "out of memory allocating %zu bytes", bytes);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (p && big) madvise(p, rounded, MADV_HUGEPAGE);   /* advice only: errors change nothing */
#endif
    return p;
}

void *lpm_calloc(size_t n, size_t size) {
    void *p = lpm_malloc(n, size);
    if (p) memset(p, 0, n * size);
    return p;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void lpm_rng_seed(lpm_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t lpm_rng_u64(lpm_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double lpm_rng_uniform(lpm_rng *r) { return (double)(lpm_rng_u64(r) >> 11) * 0x1.0p-53; }

double lpm_rng_normal(lpm_rng *r) {
    /* Box-Muller; one value per call keeps the state plain. */
    double u1 = lpm_rng_uniform(r), u2 = lpm_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

int lpm_set_threads(int n) {
#ifdef _OPENMP
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
    return n;
#else
    (void)n;
    return 1;
#endif
}

int lpm_get_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int lpm_thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

double lpm_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

lpm_status lpm_check_input_file(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) return lpm_fail(LPM_ERR_INPUT, "%s: no such file", path);
        return lpm_fail(LPM_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) return lpm_fail(LPM_ERR_INPUT, "%s: is a folder, not a file", path);
    if (!S_ISREG(st.st_mode))
        return lpm_fail(LPM_ERR_INPUT, "%s: is a %s, not a regular file", path,
                        S_ISFIFO(st.st_mode) ? "FIFO (named pipe)"
                        : S_ISSOCK(st.st_mode) ? "socket" : "device");
    if (access(path, R_OK) != 0)
        return lpm_fail(LPM_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    return LPM_OK;
}

static _Atomic uint64_t max_memory;

void lpm_set_max_memory(uint64_t bytes) { max_memory = bytes; }

/* MemAvailable from /proc/meminfo; 0 when it cannot be read. */
static uint64_t available_memory(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
    return (uint64_t)kb * 1024;
}

uint64_t lpm_max_memory(void) {
    if (max_memory == 0) {
        uint64_t avail = available_memory();
        max_memory = avail ? avail : UINT64_MAX;
    }
    return max_memory;
}
