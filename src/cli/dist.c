/* The processes of one lpmnet run over MPI, or one process (see dist.h). */
#include "dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef LPM_HAVE_MPI
#include <mpi.h>
#endif

static int rank_, size_ = 1, local_size_ = 1, mpi_started;

int dist_rank(void) { return rank_; }
int dist_size(void) { return size_; }
int dist_local_size(void) { return local_size_; }

int dist_have_mpi(void) {
#ifdef LPM_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

int dist_default_threads(void) {
    int cores = lpm_set_threads(0);
    int n = cores / (local_size_ > 0 ? local_size_ : 1);
    return n > 0 ? n : 1;
}

/* Started by an MPI launcher: Open MPI's mpirun, MPICH's hydra or srun (PMI-1/2, PMIx). A
 * plain start stays one process, without MPI_Init's cost or its messages. */
static int launched_by_mpi(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

lpm_status dist_start(void) {
    if (mpi_started || !launched_by_mpi()) return LPM_OK;
#ifdef LPM_HAVE_MPI
    int provided = 0;
    /* only the main thread calls MPI (OpenMP and the data loader never do) */
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return lpm_fail(LPM_ERR_INTERNAL, "MPI_Init_thread failed");
    mpi_started = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
        MPI_Comm_size(local, &local_size_);
        MPI_Comm_free(&local);
    }
    return LPM_OK;
#else
    /* launched by mpirun, built without MPI: every process would train alone and write the
     * same files; refuse rather than race */
    const char *n = getenv("OMPI_COMM_WORLD_SIZE") ? getenv("OMPI_COMM_WORLD_SIZE") : getenv("PMI_SIZE");
    if (n && atoi(n) > 1)
        return lpm_fail(LPM_ERR_USAGE, "started by an MPI launcher with %s processes, but this lpmnet was built "
                        "without MPI (install libopenmpi-dev and rebuild; see docs/cluster.md)", n);
    return LPM_OK;
#endif
}

int dist_end(int code) {
#ifdef LPM_HAVE_MPI
    if (mpi_started) {
        MPI_Finalize();
        mpi_started = 0;
    }
#endif
    return code;
}

lpm_status dist_allgather(void *ctx, const void *mine, void *all, const size_t *counts) {
    (void)ctx;
    if (size_ <= 1) {
        if (all != mine) memcpy(all, mine, counts[0]);
        return LPM_OK;
    }
#ifdef LPM_HAVE_MPI
    int *cnt = malloc(sizeof(int) * (size_t)size_), *off = malloc(sizeof(int) * (size_t)size_);
    lpm_status st = LPM_OK;
    size_t total = 0;
    for (int r = 0; cnt && off && r < size_; r++) {
        if (counts[r] > INT_MAX || total > (size_t)INT_MAX - counts[r]) {
            st = lpm_fail(LPM_ERR_USAGE, "an exchange of %zu bytes per process is beyond MPI's 2 GB; use a smaller --batch",
                          counts[r]);
            break;
        }
        cnt[r] = (int)counts[r];
        off[r] = (int)total;
        total += counts[r];
    }
    if (!cnt || !off) st = lpm_fail(LPM_ERR_INTERNAL, "out of memory");
    /* every process computes the same counts, so all take this branch alike */
    if (!st && MPI_Allgatherv(mine, cnt[rank_], MPI_BYTE, all, cnt, off, MPI_BYTE, MPI_COMM_WORLD) != MPI_SUCCESS)
        st = lpm_fail(LPM_ERR_INTERNAL, "MPI_Allgatherv failed");
    free(cnt);
    free(off);
    return st;
#else
    return lpm_fail(LPM_ERR_INTERNAL, "no MPI in this build");
#endif
}

/* What dist_agree exchanges: a status and its message. */
typedef struct {
    int32_t status;
    char message[1020];
} agree_block;

lpm_status dist_agree(lpm_status mine) {
    if (size_ <= 1) return mine;
    agree_block me, *all = malloc(sizeof(agree_block) * (size_t)size_);
    size_t *counts = malloc(sizeof(size_t) * (size_t)size_);
    memset(&me, 0, sizeof me);
    me.status = mine;
    if (mine) snprintf(me.message, sizeof me.message, "%s", lpm_last_error());
    lpm_status st = LPM_OK;
    if (!all || !counts) {
        st = lpm_fail(LPM_ERR_INTERNAL, "out of memory");
    } else {
        for (int r = 0; r < size_; r++) counts[r] = sizeof(agree_block);
        st = dist_allgather(NULL, &me, all, counts);
        for (int r = 0; !st && r < size_; r++)
            if (all[r].status) {
                all[r].message[sizeof all[r].message - 1] = '\0';
                st = lpm_fail((lpm_status)all[r].status, "rank %d of %d: %s", r, size_, all[r].message);
            }
    }
    free(all);
    free(counts);
    return st;
}

static lpm_train_comm train_comm;

const lpm_train_comm *dist_train_comm(void) {
    if (size_ <= 1) return NULL;
    train_comm = (lpm_train_comm){.rank = rank_, .size = size_, .ctx = NULL, .allgather = dist_allgather};
    return &train_comm;
}
