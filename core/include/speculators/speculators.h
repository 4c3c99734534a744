// The whole public SDK in one include, for plugin authors.
#pragma once

#include "speculators/algorithm.h"
#include "speculators/args.h"
#include "speculators/error.h"
#include "speculators/json.h"
#include "speculators/log.h"
#include "speculators/nn/components.h"
#include "speculators/nn/transformer_config.h"
#include "speculators/plugin/plugin.h"
#include "speculators/registry.h"
#include "speculators/schema.h"
#include "speculators/tensor_io.h"
#include "speculators/verifier.h"
