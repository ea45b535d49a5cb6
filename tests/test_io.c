/* File I/O: atomic files, safetensors, weights, NIfTI volumes (every datatype, byte order,
 * scaling, geometry round trip, every error). Independent checks come from nifti_clib itself
 * (files built voxel by voxel here), NumPy/nibabel (via LPM_PYTHON) and the real data's
 * MANIFESTs. */
#include "io/io.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <nifti2_io.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char tmpdir[1024];
static const char *python;  /* NULL when NumPy/nibabel are not available */

/* ------------------------------------------------------------ helpers */

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", tmpdir, name); }

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Number of entries in the scratch folder whose name contains ".tmp." (leftovers). */
static int temp_leftovers(void) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(data, 1, n, fp) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(fp);
}

static size_t read_bytes(const char *path, void *buf, size_t cap) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    size_t n = fread(buf, 1, cap, fp);
    fclose(fp);
    return n;
}

/* Run a Python snippet; its stdout goes into out (may be NULL). Returns the exit status. */
static int run_python(const char *code, char *out, size_t n) {
    char script[1100], cmd[2300];
    snprintf(script, sizeof script, "%s/snippet.py", tmpdir);
    write_bytes(script, code, strlen(code));
    snprintf(cmd, sizeof cmd, "'%s' '%s' 2>&1", python, script);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t got = 0;
    if (out) {
        got = fread(out, 1, n - 1, p);
        out[got] = '\0';
    } else {
        char sink[4096];
        while (fread(sink, 1, sizeof sink, p) > 0) {}
    }
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

#define CHECK_ERR(status, code, ...)                                                       \
    do {                                                                                   \
        lpm_status s_ = (status);                                                          \
        CHECK(s_ == (code), "status %d, want %d (%s)", s_, code, lpm_last_error());        \
        const char *subs_[] = {__VA_ARGS__};                                               \
        for (size_t q_ = 0; q_ < sizeof subs_ / sizeof subs_[0]; q_++)                     \
            CHECK(strstr(lpm_last_error(), subs_[q_]) != NULL, "message '%s' lacks '%s'", \
                  lpm_last_error(), subs_[q_]);                                            \
    } while (0)

/* ------------------------------------------------------------ atomic files */

static void test_atomic(void) {
    printf("atomic files\n");
    char path[1200], bad[1200], file[1300];
    path_in(path, sizeof path, "atomic.txt");
    lpm_atomic_file f;
    CHECK(lpm_atomic_open(&f, path) == LPM_OK, "%s", lpm_last_error());
    CHECK(strncmp(f.tmp, path, strlen(path)) == 0 && exists(f.tmp), "temp %s", f.tmp);
    CHECK(!exists(path), "target appears before commit");
    fputs("hello", f.fp);
    CHECK(lpm_atomic_commit(&f) == LPM_OK, "%s", lpm_last_error());
    char buf[16] = {0};
    CHECK(read_bytes(path, buf, sizeof buf) == 5 && strcmp(buf, "hello") == 0, "content '%s'", buf);

    /* abort: the old file stays, the temporary goes */
    CHECK(lpm_atomic_open(&f, path) == LPM_OK, "%s", lpm_last_error());
    fputs("partial", f.fp);
    lpm_atomic_abort(&f);
    memset(buf, 0, sizeof buf);
    CHECK(read_bytes(path, buf, sizeof buf) == 5 && strcmp(buf, "hello") == 0, "old content lost: '%s'", buf);
    CHECK(temp_leftovers() == 0, "temporary files left behind");

    /* a folder that does not exist, and a "folder" that is a regular file */
    snprintf(bad, sizeof bad, "%s/no_such_dir/out.bin", tmpdir);
    CHECK_ERR(lpm_atomic_open(&f, bad), LPM_ERR_INPUT, bad, "No such file");
    snprintf(file, sizeof file, "%s/x.bin", path);
    CHECK_ERR(lpm_atomic_open(&f, file), LPM_ERR_INPUT, file, "not a folder");

    char tmp[1200];
    CHECK(lpm_temp_name_like(tmp, sizeof tmp, "/a/b/out.nii.gz", ".nii.gz") == LPM_OK, "%s", lpm_last_error());
    CHECK(strncmp(tmp, "/a/b/.out.nii.gz.tmp.", 21) == 0 && strcmp(tmp + strlen(tmp) - 7, ".nii.gz") == 0,
          "temp name %s", tmp);
    CHECK(lpm_temp_name_like(tmp, sizeof tmp, "out.nii", ".nii") == LPM_OK && strncmp(tmp, "./.out.nii.tmp.", 15) == 0,
          "temp name %s", tmp);
    char tmp2[1200];
    lpm_temp_name_like(tmp2, sizeof tmp2, "out.nii", ".nii");
    CHECK(strcmp(tmp, tmp2) != 0, "two temp names are equal: %s", tmp);
    CHECK(lpm_temp_name_like(tmp, 10, "/a/b/out.nii.gz", ".nii.gz") == LPM_ERR_INPUT, "short buffer accepted");
    remove(path);
}

/* ------------------------------------------------------------ safetensors */

/* A safetensors file from a header text and raw data bytes. */
static void write_st_raw(const char *path, const char *header, const void *data, size_t n) {
    size_t h = strlen(header);
    unsigned char *buf = malloc(8 + h + n);
    for (int k = 0; k < 8; k++) buf[k] = (unsigned char)((uint64_t)h >> (8 * k));
    memcpy(buf + 8, header, h);
    if (n) memcpy(buf + 8 + h, data, n);
    write_bytes(path, buf, 8 + h + n);
    free(buf);
}

static int same_bits(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof(float)) == 0;
}

static void test_st_roundtrip(void) {
    printf("safetensors round trip\n");
    char path[1200];
    path_in(path, sizeof path, "rt.safetensors");
    float scalar = 3.5f, m[6] = {1, -2, 0.1f, -0.0f, INFINITY, 1e-40f};
    m[5] = nextafterf(0, 1);  /* the smallest subnormal */
    float nanv = NAN;
    lpm_st_tensor t[4] = {
        {.name = "scalar", .ndim = 0, .data = &scalar},
        {.name = "m \"quoted\"\\name", .ndim = 2, .shape = {2, 3}, .data = m},
        {.name = "empty", .ndim = 2, .shape = {0, 4}, .data = NULL},
        {.name = "nan", .ndim = 1, .shape = {1}, .data = &nanv},
    };
    const char *meta[] = {"format", "test", "k\"ey", "v\nal"};
    CHECK(lpm_st_write(path, t, 4, meta, 2) == LPM_OK, "%s", lpm_last_error());
    unsigned char head[8];
    read_bytes(path, head, 8);
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--) hlen = hlen << 8 | head[k];
    CHECK(hlen % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)hlen);
    lpm_st_file *f = NULL;
    CHECK(lpm_st_read(path, &f) == LPM_OK, "%s", lpm_last_error());
    if (!f) return;
    CHECK(lpm_st_count(f) == 4, "count %d", lpm_st_count(f));
    CHECK(strcmp(lpm_st_name(f, 1), t[1].name) == 0 && strcmp(lpm_st_dtype(f, 1), "F32") == 0, "name/dtype");
    int ndim;
    int64_t shape[LPM_ST_MAXDIM];
    const float *p = lpm_st_find(f, "scalar", &ndim, shape);
    CHECK(p && ndim == 0 && *p == 3.5f, "scalar");
    p = lpm_st_find(f, t[1].name, &ndim, shape);
    CHECK(p && ndim == 2 && shape[0] == 2 && shape[1] == 3 && same_bits(p, m, 6), "matrix");
    p = lpm_st_find(f, "empty", &ndim, shape);
    CHECK(p && ndim == 2 && shape[0] == 0 && shape[1] == 4, "empty tensor");
    p = lpm_st_find(f, "nan", &ndim, shape);
    CHECK(p && isnan(*p), "nan");
    CHECK(lpm_st_find(f, "absent", NULL, NULL) == NULL, "absent tensor found");
    lpm_st_close(f);

    if (python) {
        /* the reference reader (reference/st.py without torch: plain json + numpy) agrees */
        char code[8192], out[2000];
        snprintf(code, sizeof code,
                 "import json, struct, numpy as np\n"
                 "b = open('%s','rb').read(); n = struct.unpack('<Q', b[:8])[0]\n"
                 "h = json.loads(b[8:8+n]); meta = h.pop('__metadata__')\n"
                 "e = h['m \"quoted\"\\\\name']; o = e['data_offsets']\n"
                 "a = np.frombuffer(b[8+n+o[0]:8+n+o[1]], '<f4')\n"
                 "print(meta['format'], meta['k\"ey'] == 'v\\nal', e['shape'], a[2] == np.float32(0.1), h['scalar']['shape'])\n",
                 path);
        int rc = run_python(code, out, sizeof out);
        CHECK(rc == 0 && strstr(out, "test True [2, 3] True []"), "python read: %s", out);
    }
    remove(path);
}

