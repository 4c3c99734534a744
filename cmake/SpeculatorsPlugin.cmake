# speculators_add_plugin(NAME SOURCES src... [VERSION v] [PACKAGE] [OUTPUT_DIRECTORY dir] [NO_INSTALL])
#
# NAME and VERSION are written here and nowhere else: the sources are compiled with
# SPECULATORS_PLUGIN_NAME="NAME" and SPECULATORS_PLUGIN_VERSION="VERSION", which the
# SPECULATORS_PLUGIN(registrar) macro (speculators/plugin/plugin.h) puts into the descriptor, so the
# descriptor, the manifest and the packages carry the same name and version. NO_INSTALL leaves the
# plugin out of `cmake --install` (test plugins).
#
# Builds and installs (into ${SPECULATORS_INSTALL_PLUGINDIR}, default lib/speculators/plugins)
# an algorithm plugin: a shared object named exactly <NAME>.so (the host requires the
# descriptor's name to equal the file stem), linked against the SDK and LibTorch only, with
# hidden visibility so that the single entry point is all it exports. Used the same way in this
# tree and by third parties against an installed SDK (find_package(Speculators CONFIG)).
#
# Every plugin gets a manifest next to it, <NAME>.manifest.json, rewritten after each link: name,
# version, plugin ABI, LibTorch version, C++11 ABI, CUDA flag and the sha256 of the .so. The host
# reads it before it opens the .so (docs/plugins.md). With PACKAGE, the target <NAME>_package
# (part of `all`) also writes, into ${SPECULATORS_PLUGIN_PACKAGE_DIRECTORY} (default
# <build>/packages):
#   speculators-plugin-<NAME>-<VERSION>.tar.gz    <NAME>.so + <NAME>.manifest.json
#   speculators-plugin-<name>_<VERSION>_<arch>.deb  the same two files under the system plugin
#                       directory (when dpkg-deb is available; <name> with '_' turned into '-')
# which `speculators-train plugins install PACKAGE` installs.
set(_SPECULATORS_PLUGIN_MODULE_DIR "${CMAKE_CURRENT_LIST_DIR}")

# The build facts a manifest records, from the SDK (abi.h) and from the LibTorch this project
# found. In this tree the top CMakeLists sets SPECULATORS_PLUGIN_ABI_MAJOR/MINOR from abi.h;
# the installed SpeculatorsConfig.cmake records the same values.
function(_speculators_plugin_facts out_prefix)
  set(torch_version "${Torch_VERSION}")
  if(NOT torch_version)
    message(FATAL_ERROR "speculators_add_plugin: LibTorch's version is unknown (find_package(Torch) first)")
  endif()
  set(cxx11 1)
  if(TORCH_CXX_FLAGS MATCHES "_GLIBCXX_USE_CXX11_ABI=([01])")
    set(cxx11 ${CMAKE_MATCH_1})
  endif()
  set(cuda 0)
  if(SPECULATORS_WITH_CUDA)
    set(cuda 1)
  endif()
  set(${out_prefix}_TORCH_VERSION "${torch_version}" PARENT_SCOPE)
  set(${out_prefix}_CXX11_ABI "${cxx11}" PARENT_SCOPE)
  set(${out_prefix}_CUDA "${cuda}" PARENT_SCOPE)
endfunction()

