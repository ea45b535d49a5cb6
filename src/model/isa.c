/* Which instruction-set path the kernels take on this CPU, for `lpmnet info --cpu`: the
 * same tests vmath.h's dispatch makes (lpm_cpu_wide, lpm_cpu_avx2_only). */
#include "model.h"
#include "../core/vmath.h"

#include <stdio.h>
#include <string.h>

const char *lpm_kernel_path(void) {
    if (lpm_cpu_wide()) return "avx512: 16-lane kernels (x86-64-v4: AVX-512F/BW/CD/DQ/VL)";
    if (lpm_cpu_avx2_only()) return "avx2: 8-lane kernels (x86-64-v3: AVX2, FMA, no AVX-512)";
#if defined(__x86_64__)
    return "portable: baseline x86-64 (SSE2; this CPU or build has neither x86-64-v3 nor -v4)";
#else
    return "portable: the compiler's generic vector code (no tuned kernels for this architecture)";
#endif
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