static void test_st_half(void) {
    printf("safetensors F16/BF16\n");
    char path[1200];
    path_in(path, sizeof path, "half.safetensors");
    /* every F16 code, and BF16 codes with known values */
    size_t n16 = 65536;
    static const uint16_t bf[] = {0x3f80, 0xc049, 0x7f80, 0xff80, 0x0001, 0x8000, 0x7fc0, 0x4780};
    static const float bf_want[] = {1.0f, -3.140625f, INFINITY, -INFINITY, 0x1p-133f, -0.0f, NAN, 65536.0f};
    unsigned char *data = malloc(n16 * 2 + sizeof bf);
    for (size_t i = 0; i < n16; i++) data[2 * i] = (unsigned char)(i & 0xff), data[2 * i + 1] = (unsigned char)(i >> 8);
    for (size_t i = 0; i < 8; i++) data[n16 * 2 + 2 * i] = bf[i] & 0xff, data[n16 * 2 + 2 * i + 1] = bf[i] >> 8;
    char header[256];
    snprintf(header, sizeof header,
             "{\"h\":{\"dtype\":\"F16\",\"shape\":[256,256],\"data_offsets\":[0,131072]},"
             " \"b\" : {\"shape\":[8],\"dtype\":\"BF16\",\"data_offsets\":[131072,131088]}}");
    write_st_raw(path, header, data, n16 * 2 + sizeof bf);
    lpm_st_file *f = NULL;
    CHECK(lpm_st_read(path, &f) == LPM_OK, "%s", lpm_last_error());
    if (!f) goto done;
    const float *h = lpm_st_find(f, "h", NULL, NULL), *b = lpm_st_find(f, "b", NULL, NULL);
    CHECK(strcmp(lpm_st_dtype(f, 0), "F16") == 0 && strcmp(lpm_st_dtype(f, 1), "BF16") == 0, "dtypes");
    /* F16 spot checks from the IEEE 754 definition */
    CHECK(h[0x3c00] == 1.0f && h[0xc000] == -2.0f && h[0x7bff] == 65504.0f, "normal F16");
    CHECK(h[0x0001] == 0x1p-24f && h[0x03ff] == 1023 * 0x1p-24f && h[0x8001] == -0x1p-24f, "subnormal F16");
    CHECK(isinf(h[0x7c00]) && h[0x7c00] > 0 && isinf(h[0xfc00]) && h[0xfc00] < 0, "inf F16");
    CHECK(isnan(h[0x7e00]) && isnan(h[0x7c01]) && signbit(h[0x8000]) && h[0x8000] == 0, "nan / -0 F16");
    CHECK(b && same_bits(b, bf_want, 6) && isnan(b[6]) && b[7] == 65536.0f, "BF16 values");
    if (python) {
        /* all 65536 codes against NumPy's float16 -> float32 */
        char want_path[1200], code[8192], out[512];
        path_in(want_path, sizeof want_path, "f16_want.bin");
        snprintf(code, sizeof code,
                 "import numpy as np\n"
                 "np.arange(65536, dtype='<u2').view('<f2').astype('<f4').tofile('%s')\n", want_path);
        int rc = run_python(code, out, sizeof out);
        CHECK(rc == 0, "python: %s", out);
        float *want = malloc(n16 * 4);
        if (rc == 0 && read_bytes(want_path, want, n16 * 4) == n16 * 4) {
            /* NaN payloads may differ between converters; compare NaN-ness there */
            size_t bad = 0;
            for (size_t i = 0; i < n16; i++)
                if (isnan(want[i]) ? !isnan(h[i]) : memcmp(&want[i], &h[i], 4) != 0) bad++;
            CHECK(bad == 0, "%zu F16 codes differ from NumPy", bad);
        }
        free(want);
        remove(want_path);
    }
    lpm_st_close(f);
done:
    free(data);
    remove(path);
}

static void test_st_errors(void) {
    printf("safetensors errors\n");
    char path[1200];
    path_in(path, sizeof path, "bad.safetensors");
    lpm_st_file *f = NULL;
    float four[4] = {1, 2, 3, 4};
    static const struct { const char *header; size_t ndata; const char *want; } cases[] = {
        {"{\"a\":", 0, "tensor 'a': entry is not an object"},
        {"{\"a\" 5}", 0, "bad safetensors header: expected ':'"},
        {"[1,2]", 0, "not a JSON object"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} junk", 8, "trailing"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "outside the data"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,4]}}", 16, "outside the data"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 16, "span 8 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0, "negative"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,0]}}", 0, "integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,0]}}", 0,
         "too large"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,99999999999999999999]}}", 4, "too large"},
        {"{\"cfc.fc.weight\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16,
         "tensor 'cfc.fc.weight': dtype I64 not supported"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "appears twice"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "missing data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "unexpected"},
        {"{\"__metadata__\":{\"a\":1}}", 0, "values must be strings"},
        {"{\"a\\q\":{}}", 0, "bad escape"},
        {"", 0, "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_st_raw(path, cases[i].header, four, cases[i].ndata);
        lpm_status s = lpm_st_read(path, &f);
        CHECK(s == LPM_ERR_INPUT && f == NULL, "case %zu accepted", i);
        CHECK(strstr(lpm_last_error(), path) && strstr(lpm_last_error(), cases[i].want),
              "case %zu: message '%s' lacks '%s'", i, lpm_last_error(), cases[i].want);
        if (f) lpm_st_close(f), f = NULL;
    }
    /* header length larger than the file, and a length that overflows any size */
    unsigned char raw[16] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    write_bytes(path, raw, 10);
    CHECK_ERR(lpm_st_read(path, &f), LPM_ERR_INPUT, path, "past the end");
    memset(raw, 0xff, 8);
    write_bytes(path, raw, 10);
    CHECK_ERR(lpm_st_read(path, &f), LPM_ERR_INPUT, path, "past the end");
    write_bytes(path, raw, 5);
    CHECK_ERR(lpm_st_read(path, &f), LPM_ERR_INPUT, path, "too short");
    remove(path);
    CHECK_ERR(lpm_st_read(path, &f), LPM_ERR_INPUT, path, "no such file");

    char bad[1200];
    snprintf(bad, sizeof bad, "%s/no_such_dir/w.safetensors", tmpdir);
    lpm_st_tensor t = {.name = "a", .ndim = 1, .shape = {4}, .data = four};
    CHECK_ERR(lpm_st_write(bad, &t, 1, NULL, 0), LPM_ERR_INPUT, bad);
    CHECK(!exists(bad) && temp_leftovers() == 0, "a failed write left files");
}

/* Hostile headers: every case must be refused with LPM_ERR_INPUT, a message naming the
 * file and the problem, and nothing returned. */
