# Test helpers: Catch2, a shared Catch2 main, and speculators_add_test().
find_package(Catch2 REQUIRED)

add_library(speculators_catch_main OBJECT "${PROJECT_SOURCE_DIR}/tests/catch_main.cpp")
target_link_libraries(speculators_catch_main PUBLIC Catch2::Catch2)

# speculators_add_test(NAME SOURCES ... [LIBS ...] [LABELS ...] [TIMEOUT s])
function(speculators_add_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES} $<TARGET_OBJECTS:speculators_catch_main>)
  target_link_libraries(${name} PRIVATE speculators_core Catch2::Catch2 ${ARG_LIBS})
  target_compile_definitions(${name} PRIVATE
    SPECULATORS_TEST_BINARY_DIR="${CMAKE_BINARY_DIR}"
    SPECULATORS_TEST_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  speculators_target_warnings(${name})
  speculators_use_torch_pch(${name})
  add_test(NAME ${name} COMMAND ${name})
  if(ARG_TIMEOUT)
    set_tests_properties(${name} PROPERTIES TIMEOUT ${ARG_TIMEOUT})
  else()
    set_tests_properties(${name} PROPERTIES TIMEOUT 600)
  endif()
  if(ARG_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}")
  endif()
endfunction()

