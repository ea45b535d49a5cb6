/* Internal helpers shared by every module (beside the public ones in lpmnet.h: lpm_fail,
 * lpm_seconds, threads, the memory budget): checked allocation, RNG, input-file checks. */
#ifndef LPM_CORE_H
#define LPM_CORE_H

#include "lpmnet.h"
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>

void lpm_clear_error(void);

/* Checked allocation: NULL plus a recorded LPM_ERR_INTERNAL message on overflow or
 * exhaustion. n * size is overflow-checked. lpm_calloc zeroes; both are 64-byte aligned
 * and released with free(). */
void *lpm_malloc(size_t n, size_t size);
void *lpm_calloc(size_t n, size_t size);
/* a * b with overflow detection: returns 0 on overflow (and sets *ok = 0). */
size_t lpm_mul_size(size_t a, size_t b, int *ok);

/* Deterministic RNG (xoshiro256**, seeded through splitmix64); state is plain data so it
 * can be saved in checkpoints. */
typedef struct { uint64_t s[4]; } lpm_rng;
void lpm_rng_seed(lpm_rng *r, uint64_t seed);
uint64_t lpm_rng_u64(lpm_rng *r);
double lpm_rng_uniform(lpm_rng *r);          /* [0, 1) */
double lpm_rng_normal(lpm_rng *r);           /* standard normal */

/* This thread's index inside an OpenMP region (0 outside). */
int lpm_thread_id(void);

/* Input files: path must name an existing, readable regular file; a folder, FIFO, socket
 * or device is refused before anything opens it (a FIFO would block forever). */
lpm_status lpm_check_input_file(const char *path);

#endif
