# Whether libspeculators_core gets the NCCL backend (core/src/comm_nccl.cpp), decided by the
# cache string SPECULATORS_WITH_NCCL:
#   AUTO (default) builds it when the CUDA toolkit (runtime library) and NCCL >= 2.14 are found,
#   ON   requires them and stops the configure when they are missing,
#   OFF  never builds it (core/src/comm_nccl_stub.cpp answers "no NCCL backend" instead).
# NCCL is looked for next to the CUDA toolkit, under NCCL_ROOT (CMake or environment variable),
# under $NCCL_HOME, and in the system paths. Sets SPECULATORS_NCCL_ENABLED, and when it is TRUE
# SPECULATORS_NCCL_INCLUDE_DIR and SPECULATORS_NCCL_LIBRARY. Independent of SPECULATORS_WITH_CUDA,
# which only marks plugins as CUDA builds.

set(SPECULATORS_WITH_NCCL AUTO CACHE STRING
    "Build the NCCL backend: AUTO (when CUDA and NCCL are found), ON (required) or OFF")
set_property(CACHE SPECULATORS_WITH_NCCL PROPERTY STRINGS AUTO ON OFF)

string(TOUPPER "${SPECULATORS_WITH_NCCL}" _nccl_mode)
if(_nccl_mode MATCHES "^(ON|YES|TRUE|Y|1)$")
  set(_nccl_mode ON)
elseif(_nccl_mode MATCHES "^(OFF|NO|FALSE|N|0)$")
  set(_nccl_mode OFF)
elseif(NOT _nccl_mode STREQUAL "AUTO")
  message(FATAL_ERROR "SPECULATORS_WITH_NCCL is '${SPECULATORS_WITH_NCCL}'; valid values: AUTO, ON, OFF")
endif()

set(SPECULATORS_NCCL_ENABLED FALSE)
if(_nccl_mode STREQUAL "OFF")
  message(STATUS "NCCL backend: off (SPECULATORS_WITH_NCCL=OFF)")
  return()
endif()

# ncclCommInitRankConfig with a non-blocking config (what lets a timeout abort) is NCCL 2.14+.
set(_nccl_min_version 2.14)
set(_nccl_missing "")

find_package(CUDAToolkit QUIET)
if(NOT CUDAToolkit_FOUND OR NOT TARGET CUDA::cudart)
  list(APPEND _nccl_missing "the CUDA toolkit (set CUDAToolkit_ROOT or put nvcc on PATH)")
endif()

set(_nccl_hints ${NCCL_ROOT} $ENV{NCCL_ROOT} $ENV{NCCL_HOME})
if(CUDAToolkit_FOUND)
  list(APPEND _nccl_hints ${CUDAToolkit_LIBRARY_ROOT} ${CUDAToolkit_TARGET_DIR})
endif()
# A CUDA LibTorch wheel brings its own NCCL (site-packages/nvidia/nccl, libnccl.so.2 only), which
# libtorch_cuda.so needs (it calls newer NCCL functions than an older toolkit's copy has): the
# backend then uses that one, since a process can load only one libnccl.so.2.
if(SPECULATORS_TORCH_PREFIX AND EXISTS "${SPECULATORS_TORCH_PREFIX}/../nvidia/nccl/include/nccl.h")
  get_filename_component(_wheel_nccl "${SPECULATORS_TORCH_PREFIX}/../nvidia/nccl" ABSOLUTE)
  find_path(SPECULATORS_NCCL_INCLUDE_DIR nccl.h PATHS "${_wheel_nccl}/include" NO_DEFAULT_PATH)
  find_library(SPECULATORS_NCCL_LIBRARY NAMES nccl libnccl.so.2 PATHS "${_wheel_nccl}/lib" NO_DEFAULT_PATH)
endif()
find_path(SPECULATORS_NCCL_INCLUDE_DIR nccl.h
  HINTS ${_nccl_hints} ${CUDAToolkit_INCLUDE_DIRS}
  PATH_SUFFIXES include
  DOC "Directory holding nccl.h")
find_library(SPECULATORS_NCCL_LIBRARY nccl
  HINTS ${_nccl_hints} ${CUDAToolkit_LIBRARY_DIR}
  PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu
  DOC "The NCCL shared library")

set(_nccl_version "")
if(SPECULATORS_NCCL_INCLUDE_DIR)
  file(STRINGS "${SPECULATORS_NCCL_INCLUDE_DIR}/nccl.h" _nccl_version_lines
       REGEX "^#define NCCL_(MAJOR|MINOR|PATCH) +[0-9]+")
  foreach(_part MAJOR MINOR PATCH)
    string(REGEX REPLACE ".*#define NCCL_${_part} +([0-9]+).*" "\\1" _nccl_${_part}
           "${_nccl_version_lines}")
  endforeach()
  set(_nccl_version "${_nccl_MAJOR}.${_nccl_MINOR}.${_nccl_PATCH}")
else()
  list(APPEND _nccl_missing "nccl.h (set NCCL_ROOT or NCCL_HOME)")
endif()
if(NOT SPECULATORS_NCCL_LIBRARY)
  list(APPEND _nccl_missing "libnccl (set NCCL_ROOT or NCCL_HOME)")
endif()
if(_nccl_version AND _nccl_version VERSION_LESS _nccl_min_version)
  list(APPEND _nccl_missing "NCCL >= ${_nccl_min_version} (found ${_nccl_version} in ${SPECULATORS_NCCL_INCLUDE_DIR})")
endif()

if(_nccl_missing)
  list(JOIN _nccl_missing ", " _nccl_missing_text)
  if(_nccl_mode STREQUAL "ON")
    message(FATAL_ERROR "SPECULATORS_WITH_NCCL=ON but the NCCL backend cannot be built: missing "
                        "${_nccl_missing_text}. Install CUDA and NCCL, or configure with "
                        "-DSPECULATORS_WITH_NCCL=AUTO or OFF.")
  endif()
  message(STATUS "NCCL backend: not built (SPECULATORS_WITH_NCCL=AUTO; missing ${_nccl_missing_text})")
  return()
endif()

set(SPECULATORS_NCCL_ENABLED TRUE)
message(STATUS "NCCL backend: built (NCCL ${_nccl_version} at ${SPECULATORS_NCCL_LIBRARY}, "
               "CUDA ${CUDAToolkit_VERSION})")