static void test_st_hostile(void) {
    printf("safetensors hostile headers\n");
    char path[1200];
    path_in(path, sizeof path, "hostile.safetensors");
    lpm_st_file *f = NULL;
    float data[16] = {0};
    char deep[4200];
    /* nesting far deeper than any entry has: a recursive parser would overflow its stack */
    size_t len = (size_t)snprintf(deep, sizeof deep, "{\"a\":");
    for (int k = 0; k < 2000; k++) deep[len++] = '[';
    deep[len] = '\0';
    const struct { const char *header; size_t ndata; const char *want; } cases[] = {
        /* overlapping data: the same bytes, a partial overlap, one range inside another */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 64,
         "tensors 'a' (data_offsets [0, 8]) and 'b' ([0, 8]) overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 64, "overlap"},
        {"{\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[24,28]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[40,44]}}", 64,
         "tensors 'b' (data_offsets [0, 32]) and 'c' ([24, 28]) overlap"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[6,10]}}", 64, "overlap"},
        /* duplicate names, not next to each other; duplicate metadata keys */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 64, "tensor 'a' appears twice"},
        {"{\"__metadata__\":{\"k\":\"1\",\"j\":\"2\",\"k\":\"3\"}}", 0, "__metadata__ key 'k' appears twice"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "repeated __metadata__"},
        /* shapes: negative, too many dimensions, overflowing, not integers, size mismatch */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,0]}}", 0, "tensor 'a': negative value in shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         "shape has more than 8 entries"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775807,2],\"data_offsets\":[0,8]}}", 8, "too large"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[4611686018427387904,2],\"data_offsets\":[0,8]}}", 8, "too large"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775808],\"data_offsets\":[0,8]}}", 8, "too large"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1e3],\"data_offsets\":[0,0]}}", 0, "integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, "non-negative integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, "shape is not an array"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8, "span 4 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "data_offsets needs 2 values"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,16]}}", 16, "more than 2 entries"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 16, "negative value in data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[18446744073709551612,18446744073709551616]}}",
         8, "too large"},
        /* strings: unterminated, a backslash at the very end, bad \u escapes, control bytes */
        {"{\"a", 0, "unterminated string"},
        {"{\"a\\", 0, "unterminated string"},
        {"{\"a\\u12\":{}}", 0, "bad \\u escape"},
        {"{\"a\\u0000b\":{}}", 0, "NUL character"},
        {"{\"a\\ud800\":{}}", 0, "unpaired surrogate"},
        {"{\"a\\udc00\":{}}", 0, "unpaired surrogate"},
        {"{\"a\tb\":{}}", 0, "control character"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4, "expected ',' or '}'"},
        {"{\"a\":{\"dtype\":\"F32-with-a-long-name\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "not supported"},
        {deep, 0, "tensor 'a': entry is not an object"},
        {"{\"a\":{\"dtype\":{\"x\":[[[[1]]]]}}}", 0, "expected a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_st_raw(path, cases[i].header, data, cases[i].ndata);
        lpm_status s = lpm_st_read(path, &f);
        CHECK(s == LPM_ERR_INPUT && f == NULL, "hostile case %zu accepted (status %d)", i, s);
        CHECK(strstr(lpm_last_error(), path) && strstr(lpm_last_error(), cases[i].want),
              "hostile case %zu: message '%s' lacks '%s'", i, lpm_last_error(), cases[i].want);
        if (f) lpm_st_close(f), f = NULL;
    }

    /* what stays allowed: empty tensors anywhere (they own no bytes), adjacent ranges,
     * gaps, ranges listed out of order, NaN values (the reader is not the judge of them) */
    write_st_raw(path,
                 "{\"e1\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
                 "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"e2\":{\"dtype\":\"F16\",\"shape\":[3,0],\"data_offsets\":[4,4]},"
                 "\"n\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[16,20]}}",
                 (float[]){1, 0, 2, 3, NAN}, 20);
    CHECK(lpm_st_read(path, &f) == LPM_OK, "allowed layout refused: %s", lpm_last_error());
    if (f) {
        const float *b = lpm_st_find(f, "b", NULL, NULL), *n = lpm_st_find(f, "n", NULL, NULL);
        CHECK(lpm_st_count(f) == 5 && b && b[0] == 2 && b[1] == 3 && n && isnan(*n), "allowed layout values");
        lpm_st_close(f), f = NULL;
    }

    /* a header length of 2^63 and one that is huge but inside a (sparse) file: refused
     * before anything of that size is read or allocated */
    unsigned char raw[16] = {0, 0, 0, 0, 0, 0, 0, 0x80, '{', '}'};
    write_bytes(path, raw, 10);
    CHECK_ERR(lpm_st_read(path, &f), LPM_ERR_INPUT, path, "runs past the end");
    {
        uint64_t big = 200u * 1000u * 1000u;
        unsigned char head[8];
        for (int k = 0; k < 8; k++) head[k] = (unsigned char)(big >> (8 * k));
        FILE *fp = fopen(path, "wb");
        int made = fp && fwrite(head, 1, 8, fp) == 8 && fseek(fp, (long)(8 + big), SEEK_SET) == 0 &&
                   fputc(' ', fp) != EOF;
        if (fp) fclose(fp);
        CHECK(made, "cannot make a sparse file");
        CHECK_ERR(lpm_st_read(path, &f), LPM_ERR_INPUT, path, "header of 200000000 bytes is too large");
    }
    /* truncated: a valid file cut inside the data, and inside the header */
    write_st_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", data, 16);
    {
        unsigned char whole[256];
        size_t n = read_bytes(path, whole, sizeof whole);
        write_bytes(path, whole, n - 3);
        CHECK_ERR(lpm_st_read(path, &f), LPM_ERR_INPUT, path, "tensor 'a'", "outside the data");
        write_bytes(path, whole, 30);
        CHECK_ERR(lpm_st_read(path, &f), LPM_ERR_INPUT, path, "runs past the end", "truncated");
    }
    /* declared data above the memory budget: refused before the float copies are made */
    static float many[4096];
    write_st_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4096],\"data_offsets\":[0,16384]}}", many, sizeof many);
    lpm_set_max_memory(16000);
    CHECK_ERR(lpm_st_read(path, &f), LPM_ERR_INPUT, path, "reading its 1 tensors needs",
              "bytes of memory, more than the 16000 allowed");
    lpm_set_max_memory(0);  /* back to the machine's available memory */
    CHECK(lpm_st_read(path, &f) == LPM_OK, "%s", lpm_last_error());
    if (f) lpm_st_close(f), f = NULL;
    remove(path);

    /* not regular files: a FIFO (would block a reader forever) and a folder */
    char fifo[1200];
    path_in(fifo, sizeof fifo, "fifo.safetensors");
    if (mkfifo(fifo, 0600) == 0) {
        alarm(20);  /* a reader that opens the FIFO blocks: end the test rather than hang */
        CHECK_ERR(lpm_st_read(fifo, &f), LPM_ERR_INPUT, fifo, "FIFO");
        alarm(0);
        remove(fifo);
    } else {
        SKIP("mkfifo: %s", strerror(errno));
    }
    CHECK_ERR(lpm_st_read(tmpdir, &f), LPM_ERR_INPUT, tmpdir, "folder");
}

/* ------------------------------------------------------------ weights */

static const lpm_tensor_info *find_info(const char *name) {
    int i = lpm_tensor_index(name);
    return i < 0 ? NULL : &lpm_tensor_table()[i];
}

static float max_abs(const float *p, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) m = fabsf(p[i]) > m ? fabsf(p[i]) : m;
    return m;
}

static void test_weights_init(void) {
    printf("weights init\n");
    lpm_weights a, b, c;
    CHECK(lpm_weights_alloc(&a) == LPM_OK && lpm_weights_alloc(&b) == LPM_OK && lpm_weights_alloc(&c) == LPM_OK,
          "alloc");
    CHECK(lpm_weights_init(&a, 7) == LPM_OK && lpm_weights_init(&b, 7) == LPM_OK && lpm_weights_init(&c, 8) == LPM_OK,
          "%s", lpm_last_error());
    CHECK(same_bits(a.data, b.data, LPM_NUM_PARAMS), "same seed, different weights");
    CHECK(!same_bits(a.data, c.data, LPM_NUM_PARAMS), "different seeds, same weights");
    /* every uniform tensor stays inside PyTorch's bound 1/sqrt(fan_in) and nearly reaches it */
    static const struct { const char *name; double fan_in; } bounds[] = {
        {"Conv_in.weight", 54},  {"Conv_in.bias", 54},
        {"Conv_P2.layers.0.conv.weight", 72}, {"Conv_P2.layers.1.conv.weight", 144},
        {"Conv_P3.layers.1.conv.bias", 144},
        {"Mamba_P1.layers.0.mamba.in_proj.weight", 24}, {"Mamba_P1.layers.0.mamba.conv1d.weight", 4},
        {"Mamba_P1.layers.0.mamba.conv1d.bias", 4}, {"Mamba_P3.layers.1.mamba.x_proj.weight", 24},
        {"Mamba_P1.layers.0.mamba.out_proj.weight", 24}, {"Mamba_P2.layers.1.mamba.dt_proj.weight", 2},
        {"cfc.ff1.weight", 24}, {"cfc_mask.time_b.weight", 24}, {"cfc.fc.weight", 24},
    };
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
        const lpm_tensor_info *t = find_info(bounds[i].name);
        float *p = lpm_weights_tensor(&a, bounds[i].name);
        CHECK(t && p, "no tensor %s", bounds[i].name);
        if (!t || !p) continue;
        double bound = 1 / sqrt(bounds[i].fan_in), m = max_abs(p, t->numel);
        double reach = t->numel >= 100 ? 0.9 : 0.3;
        CHECK(m <= bound && m >= reach * bound, "%s: max |w| %g, bound %g", bounds[i].name, m, bound);
    }
    /* the 1-element bias of cfc.fc is inside its bound */
    CHECK(fabsf(*lpm_weights_tensor(&a, "cfc.fc.bias")) <= 1 / sqrt(24.0), "cfc.fc.bias");
    int ok_alog = 1, ok_d = 1, ok_norm = 1, ok_dt = 1;
    for (int k = 1; k <= 3; k++)
        for (int l = 0; l < 2; l++) {
            char name[96];
            snprintf(name, sizeof name, "Mamba_P%d.layers.%d.mamba.A_log", k, l);
            float *alog = lpm_weights_tensor(&a, name);
            for (int c2 = 0; c2 < 24; c2++)
                for (int n = 0; n < 8; n++) ok_alog &= alog[c2 * 8 + n] == (float)log(n + 1.0);
            snprintf(name, sizeof name, "Mamba_P%d.layers.%d.mamba.D", k, l);
            float *d = lpm_weights_tensor(&a, name);
            for (int c2 = 0; c2 < 24; c2++) ok_d &= d[c2] == 1.0f;
            snprintf(name, sizeof name, "Mamba_P%d.layers.%d.norm.weight", k, l);
            float *nw = lpm_weights_tensor(&a, name);
            snprintf(name, sizeof name, "Mamba_P%d.layers.%d.norm.bias", k, l);
            float *nb = lpm_weights_tensor(&a, name);
            for (int c2 = 0; c2 < 24; c2++) ok_norm &= nw[c2] == 1.0f && nb[c2] == 0.0f;
            /* softplus(dt_proj.bias) is dt, drawn in [0.001, 0.1] */
            snprintf(name, sizeof name, "Mamba_P%d.layers.%d.mamba.dt_proj.bias", k, l);
            float *db = lpm_weights_tensor(&a, name);
            for (int c2 = 0; c2 < 24; c2++) {
                double dt = log1p(exp((double)db[c2]));
                ok_dt &= dt >= 0.001 * (1 - 1e-5) && dt <= 0.1 * (1 + 1e-5);
            }
        }
    CHECK(ok_alog, "A_log[c,n] != log(n+1)");
    CHECK(ok_d, "D != 1");
    CHECK(ok_norm, "LayerNorm not (1, 0)");
    CHECK(ok_dt, "softplus(dt_proj.bias) outside [0.001, 0.1]");
    CHECK(lpm_weights_tensor(&a, "nope") == NULL, "unknown name gives a pointer");
    lpm_weights_free(&a);
    lpm_weights_free(&b);
    lpm_weights_free(&c);
}

