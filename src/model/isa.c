/* The kernel set this process runs, for `lpmnet info --cpu` (the choice: dispatch.c), and
 * the CPU's model name. */
#include "kernels.h"

#include <stdio.h>
#include <string.h>

const char *lpm_kernel_path(void) {
    const lpm_kernels *k;
    if (lpm_kernels_get(&k) != LPM_OK) return lpm_kernels_reason();
    return k->what;
}

void lpm_cpu_name(char *buf, size_t n) {
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
