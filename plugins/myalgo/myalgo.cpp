// The myalgo plugin entry point.
#include "speculators/plugin/plugin.h"

SPECULATORS_PLUGIN(myalgo, "0.1.0", registrar) {}
