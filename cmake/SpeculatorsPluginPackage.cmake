# Script mode (cmake -P), run by the build steps speculators_add_plugin() creates:
#   SPECULATORS_STEP=manifest  writes <name>.manifest.json for a freshly linked <name>.so;
#   SPECULATORS_STEP=package   packs the .so and its manifest into a .tar.gz and, when
#                              SPECULATORS_DEB is set, a .deb (built with dpkg-deb).
# The manifest format is the one host/src/plugin_host/fingerprint.h reads (docs/plugins.md, "Manifest").
cmake_minimum_required(VERSION 3.22)

foreach(var SPECULATORS_STEP SPECULATORS_NAME SPECULATORS_VERSION SPECULATORS_LIBRARY SPECULATORS_MANIFEST)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "SpeculatorsPluginPackage.cmake: ${var} is not set")
  endif()
endforeach()

# A JSON string literal (the values here are names, versions and hex digits, but quote anyway).
function(_json_string out text)
  string(REPLACE "\\" "\\\\" text "${text}")
  string(REPLACE "\"" "\\\"" text "${text}")
  set(${out} "\"${text}\"" PARENT_SCOPE)
endfunction()

if(SPECULATORS_STEP STREQUAL "manifest")
  if(NOT SPECULATORS_TORCH_VERSION MATCHES "^([0-9]+)\\.([0-9]+)")
    message(FATAL_ERROR "plugin ${SPECULATORS_NAME}: LibTorch version \"${SPECULATORS_TORCH_VERSION}\" is not major.minor[.patch]")
  endif()
  set(torch_major ${CMAKE_MATCH_1})
  set(torch_minor ${CMAKE_MATCH_2})
  file(SHA256 "${SPECULATORS_LIBRARY}" sha)
  get_filename_component(library_name "${SPECULATORS_LIBRARY}" NAME)
  _json_string(name "${SPECULATORS_NAME}")
  _json_string(version "${SPECULATORS_VERSION}")
  _json_string(torch "${SPECULATORS_TORCH_VERSION}")
  _json_string(library "${library_name}")
  string(CONCAT text
    "{\n"
    "  \"format\": \"speculators-plugin-manifest\",\n"
    "  \"format_version\": 1,\n"
    "  \"name\": ${name},\n"
    "  \"version\": ${version},\n"
    "  \"library\": ${library},\n"
    "  \"sha256\": \"${sha}\",\n"
    "  \"plugin_abi_major\": ${SPECULATORS_ABI_MAJOR},\n"
    "  \"plugin_abi_minor\": ${SPECULATORS_ABI_MINOR},\n"
    "  \"torch_version\": ${torch},\n"
    "  \"torch_major\": ${torch_major},\n"
    "  \"torch_minor\": ${torch_minor},\n"
    "  \"cxx11_abi\": ${SPECULATORS_CXX11_ABI},\n"
    "  \"cuda\": ${SPECULATORS_CUDA}\n"
    "}\n")
  get_filename_component(dir "${SPECULATORS_MANIFEST}" DIRECTORY)
  file(MAKE_DIRECTORY "${dir}")
  # Written to a temporary name and renamed: a reader never sees half a manifest.
  file(WRITE "${SPECULATORS_MANIFEST}.tmp" "${text}")
  file(RENAME "${SPECULATORS_MANIFEST}.tmp" "${SPECULATORS_MANIFEST}")
  return()
endif()

if(NOT SPECULATORS_STEP STREQUAL "package")
  message(FATAL_ERROR "SpeculatorsPluginPackage.cmake: unknown step \"${SPECULATORS_STEP}\"")
endif()

get_filename_component(library_name "${SPECULATORS_LIBRARY}" NAME)
get_filename_component(manifest_name "${SPECULATORS_MANIFEST}" NAME)
# The manifest must describe this very .so (it is rewritten after every link).
file(SHA256 "${SPECULATORS_LIBRARY}" sha)
file(READ "${SPECULATORS_MANIFEST}" manifest_text)
if(NOT manifest_text MATCHES "\"sha256\": \"${sha}\"")
  message(FATAL_ERROR "${SPECULATORS_MANIFEST} does not hold the sha256 of ${SPECULATORS_LIBRARY} (${sha}); rebuild the plugin")
