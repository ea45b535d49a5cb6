/* Fuse two co-registered volumes as `lpmnet fuse A B -o OUT` does, then score the result. */
#include <lpmnet.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 4) return fprintf(stderr, "usage: fuse_pair A B OUT\n"), 1;
    lpm_volume a = {0}, b = {0}, fused = {0};
    lpm_weights w = {0};
    double m[LPM_METRIC_COUNT];
    lpm_status st = lpm_weights_load_model(&w, "mri");  /* the bundled MR/MR model */
    if (!st) st = lpm_volume_read(argv[1], &a);
    if (!st) st = lpm_volume_read(argv[2], &b);
    if (!st) st = lpm_fuse_pair(&w, &a, argv[1], &b, argv[2], &fused, NULL);  /* defaults */
    if (!st) st = lpm_volume_write(argv[3], &fused, &a);  /* float32, A's geometry */
    if (!st) st = lpm_metrics_volumes(m, &a, &b, &fused, NULL, 1);
    if (!st) printf("%s: ssim %.4f, qabf %.4f\n", argv[3], m[0], m[1]);  /* lpm_metric_name(i) */
    else fprintf(stderr, "fuse_pair: %s\n", lpm_last_error());
    lpm_volume_free(&a), lpm_volume_free(&b), lpm_volume_free(&fused);
    lpm_weights_free(&w);
    return st;
}