# speculators_plugin_manifest_and_package(TARGET t NAME n VERSION v [PACKAGE]
#                                          [TORCH_VERSION tv] [MANIFEST_DIRECTORY d])
# The manifest (and with PACKAGE the packages) of an existing MODULE target. TORCH_VERSION
# overrides what the manifest claims (test fixtures use it to build a package for another
# LibTorch); MANIFEST_DIRECTORY puts the manifest somewhere other than next to the .so.
function(speculators_plugin_manifest_and_package)
  cmake_parse_arguments(ARG "PACKAGE" "TARGET;NAME;VERSION;TORCH_VERSION;MANIFEST_DIRECTORY" "" ${ARGN})
  _speculators_plugin_facts(FACT)
  if(ARG_TORCH_VERSION)
    set(FACT_TORCH_VERSION "${ARG_TORCH_VERSION}")
  endif()
  if(NOT DEFINED SPECULATORS_PLUGIN_ABI_MAJOR OR NOT DEFINED SPECULATORS_PLUGIN_ABI_MINOR)
    message(FATAL_ERROR "speculators_add_plugin: SPECULATORS_PLUGIN_ABI_MAJOR/MINOR are not set "
                        "(use find_package(Speculators CONFIG))")
  endif()
  set(manifest_dir "${ARG_MANIFEST_DIRECTORY}")
  if(NOT manifest_dir)
    set(manifest_dir "$<TARGET_FILE_DIR:${ARG_TARGET}>")
  endif()
  set(manifest "${manifest_dir}/${ARG_NAME}.manifest.json")
  set(script "${_SPECULATORS_PLUGIN_MODULE_DIR}/SpeculatorsPluginPackage.cmake")
  set(common_args
    -DSPECULATORS_NAME=${ARG_NAME}
    -DSPECULATORS_VERSION=${ARG_VERSION}
    -DSPECULATORS_LIBRARY=$<TARGET_FILE:${ARG_TARGET}>
    -DSPECULATORS_MANIFEST=${manifest})
  # POST_BUILD: the manifest can never describe an older build of the .so.
  add_custom_command(TARGET ${ARG_TARGET} POST_BUILD
    COMMAND "${CMAKE_COMMAND}" -DSPECULATORS_STEP=manifest ${common_args}
      -DSPECULATORS_ABI_MAJOR=${SPECULATORS_PLUGIN_ABI_MAJOR}
      -DSPECULATORS_ABI_MINOR=${SPECULATORS_PLUGIN_ABI_MINOR}
      -DSPECULATORS_TORCH_VERSION=${FACT_TORCH_VERSION}
      -DSPECULATORS_CXX11_ABI=${FACT_CXX11_ABI}
      -DSPECULATORS_CUDA=${FACT_CUDA}
      -P "${script}"
    VERBATIM)
  if(NOT ARG_PACKAGE)
    return()
  endif()

  set(package_dir "${SPECULATORS_PLUGIN_PACKAGE_DIRECTORY}")
  if(NOT package_dir)
    set(package_dir "${CMAKE_BINARY_DIR}/packages")
  endif()
  set(tgz "${package_dir}/speculators-plugin-${ARG_NAME}-${ARG_VERSION}.tar.gz")
  set(outputs "${tgz}")
  set(deb "")
  find_program(SPECULATORS_DPKG_DEB dpkg-deb)
  find_program(SPECULATORS_DPKG dpkg)
  if(SPECULATORS_DPKG_DEB AND SPECULATORS_DPKG)
    execute_process(COMMAND "${SPECULATORS_DPKG}" --print-architecture
                    OUTPUT_VARIABLE arch OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
    if(rc EQUAL 0 AND arch)
      # Debian package names allow no underscore: good_a -> speculators-plugin-good-a.
      string(REPLACE "_" "-" deb_name "speculators-plugin-${ARG_NAME}")
      string(TOLOWER "${deb_name}" deb_name)
      set(deb "${package_dir}/${deb_name}_${ARG_VERSION}_${arch}.deb")
      list(APPEND outputs "${deb}")
    endif()
  endif()
  # The .deb goes where the SDK's own .deb (prefix /usr) keeps its plugins.
  set(plugin_dir "${SPECULATORS_SDK_PLUGINDIR}")
  if(NOT plugin_dir)
    set(plugin_dir "${SPECULATORS_INSTALL_PLUGINDIR}")
  endif()
  if(NOT plugin_dir)
    set(plugin_dir "lib/speculators/plugins")
  endif()
  add_custom_command(OUTPUT ${outputs}
    COMMAND "${CMAKE_COMMAND}" -DSPECULATORS_STEP=package ${common_args}
      -DSPECULATORS_STAGE=${CMAKE_CURRENT_BINARY_DIR}/${ARG_NAME}_package
      -DSPECULATORS_TGZ=${tgz}
      -DSPECULATORS_DEB=${deb}
      -DSPECULATORS_DPKG_DEB=${SPECULATORS_DPKG_DEB}
      -DSPECULATORS_DEB_ARCH=${arch}
      -DSPECULATORS_DEB_PLUGIN_DIR=usr/${plugin_dir}
      -DSPECULATORS_ABI_MAJOR=${SPECULATORS_PLUGIN_ABI_MAJOR}
      -DSPECULATORS_ABI_MINOR=${SPECULATORS_PLUGIN_ABI_MINOR}
      -P "${script}"
    DEPENDS ${ARG_TARGET} "${script}"
    COMMENT "Packaging plugin ${ARG_NAME} ${ARG_VERSION}"
    VERBATIM)
  add_custom_target(${ARG_NAME}_package ALL DEPENDS ${outputs})
endfunction()

function(speculators_add_plugin name)
  cmake_parse_arguments(ARG "PACKAGE;NO_INSTALL" "VERSION;OUTPUT_DIRECTORY" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "speculators_add_plugin(${name}): SOURCES is required")
  endif()
  if(NOT ARG_VERSION)
    set(ARG_VERSION "${PROJECT_VERSION}")
  endif()
  if(NOT ARG_VERSION)
    set(ARG_VERSION "0.0.0")
  endif()
  add_library(${name} MODULE ${ARG_SOURCES})
  target_compile_definitions(${name} PRIVATE
    "SPECULATORS_PLUGIN_NAME=\"${name}\"" "SPECULATORS_PLUGIN_VERSION=\"${ARG_VERSION}\"")
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
  # BUILD_WITH_INSTALL_RPATH: `cmake --install` then copies the .so byte for byte, so the
  # manifest's sha256 still holds for the installed file. The plugin needs no search path for
  # libspeculators_core: the host has already loaded it when it opens the plugin.
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    OUTPUT_NAME "${name}"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    BUILD_WITH_INSTALL_RPATH ON
    INSTALL_RPATH "$ORIGIN/../.."
    LIBRARY_OUTPUT_DIRECTORY "${out}")
  if(COMMAND speculators_use_torch_pch)
    speculators_use_torch_pch(${name})
  endif()
  set(package_flag "")
  if(ARG_PACKAGE)
    set(package_flag PACKAGE)
  endif()
  speculators_plugin_manifest_and_package(TARGET ${name} NAME ${name} VERSION ${ARG_VERSION} ${package_flag})

  if(ARG_NO_INSTALL)
    return()
  endif()
  # Installed together: the host refuses a .so whose manifest disagrees with it.
  set(destination "${SPECULATORS_INSTALL_PLUGINDIR}")
  if(NOT destination)
    set(destination "lib/speculators/plugins")
  endif()
  install(TARGETS ${name} LIBRARY DESTINATION "${destination}")
  install(FILES "$<TARGET_FILE_DIR:${name}>/${name}.manifest.json" DESTINATION "${destination}")
endfunction()
