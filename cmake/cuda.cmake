# Optional CUDA backend: src/cuda/*.cu into lpmnet_lib when nvcc is found and LPM_CUDA is ON.
# Without it, src/cuda/cuda_stub.c provides the same API, failing with a clear message.
include(CheckLanguage)
# OFF by default: linking libcudart/libcublas costs every CPU run ~150 MB of resident memory
# at start-up; `make cuda` builds the GPU-enabled tool in build-cuda/.
option(LPM_CUDA "Build the CUDA backend when a CUDA compiler is found" OFF)
set(LPM_BUILT_WITH_CUDA OFF)  # read by cmake/lpmnetConfig.cmake.in
if(LPM_CUDA AND NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)  # not on PATH in a default install
endif()
check_language(CUDA)
if(LPM_CUDA AND CMAKE_CUDA_COMPILER)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES "80;90")  # A100, H100: SASS for both plus compute_80 PTX
  endif()
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)


  file(GLOB LPM_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/cuda/*.cu)
  target_sources(lpmnet_lib PRIVATE ${LPM_CUDA_SOURCES})
  # the target was created before CMAKE_CUDA_ARCHITECTURES existed
  set_target_properties(lpmnet_lib PROPERTIES CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}")
  # No --use_fast_math: the backward passes and the agreement with the CPU need IEEE expf,
  # log1pf, tanhf and division. --extended-lambda: the element-wise kernels are lambdas.
  target_compile_options(lpmnet_lib PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:-O3 --extended-lambda -D_POSIX_C_SOURCE=200809L
      -Xcompiler=-Wall,-Wextra,-Wno-unused-parameter>)
  target_compile_definitions(lpmnet_lib PUBLIC LPM_HAVE_CUDA=1)
  set(LPM_BUILT_WITH_CUDA ON)
  target_link_libraries(lpmnet_lib PUBLIC CUDA::cudart CUDA::cublas)
  message(STATUS "lpmnet: CUDA backend ON (${CMAKE_CUDA_COMPILER}, architectures ${CMAKE_CUDA_ARCHITECTURES})")

  if(EXISTS ${CMAKE_SOURCE_DIR}/bench/bench_gpu.c)
    add_executable(bench_gpu ${CMAKE_SOURCE_DIR}/bench/bench_gpu.c)
    target_include_directories(bench_gpu PRIVATE ${CMAKE_SOURCE_DIR}/src)
    target_link_libraries(bench_gpu PRIVATE lpmnet_lib)
  endif()
else()
  message(STATUS "lpmnet: CUDA backend OFF (no CUDA compiler, or LPM_CUDA=OFF): stub API")
endif()
