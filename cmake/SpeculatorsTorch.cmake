# Which LibTorch the tree builds against, decided by the cache string SPECULATORS_TORCH:
#   system (default) the LibTorch find_package(Torch) finds by itself: Debian's libtorch-dev
#                    (1.13, CPU), or any LibTorch named by the user's CMAKE_PREFIX_PATH/Torch_DIR,
#   python           the LibTorch of a Python `torch` package (the pip wheel, 2.x), located by
#                    asking SPECULATORS_TORCH_PYTHON where `import torch` comes from (default: the
#                    test venv's interpreter that scripts/setup makes, else python3 on PATH).
# A CUDA build of LibTorch needs the CUDA toolkit (nvcc) at configure time; it is looked for at
# CUDAToolkit_ROOT, $CUDA_HOME, /usr/local/cuda and on PATH. After find_package(Torch) this sets
# SPECULATORS_TORCH_IS_CUDA (TRUE for a LibTorch with CUDA kernels), which is the default of
# SPECULATORS_WITH_CUDA, the CUDA flag every plugin fingerprint records.

set(SPECULATORS_TORCH system CACHE STRING "LibTorch to build against: system or python")
set_property(CACHE SPECULATORS_TORCH PROPERTY STRINGS system python)
if(NOT SPECULATORS_TORCH MATCHES "^(system|python)$")
  message(FATAL_ERROR "SPECULATORS_TORCH is '${SPECULATORS_TORCH}'; valid values: system, python")
endif()

# One build directory per LibTorch: the cached library paths belong to the first one.
if(DEFINED _SPECULATORS_TORCH_CONFIGURED AND NOT _SPECULATORS_TORCH_CONFIGURED STREQUAL SPECULATORS_TORCH)
  message(FATAL_ERROR "${CMAKE_BINARY_DIR} was configured with SPECULATORS_TORCH=${_SPECULATORS_TORCH_CONFIGURED}; "
                      "use another build directory for SPECULATORS_TORCH=${SPECULATORS_TORCH}")
endif()
set(_SPECULATORS_TORCH_CONFIGURED "${SPECULATORS_TORCH}" CACHE INTERNAL "")

if(SPECULATORS_TORCH STREQUAL "python")
  set(_default_python "$ENV{HOME}/.cache/speculators/venv/bin/python")
  if(NOT EXISTS "${_default_python}")
    find_program(_default_python NAMES python3 python)
  endif()
  set(SPECULATORS_TORCH_PYTHON "${_default_python}" CACHE FILEPATH
      "Python interpreter whose torch package provides LibTorch (SPECULATORS_TORCH=python)")
  execute_process(
    COMMAND "${SPECULATORS_TORCH_PYTHON}" -c "import torch, os; print(os.path.dirname(torch.__file__))"
    OUTPUT_VARIABLE _torch_root OUTPUT_STRIP_TRAILING_WHITESPACE
    ERROR_VARIABLE _torch_error RESULT_VARIABLE _torch_rc)
  if(NOT _torch_rc EQUAL 0 OR NOT EXISTS "${_torch_root}/share/cmake/Torch/TorchConfig.cmake")
    message(FATAL_ERROR "SPECULATORS_TORCH=python: '${SPECULATORS_TORCH_PYTHON}' has no usable torch "
                        "package (${_torch_error}). Run scripts/setup, or set SPECULATORS_TORCH_PYTHON "
                        "to an interpreter with torch installed.")
  endif()
  # The package root (not share/cmake) goes first: TorchConfig.cmake finds libtorch.so with
  # find_library, which would otherwise take the system's /usr/lib copy before the wheel's lib/.
  list(PREPEND CMAKE_PREFIX_PATH "${_torch_root}")
  set(Torch_DIR "${_torch_root}/share/cmake/Torch" CACHE PATH "LibTorch's CMake package" FORCE)
  message(STATUS "LibTorch: python torch package at ${_torch_root}")
endif()

# A prefix such as torch.utils.cmake_prefix_path (<torch>/share/cmake) finds TorchConfig.cmake,
# whose find_library would then take a system libtorch.so before <torch>/lib: add its root too.
foreach(_prefix IN LISTS CMAKE_PREFIX_PATH)
  if(EXISTS "${_prefix}/Torch/TorchConfig.cmake" AND _prefix MATCHES "/share/cmake/?$")
    get_filename_component(_torch_root "${_prefix}/../.." ABSOLUTE)
    list(PREPEND CMAKE_PREFIX_PATH "${_torch_root}")
  endif()
endforeach()