/* The 92 tensors of w as st tensors; the caller may edit the list. */
static int weights_tensors(const lpm_weights *w, lpm_st_tensor *t) {
    const lpm_tensor_info *tab = lpm_tensor_table();
    for (int i = 0; i < LPM_NUM_TENSORS; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].name = tab[i].name;
        t[i].ndim = tab[i].ndim;
        for (int k = 0; k < tab[i].ndim; k++) t[i].shape[k] = tab[i].shape[k];
        t[i].data = w->data + tab[i].offset;
    }
    return LPM_NUM_TENSORS;
}

static void test_weights_files(void) {
    printf("weights save/load\n");
    char path[1200];
    path_in(path, sizeof path, "w.safetensors");
    lpm_weights w, r;
    lpm_weights_alloc(&w);
    lpm_weights_alloc(&r);
    lpm_weights_init(&w, 1);
    CHECK(lpm_weights_save(&w, path) == LPM_OK, "%s", lpm_last_error());
    CHECK(lpm_weights_load(&r, path) == LPM_OK, "%s", lpm_last_error());
    CHECK(same_bits(w.data, r.data, LPM_NUM_PARAMS), "round trip changed the weights");
    char head[256] = {0};
    read_bytes(path, head, sizeof head - 1);
    CHECK(strstr(head + 8, "\"format\":\"lpmnet\"") && strstr(head + 8, "\"version\":\"" LPM_VERSION "\""),
          "metadata missing: %.120s", head + 8);
    if (python) {
        char code[8192], out[1000];
        snprintf(code, sizeof code,
                 "import json, struct\n"
                 "b = open('%s','rb').read(); n = struct.unpack('<Q', b[:8])[0]\n"
                 "h = json.loads(b[8:8+n]); h.pop('__metadata__')\n"
                 "print(len(h), h['Conv_in.weight']['shape'], h['Mamba_P1.layers.0.mamba.conv1d.weight']['shape'],"
                 " sum(e['data_offsets'][1]-e['data_offsets'][0] for e in h.values())//4, (8+n) %% 8)\n",
                 path);
        int rc = run_python(code, out, sizeof out);
        CHECK(rc == 0 && strstr(out, "92 [8, 2, 3, 3, 3] [24, 1, 4] 26051 0"), "python: %s", out);
    }

    lpm_st_tensor t[LPM_NUM_TENSORS + 1];
    char bad[1200];
    path_in(bad, sizeof bad, "bad_w.safetensors");
    int n = weights_tensors(&w, t);
    lpm_weights_init(&r, 99);
    float *before = malloc(LPM_NUM_PARAMS * sizeof(float));
    memcpy(before, r.data, LPM_NUM_PARAMS * sizeof(float));

    /* wrong shape: Conv_in.weight stored as (8,2,3,3) with 8*2*9 values */
    t[0].ndim = 4;
    lpm_st_write(bad, t, n, NULL, 0);
    CHECK_ERR(lpm_weights_load(&r, bad), LPM_ERR_INPUT,
              "bad_w.safetensors: tensor 'Conv_in.weight' has shape (8,2,3,3) but LPM-Net needs (8,2,3,3,3)");
    CHECK(same_bits(before, r.data, LPM_NUM_PARAMS), "failed load changed the weights");
    t[0].ndim = 5;
    /* missing tensor: drop the last one (cfc_mask.fc.bias) and cfc.fc.bias by swapping */
    int fc = lpm_tensor_index("cfc.fc.bias");
    lpm_st_tensor keep = t[fc];
    t[fc] = t[n - 1];
    lpm_st_write(bad, t, n - 1, NULL, 0);
    CHECK_ERR(lpm_weights_load(&r, bad), LPM_ERR_INPUT, bad, "missing tensor 'cfc.fc.bias'");
    t[fc] = keep;
    /* unknown tensor */
    float one = 1;
    t[n] = (lpm_st_tensor){.name = "foo", .ndim = 1, .shape = {1}, .data = &one};
    lpm_st_write(bad, t, n + 1, NULL, 0);
    CHECK_ERR(lpm_weights_load(&r, bad), LPM_ERR_INPUT, bad, "unknown tensor 'foo'");
    CHECK(same_bits(before, r.data, LPM_NUM_PARAMS), "failed load changed the weights");
    /* wrong dtype: patch one "F32" into "I32" in the header (same length) */
    lpm_st_write(bad, t, n, NULL, 0);
    {
        FILE *fp = fopen(bad, "r+b");
        char hdr[16384];
        size_t got = fread(hdr, 1, sizeof hdr - 1, fp);
        hdr[got] = '\0';
        char *at = strstr(hdr + 8, "\"Conv_P1.layers.0.conv.bias\":{\"dtype\":\"F32\"");
        CHECK(at != NULL, "header layout");
        if (at) {
            at = strstr(at, "F32");
            fseek(fp, (long)(at - hdr), SEEK_SET);
            fputc('I', fp);
        }
        fclose(fp);
    }
    CHECK_ERR(lpm_weights_load(&r, bad), LPM_ERR_INPUT, bad, "tensor 'Conv_P1.layers.0.conv.bias': dtype I32 not supported");
    remove(bad);
    CHECK_ERR(lpm_weights_load(&r, bad), LPM_ERR_INPUT, bad, "no such file");
    free(before);

    /* BF16 weights load as the truncated float32 values */
    {
        const lpm_tensor_info *tab = lpm_tensor_table();
        char *header = malloc(20000);
        size_t len = (size_t)snprintf(header, 20000, "{");
        for (int i = 0; i < LPM_NUM_TENSORS; i++) {
            len += (size_t)snprintf(header + len, 20000 - len, "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":[",
                                    i ? "," : "", tab[i].name);
            for (int k = 0; k < tab[i].ndim; k++)
                len += (size_t)snprintf(header + len, 20000 - len, "%s%lld", k ? "," : "", (long long)tab[i].shape[k]);
            len += (size_t)snprintf(header + len, 20000 - len, "],\"data_offsets\":[%zu,%zu]}",
                                    2 * tab[i].offset, 2 * (tab[i].offset + tab[i].numel));
        }
        snprintf(header + len, 20000 - len, "}");
        uint16_t *half = malloc(LPM_NUM_PARAMS * 2);
        float *want = malloc(LPM_NUM_PARAMS * 4);
        for (int i = 0; i < LPM_NUM_PARAMS; i++) {
            uint32_t bits;
            memcpy(&bits, &w.data[i], 4);
            half[i] = (uint16_t)(bits >> 16);
            bits &= 0xffff0000u;
            memcpy(&want[i], &bits, 4);
        }
        write_st_raw(bad, header, half, LPM_NUM_PARAMS * 2);
        CHECK(lpm_weights_load(&r, bad) == LPM_OK, "BF16 load: %s", lpm_last_error());
        CHECK(same_bits(r.data, want, LPM_NUM_PARAMS), "BF16 weights differ");
        free(header);
        free(half);
        free(want);
        remove(bad);
    }
    remove(path);
    lpm_weights_free(&w);
    lpm_weights_free(&r);
}

/* Values a model cannot have: NaN/Inf anywhere, or magnitudes far beyond any trained or
 * initialised LPM-Net. Loading refuses them naming the file, tensor and first bad index
 * and leaves w untouched; saving refuses non-finite weights and writes nothing. */
static void test_weights_hostile(void) {
    printf("weights with non-finite or absurd values\n");
    char path[1200];
    path_in(path, sizeof path, "hostile_w.safetensors");
    lpm_weights w, r;
    lpm_weights_alloc(&w);
    lpm_weights_alloc(&r);
    lpm_weights_init(&w, 3);
    lpm_weights_init(&r, 4);
    /* the bound (1e4) sits far above a fresh initialisation (and the bundled model, 6.75) */
    float m = max_abs(w.data, LPM_NUM_PARAMS);
    CHECK(m > 1 && m < 7, "fresh init max |w| %g", m);
    float *before = malloc(LPM_NUM_PARAMS * sizeof(float));
    memcpy(before, r.data, LPM_NUM_PARAMS * sizeof(float));
    lpm_st_tensor t[LPM_NUM_TENSORS];
    int n = weights_tensors(&w, t);
    const lpm_tensor_info *cin = find_info("Conv_in.weight"), *dtb = find_info("Mamba_P2.layers.1.mamba.dt_proj.bias");
    /* Conv_in.weight is (8,2,3,3,3): flat index 59 = (1,0,0,1,2) */
    static const struct { float value; const char *tensor; size_t at; const char *want[3]; } cases[] = {
        {NAN, "Conv_in.weight", 59, {"tensor 'Conv_in.weight' holds a non-finite value (NaN) at index 59 (1,0,0,1,2)", "not usable", ""}},
        {INFINITY, "Mamba_P2.layers.1.mamba.dt_proj.bias", 23, {"'Mamba_P2.layers.1.mamba.dt_proj.bias'", "(+inf) at index 23 (23)", ""}},
        {-INFINITY, "cfc_mask.fc.bias", 1, {"'cfc_mask.fc.bias'", "(-inf) at index 1 (1)", ""}},
        {-2e4f, "Conv_in.weight", 0, {"'Conv_in.weight' holds -20000 at index 0 (0,0,0,0,0)", "beyond the 10000", "wrongly scaled"}},
        {1e30f, "cfc.fc.weight", 5, {"'cfc.fc.weight' holds 1e+30 at index 5", "beyond", ""}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float *p = lpm_weights_tensor(&w, cases[i].tensor);
        float keep = p[cases[i].at];
        p[cases[i].at] = cases[i].value;
        CHECK(lpm_st_write(path, t, n, NULL, 0) == LPM_OK, "%s", lpm_last_error());
        CHECK_ERR(lpm_weights_load(&r, path), LPM_ERR_INPUT, path, cases[i].want[0], cases[i].want[1], cases[i].want[2]);
        CHECK(same_bits(before, r.data, LPM_NUM_PARAMS), "case %zu: a refused load changed the weights", i);
        p[cases[i].at] = keep;
    }
    /* large but plausible values still load (the bound is not a tight fit) */
    float *p = lpm_weights_tensor(&w, "Conv_in.weight");
    p[3] = 9000;
    CHECK(lpm_st_write(path, t, n, NULL, 0) == LPM_OK && lpm_weights_load(&r, path) == LPM_OK,
          "9000 refused: %s", lpm_last_error());
    CHECK(r.data[cin->offset + 3] == 9000, "9000 not loaded");
    p[3] = 0.5f;
    remove(path);
    /* saving: non-finite weights are refused and nothing (not even a temporary) is written */
    float *bias = lpm_weights_tensor(&w, dtb->name);
    bias[7] = NAN;
    CHECK_ERR(lpm_weights_save(&w, path), LPM_ERR_INPUT, path, "not written",
              "tensor 'Mamba_P2.layers.1.mamba.dt_proj.bias' holds a non-finite value (NaN) at index 7");
    CHECK(!exists(path) && temp_leftovers() == 0, "a refused save left a file");
    bias[7] = -INFINITY;
    CHECK_ERR(lpm_weights_save(&w, path), LPM_ERR_INPUT, path, "(-inf) at index 7");
    CHECK(!exists(path) && temp_leftovers() == 0, "a refused save left a file");
    bias[7] = -5;
    CHECK(lpm_weights_save(&w, path) == LPM_OK, "%s", lpm_last_error());
    remove(path);
    free(before);

    /* lpm_fuse's own check: weights that load can still overflow; the output is checked
     * and nothing is returned */
    lpm_volume a = {0}, b = {0}, fused = {0}, base = {0};
    lpm_volume_alloc(&a, 17, 16, 16);
    lpm_volume_alloc(&b, 17, 16, 16);
    for (int64_t i = 0; i < lpm_volume_numel(&a); i++) {
        a.data[i] = (float)(i % 37);
        b.data[i] = (float)((i * 7) % 23);
    }
    CHECK(lpm_fuse(&w, &a, &b, &fused, &base, NULL, NULL, 1, NULL, NULL) == LPM_OK, "%s", lpm_last_error());
    lpm_volume_free(&fused);
    lpm_volume_free(&base);
    /* x1000: every |w| below the load bound, yet the network overflows */
    for (int i = 0; i < LPM_NUM_PARAMS; i++) w.data[i] *= 1000;
    CHECK(max_abs(w.data, LPM_NUM_PARAMS) < 1e4, "scaled weights beyond the load bound");
    CHECK_ERR(lpm_fuse(&w, &a, &b, &fused, &base, NULL, NULL, 1, NULL, NULL), LPM_ERR_INPUT,
              "the model gives non-finite values for these inputs", "volume: ", "at voxel x=");
    CHECK(fused.data == NULL && base.data == NULL, "a failed fuse returned volumes");
    lpm_volume_free(&fused);
    lpm_volume_free(&base);
    lpm_volume_free(&a);
    lpm_volume_free(&b);
    lpm_weights_free(&w);
    lpm_weights_free(&r);
}

/* ------------------------------------------------------------ NIfTI */

/* Write a small NIfTI file with nifti_clib: dims (dim[0] first), datatype, raw values from
 * val(i) as double, scaling. Returns 0 on success. */
static int make_nifti(const char *path, const int64_t *dims, int datatype, double slope, double inter,
                      int nifti_type) {
    int64_t d[8] = {0, 1, 1, 1, 1, 1, 1, 1};
    for (int k = 0; k <= dims[0]; k++) d[k] = dims[k];
    nifti_image *nim = nifti_make_new_nim(d, datatype, 1);
    if (!nim) return 1;
    nim->scl_slope = slope;
    nim->scl_inter = inter;
    nim->nifti_type = nifti_type;
    free(nim->fname);
    free(nim->iname);
    nim->fname = nifti_strdup(path);
    nim->iname = nifti_strdup(path);
    if (nifti_type == NIFTI_FTYPE_NIFTI1_2) {
        size_t n = strlen(path);
        strcpy(nim->iname + n - 4, ".img");
    }
    unsigned char *p = nim->data;
    for (int64_t i = 0; i < nim->nvox * nim->nbyper; i++) p[i] = (unsigned char)(i * 37 + 11);
    nifti_image_write(nim);
    nifti_image_free(nim);
    return !exists(path);
}

/* A voxel pattern per type covering its extremes. */
static double pattern(int dt, int64_t i) {
    switch (dt) {
    case NIFTI_TYPE_UINT8: return (double)((i * 37) % 256);
    case NIFTI_TYPE_INT8: return (double)((i * 37) % 256 - 128);
    case NIFTI_TYPE_INT16: return i == 0 ? -32768.0 : i == 1 ? 32767.0 : (double)(i * 601 - 16000);
    case NIFTI_TYPE_UINT16: return i == 0 ? 65535.0 : (double)(i * 997);
    case NIFTI_TYPE_INT32: return i == 0 ? -2147483648.0 : (double)(i * 1234567 - 30000000);
    case NIFTI_TYPE_UINT32: return i == 0 ? 4294967295.0 : (double)(i * 7654321);
    case NIFTI_TYPE_INT64: return i == 0 ? -9007199254740992.0 : (double)(i * 123456789 - 4000000000);
    case NIFTI_TYPE_UINT64: return i == 0 ? 18446744073709551615.0 : (double)(i * 987654321);
    case NIFTI_TYPE_FLOAT32: return (double)(float)((double)i * 0.37 - 9.5);
    case NIFTI_TYPE_FLOAT64: return (double)i * 0.37e10 - 9.5e10;
    case NIFTI_TYPE_FLOAT128: return (double)i * 0.25 - 3;
    }
    return 0;
}

static void store(void *data, int dt, int64_t i, double v) {
    unsigned char *p = data;
#define PUT(type) do { type x = (type)v; memcpy(p + i * (int64_t)sizeof x, &x, sizeof x); } while (0)
    switch (dt) {
    case NIFTI_TYPE_UINT8: PUT(uint8_t); break;
    case NIFTI_TYPE_INT8: PUT(int8_t); break;
    case NIFTI_TYPE_INT16: PUT(int16_t); break;
    case NIFTI_TYPE_UINT16: PUT(uint16_t); break;
    case NIFTI_TYPE_INT32: PUT(int32_t); break;
    case NIFTI_TYPE_UINT32: PUT(uint32_t); break;
    case NIFTI_TYPE_INT64: PUT(int64_t); break;
    case NIFTI_TYPE_UINT64: {
        uint64_t x = v >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)v;
        memcpy(p + i * 8, &x, 8);
        break;
    }
    case NIFTI_TYPE_FLOAT32: PUT(float); break;
    case NIFTI_TYPE_FLOAT64: PUT(double); break;
    case NIFTI_TYPE_FLOAT128: PUT(long double); break;
    }
#undef PUT
}

static void test_nifti_types(void) {
    printf("NIfTI datatypes and scaling\n");
    static const int types[] = {NIFTI_TYPE_UINT8, NIFTI_TYPE_INT8, NIFTI_TYPE_INT16, NIFTI_TYPE_UINT16,
                                NIFTI_TYPE_INT32, NIFTI_TYPE_UINT32, NIFTI_TYPE_INT64, NIFTI_TYPE_UINT64,
                                NIFTI_TYPE_FLOAT32, NIFTI_TYPE_FLOAT64, NIFTI_TYPE_FLOAT128};
    static const double scl[][2] = {{0, 0}, {0, 5}, {2.5, -7}, {1, 0}};
    char path[1200];
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t si = 0; si < 4; si++) {
            int dt = types[ti];
            if (dt == NIFTI_TYPE_FLOAT128 && sizeof(long double) != 16) continue;
            const char *ext = si == 3 ? "hdr" : si == 2 ? "nii.gz" : "nii";
            snprintf(path, sizeof path, "%s/type_%d_%zu.%s", tmpdir, dt, si, ext);
            int64_t d[8] = {3, 5, 4, 3, 1, 1, 1, 1};
            nifti_image *nim = nifti_make_new_nim(d, dt, 1);
            for (int64_t i = 0; i < nim->nvox; i++) store(nim->data, dt, i, pattern(dt, i));
            nim->scl_slope = scl[si][0];
            nim->scl_inter = scl[si][1];
            nim->nifti_type = si == 3 ? NIFTI_FTYPE_NIFTI1_2 : si == 1 ? NIFTI_FTYPE_NIFTI2_1 : NIFTI_FTYPE_NIFTI1_1;
            nifti_set_filenames(nim, path, 0, 1);
            nifti_image_write(nim);
            nifti_image_free(nim);
            lpm_volume v;
            lpm_status s = lpm_volume_read(path, &v);
            CHECK(s == LPM_OK, "%s: %s", path, lpm_last_error());
            if (s) continue;
            CHECK(v.nx == 5 && v.ny == 4 && v.nz == 3, "%s dims", path);
            int bad = 0;
            for (int64_t i = 0; i < 60; i++) {
                double raw = pattern(dt, i);
                if (dt == NIFTI_TYPE_UINT64 && i == 0) raw = 18446744073709551615.0;
                /* slope 0 means "no scaling", whatever the intercept says */
                float want = (float)(scl[si][0] != 0 ? raw * scl[si][0] + scl[si][1] : raw);
                if (v.data[i] != want) {
                    if (!bad) fprintf(stderr, "  %s [%lld]: got %.9g want %.9g\n", path, (long long)i, v.data[i], want);
                    bad++;
                }
            }
            CHECK(bad == 0, "%s (%s, slope %g inter %g): %d voxels differ", path, nifti_datatype_string(dt),
                  scl[si][0], scl[si][1], bad);
            lpm_volume_free(&v);
        }
}

