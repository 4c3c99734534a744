// DataParallel (see distributed.h). Flat buffers hold the trainable parameters (or their
// gradients) rank segment by rank segment: segment r is the concatenation of the parameters of
// the units rank r owns, in model order, padded to the largest segment, so one reduce_scatter
// hands every owner its averaged gradients and one all_gather hands every rank the owners'
// updated parameters.
#include "train/distributed.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <sstream>

#include "speculators/error.h"
#include "speculators/log.h"

namespace speculators {

ShardMode parse_shard_mode(const std::string& text) {
  if (text == "none") return ShardMode::kNone;
  if (text == "optimizer") return ShardMode::kOptimizer;
  if (text == "full") return ShardMode::kFull;
  fail_usage(cat("--shard must be none, optimizer or full, got \"", text, "\""));
}

std::string to_string(ShardMode mode) {
  switch (mode) {
    case ShardMode::kOptimizer: return "optimizer";
    case ShardMode::kFull: return "full";
    case ShardMode::kNone: break;
  }
  return "none";
}

DataParallel::DataParallel(Communicator& comm, ShardMode mode, DraftModel& model, std::vector<NamedParam> trainable,
                           std::int64_t bucket_mb)
    : comm_(comm), mode_(mode), model_(model), trainable_(std::move(trainable)) {
  if (trainable_.empty()) fail("data parallel: the model has no trainable parameters");
  for (const auto& np : trainable_) {
    if (np.param.scalar_type() != trainable_[0].param.scalar_type() ||
        np.param.device() != trainable_[0].param.device()) {
      fail(cat("data parallel: trainable parameters must share one dtype and device; ", np.name, " is ",
               np.param.scalar_type(), " on ", np.param.device(), ", ", trainable_[0].name, " is ",
               trainable_[0].param.scalar_type(), " on ", trainable_[0].param.device()));
    }
    shapes_.push_back(np.param.sizes().vec());
  }
  // Units: each element of layers(), then everything else (layers() is the unit of sharding:
  // docs/distributed.md, "Sharding").
  std::map<const void*, int> layer_of;
  auto layers = model_.layers();
  const int num_layers = layers.is_empty() ? 0 : static_cast<int>(layers->size());
  for (int i = 0; i < num_layers; ++i) {
    unit_names_.push_back(cat("layers.", i));
    for (const auto& p : layers[static_cast<std::size_t>(i)]->parameters(true)) layer_of[p.unsafeGetTensorImpl()] = i;
  }
  unit_names_.push_back("rest");
  std::vector<std::int64_t> unit_numel(unit_names_.size(), 0);
  for (const auto& np : trainable_) {
    auto it = layer_of.find(np.param.unsafeGetTensorImpl());
    unit_of_.push_back(it == layer_of.end() ? num_layers : it->second);
    unit_numel[static_cast<std::size_t>(unit_of_.back())] += np.param.numel();
  }
  // LPT: the largest unit goes to the least loaded rank (ties: lower unit index, lower rank).
  std::vector<std::size_t> order(unit_names_.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return unit_numel[a] > unit_numel[b]; });
  std::vector<std::int64_t> load(static_cast<std::size_t>(world_size()), 0);
  unit_owner_.assign(unit_names_.size(), 0);
  for (auto u : order) {
    const auto r = static_cast<std::size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    unit_owner_[u] = static_cast<int>(r);
    load[r] += unit_numel[u];
  }
  segments_.resize(static_cast<std::size_t>(world_size()));
  for (std::size_t i = 0; i < trainable_.size(); ++i) {
    auto& seg = segments_[static_cast<std::size_t>(unit_owner_[static_cast<std::size_t>(unit_of_[i])])];
    seg.params.push_back(i);
    seg.numel += trainable_[i].param.numel();
  }
  for (const auto& seg : segments_) segment_numel_ = std::max(segment_numel_, seg.numel);
  const std::int64_t bucket_bytes = std::max<std::int64_t>(1, bucket_mb) << 20;
  std::int64_t bytes = bucket_bytes;
  for (std::size_t i = 0; i < trainable_.size(); ++i) {
    if (bytes >= bucket_bytes) {
      buckets_.emplace_back();
      bytes = 0;
    }
    buckets_.back().push_back(i);
    bytes += trainable_[i].param.numel() * static_cast<std::int64_t>(trainable_[i].param.element_size());
  }
}

