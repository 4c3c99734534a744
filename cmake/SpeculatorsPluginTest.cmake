# speculators_add_plugin_test(NAME SOURCES src... [LIBS lib...] [LABELS label...] [TIMEOUT s]
#                             [PLUGIN target])
#
# A Catch2 (v2, catch2/catch.hpp) test executable for an algorithm plugin, registered with ctest.
# It links Speculators::testing (speculators/testing/plugin_test.h: a tiny verifier and a packed
# batch made in memory, training steps through the host's Trainer, proposals through the host's
# speculative decoding loop), the SDK and Catch2, and gets Catch2's main. SOURCES are the test
# files plus the plugin's own model sources (everything but the file with SPECULATORS_PLUGIN: a
# test is not a plugin), so the tests reach the algorithm's classes directly. With PLUGIN, the
# test depends on that plugin target and gets SPECULATORS_TEST_PLUGIN_DIR, the directory of its
# .so, for tests that run speculators-train with --plugin-dir (run_speculators_train).
# Works in this tree and against an installed SDK (find_package(Speculators CONFIG)); the caller
# calls enable_testing().
set(_SPECULATORS_PLUGIN_TEST_DIR "${CMAKE_CURRENT_LIST_DIR}")

function(speculators_add_plugin_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT;PLUGIN" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "speculators_add_plugin_test(${name}): SOURCES is required")
  endif()
  if(NOT TARGET Catch2::Catch2)
    find_package(Catch2 REQUIRED)
  endif()
  if(TARGET Speculators::testing)
    set(testing Speculators::testing)
  else()
    set(testing speculators_testing)
  endif()
  # Catch2's main: installed next to this file, or the tree's own.
  set(main "${_SPECULATORS_PLUGIN_TEST_DIR}/speculators_catch_main.cpp")
  if(NOT EXISTS "${main}")
    set(main "${_SPECULATORS_PLUGIN_TEST_DIR}/../tests/catch_main.cpp")
  endif()
  if(TARGET speculators_catch_main)  # this tree: the main compiled once for every test
    set(main $<TARGET_OBJECTS:speculators_catch_main>)
  endif()
  add_executable(${name} ${ARG_SOURCES} ${main})
  target_link_libraries(${name} PRIVATE ${testing} Catch2::Catch2 ${ARG_LIBS})
  if(ARG_PLUGIN)
    add_dependencies(${name} ${ARG_PLUGIN})
    target_compile_definitions(${name} PRIVATE "SPECULATORS_TEST_PLUGIN_DIR=\"$<TARGET_FILE_DIR:${ARG_PLUGIN}>\"")
  endif()
  if(COMMAND speculators_target_warnings)
    speculators_target_warnings(${name})
  endif()
  # LibTorch first in every file, as a precompiled header: a LibTorch built with glog (Debian's)
  # defines CHECK, which must not replace Catch2's CHECK in the test files.
  if(COMMAND speculators_use_torch_pch)
    speculators_use_torch_pch(${name})
  else()
    target_precompile_headers(${name} PRIVATE <torch/torch.h>)
  endif()
  add_test(NAME ${name} COMMAND ${name})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 600)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${ARG_TIMEOUT})
  if(ARG_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}")
  endif()
endfunction()
