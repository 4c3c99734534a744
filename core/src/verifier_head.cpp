// load_verifier_head (speculators/verifier_head.h).
#include "speculators/verifier_head.h"

#include <utility>
#include <vector>

#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/verifier.h"

namespace speculators {

namespace {

void check_shape(const std::string& dir, const char* name, const torch::Tensor& t, std::vector<std::int64_t> want) {
  if (!t.defined()) fail_usage(cat(dir, ": the verifier checkpoint has no ", name));
  if (t.sizes().vec() != want)
    fail_usage(cat(dir, ": verifier tensor ", name, " has shape ", t.sizes(), ", expected ", torch::IntArrayRef(want)));
}

}  // namespace

torch::Tensor VerifierHead::lm_head_rows(const torch::Tensor& t2d) const {
  if (!t2d.defined()) return lm_head;
  if (t2d.dim() != 1 || t2d.size(0) != lm_head.size(0))
    fail(cat("lm_head_rows: t2d has shape ", t2d.sizes(), ", expected [", lm_head.size(0), "]"));
  return lm_head.index({t2d.to(torch::kBool).to(lm_head.device())});
}

VerifierHead load_verifier_head(const std::string& dir, std::int64_t hidden_size, std::int64_t vocab_size) {
  VerifierHead head;
  head.embed_tokens = read_verifier_tensor(dir, "embed_tokens.weight");
  head.lm_head = read_verifier_tensor(dir, "lm_head.weight");
  head.norm = read_verifier_tensor(dir, "model.norm.weight");
  check_shape(dir, "embed_tokens.weight", head.embed_tokens, {vocab_size, hidden_size});
  if (!head.lm_head.defined()) head.lm_head = head.embed_tokens;  // no lm_head = tied embeddings
  check_shape(dir, "lm_head.weight", head.lm_head, {vocab_size, hidden_size});
  check_shape(dir, "model.norm.weight", head.norm, {hidden_size});
  return head;
}

void copy_frozen(torch::Tensor& dst, const torch::Tensor& src) {
  {
    torch::NoGradGuard no_grad;
    dst.copy_(src);
  }
  dst.set_requires_grad(false);
}

}  // namespace speculators
