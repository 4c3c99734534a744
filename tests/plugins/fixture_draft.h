// The trainable draft of the "draft_*" fixtures (fixture_draft.cpp says what each name does).
#pragma once

#include <memory>
#include <string>

#include "speculators/algorithm.h"

namespace speculators {
namespace fixture {

// Whether `name` is one of the trainable "draft_*" fixtures.
bool is_draft_fixture(const std::string& name);
// The draft of fixture `name` for the verifier of `ctx`; throws where the name says it does.
std::shared_ptr<DraftModel> build_fixture_draft(const std::string& name, const BuildContext& ctx, bool from_config);

}  // namespace fixture
}  // namespace speculators
