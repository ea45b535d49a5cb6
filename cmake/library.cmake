# The libraries as a user installs them (docs/library.md):
#   liblpmnet.a                      lpmnet_lib, what the tool and the tests link
#   liblpmnet.so.0 -> .so.0.1.0      lpmnet_shared: every object of liblpmnet.a, exporting only
#                                    the LPM_API declarations of include/lpmnet.h
#   include/lpmnet.h, lpmnet.pc, lib/cmake/lpmnet/ (find_package(lpmnet) -> lpmnet::lpmnet)
include(CMakePackageConfigHelpers)

# Where the bundled models are, relative to the library (or to a program that links the
# static library): src/api/models.c looks there first, so an installed tree can be moved.
file(RELATIVE_PATH LPM_LIB_TO_MODELS "/prefix/${CMAKE_INSTALL_LIBDIR}"
     "/prefix/${CMAKE_INSTALL_DATADIR}/lpmnet")
file(RELATIVE_PATH LPM_BIN_TO_MODELS "/prefix/${CMAKE_INSTALL_BINDIR}"
     "/prefix/${CMAKE_INSTALL_DATADIR}/lpmnet")
set_property(SOURCE ${CMAKE_SOURCE_DIR}/src/api/models.c APPEND PROPERTY COMPILE_DEFINITIONS
             LPM_LIB_TO_MODELS="${LPM_LIB_TO_MODELS}" LPM_BIN_TO_MODELS="${LPM_BIN_TO_MODELS}"
             LPM_INSTALL_MODELS="${CMAKE_INSTALL_FULL_DATADIR}/lpmnet"
             LPM_SOURCE_MODELS="${CMAKE_SOURCE_DIR}/models")

# A shared library needs a source of its own; everything else comes from the archive.
file(CONFIGURE OUTPUT ${CMAKE_BINARY_DIR}/lpmnet_shared.c CONTENT
     "/* liblpmnet.so is the whole of liblpmnet.a: see cmake/library.cmake. */\ntypedef int lpm_shared_library_unit;\n")
add_library(lpmnet_shared SHARED ${CMAKE_BINARY_DIR}/lpmnet_shared.c)
set_target_properties(lpmnet_shared PROPERTIES OUTPUT_NAME lpmnet EXPORT_NAME lpmnet
                      VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}
                      C_VISIBILITY_PRESET hidden)
target_link_libraries(lpmnet_shared PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,lpmnet_lib>")
# no undefined symbols left for the program to supply (except a sanitizer's runtime, which
# clang leaves to the program)
if(NOT LPM_SANITIZE)
  target_link_options(lpmnet_shared PRIVATE -Wl,--no-undefined)
endif()
target_include_directories(lpmnet_shared PUBLIC $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include>
                           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
add_library(lpmnet::lpmnet ALIAS lpmnet_shared)
add_library(lpmnet::lpmnet_static ALIAS lpmnet_lib)

install(TARGETS lpmnet)
# lpmnet-fuse: the tool under the name 3D Slicer's CLI modules use (it acts as `lpmnet fuse`;
# its --xml describes the module).
add_custom_command(TARGET lpmnet POST_BUILD
                   COMMAND ${CMAKE_COMMAND} -E create_symlink lpmnet ${CMAKE_BINARY_DIR}/lpmnet-fuse)
install(CODE "execute_process(COMMAND ${CMAKE_COMMAND} -E create_symlink lpmnet \$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/lpmnet-fuse)")
# The web viewer script that fuse --html and eval --html put into their pages (docs/viewer.md),
# fetched by scripts/fetch-niivue.sh (make does it); without it --html says so and stops.
if(EXISTS ${CMAKE_SOURCE_DIR}/vendor/niivue/niivue.umd.js)
  install(FILES vendor/niivue/niivue.umd.js vendor/niivue/LICENSE vendor/niivue/THIRD-PARTY-LICENSES
                vendor/niivue/README.md
          DESTINATION ${CMAKE_INSTALL_DATADIR}/lpmnet/niivue)
else()
  message(WARNING "vendor/niivue/niivue.umd.js is missing (scripts/fetch-niivue.sh fetches it): "
                  "the installed lpmnet's --html will say the viewer is not installed")
endif()
install(TARGETS lpmnet_lib lpmnet_shared EXPORT lpmnetTargets
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES include/lpmnet.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# lpmnet.pc: the shared library by default, the archive's dependencies under --static.
# Relocatable: the prefix is found from the .pc file's own folder.
file(RELATIVE_PATH LPM_PC_TO_PREFIX "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
string(REGEX REPLACE "/$" "" LPM_PC_TO_PREFIX "${LPM_PC_TO_PREFIX}")
configure_file(cmake/lpmnet.pc.in ${CMAKE_BINARY_DIR}/lpmnet.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/lpmnet.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

set(LPM_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/lpmnet)
install(EXPORT lpmnetTargets NAMESPACE lpmnet:: DESTINATION ${LPM_CMAKE_DIR})
configure_package_config_file(cmake/lpmnetConfig.cmake.in ${CMAKE_BINARY_DIR}/lpmnetConfig.cmake
                              INSTALL_DESTINATION ${LPM_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/lpmnetConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/lpmnetConfig.cmake ${CMAKE_BINARY_DIR}/lpmnetConfigVersion.cmake
        DESTINATION ${LPM_CMAKE_DIR})

# The Python package (python/lpmnet: pure ctypes, docs/python.md) into
# <prefix>/lib/pythonX.Y/site-packages: with --prefix ~/.local that is the user site that
# Debian's python3 reads, with --prefix VENV a virtual environment's own. _install.py tells
# the package where the library is, relative to itself, so the tree can be moved.
execute_process(COMMAND ${LPM_PYTHON} -c "import sys; print('python%d.%d' % sys.version_info[:2])"
                OUTPUT_VARIABLE LPM_PYTHON_DIRNAME OUTPUT_STRIP_TRAILING_WHITESPACE
                RESULT_VARIABLE LPM_PYTHON_FOUND ERROR_QUIET)
if(LPM_PYTHON_FOUND EQUAL 0)
  set(LPM_PYTHON_SITEDIR "lib/${LPM_PYTHON_DIRNAME}/site-packages" CACHE STRING
      "Where cmake --install puts the Python package, relative to the prefix")
  file(RELATIVE_PATH LPM_PYTHON_TO_LIB "/prefix/${LPM_PYTHON_SITEDIR}/lpmnet" "/prefix/${CMAKE_INSTALL_LIBDIR}")
  string(REGEX REPLACE "/$" "" LPM_PYTHON_TO_LIB "${LPM_PYTHON_TO_LIB}")
  file(CONFIGURE OUTPUT ${CMAKE_BINARY_DIR}/python/_install.py CONTENT
       "# Written by cmake --install (cmake/library.cmake): the libdir relative to this package.\nLIBDIR = \"${LPM_PYTHON_TO_LIB}\"\n")
  install(DIRECTORY python/lpmnet DESTINATION ${LPM_PYTHON_SITEDIR} PATTERN __pycache__ EXCLUDE)
  install(FILES ${CMAKE_BINARY_DIR}/python/_install.py DESTINATION ${LPM_PYTHON_SITEDIR}/lpmnet)
endif()
