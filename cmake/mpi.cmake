# Optional MPI for the command-line tool: data-parallel training and distributed eval and
# fuse --list (src/cli/dist.c, docs/cluster.md). Only the lpmnet executable links MPI; the
# library stays free of it. -DLPM_MPI=OFF builds without MPI even where it is installed.
option(LPM_MPI "Build lpmnet with MPI when an MPI implementation is found" ON)
if(LPM_MPI)
  find_package(MPI COMPONENTS C QUIET)
endif()
if(LPM_MPI AND MPI_C_FOUND)
  target_link_libraries(lpmnet PRIVATE MPI::MPI_C)
  target_compile_definitions(lpmnet PRIVATE LPM_HAVE_MPI=1)
  message(STATUS "lpmnet: MPI ${MPI_C_VERSION} found: train, eval and fuse --list run over mpirun")
elseif(LPM_MPI)
  message(STATUS "lpmnet: no MPI found (libopenmpi-dev): lpmnet runs as one process")
else()
  message(STATUS "lpmnet: MPI off (-DLPM_MPI=OFF): lpmnet runs as one process")
endif()
