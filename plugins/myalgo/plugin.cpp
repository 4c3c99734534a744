// The myalgo plugin's entry point: the only file the host looks into first.
//
// SPECULATORS_PLUGIN defines the one exported C symbol of the .so: a descriptor carrying this
// build's fingerprint (plugin ABI, LibTorch version, C++11 ABI flag, CUDA flag), the plugin's
// name and version (both from speculators_add_plugin in CMakeLists.txt, written nowhere else), and a
// register function. The host checks the fingerprint, checks that the
// name equals the file stem (myalgo.so), and only then calls the body below, which adds the
// algorithm to the registry: the C++ form of the reference's @register("myalgo") decorators.
// Nothing here runs when the library is loaded.
#include "myalgo.h"
#include "speculators/plugin/plugin.h"

SPECULATORS_PLUGIN(registrar) { registrar.add<speculators::myalgo::MyAlgo>(); }