static void test_nifti_dims_and_errors(void) {
    printf("NIfTI dimensions and read errors\n");
    char path[1200];
    lpm_volume v;
    /* 4-D and 5-D with singleton extra dimensions read as 3-D */
    static const int64_t ok_dims[][8] = {{4, 5, 4, 3, 1}, {5, 5, 4, 3, 1, 1}, {3, 7, 1, 2}};
    for (int i = 0; i < 3; i++) {
        path_in(path, sizeof path, "dims_ok.nii");
        CHECK(make_nifti(path, ok_dims[i], NIFTI_TYPE_INT16, 0, 0, 1) == 0, "make");
        lpm_status s = lpm_volume_read(path, &v);
        CHECK(s == LPM_OK && v.nx == ok_dims[i][1] && v.ny == ok_dims[i][2] && v.nz == ok_dims[i][3],
              "dims case %d: %s", i, lpm_last_error());
        if (!s) lpm_volume_free(&v);
    }
    static const struct { int64_t dims[8]; int dt; const char *want; } bad[] = {
        {{4, 5, 4, 3, 2}, NIFTI_TYPE_INT16, "4-D data (5x4x3x2); lpmnet needs a 3-D volume"},
        {{5, 5, 4, 3, 1, 2}, NIFTI_TYPE_INT16, "5-D data"},
        {{2, 5, 4}, NIFTI_TYPE_INT16, "2-D data (5x4); lpmnet needs a 3-D volume"},
        {{3, 5, 4, 3}, NIFTI_TYPE_RGB24, "datatype RGB24 not supported"},
        {{3, 5, 4, 3}, NIFTI_TYPE_RGBA32, "datatype RGBA32 not supported"},
        {{3, 5, 4, 3}, NIFTI_TYPE_COMPLEX64, "datatype COMPLEX64 not supported"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        path_in(path, sizeof path, "dims_bad.nii.gz");
        CHECK(make_nifti(path, bad[i].dims, bad[i].dt, 0, 0, 1) == 0, "make");
        CHECK_ERR(lpm_volume_read(path, &v), LPM_ERR_INPUT, path, bad[i].want);
        CHECK(v.data == NULL && v.header == NULL, "failed read left data");
    }
    /* missing, a folder, not NIfTI, truncated */
    path_in(path, sizeof path, "missing.nii.gz");
    CHECK_ERR(lpm_volume_read(path, &v), LPM_ERR_INPUT, "missing.nii.gz: no such file");
    CHECK_ERR(lpm_volume_read(tmpdir, &v), LPM_ERR_INPUT, tmpdir, "folder");
    path_in(path, sizeof path, "text.nii");
    const char *text = "this is not a NIfTI file, just some text long enough to fill a header ......\n";
    char big[2000];
    for (size_t k = 0; k < sizeof big; k++) big[k] = text[k % strlen(text)];
    write_bytes(path, big, sizeof big);
    CHECK_ERR(lpm_volume_read(path, &v), LPM_ERR_INPUT, path, "not a NIfTI file");

    /* a valid .nii.gz of noise (so it does not compress away), cut in half */
    lpm_volume n;
    lpm_volume_alloc(&n, 24, 20, 16);
    lpm_rng rng;
    lpm_rng_seed(&rng, 3);
    for (int64_t i = 0; i < lpm_volume_numel(&n); i++) n.data[i] = (float)lpm_rng_uniform(&rng);
    char full[1200];
    path_in(full, sizeof full, "noise.nii.gz");
    CHECK(lpm_volume_write(full, &n, NULL) == LPM_OK, "%s", lpm_last_error());
    CHECK(lpm_volume_read(full, &v) == LPM_OK, "%s", lpm_last_error());
    lpm_volume_free(&v);
    static unsigned char buf[1 << 16];
    size_t size = read_bytes(full, buf, sizeof buf);
    path_in(path, sizeof path, "cut.nii.gz");
    write_bytes(path, buf, size / 2);
    CHECK_ERR(lpm_volume_read(path, &v), LPM_ERR_INPUT, path, "truncated or corrupt data");
    /* corrupt the middle of the deflate stream instead */
    for (size_t k = size / 2; k < size / 2 + 64; k++) buf[k] ^= 0x5a;
    write_bytes(path, buf, size);
    CHECK_ERR(lpm_volume_read(path, &v), LPM_ERR_INPUT, path, "corrupt");
    /* uncompressed, cut after the header */
    path_in(full, sizeof full, "noise.nii");
    CHECK(lpm_volume_write(full, &n, NULL) == LPM_OK, "%s", lpm_last_error());
    size = read_bytes(full, buf, sizeof buf);
    write_bytes(path, buf, 352 + 1000);
    path_in(path, sizeof path, "cut.nii");
    write_bytes(path, buf, 352 + 1000);
    CHECK_ERR(lpm_volume_read(path, &v), LPM_ERR_INPUT, path, "truncated or corrupt data");
    /* a .hdr without its .img */
    path_in(path, sizeof path, "lonely.hdr");
    CHECK(lpm_volume_write(path, &n, NULL) == LPM_OK, "%s", lpm_last_error());
    path_in(full, sizeof full, "lonely.img");
    remove(full);
    CHECK_ERR(lpm_volume_read(path, &v), LPM_ERR_INPUT, path, "lonely.img");
    lpm_volume_free(&n);
}

static int near(double a, double b, double tol) { return fabs(a - b) <= tol; }

static void test_nifti_write(void) {
    printf("NIfTI write and geometry\n");
    /* a source with a full geometry: qform (rotation, qfac -1), a different sform, units */
    char src[1200], out[1200];
    path_in(src, sizeof src, "geom_src.nii");
    int64_t d[8] = {3, 6, 5, 4, 1, 1, 1, 1};
    nifti_image *nim = nifti_make_new_nim(d, NIFTI_TYPE_INT16, 1);
    for (int64_t i = 0; i < nim->nvox; i++) ((int16_t *)nim->data)[i] = (int16_t)(i * 3 - 50);
    nim->dx = nim->pixdim[1] = 0.9;
    nim->dy = nim->pixdim[2] = 1.1;
    nim->dz = nim->pixdim[3] = 2.5;
    nim->qform_code = NIFTI_XFORM_SCANNER_ANAT;
    nim->quatern_b = 0.1;
    nim->quatern_c = -0.2;
    nim->quatern_d = 0.3;
    nim->qoffset_x = 10.5;
    nim->qoffset_y = -20.25;
    nim->qoffset_z = 30;
    nim->qfac = -1;
    nim->pixdim[0] = -1;
    nim->sform_code = NIFTI_XFORM_MNI_152;
    double srow[3][4] = {{-0.9, 0.01, 0, 90}, {0, 1.1, 0.02, -126}, {0.03, 0, 2.5, -72}};
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++) nim->sto_xyz.m[r][c] = srow[r][c];
    nim->sto_xyz.m[3][3] = 1;
    nim->xyz_units = NIFTI_UNITS_MM;
    nim->time_units = NIFTI_UNITS_SEC;
    strcpy(nim->descrip, "geometry test");
    nim->scl_slope = 0.5;
    nim->scl_inter = 1;
    nifti_set_filenames(nim, src, 0, 1);
    nifti_image_write(nim);
    nifti_image_free(nim);

    lpm_volume v;
    CHECK(lpm_volume_read(src, &v) == LPM_OK, "%s", lpm_last_error());
    if (!v.data) return;
    int aff_ok = 1;
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++) aff_ok &= near(v.affine[r][c], srow[r][c], 1e-5);
    CHECK(aff_ok, "affine is not the sform");
    CHECK(v.pixdim[0] == 0.9f && v.pixdim[1] == 1.1f && v.pixdim[2] == 2.5f, "pixdim");
    CHECK(v.data[7] == (float)((7 * 3 - 50) * 0.5 + 1), "scaled value %g", v.data[7]);

    static const char *exts[] = {"nii.gz", "nii", "hdr", "img.gz"};
    for (int e = 0; e < 4; e++) {
        snprintf(out, sizeof out, "%s/geom_out.%s", tmpdir, exts[e]);
        CHECK(lpm_volume_write(out, &v, &v) == LPM_OK, "%s: %s", out, lpm_last_error());
        unsigned char magic[2] = {0};
        char hdr[1200];
        snprintf(hdr, sizeof hdr, "%s", out);
        if (e == 3) strcpy(hdr + strlen(hdr) - 6, "hdr.gz");
        read_bytes(hdr, magic, 2);
        int gz = magic[0] == 0x1f && magic[1] == 0x8b;
        CHECK(gz == (e == 0 || e == 3), "%s: gzip %d", hdr, gz);
        if (e >= 2) {
            char img[1200];
            snprintf(img, sizeof img, "%s", hdr);
            memcpy(img + strlen(img) - (e == 3 ? 6 : 3), "img", 3);
            CHECK(exists(hdr) && exists(img), "%s / %s missing", hdr, img);
        }
        nifti_image *w = nifti_image_read(hdr, 1);
        CHECK(w != NULL, "nifti_clib cannot read %s", hdr);
        if (!w) continue;
        CHECK(w->datatype == NIFTI_TYPE_FLOAT32 && w->nx == 6 && w->ny == 5 && w->nz == 4 && w->dim[0] == 3,
              "type/dims");
        CHECK(w->scl_slope == 1 && w->scl_inter == 0, "scl %g %g", w->scl_slope, w->scl_inter);
        CHECK(w->qform_code == NIFTI_XFORM_SCANNER_ANAT && w->sform_code == NIFTI_XFORM_MNI_152, "codes");
        CHECK(near(w->quatern_b, 0.1, 1e-6) && near(w->quatern_c, -0.2, 1e-6) && near(w->quatern_d, 0.3, 1e-6) &&
                  near(w->qoffset_x, 10.5, 1e-6) && near(w->qoffset_y, -20.25, 1e-6) && w->qfac == -1,
              "qform");
        int s_ok = 1;
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++) s_ok &= near(w->sto_xyz.m[r][c], srow[r][c], 1e-5);
        CHECK(s_ok, "sform");
        CHECK(near(w->dx, 0.9, 1e-6) && near(w->dy, 1.1, 1e-6) && near(w->dz, 2.5, 1e-6), "pixdim");
        CHECK(w->xyz_units == NIFTI_UNITS_MM && w->time_units == NIFTI_UNITS_SEC, "units");
        CHECK(strcmp(w->descrip, "geometry test") == 0, "descrip '%s'", w->descrip);
        float lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < 120; i++) lo = fminf(lo, v.data[i]), hi = fmaxf(hi, v.data[i]);
        CHECK(w->cal_min == lo && w->cal_max == hi, "cal %g %g", w->cal_min, w->cal_max);
        CHECK(memcmp(w->data, v.data, 120 * 4) == 0, "data changed");
        nifti_image_free(w);
    }
    CHECK(temp_leftovers() == 0, "temporary files left");

    if (python) {
        /* nibabel reads the written file with the same affine and values */
        char code[8192], res[1000];
        snprintf(code, sizeof code,
                 "import nibabel as nib, numpy as np\n"
                 "a = nib.load('%s'); b = nib.load('%s/geom_out.nii.gz')\n"
                 "print(np.allclose(a.affine, b.affine, atol=1e-5), np.allclose(a.header.get_qform(), b.header.get_qform(), atol=1e-5),"
                 " np.array_equal(a.get_fdata().astype(np.float32), b.get_fdata(dtype=np.float32)), b.get_data_dtype(),"
                 " b.header.get_xyzt_units())\n",
                 src, tmpdir);
        int rc = run_python(code, res, sizeof res);
        CHECK(rc == 0 && strstr(res, "True True True float32 ('mm', 'sec')"), "nibabel: %s", res);
    }

    /* no reference: identity geometry; an in-memory affine without a header is kept */
    path_in(out, sizeof out, "noref.nii");
    CHECK(lpm_volume_write(out, &v, NULL) == LPM_OK, "%s", lpm_last_error());
    lpm_volume r;
    CHECK(lpm_volume_read(out, &r) == LPM_OK, "%s", lpm_last_error());
    int id = 1;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) id &= r.affine[i][j] == (i == j);
    CHECK(id && r.pixdim[0] == 1, "identity geometry");
    lpm_volume_free(&r);
    lpm_volume m;
    lpm_volume_alloc(&m, 4, 3, 2);
    double aff[4][4] = {{0, -2, 0, 5}, {1.5, 0, 0, -7}, {0, 0, 3, 9}, {0, 0, 0, 1}};
    memcpy(m.affine, aff, sizeof aff);
    m.pixdim[0] = 1.5f, m.pixdim[1] = 2, m.pixdim[2] = 3;
    CHECK(lpm_volume_write(out, &m, &m) == LPM_OK, "%s", lpm_last_error());
    CHECK(lpm_volume_read(out, &r) == LPM_OK, "%s", lpm_last_error());
    int same = 1;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) same &= near(r.affine[i][j], aff[i][j], 1e-6);
    CHECK(same && r.pixdim[0] == 1.5f && r.pixdim[1] == 2 && r.pixdim[2] == 3, "in-memory affine lost");
    nifti_image *h = r.header;
    CHECK(h && h->qform_code > 0 && near(h->qto_xyz.m[0][1], -2, 1e-5) && near(h->qto_xyz.m[1][0], 1.5, 1e-5),
          "qform from the affine");
    /* alloc_like keeps size and geometry */
    lpm_volume like;
    CHECK(lpm_volume_alloc_like(&like, &r) == LPM_OK && like.nx == 4 && like.nz == 2 && like.header &&
              memcmp(like.affine, r.affine, sizeof r.affine) == 0 && like.data[23] == 0,
          "alloc_like");
    lpm_volume_free(&like);
    lpm_volume_free(&r);
    lpm_volume_free(&m);

    /* write errors: no file and no temporary left behind */
    char bad[1300];
    snprintf(bad, sizeof bad, "%s/no_such_dir/out.nii.gz", tmpdir);
    CHECK_ERR(lpm_volume_write(bad, &v, &v), LPM_ERR_INPUT, bad, "does not exist");
    snprintf(bad, sizeof bad, "%s/x.nii.gz", src);  /* parent is a regular file */
    CHECK_ERR(lpm_volume_write(bad, &v, &v), LPM_ERR_INPUT, bad, "not a folder");
    snprintf(bad, sizeof bad, "%s/no_such_dir/out.hdr", tmpdir);
    CHECK_ERR(lpm_volume_write(bad, &v, &v), LPM_ERR_INPUT, bad);
    path_in(bad, sizeof bad, "out.txt");
    CHECK_ERR(lpm_volume_write(bad, &v, &v), LPM_ERR_INPUT, bad, "extension");
    CHECK(!exists(bad) && temp_leftovers() == 0, "failed writes left files");
    /* overwriting keeps the file valid */
    path_in(out, sizeof out, "geom_out.nii.gz");
    CHECK(lpm_volume_write(out, &v, &v) == LPM_OK && lpm_volume_read(out, &r) == LPM_OK, "%s", lpm_last_error());
    lpm_volume_free(&r);
    lpm_volume_free(&v);
}