endif()

# The .tar.gz: the two files at the top level, nothing else.
set(tar_stage "${SPECULATORS_STAGE}/tgz")
file(REMOVE_RECURSE "${SPECULATORS_STAGE}")
file(MAKE_DIRECTORY "${tar_stage}")
file(COPY "${SPECULATORS_LIBRARY}" "${SPECULATORS_MANIFEST}" DESTINATION "${tar_stage}")
get_filename_component(package_dir "${SPECULATORS_TGZ}" DIRECTORY)
file(MAKE_DIRECTORY "${package_dir}")
execute_process(
  COMMAND "${CMAKE_COMMAND}" -E tar czf "${SPECULATORS_TGZ}.tmp" --format=gnutar -- "${library_name}" "${manifest_name}"
  WORKING_DIRECTORY "${tar_stage}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "could not write ${SPECULATORS_TGZ}")
endif()
file(RENAME "${SPECULATORS_TGZ}.tmp" "${SPECULATORS_TGZ}")

if(NOT SPECULATORS_DEB)
  return()
endif()
# The .deb: the same two files under the system plugin directory (where the host installed by
# the SDK's .deb looks: <exe dir>/../lib/speculators/plugins).
set(deb_stage "${SPECULATORS_STAGE}/deb")
file(MAKE_DIRECTORY "${deb_stage}/DEBIAN" "${deb_stage}/${SPECULATORS_DEB_PLUGIN_DIR}")
file(COPY "${SPECULATORS_LIBRARY}" "${SPECULATORS_MANIFEST}" DESTINATION "${deb_stage}/${SPECULATORS_DEB_PLUGIN_DIR}")
# Debian versions must start with a digit.
set(deb_version "${SPECULATORS_VERSION}")
if(NOT deb_version MATCHES "^[0-9]")
  set(deb_version "0~${deb_version}")
endif()
# The SDK range the plugin was built for: the SDK version follows the plugin ABI, so any SDK of the
# same major whose minor is at least the plugin's ABI minor loads it (docs/plugins.md, "Versions").
set(deb_depends "speculators")
if(DEFINED SPECULATORS_ABI_MAJOR AND DEFINED SPECULATORS_ABI_MINOR)
  math(EXPR next_major "${SPECULATORS_ABI_MAJOR} + 1")
  set(deb_depends "speculators (>= ${SPECULATORS_ABI_MAJOR}.${SPECULATORS_ABI_MINOR}), speculators (<< ${next_major}~)")
endif()
string(REPLACE "_" "-" deb_name "speculators-plugin-${SPECULATORS_NAME}")
string(TOLOWER "${deb_name}" deb_name)
file(WRITE "${deb_stage}/DEBIAN/control"
  "Package: ${deb_name}\n"
  "Version: ${deb_version}\n"
  "Architecture: ${SPECULATORS_DEB_ARCH}\n"
  "Maintainer: speculators plugin build <noreply@localhost>\n"
  "Depends: ${deb_depends}\n"
  "Section: science\n"
  "Priority: optional\n"
  "Description: speculators algorithm plugin ${SPECULATORS_NAME} ${SPECULATORS_VERSION}\n"
  " The plugin ${SPECULATORS_NAME}.so and its manifest for speculators-train.\n")
execute_process(
  COMMAND "${SPECULATORS_DPKG_DEB}" --root-owner-group -Zgzip --build "${deb_stage}" "${SPECULATORS_DEB}.tmp"
  OUTPUT_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "dpkg-deb could not build ${SPECULATORS_DEB}")
endif()
file(RENAME "${SPECULATORS_DEB}.tmp" "${SPECULATORS_DEB}")
