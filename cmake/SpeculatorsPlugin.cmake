# speculators_add_plugin(NAME SOURCES src... [VERSION v] [PACKAGE])
#
# Builds an algorithm plugin: a shared object named exactly <NAME>.so (the host requires the
# descriptor's name to equal the file stem), linked against the SDK and LibTorch only, with
# hidden visibility so that the single entry point is all it exports. Used the same way in this
# tree and by third parties against an installed SDK (find_package(Speculators CONFIG)).
function(speculators_add_plugin name)
  cmake_parse_arguments(ARG "PACKAGE" "VERSION;OUTPUT_DIRECTORY" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "speculators_add_plugin(${name}): SOURCES is required")
  endif()
  add_library(${name} MODULE ${ARG_SOURCES})
  if(TARGET Speculators::core)
    target_link_libraries(${name} PRIVATE Speculators::core)
  else()
    target_link_libraries(${name} PRIVATE speculators_core)
  endif()
  set(out "${ARG_OUTPUT_DIRECTORY}")
  if(NOT out)
    if(SPECULATORS_PLUGIN_OUTPUT_DIRECTORY)
      set(out "${SPECULATORS_PLUGIN_OUTPUT_DIRECTORY}")
    else()
      set(out "${CMAKE_BINARY_DIR}/plugins")
    endif()
  endif()
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    OUTPUT_NAME "${name}"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LIBRARY_OUTPUT_DIRECTORY "${out}")
  if(COMMAND speculators_use_torch_pch)
    speculators_use_torch_pch(${name})
  endif()
endfunction()
