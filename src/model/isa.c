/* The CPU and the kernel set this process runs, for the public lpm_cpu_info_get (`lpmnet
 * info --cpu`); the choice itself is made in dispatch.c. */
#include "kernels.h"

#include <stdio.h>
#include <string.h>

/* The CPU's model name from /proc/cpuinfo; "unknown" where there is none (not Linux, or an
 * architecture whose cpuinfo has no "model name" line). */
static void cpu_model_name(char *buf, size_t n) {
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        const char *colon = strchr(line, ':');
        if (colon && !strncmp(line, "model name", 10)) {
            snprintf(buf, n, "%s", colon + 2);
            buf[strcspn(buf, "\n")] = '\0';
            break;
        }
    }
    fclose(f);
}

lpm_status lpm_cpu_info_get(lpm_cpu_info *info) {
    if (!info) return lpm_fail(LPM_ERR_USAGE, "lpm_cpu_info_get: no info given");
    memset(info, 0, sizeof *info);
    cpu_model_name(info->cpu, sizeof info->cpu);
    lpm_isa_offered(info->offered, sizeof info->offered);
    const lpm_kernels *k;
    lpm_status st = lpm_kernels_get(&k);
    if (st) return st;  /* the message (bad LPM_ISA) is recorded */
    snprintf(info->isa, sizeof info->isa, "%s", k->name);
    snprintf(info->kernels, sizeof info->kernels, "%s", k->what);
    snprintf(info->reason, sizeof info->reason, "%s", lpm_kernels_reason());
    return LPM_OK;
}