/* A .nii.gz big enough to be compressed as one gzip member per thread (gzip.c): the file
 * really holds several members (zlib's inflate stops at the end of the first), and the
 * volume reads back exactly, through nifti_clib and through nibabel. */
static void test_nifti_gzip_members(void) {
    lpm_set_threads(2);
    lpm_volume v = {0}, back = {0};
    CHECK(lpm_volume_alloc(&v, 64, 64, 160) == LPM_OK, "%s", lpm_last_error());
    uint64_t x = 1;
    for (int64_t i = 0; i < lpm_volume_numel(&v); i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        v.data[i] = (float)(x >> 40) / (float)(1 << 24);   /* noise: compresses poorly */
    }
    char path[4096];
    path_in(path, sizeof path, "members.nii.gz");
    CHECK(lpm_volume_write(path, &v, NULL) == LPM_OK, "%s", lpm_last_error());

    /* inflate the first member only and see what is left of the file */
    FILE *fp = fopen(path, "rb");
    unsigned char *gz = malloc(8u << 20), *raw = malloc(8u << 20);
    size_t n = fp && gz ? fread(gz, 1, 8u << 20, fp) : 0;
    if (fp) fclose(fp);
    z_stream zs = {0};
    int members = 0;
    if (n && raw && inflateInit2(&zs, 15 + 16) == Z_OK) {
        zs.next_in = gz, zs.avail_in = (uInt)n;
        zs.next_out = raw, zs.avail_out = 8u << 20;
        while (inflate(&zs, Z_NO_FLUSH) == Z_STREAM_END) {
            members++;
            if (zs.avail_in == 0 || inflateReset(&zs) != Z_OK) break;
        }
        CHECK(zs.avail_in == 0, "trailing bytes after the gzip members");
        inflateEnd(&zs);
    }
    printf("members.nii.gz: %zu bytes in %d gzip members\n", n, members);
    CHECK(members == 2, "expected 2 gzip members (2 threads), got %d", members);
    free(gz);
    free(raw);

    CHECK(lpm_volume_read(path, &back) == LPM_OK, "%s", lpm_last_error());
    int same = back.data && lpm_volume_numel(&back) == lpm_volume_numel(&v);
    for (int64_t i = 0; same && i < lpm_volume_numel(&v); i++) same = back.data[i] == v.data[i];
    CHECK(same, "multi-member .nii.gz did not read back exactly");
    if (python) {
        double sum = 0;
        for (int64_t i = 0; i < lpm_volume_numel(&v); i++) sum += v.data[i];
        char code[4608];
        snprintf(code, sizeof code,
                 "import nibabel as nib, numpy as np, sys\n"
                 "d = nib.load('%s').get_fdata(dtype=np.float64)\n"
                 "sys.exit(0 if d.shape == (64, 64, 160) and abs(d.sum() - %.17g) < 1e-9 * %.17g else 1)\n",
                 path, sum, sum);
        CHECK(run_python(code, NULL, 0) == 0, "nibabel does not read the multi-member .nii.gz back");
    }
    lpm_volume_free(&v);
    lpm_volume_free(&back);
    lpm_set_threads(0);
}

