# The network's kernels, compiled once per instruction set (src/model/kernels.h): each set
# is an object library built from the same sources with -DLPM_NO_CLONES, its -march, and
# -DLPM_KERNEL_SUFFIX=<set>, which renames every function the sources export to
# name_<set> (src/model/kernel_names.h). src/model/dispatch.c holds the plain names and
# calls the set chosen once at start (LPM_ISA or the CPU). The `ref` set is network.c on the
# scalar reference layers (ref_kernels.c). Included by CMakeLists.txt before lpmnet_lib is
# defined: takes the kernel sources out of LPM_LIB_SOURCES and lists the sets' objects in
# LPM_KERNEL_OBJECTS. dispatch.c's list of sets (by architecture) matches the one here.
set(LPM_KERNEL_SOURCES conv.c dense.c layernorm.c mamba.c window.c cfc.c network.c)
list(TRANSFORM LPM_KERNEL_SOURCES PREPEND ${CMAKE_SOURCE_DIR}/src/model/)
set(LPM_REF_KERNEL_SOURCES ${CMAKE_SOURCE_DIR}/src/model/network.c
    ${CMAKE_SOURCE_DIR}/src/model/ref_kernels.c)
list(REMOVE_ITEM LPM_LIB_SOURCES ${LPM_KERNEL_SOURCES} ${LPM_REF_KERNEL_SOURCES})

# set name -> its compile options
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    set(LPM_KERNEL_SETS avx512 avx2 portable)
    set(LPM_KERNEL_FLAGS_avx512 -march=x86-64-v4)
    set(LPM_KERNEL_FLAGS_avx2 -march=x86-64-v3)
    set(LPM_KERNEL_FLAGS_portable -march=x86-64)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
    set(LPM_KERNEL_SETS neon)
    set(LPM_KERNEL_FLAGS_neon "")   # Advanced SIMD is part of armv8-a
else()
    set(LPM_KERNEL_SETS portable)
    set(LPM_KERNEL_FLAGS_portable "")
endif()
list(APPEND LPM_KERNEL_SETS ref)
set(LPM_KERNEL_FLAGS_ref "")

foreach(set ${LPM_KERNEL_SETS})
    if(set STREQUAL "ref")
        set(sources ${LPM_REF_KERNEL_SOURCES})
    else()
        set(sources ${LPM_KERNEL_SOURCES})
    endif()
    add_library(lpm_kernels_${set} OBJECT ${sources})
    target_compile_definitions(lpm_kernels_${set} PRIVATE LPM_NO_CLONES LPM_KERNEL_SUFFIX=${set})
    target_compile_options(lpm_kernels_${set} PRIVATE ${LPM_KERNEL_FLAGS_${set}})
    target_include_directories(lpm_kernels_${set} PRIVATE ${CMAKE_SOURCE_DIR}/include
                               ${CMAKE_SOURCE_DIR}/src ${NIFTI_INCLUDE_DIR})
    target_link_libraries(lpm_kernels_${set} PRIVATE OpenMP::OpenMP_C)
    # position-independent and hidden like lpmnet_lib's own objects (they also go into the
    # shared library, which exports only the LPM_API functions)
    set_target_properties(lpm_kernels_${set} PROPERTIES POSITION_INDEPENDENT_CODE ON
                          C_VISIBILITY_PRESET hidden)
    list(APPEND LPM_KERNEL_OBJECTS $<TARGET_OBJECTS:lpm_kernels_${set}>)
endforeach()
