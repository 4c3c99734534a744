// Collects the legacy profiler's push/pop ranges per thread and turns them into exclusive times:
// a range's time minus the time of the ranges nested in it on the same thread.
#include "op_profile.h"

#include <torch/csrc/autograd/profiler_legacy.h>

#include <iterator>
#include <vector>

namespace speculators::bench {

namespace prof = torch::autograd::profiler;

bool OpProfile::is_matmul(const std::string& op) {
  return op == "aten::mm" || op == "aten::addmm" || op == "aten::bmm" || op == "aten::baddbmm";
}

OpProfile profile_ops(const std::function<void()>& step) {
  torch::profiler::impl::ProfilerConfig config(torch::profiler::impl::ProfilerState::CPU,
                                               /*report_input_shapes=*/true, /*profile_memory=*/false,
                                               /*with_stack=*/false, /*with_flops=*/true);
  prof::enableProfilerLegacy(config);
  try {
    step();
  } catch (...) {
    prof::disableProfilerLegacy();
    throw;
  }
  const prof::thread_event_lists lists = prof::disableProfilerLegacy();

  OpProfile out;
  for (const auto& events : lists) {
    struct Open {
      const prof::LegacyEvent* push;
      double child_us;
    };
    std::vector<Open> stack;
    for (const auto& e : events) {
      if (e.kind() == prof::EventKind::PushRange) {
        stack.push_back({&e, 0.0});
      } else if (e.kind() == prof::EventKind::PopRange) {
        // Ranges on one thread nest; a pop closes the open range with its handle (normally the
        // innermost one).
        auto it = stack.rbegin();
        while (it != stack.rend() && it->push->handle() != e.handle()) ++it;
        if (it == stack.rend()) continue;
        const Open open = *it;
        stack.erase(std::next(it).base(), stack.end());
        const double elapsed = open.push->cpuElapsedUs(e);
        const std::string name = open.push->name();
        auto& s = out.ops[name];
        s.self_us += elapsed - open.child_us;
        s.calls += 1;
        auto* push = const_cast<prof::LegacyEvent*>(open.push);
        if (OpProfile::is_matmul(name)) s.flops += push->flops();
        if (!stack.empty()) stack.back().child_us += elapsed;
      }
    }
  }
  for (const auto& [name, s] : out.ops) {
    out.total_self_us += s.self_us;
    if (OpProfile::is_matmul(name)) {
      out.matmul_flops += s.flops;
      out.matmul_us += s.self_us;
    }
  }
  return out;
}

}  // namespace speculators::bench