static void test_nifti_big_endian(void) {
    printf("NIfTI big-endian (nibabel)\n");
    if (!python) {
        SKIP("big-endian files: no Python with nibabel (%s)", test_env("LPM_PYTHON") ? test_env("LPM_PYTHON") : "/usr/bin/python3");
        return;
    }
    static const char *types[] = {">i2", ">f4", ">f8", ">u2", ">i4"};
    for (int t = 0; t < 5; t++) {
        char path[1200], code[8192], res[512];
        snprintf(path, sizeof path, "%s/be_%d.nii", tmpdir, t);
        snprintf(code, sizeof code,
                 "import nibabel as nib, numpy as np\n"
                 "a = (np.arange(60, dtype=np.float64).reshape(5, 4, 3, order='F') * 7.25 - 100).astype('%s')\n"
                 "h = nib.Nifti1Header(endianness='>')\n"
                 "img = nib.Nifti1Image(a, np.diag([2., 3., 4., 1.]), header=h)\n"
                 "img.header.set_data_dtype('%s'); img.header.set_slope_inter(%s)\n"
                 "img.to_filename('%s')\n"
                 "b = nib.load('%s'); assert b.header.endianness == '>' and open('%s','rb').read(4) == b'\\0\\0\\1\\x5c'\n"
                 "b.get_fdata().astype('<f4').ravel(order='F').tofile('%s.want')\n",
                 types[t], types[t], t == 0 ? "2, -1" : "1, 0", path, path, path, path);
        int rc = run_python(code, res, sizeof res);
        CHECK(rc == 0, "python: %s", res);
        if (rc) continue;
        lpm_volume v;
        CHECK(lpm_volume_read(path, &v) == LPM_OK, "%s", lpm_last_error());
        if (!v.data) continue;
        float want[60];
        char wp[1300];
        snprintf(wp, sizeof wp, "%s.want", path);
        CHECK(read_bytes(wp, want, sizeof want) == sizeof want, "want file");
        CHECK(v.nx == 5 && v.ny == 4 && v.nz == 3 && v.affine[1][1] == 3 && v.pixdim[2] == 4, "geometry");
        CHECK(same_bits(v.data, want, 60), "%s: values differ from nibabel", types[t]);
        lpm_volume_free(&v);
    }
}

