/* What `lpmnet info` reads through the public API (include/lpmnet.h alone):
 *   - lpm_cpu_info_get: the CPU, the kernel sets offered, the one chosen and why (a bad
 *     LPM_ISA is checked by tests/test_info_cli.sh: the choice is made once per process);
 *   - lpm_volume_file_info_get: a written volume's header details, from lpm_volume_read and
 *     lpm_volume_read_header alike, and LPM_ERR_USAGE for a volume made in memory;
 *   - lpm_fail and lpm_prefix_error: a recorded message, a prefix put in front of it, and a
 *     prefix longer than the message buffer cut, not overflowing it (ASan). */
#include "test.h"
#include "lpmnet.h"

#include <sys/stat.h>

static void check_cpu_info(void) {
    lpm_cpu_info info;
    memset(&info, 'x', sizeof info);  /* every field must be written */
    lpm_status st = lpm_cpu_info_get(&info);
    const char *isa = getenv("LPM_ISA");
    if (st) {
        /* only a bad LPM_ISA fails, and then cpu and offered are still filled */
        CHECK(isa && *isa && strstr(lpm_last_error(), "LPM_ISA"), "lpm_cpu_info_get: %s", lpm_last_error());
        CHECK(info.cpu[0] && info.offered[0] && !info.isa[0] && !info.kernels[0] && !info.reason[0],
              "a failed lpm_cpu_info_get fills cpu and offered only");
        return;
    }
    printf("  cpu      %s\n  offers   %s\n  isa      %s\n  kernels  %s\n  chosen   by %s\n", info.cpu,
           info.offered, info.isa, info.kernels, info.reason);
    CHECK(info.cpu[0] != '\0', "cpu is empty");
    CHECK(strstr(info.offered, "ref") != NULL, "offered '%s' lacks ref (every build has it)", info.offered);
    char word[24];
    snprintf(word, sizeof word, "%s", info.isa);
    CHECK(info.isa[0] && strstr(info.offered, word), "the chosen set '%s' is not among those offered '%s'", info.isa,
          info.offered);
    CHECK(!strncmp(info.kernels, info.isa, strlen(info.isa)) && info.kernels[strlen(info.isa)] == ':',
          "kernels '%s' does not start with '%s:'", info.kernels, info.isa);
    if (isa && *isa) {
        char want[64];
        snprintf(want, sizeof want, "LPM_ISA=%s", isa);
        CHECK(!strcmp(info.reason, want), "reason '%s', want '%s'", info.reason, want);
        CHECK(!strcmp(info.isa, isa), "isa '%s', LPM_ISA %s", info.isa, isa);
    } else {
        CHECK(strstr(info.reason, "the CPU's features") != NULL, "reason '%s'", info.reason);
        /* without LPM_ISA the best set offered is taken: the first word */
        CHECK(!strncmp(info.offered, info.isa, strlen(info.isa)), "chose %s of '%s'", info.isa, info.offered);
    }
}

static void check_volume_info(void) {
    const char *tmp = test_env("LPM_TMP");
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/info_api", tmp ? tmp : "/tmp");
    if (tmp) mkdir(tmp, 0755);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/v.nii", dir);
    lpm_volume v;
    lpm_volume_file_info info;
    if (lpm_volume_alloc(&v, 5, 4, 3)) return;
    lpm_status st = lpm_volume_file_info_get(&v, &info);
    CHECK(st == LPM_ERR_USAGE, "a volume made in memory: status %d", (int)st);
    st = lpm_volume_write_described(path, &v, NULL, "info api test");
    CHECK(st == LPM_OK, "write %s: %s", path, lpm_last_error());
    lpm_volume_free(&v);
    for (int header_only = 0; header_only < 2; header_only++) {
        lpm_volume r;
        st = header_only ? lpm_volume_read_header(path, &r) : lpm_volume_read(path, &r);
        CHECK(st == LPM_OK, "read %s: %s", path, lpm_last_error());
        if (st) continue;
        memset(&info, 'x', sizeof info);
        st = lpm_volume_file_info_get(&r, &info);
        CHECK(st == LPM_OK, "lpm_volume_file_info_get: %s", lpm_last_error());
        printf("  %s: %s; %s x %d bytes at %lld of %s; qform %d (%s), sform %d (%s); '%s'\n",
               header_only ? "header" : "volume", info.format, info.datatype, info.bytes_per_voxel,
               (long long)info.data_offset, info.data_file, info.qform_code, info.qform_name, info.sform_code,
               info.sform_name, info.description);
        CHECK(!strcmp(info.format, "NIfTI-1 single file (.nii), uncompressed, little-endian"), "format '%s'",
              info.format);
        CHECK(!strcmp(info.datatype, "NIFTI_TYPE_FLOAT32") && info.bytes_per_voxel == 4, "datatype '%s' x %d",
              info.datatype, info.bytes_per_voxel);
        CHECK(info.data_offset >= 348 && !strcmp(info.data_file, path), "data at %lld of '%s'",
              (long long)info.data_offset, info.data_file);
        CHECK(!strcmp(info.description, "info api test"), "description '%s'", info.description);
        CHECK(info.qform_name[0] && info.sform_name[0] && strlen(info.qform_name) < sizeof info.qform_name,
              "xform names '%s', '%s'", info.qform_name, info.sform_name);
        lpm_volume_free(&r);
    }
}

static void check_error_prefix(void) {
    CHECK(lpm_fail(LPM_ERR_INPUT, "bad value %d", 3) == LPM_ERR_INPUT, "lpm_fail returns its code");
    CHECK(lpm_prefix_error(LPM_ERR_INPUT, "%s onto %s", "b.nii", "a.nii") == LPM_ERR_INPUT,
          "lpm_prefix_error returns its code");
    CHECK(!strcmp(lpm_last_error(), "b.nii onto a.nii: bad value 3"), "prefixed: '%s'", lpm_last_error());
    char long_name[3000];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    lpm_fail(LPM_ERR_USAGE, "short");
    CHECK(lpm_prefix_error(LPM_ERR_USAGE, "%s", long_name) == LPM_ERR_USAGE, "a long prefix keeps the code");
    size_t n = strlen(lpm_last_error());
    CHECK(n > 1000 && n < 1024 && lpm_last_error()[0] == 'x', "a long prefix is cut to the buffer: %zu", n);
}

int main(void) {
    check_cpu_info();
    check_volume_info();
    check_error_prefix();
    return test_summary();
}
