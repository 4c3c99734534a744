// The eagle3 plugin entry point: the Algorithm that registers EAGLE-3 with the host.
#include "eagle3_algorithm.h"

#include "speculators/plugin/plugin.h"

SPECULATORS_PLUGIN(registrar) { registrar.add<speculators::eagle3::Eagle3Algorithm>(); }