/* Real data: compare voxels and sums with nibabel, dims and affines with the MANIFESTs. */
static void test_real(void) {
    printf("real data\n");
    const char *real = test_env("LPM_REAL_DATA");
    if (!real) {
        SKIP("real data: LPM_REAL_DATA not set");
        return;
    }
    static const struct { const char *file; int64_t nx, ny, nz; double aff[3][4]; } sets[] = {
        {"brats_gli_00001_000/BraTS-GLI-00001-000-t1n.nii.gz", 240, 240, 155,
         {{-1, 0, 0, 0}, {0, -1, 0, 239}, {0, 0, 1, 0}}},
        {"sri24_atlas/spgr.nii.gz", 240, 240, 155, {{-1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}}},
        {"mni2mm_templates_mr_pet_spect_ct/SPECT.nii", 91, 109, 91, {{2, 0, 0, -90}, {0, 2, 0, -126}, {0, 0, 2, -72}}},
        {"brats2015_deepmedic_3subj/brats_2013_pat0001_1/brainmask.nii.gz", 240, 240, 155,
         {{-1, 0, 0, 0}, {0, -1, 0, 239}, {0, 0, 1, 0}}},
        {"mni2mm_templates_mr_pet_spect_ct/PET.nii", 91, 109, 91, {{-2, 0, 0, 90}, {0, 2, 0, -126}, {0, 0, 2, -72}}},
    };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", real, sets[i].file);
        if (!exists(path)) {
            SKIP("%s absent", path);
            continue;
        }
        lpm_volume v;
        CHECK(lpm_volume_read(path, &v) == LPM_OK, "%s", lpm_last_error());
        if (!v.data) continue;
        CHECK(v.nx == sets[i].nx && v.ny == sets[i].ny && v.nz == sets[i].nz, "%s: dims %lldx%lldx%lld", path,
              (long long)v.nx, (long long)v.ny, (long long)v.nz);
        int aff = 1;
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++) aff &= near(v.affine[r][c], sets[i].aff[r][c], 1e-4);
        CHECK(aff, "%s: affine row0 %g %g %g %g", path, v.affine[0][0], v.affine[0][1], v.affine[0][2], v.affine[0][3]);
        if (!python) {
            lpm_volume_free(&v);
            continue;
        }
        char code[8192], res[4096];
        snprintf(code, sizeof code,
                 "import nibabel as nib, numpy as np\n"
                 "img = nib.load('%s'); a = np.asarray(img.dataobj, dtype=np.float64)\n"
                 "a = a.reshape(a.shape[:3], order='F')\n"
                 "print(img.header.endianness, float(a.sum()))\n"
                 "for k in range(0, a.size, a.size // 97): print(k, repr(float(a.ravel(order='F')[k])))\n",
                 path);
        int rc = run_python(code, res, sizeof res);
        CHECK(rc == 0, "python: %s", res);
        if (rc == 0) {
            char endian;
            double sum;
            CHECK(sscanf(res, "%c %lf", &endian, &sum) == 2, "python output: %s", res);
            double mine = 0;
            for (int64_t k = 0; k < lpm_volume_numel(&v); k++) mine += v.data[k];
            CHECK(fabs(mine - sum) <= 1e-5 * fabs(sum) + 1e-3, "%s: sum %.10g, nibabel %.10g", path, mine, sum);
            int bad = 0, count = 0;
            for (char *line = strchr(res, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
                long long k;
                double want;
                if (sscanf(line + 1, "%lld %lf", &k, &want) != 2) continue;
                count++;
                if (v.data[k] != (float)want) {
                    if (!bad) fprintf(stderr, "  %s [%lld]: %.9g vs nibabel %.9g\n", path, k, v.data[k], want);
                    bad++;
                }
            }
            CHECK(bad == 0 && count > 10, "%s: %d of %d voxels differ from nibabel (byte order %c)", path, bad,
                  count, endian);
            printf("  ok   %-40s %d voxels and the sum agree with nibabel (byte order %c)\n",
                   strrchr(path, '/') + 1, count, endian);
        }
        lpm_volume_free(&v);
    }
}

/* lpm_volume_stem: folder and volume extension off (any case), nothing else; cut to n - 1 */
static void test_volume_stem(void) {
    const char *cases[][2] = {{"data/sub-01/sub-01_T1w.nii.gz", "sub-01_T1w"}, {"a.NII", "a"},
                              {"x.hdr.gz", "x"}, {"x.img", "x"}, {"dir.v2/scan.tar.gz", "scan.tar"},
                              {"noext", "noext"}, {".nii", ".nii"}, {"dir/", ""}, {"t1.nii.gz.bak", "t1.nii.gz.bak"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        lpm_volume_stem(cases[i][0], out, sizeof out);
        CHECK(strcmp(out, cases[i][1]) == 0, "stem of '%s': '%s', want '%s'", cases[i][0], out, cases[i][1]);
    }
    char small[4];
    lpm_volume_stem("abcdef.nii", small, sizeof small);
    CHECK(strcmp(small, "abc") == 0, "stem cut to 3 characters: '%s'", small);
}

int main(void) {
    const char *base = test_env("LPM_TMP") ? test_env("LPM_TMP") : "/tmp";
    mkdir(base, 0777);
    snprintf(tmpdir, sizeof tmpdir, "%s/test_io.XXXXXX", base);
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "cannot make a scratch folder under %s: %s\n", base, strerror(errno));
        return 1;
    }
    test_volume_stem();
    python = test_env("LPM_PYTHON") ? test_env("LPM_PYTHON") : "/usr/bin/python3";
    if (run_python("import numpy, nibabel\n", NULL, 0) != 0) {
        printf("  note: %s lacks numpy/nibabel; the cross-checks against them are skipped\n", python);
        SKIP("NumPy/nibabel cross-checks");
        python = NULL;
    }
    char snippet[1200];
    path_in(snippet, sizeof snippet, "snippet.py");

    test_atomic();
    test_st_roundtrip();
    test_st_half();
    test_st_errors();
    test_st_hostile();
    test_weights_init();
    test_weights_files();
    test_weights_hostile();
    test_nifti_types();
    test_nifti_dims_and_errors();
    test_nifti_write();
    test_nifti_big_endian();
    test_nifti_gzip_members();
    remove(snippet);
    test_real();
    remove(snippet);

    /* clean the scratch folder (flat) */
    DIR *d = opendir(tmpdir);
    if (d) {
        char p[1400];
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            remove(p);
        }
        closedir(d);
    }
    rmdir(tmpdir);
    return test_summary();
}