std::vector<NamedParam> DataParallel::owned() const {
  if (mode_ == ShardMode::kNone) return trainable_;
  std::vector<NamedParam> out;
  for (auto i : segments_[static_cast<std::size_t>(rank())].params) out.push_back(trainable_[i]);
  return out;
}

void DataParallel::broadcast_model() {
  if (!distributed()) return;
  torch::NoGradGuard no_grad;
  for (auto& np : trainable_) {
    auto t = np.param.detach().contiguous();
    comm_.broadcast(t, 0);
    if (!t.is_same(np.param)) np.param.detach().copy_(t);
  }
}

void DataParallel::sync_gradients() {
  if (!distributed()) return;
  torch::NoGradGuard no_grad;
  const double inv = 1.0 / world_size();
  auto grad_or_zeros = [](const torch::Tensor& p) {
    return p.grad().defined() ? p.grad().reshape({-1}) : torch::zeros({p.numel()}, p.options());
  };
  if (mode_ == ShardMode::kNone) {
    std::vector<torch::Tensor> flats;
    for (const auto& bucket : buckets_) {
      std::vector<torch::Tensor> parts;
      for (auto i : bucket) parts.push_back(grad_or_zeros(trainable_[i].param));
      flats.push_back(torch::cat(parts));
    }
    comm_.all_reduce(flats);
    for (std::size_t b = 0; b < buckets_.size(); ++b) {
      flats[b].mul_(inv);
      std::int64_t off = 0;
      for (auto i : buckets_[b]) {
        auto& p = trainable_[i].param;
        auto slice = flats[b].narrow(0, off, p.numel()).view(p.sizes());
        if (p.grad().defined()) p.mutable_grad().copy_(slice); else p.mutable_grad() = slice.clone();
        off += p.numel();
      }
    }
    return;
  }
  const auto& p0 = trainable_[0].param;
  auto input = torch::zeros({segment_numel_ * world_size()}, p0.options());
  for (int r = 0; r < world_size(); ++r) {
    std::int64_t off = segment_numel_ * r;
    for (auto i : segments_[static_cast<std::size_t>(r)].params) {
      auto& p = trainable_[i].param;
      if (p.grad().defined()) input.narrow(0, off, p.numel()).copy_(p.grad().reshape({-1}));
      p.mutable_grad().reset();  // only the owner keeps a unit's gradients from here on
      off += p.numel();
    }
  }
  auto output = torch::empty({segment_numel_}, p0.options());
  comm_.reduce_scatter(output, input, ReduceOp::kSum);
  input = torch::Tensor();
  output.mul_(inv);
  std::int64_t off = 0;
  for (auto i : segments_[static_cast<std::size_t>(rank())].params) {
    auto& p = trainable_[i].param;
    p.mutable_grad() = output.narrow(0, off, p.numel()).view(p.sizes()).clone();
    off += p.numel();
  }
}

double DataParallel::clip_grad_norm(double max_norm) {
  if (mode_ == ShardMode::kNone) {
    std::vector<torch::Tensor> params;
    for (const auto& np : trainable_) params.push_back(np.param);
    return torch::nn::utils::clip_grad_norm_(params, max_norm);
  }
  torch::NoGradGuard no_grad;
  const auto mine = owned();
  double sumsq = 0;
  for (const auto& np : mine) {
    if (np.param.grad().defined()) sumsq += np.param.grad().to(torch::kFloat64).pow(2).sum().item<double>();
  }
  const double norm = std::sqrt(all_reduce({sumsq})[0]);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1) {
    for (const auto& np : mine) {
      if (np.param.grad().defined()) np.param.mutable_grad().mul_(coef);
    }
  }
  return norm;
}

torch::Tensor DataParallel::pack_owned(bool grads) const {
  const auto& p0 = trainable_[0].param;
  auto out = torch::zeros({segment_numel_}, p0.options());
  std::int64_t off = 0;
  for (auto i : segments_[static_cast<std::size_t>(rank())].params) {
    const auto& p = trainable_[i].param;
    const auto src = grads ? p.grad() : p.detach();
    out.narrow(0, off, p.numel()).copy_(src.reshape({-1}));
    off += p.numel();
  }
  return out;
}

