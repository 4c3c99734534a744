// The eagle3 plugin entry point.
#include "speculators/plugin/plugin.h"

SPECULATORS_PLUGIN(eagle3, "0.1.0", registrar) {}