# A CUDA LibTorch's Caffe2Config needs nvcc; point CMake at the usual toolkit places.
if(NOT CUDAToolkit_ROOT AND NOT DEFINED ENV{CUDAToolkit_ROOT} AND NOT CMAKE_CUDA_COMPILER)
  foreach(_cuda_dir "$ENV{CUDA_HOME}" "$ENV{CUDA_PATH}" /usr/local/cuda)
    if(_cuda_dir AND EXISTS "${_cuda_dir}/bin/nvcc")
      set(CUDAToolkit_ROOT "${_cuda_dir}")
      set(CUDA_TOOLKIT_ROOT_DIR "${_cuda_dir}" CACHE PATH "CUDA toolkit (for a CUDA LibTorch)")
      break()
    endif()
  endforeach()
endif()

# A CUDA wheel (lib/libtorch_cuda.so) cannot be configured without the toolkit: say so first,
# rather than through Caffe2Config's message.
if(_torch_root AND EXISTS "${_torch_root}/lib/libtorch_cuda.so" AND NOT CUDAToolkit_ROOT
   AND NOT DEFINED ENV{CUDAToolkit_ROOT} AND NOT CMAKE_CUDA_COMPILER)
  find_program(_speculators_nvcc nvcc)
  if(NOT _speculators_nvcc)
    message(FATAL_ERROR "LibTorch at ${_torch_root} is a CUDA build, and configuring against it needs the "
                        "CUDA toolkit (nvcc; cuDNN and NCCL come with the wheel): install it, or set "
                        "CUDAToolkit_ROOT or CUDA_HOME to it. No GPU is needed to build.")
  endif()
endif()

find_package(Torch QUIET)
if(NOT Torch_FOUND)
  message(FATAL_ERROR "LibTorch not found (SPECULATORS_TORCH=${SPECULATORS_TORCH}, Torch_DIR='${Torch_DIR}'). "
                      "Install libtorch-dev (scripts/setup), or pass -DSPECULATORS_TORCH=python, or "
                      "CMAKE_PREFIX_PATH=<LibTorch dir>. A CUDA build of LibTorch also needs the CUDA toolkit "
                      "(nvcc): set CUDAToolkit_ROOT or CUDA_HOME.")
endif()
# The libraries must come from the LibTorch whose headers and version were found.
string(FIND "${TORCH_LIBRARY}" "${TORCH_INSTALL_PREFIX}/" _torch_library_at)
if(TORCH_INSTALL_PREFIX AND NOT _torch_library_at EQUAL 0)
  message(FATAL_ERROR "LibTorch ${Torch_VERSION} is at ${TORCH_INSTALL_PREFIX} but its library was found at "
                      "${TORCH_LIBRARY}: put ${TORCH_INSTALL_PREFIX} first in CMAKE_PREFIX_PATH and "
                      "configure a fresh build directory")
endif()

set(SPECULATORS_TORCH_PREFIX "${TORCH_INSTALL_PREFIX}")
set(SPECULATORS_CUDA_ROOT "${CUDAToolkit_ROOT}")  # recorded in SpeculatorsConfig.cmake

# A wheel finds its CUDA libraries (NCCL, cuDNN, cuBLAS) in site-packages/nvidia/*/lib through its
# own run path; the linker must resolve them there too, not in an older toolkit's copies that
# ld.so.conf may list (libtorch_cuda.so calls NCCL functions those lack).
set(SPECULATORS_TORCH_RPATH_LINK "")
if(TORCH_INSTALL_PREFIX)
  file(GLOB _wheel_cuda_lib_dirs LIST_DIRECTORIES true "${TORCH_INSTALL_PREFIX}/../nvidia/*/lib")
  foreach(_dir IN LISTS _wheel_cuda_lib_dirs)
    get_filename_component(_dir "${_dir}" ABSOLUTE)
    list(APPEND SPECULATORS_TORCH_RPATH_LINK "${_dir}")
  endforeach()
endif()

set(SPECULATORS_TORCH_IS_CUDA FALSE)
if(TARGET torch_cuda OR CAFFE2_USE_CUDA)
  set(SPECULATORS_TORCH_IS_CUDA TRUE)
endif()
message(STATUS "LibTorch ${Torch_VERSION} (${TORCH_LIBRARY}), CUDA build: ${SPECULATORS_TORCH_IS_CUDA}")

# Newer LibTorch headers require C++20 (ATen/ATen.h stops with an #error under C++17); the tree
# itself is C++17 and compiles as C++20 too.
foreach(_torch_include IN LISTS TORCH_INCLUDE_DIRS)
  if(EXISTS "${_torch_include}/ATen/ATen.h")
    file(STRINGS "${_torch_include}/ATen/ATen.h" _torch_needs_cxx20 REGEX "C\\+\\+20 or later")
    if(_torch_needs_cxx20)
      set(CMAKE_CXX_STANDARD 20)
      message(STATUS "LibTorch ${Torch_VERSION} needs C++20: compiling as C++20")
    endif()
    break()
  endif()
endforeach()
