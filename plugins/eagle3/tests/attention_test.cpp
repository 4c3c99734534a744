// TTT attention (speculators/models/eagle3/attention.py): the golden step-0 mask for lengths [1, 2,
// 3] and the diagonal rule of later blocks; the chunked kernel against the dense mask (values and
// gradients, fp32, 1e-5) on packed rows with several documents, padding and a window shorter than a
// document, for K = 1, 3, 5; and one row worked out by hand.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>

#include "attention.h"
#include "speculators/error.h"

using namespace speculators;
using namespace speculators::eagle3;

namespace {

torch::Tensor doc_ids(const std::vector<std::int64_t>& ids) { return torch::tensor(ids, torch::kLong); }

// lengths [9, 12, 7, 3] packed into L = 37 with 6 padding positions.
torch::Tensor packed_docs() {
  std::vector<std::int64_t> ids;
  const std::vector<std::int64_t> lengths = {9, 12, 7, 3};
  for (std::size_t d = 0; d < lengths.size(); ++d) ids.insert(ids.end(), lengths[d], static_cast<std::int64_t>(d));
  ids.insert(ids.end(), 6, -1);
  return doc_ids(ids);
}

struct Blocks {
  torch::Tensor q;
  std::vector<torch::Tensor> keys, values;
};

Blocks random_blocks(std::int64_t steps, std::int64_t L, std::int64_t nh = 4, std::int64_t nkv = 2, std::int64_t hd = 8) {
  Blocks b;
  b.q = torch::randn({1, nh, L, hd}).requires_grad_(true);
  for (std::int64_t s = 0; s < steps; ++s) {
    b.keys.push_back(torch::randn({1, nkv, L, hd}).requires_grad_(true));
    b.values.push_back(torch::randn({1, nkv, L, hd}).requires_grad_(true));
  }
  return b;
}

Blocks clone_leaves(const Blocks& b) {
  Blocks c;
  c.q = b.q.detach().clone().requires_grad_(true);
  for (const auto& k : b.keys) c.keys.push_back(k.detach().clone().requires_grad_(true));
  for (const auto& v : b.values) c.values.push_back(v.detach().clone().requires_grad_(true));
  return c;
}

bool close(const torch::Tensor& a, const torch::Tensor& b) { return torch::allclose(a, b, 1e-5, 1e-5); }

}  // namespace

TEST_CASE("golden step-0 mask for lengths [1, 2, 3]", "[eagle3][attention]") {
  const auto doc = doc_ids({0, 1, 1, 2, 2, 2});
  const auto expected = torch::tensor({1, 0, 0, 0, 0, 0,  //
                                       0, 1, 0, 0, 0, 0,  //
                                       0, 1, 1, 0, 0, 0,  //
                                       0, 0, 0, 1, 0, 0,  //
                                       0, 0, 0, 1, 1, 0,  //
                                       0, 0, 0, 1, 1, 1})
                            .reshape({6, 6})
                            .to(torch::kBool);
  REQUIRE(torch::equal(ttt_mask(doc, 0, std::nullopt), expected));

  SECTION("later blocks: only kv mod N == q") {
    const auto mask = ttt_mask(doc, 2, std::nullopt);
    REQUIRE(mask.sizes() == torch::IntArrayRef({6, 18}));
    REQUIRE(torch::equal(mask.slice(1, 0, 6), expected));
    for (std::int64_t q = 0; q < 6; ++q) {
      for (std::int64_t kv = 6; kv < 18; ++kv) REQUIRE(mask[q][kv].item<bool>() == (kv % 6 == q));
    }
  }
}

TEST_CASE("mask: padding sees only itself, the window counts itself", "[eagle3][attention]") {
  const auto doc = doc_ids({0, 0, 0, 0, -1, -1});
  const auto mask = ttt_mask(doc, 1, 2);
  // Window 2: key j visible iff q - 2 < j <= q.
  REQUIRE(mask[3].slice(0, 0, 6).nonzero().flatten().equal(torch::tensor({2, 3}, torch::kLong)));
  REQUIRE(mask[4].slice(0, 0, 6).nonzero().flatten().equal(torch::tensor({4}, torch::kLong)));
  REQUIRE(mask[5].nonzero().flatten().equal(torch::tensor({5, 11}, torch::kLong)));
}

