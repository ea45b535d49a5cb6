/* The processes of one lpmnet run: under an MPI launcher (mpirun, srun) every process is a
 * rank of MPI_COMM_WORLD and train, eval and fuse --list share their work out; otherwise (or
 * in a build without MPI, see cmake/mpi.cmake) the tool is one process, rank 0 of 1.
 * The library knows nothing of MPI: lpm_train gets dist_train_comm(), the public
 * lpm_train_comm hook (include/lpmnet.h) filled with this file's allgather. */
#ifndef LPM_DIST_H
#define LPM_DIST_H

#include "lpmnet.h"

#include <stddef.h>

/* Join the run's processes (MPI_Init_thread when launched by mpirun or srun). Call once, after
 * the arguments are parsed: a usage error then exits every process alike without MPI. */
lpm_status dist_start(void);
/* Leave (MPI_Finalize) and return code: every process exits with it. */
int dist_end(int code);

int dist_rank(void);        /* 0 .. dist_size() - 1 */
int dist_size(void);        /* 1 without MPI */
int dist_local_size(void);  /* processes of this run on this machine (1 without MPI) */
/* A default thread count for this process: the machine's cores shared by its processes. */
int dist_default_threads(void);
/* 1 when the tool was built with MPI. */
int dist_have_mpi(void);

/* Collective: every process passes its block (counts[rank] bytes at mine); on return all
 * holds every block in rank order (block r: counts[r] bytes). The signature of
 * lpm_train_comm's allgather (ctx unused). */
lpm_status dist_allgather(void *ctx, const void *mine, void *all, const size_t *counts);

/* Collective: every process's status; returns on every process the status of the lowest
 * rank that failed, with its message ("rank R of P: ..." when P > 1), or LPM_OK. */
lpm_status dist_agree(lpm_status mine);

/* The communicator for lpm_train_options.comm: NULL in one process. */
const lpm_train_comm *dist_train_comm(void);

/* The first item of process rank's share of n items: process r takes
 * [dist_share(n, r), dist_share(n, r + 1)). */
static inline int64_t dist_share(int64_t n, int rank) { return n * rank / dist_size(); }

#endif
