# Test helpers: Catch2, a shared Catch2 main, and speculators_add_test().
find_package(Catch2 REQUIRED)

# The Python of the test-only virtual environment that scripts/setup makes (the reference,
# transformers, tokenizers, jinja2): tests that compare with those oracles run it.
if(DEFINED ENV{SPECULATORS_VENV})
  set(_speculators_venv "$ENV{SPECULATORS_VENV}")
else()
  set(_speculators_venv "$ENV{HOME}/.cache/speculators/venv")
endif()
set(SPECULATORS_TEST_PYTHON "${_speculators_venv}/bin/python" CACHE FILEPATH
    "Python of the test-only venv (scripts/setup makes it)")
if(NOT EXISTS "${SPECULATORS_TEST_PYTHON}")
  message(WARNING "SPECULATORS_TEST_PYTHON=${SPECULATORS_TEST_PYTHON} does not exist: run ./scripts/setup; "
                  "the oracle tests (labels parity, oracle) will fail")
endif()

add_library(speculators_catch_main OBJECT "${PROJECT_SOURCE_DIR}/tests/catch_main.cpp")
target_link_libraries(speculators_catch_main PUBLIC Catch2::Catch2)

# speculators_add_test(NAME SOURCES ... [LIBS ...] [LABELS ...] [TIMEOUT s])
function(speculators_add_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES} $<TARGET_OBJECTS:speculators_catch_main>)
  target_link_libraries(${name} PRIVATE speculators_core Catch2::Catch2 ${ARG_LIBS})
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