TEST_CASE("chunked TTT attention equals the dense mask path", "[eagle3][attention]") {
  torch::manual_seed(7);
  const auto doc = packed_docs();
  const std::int64_t L = doc.size(0);
  for (const std::optional<std::int64_t> window : {std::optional<std::int64_t>(), std::optional<std::int64_t>(3)}) {
    for (const std::int64_t K : {1, 3, 5}) {
      for (const std::int64_t chunk : {5, 64}) {
        DYNAMIC_SECTION("window " << (window ? *window : 0) << " K " << K << " chunk " << chunk) {
          const auto dense_in = random_blocks(K, L);
          const auto fast_in = clone_leaves(dense_in);
          const auto dense = dense_ttt_attention(dense_in.q, dense_in.keys, dense_in.values, doc, window);
          const auto fast = ttt_attention(fast_in.q, fast_in.keys, fast_in.values, doc, window, chunk);
          REQUIRE(close(dense, fast));
          const auto upstream = torch::randn(dense.sizes());
          (dense * upstream).sum().backward();
          (fast * upstream).sum().backward();
          REQUIRE(close(dense_in.q.grad(), fast_in.q.grad()));
          for (std::int64_t s = 0; s < K; ++s) {
            REQUIRE(close(dense_in.keys[s].grad(), fast_in.keys[s].grad()));
            REQUIRE(close(dense_in.values[s].grad(), fast_in.values[s].grad()));
          }
        }
      }
    }
  }
}

TEST_CASE("one query worked out by hand", "[eagle3][attention]") {
  torch::manual_seed(8);
  // Documents [0, 0, 0, 0, 1, 1], window 3, step 2: query 3 sees step-0 keys 1..3 and its own
  // key in blocks 1 and 2.
  const auto doc = doc_ids({0, 0, 0, 0, 1, 1});
  const auto in = random_blocks(3, 6, /*nh=*/2, /*nkv=*/1, /*hd=*/4);
  const auto out = ttt_attention(in.q, in.keys, in.values, doc, 3, 2);
  for (std::int64_t head = 0; head < 2; ++head) {
    const auto q = in.q.detach()[0][head][3];
    std::vector<torch::Tensor> ks = {in.keys[0].detach()[0][0][1], in.keys[0].detach()[0][0][2],
                                     in.keys[0].detach()[0][0][3], in.keys[1].detach()[0][0][3],
                                     in.keys[2].detach()[0][0][3]};
    std::vector<torch::Tensor> vs = {in.values[0].detach()[0][0][1], in.values[0].detach()[0][0][2],
                                     in.values[0].detach()[0][0][3], in.values[1].detach()[0][0][3],
                                     in.values[2].detach()[0][0][3]};
    std::vector<double> scores;
    double denom = 0;
    for (const auto& k : ks) {
      scores.push_back(std::exp((q * k).sum().item<double>() / 2.0));  // scale 1/sqrt(4)
      denom += scores.back();
    }
    auto expected = torch::zeros({4});
    for (std::size_t i = 0; i < vs.size(); ++i) expected += vs[i] * (scores[i] / denom);
    REQUIRE(torch::allclose(out.detach()[0][head][3], expected, 1e-5, 1e-6));
  }
}

TEST_CASE("TTT attention input checks", "[eagle3][attention]") {
  const auto in = random_blocks(2, 6);
  REQUIRE_THROWS_WITH(ttt_attention(in.q, in.keys, {in.values[0]}, doc_ids({0, 0, 0, 0, 0, 0}), std::nullopt),
                      Catch::Contains("one key and one value block per step"));
  REQUIRE_THROWS_WITH(ttt_attention(in.q, in.keys, in.values, doc_ids({0, 0, 0}), std::nullopt),
                      Catch::Contains("document_ids"));
  REQUIRE_THROWS_AS(ttt_attention(in.q, in.keys, in.values, doc_ids({0, 0, 0, 0, 0, 0}), 0), Error);
}