void DataParallel::after_step() {
  if (!distributed() || mode_ == ShardMode::kNone) return;
  if (mode_ == ShardMode::kFull) {
    release_parameters();
    return;
  }
  all_gather_parameters();
}

void DataParallel::all_gather_parameters() {
  // Each owner's segment reaches every rank; a released parameter gets fresh storage, a whole
  // one is overwritten in place.
  torch::NoGradGuard no_grad;
  auto gathered = torch::empty({segment_numel_ * world_size()}, trainable_[0].param.options());
  comm_.all_gather(gathered, pack_owned(false));
  for (int r = 0; r < world_size(); ++r) {
    if (r == rank()) continue;
    std::int64_t off = segment_numel_ * r;
    for (auto i : segments_[static_cast<std::size_t>(r)].params) {
      auto& p = trainable_[i].param;
      const auto numel = c10::multiply_integers(shapes_[i]);
      auto value = gathered.narrow(0, off, numel).view(shapes_[i]);
      if (released_) p.set_data(value.clone()); else p.detach().copy_(value);
      off += numel;
    }
  }
  released_ = false;
}

void DataParallel::release_parameters() {
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < trainable_.size(); ++i) {
    if (unit_owner_[static_cast<std::size_t>(unit_of_[i])] == rank()) continue;
    trainable_[i].param.set_data(torch::empty({0}, trainable_[i].param.options()));
  }
  released_ = true;
}

void DataParallel::gather_parameters() {
  if (released_) all_gather_parameters();
}

std::vector<double> DataParallel::all_reduce(std::vector<double> values, ReduceOp op) {
  if (!distributed() || values.empty()) return values;
  auto t = torch::tensor(values, torch::kFloat64);
  comm_.all_reduce(t, op);
  auto acc = t.accessor<double, 1>();
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = acc[static_cast<std::int64_t>(i)];
  return values;
}

NamedTensors DataParallel::gather_to_rank0(const NamedTensors& local) {
  if (!distributed()) return local;
  // Each rank describes its tensors ("name\tdtype\td0,d1,...\n"); the descriptions are
  // all-gathered as int32 code points, then each tensor is broadcast from the rank that has it.
  std::string meta;
  for (const auto& [name, t] : local) {
    meta += name + "\t" + std::to_string(static_cast<int>(t.scalar_type())) + "\t";
    for (std::int64_t d = 0; d < t.dim(); ++d) meta += (d ? "," : "") + std::to_string(t.size(d));
    meta += "\n";
  }
  auto len = torch::tensor({static_cast<std::int64_t>(meta.size())}, torch::kInt64);
  auto lens = torch::empty({world_size()}, torch::kInt64);
  comm_.all_gather(lens, len);
  const auto max_len = lens.max().item<std::int64_t>();
  auto mine = torch::zeros({max_len}, torch::kInt32);
  for (std::size_t i = 0; i < meta.size(); ++i) mine[static_cast<std::int64_t>(i)] = static_cast<unsigned char>(meta[i]);
  auto all = torch::empty({max_len * world_size()}, torch::kInt32);
  comm_.all_gather(all, mine);
  NamedTensors out;
  for (int r = 0; r < world_size(); ++r) {
    std::string text;
    const auto n = lens[r].item<std::int64_t>();
    auto acc = all.accessor<int, 1>();
    for (std::int64_t i = 0; i < n; ++i) text += static_cast<char>(acc[max_len * r + i]);
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
      const auto a = line.find('\t'), b = line.find('\t', a + 1);
      const std::string name = line.substr(0, a);
      const auto dtype = static_cast<c10::ScalarType>(std::stoi(line.substr(a + 1, b - a - 1)));
      std::vector<std::int64_t> shape;
      std::istringstream dims(line.substr(b + 1));
      std::string d;
      while (std::getline(dims, d, ',')) shape.push_back(std::stoll(d));
      torch::Tensor t = r == rank() ? local.at(name).contiguous() : torch::empty(shape, torch::TensorOptions(dtype));
      comm_.broadcast(t, r);
      if (rank() == 0) {
        if (out.count(name)) fail(cat("gathering a checkpoint: \"", name, "\" is held by two ranks"));
        out[name] = t;
      }
    }
  }
  return out;
}

}  // namespace speculators
