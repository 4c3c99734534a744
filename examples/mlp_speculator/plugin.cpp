// The plugin's entry point: registers the mlp_speculator algorithm. Its name and version come from
// speculators_add_plugin in CMakeLists.txt.
#include "mlp_speculator.h"
#include "speculators/plugin/plugin.h"

SPECULATORS_PLUGIN(registrar) { registrar.add<speculators::mlp_speculator::MlpAlgorithm>(); }
