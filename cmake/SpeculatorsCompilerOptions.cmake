# Compiler settings shared by every target of this tree: warnings, ccache, and the precompiled
# LibTorch header that LibTorch-heavy targets reuse.

find_program(SPECULATORS_CCACHE ccache)
if(SPECULATORS_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  # PCH-friendly ccache settings (ccache manual, "Precompiled headers").
  set(CMAKE_CXX_COMPILER_LAUNCHER
      ${CMAKE_COMMAND} -E env CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime CCACHE_BASEDIR=${CMAKE_SOURCE_DIR}
      ${SPECULATORS_CCACHE})
endif()

# Applies the project's warning set to `target`.
function(speculators_target_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
endfunction()

# LibTorch's headers take most of the compile time; targets that include them share one PCH.
function(speculators_use_torch_pch target)
  if(TARGET speculators_pch)
    target_precompile_headers(${target} REUSE_FROM speculators_pch)
    # The PCH is compiled position-independent (-fPIC) for the shared libraries; executables
    # must use the same setting for GCC to accept it (GCC's default here is -fPIE).
    get_target_property(type ${target} TYPE)
    if(type STREQUAL "EXECUTABLE")
      target_compile_options(${target} PRIVATE -fPIC)
    endif()
  endif()
endfunction()
