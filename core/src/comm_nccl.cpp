// The NCCL backend of the communicator (GPU), built when CMake finds CUDA and NCCL
// (cmake/SpeculatorsNccl.cmake). It talks to nccl.h and the CUDA runtime directly rather than
// through c10d's ProcessGroupNCCL, so that it works with any LibTorch, CPU-only ones included:
//   - rendezvous: the shared detail::Rendezvous; rank 0 puts the NCCL unique id in its store;
//   - the communicator is non-blocking (config.blocking = 0), so that every wait can be bounded
//     by the communicator's timeout and end in ncclCommAbort instead of a hang;
//   - collectives run on the legacy default CUDA stream, which orders after the work of every
//     blocking stream (LibTorch's default stream included), and are waited for by polling;
//   - CUDA tensors are used in place; CPU tensors (always the case with a CPU-only LibTorch) are
//     staged through a device buffer this communicator owns.
// Failures (a CUDA or NCCL error, the timeout) abort the communicator and throw through
// Rendezvous::fail, which names the rank that went quiet.
#include <cuda_bf16.h>  // older nccl.h only declare ncclBfloat16 when the CUDA bf16 type exists
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <iomanip>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "comm_nccl.h"
#include "rendezvous.h"
#include "speculators/error.h"

#if NCCL_VERSION_CODE < NCCL_VERSION(2, 14, 0)
#error "the NCCL backend needs NCCL >= 2.14 (ncclCommInitRankConfig with non-blocking communicators)"
#endif

namespace speculators {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kIdKey = "speculators/nccl/id";
// Staged CPU tensors start at this alignment inside the staging buffer (NCCL's fast paths want
// aligned buffers; cudaMalloc itself returns 256-byte aligned memory).
constexpr size_t kStagingAlignment = 256;
// The stream every collective runs on: the legacy default stream (see the file comment).
const cudaStream_t kStream = nullptr;

std::string seconds_text(std::chrono::milliseconds ms) {
  std::ostringstream out;
  if (ms.count() % 1000 == 0) {
    out << ms.count() / 1000 << " s";
  } else {
    out << std::fixed << std::setprecision(3) << static_cast<double>(ms.count()) / 1000.0 << " s";
  }
  return out.str();
}

std::string nccl_text(ncclResult_t result, ncclComm_t comm) {
  std::string text = std::string("NCCL error '") + ncclGetErrorString(result) + "'";
  // ncclGetLastError ignores `comm` (it may be null) and returns the thread's last message.
  const char* detail = ncclGetLastError(comm);
  if (detail != nullptr && *detail != '\0') text += std::string(": ") + detail;
  return text;
}

std::string cuda_text(cudaError_t error, const char* call) {
  return std::string("CUDA error in ") + call + ": " + cudaGetErrorString(error);
}

// What a c10d store call threw, without LibTorch's backtrace.
std::string store_error_text(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) return c10_error->what_without_backtrace();
  return e.what();
}

// Spins briefly (collectives of a training step are short), then sleeps so a long wait does
// not burn a core.
void pause(int spins) {
  if (spins < 200) {
    std::this_thread::yield();
  } else {
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return ncclSum;
    case ReduceOp::kMax: return ncclMax;
    case ReduceOp::kMin: return ncclMin;
  }
  fail("NCCL: unknown reduce op " + std::to_string(static_cast<int>(op)));
}

// Checks that `tensor` can take part in collective `op` on `device` and returns its NCCL type.
ncclDataType_t checked_type(const char* op, const std::string& what, const torch::Tensor& tensor, int device) {
  const std::string where = std::string("NCCL ") + op + ": " + what;
  if (!tensor.defined()) fail(where + " is an undefined tensor");
  if (!tensor.is_contiguous()) fail(where + " is not contiguous (call .contiguous() first)");
  if (tensor.is_cuda() && tensor.device().index() != device) {
    fail(where + " is on " + tensor.device().str() + " but this communicator uses cuda:" + std::to_string(device));
  }
  if (!tensor.is_cuda() && !tensor.device().is_cpu()) {
    fail(where + " is on " + tensor.device().str() + "; the NCCL backend takes CPU or CUDA tensors");
  }
  switch (tensor.scalar_type()) {
    case torch::kFloat: return ncclFloat32;
    case torch::kDouble: return ncclFloat64;
    case torch::kHalf: return ncclFloat16;
    case torch::kBFloat16: return ncclBfloat16;
    case torch::kInt: return ncclInt32;
    case torch::kLong: return ncclInt64;
    case torch::kByte: return ncclUint8;
    case torch::kChar: return ncclInt8;
    default:
      fail(where + " has dtype " + c10::toString(tensor.scalar_type()) +
           ", which the NCCL backend does not support (supported: float32, float64, float16, bfloat16, "
           "int32, int64, uint8, int8)");
  }
}

size_t byte_size(const torch::Tensor& tensor) { return static_cast<size_t>(tensor.numel()) * tensor.element_size(); }

// Throws a usage error unless `device` is a CUDA device this process can use, then selects it.
void select_device(int device) {
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess || count == 0) {
    fail_usage(std::string("distributed backend 'nccl' needs a CUDA GPU, but ") +
               (error != cudaSuccess ? "CUDA reports: " + std::string(cudaGetErrorString(error))
                                     : std::string("no CUDA device is visible")) +
               "; use the 'gloo' backend on machines without one");
  }
  if (device < 0 || device >= count) {
    fail_usage("distributed backend 'nccl': CUDA device " + std::to_string(device) + " does not exist (this process sees " +
               std::to_string(count) + " device(s), 0.." + std::to_string(count - 1) + ")");
  }
  const cudaError_t set = cudaSetDevice(device);
  if (set != cudaSuccess) fail_usage("distributed backend 'nccl': " + cuda_text(set, "cudaSetDevice"));
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const RankInfo& info, std::chrono::milliseconds timeout, int device);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rendezvous_->info().rank; }
  int world_size() const override { return rendezvous_->info().world_size; }
  std::string backend() const override { return "nccl"; }

  using Communicator::all_reduce;
  void all_reduce(std::vector<torch::Tensor>& tensors, ReduceOp op) override;
  void broadcast(torch::Tensor& tensor, int root) override;
  void reduce_scatter(torch::Tensor& output, torch::Tensor& input, ReduceOp op) override;
  void all_gather(torch::Tensor& output, const torch::Tensor& input) override;
  void barrier() override;

 private:
  // One tensor of a collective and the device memory NCCL works on for it: the tensor's own
  // for a CUDA tensor, a slice of the staging buffer for a CPU one.
  struct Operand {
    torch::Tensor tensor;
    bool copy_in = false;   // NCCL reads it
    bool copy_out = false;  // NCCL writes it
    void* device = nullptr;
  };

  void exchange_id(ncclUniqueId& id);
  void begin(const char* op);
  void stage(const char* op, std::vector<Operand>& operands);
  void unstage(const char* op, const std::vector<Operand>& operands);
  void await_enqueue(const char* op, ncclResult_t result, Clock::time_point deadline);
  void await_stream(const char* op, Clock::time_point deadline);
  [[noreturn]] void abort_and_fail(const char* op, const std::string& cause);
  std::string timeout_text() const { return "timed out after " + seconds_text(timeout()); }

  int device_;
  std::unique_ptr<detail::Rendezvous> rendezvous_;
  ncclComm_t comm_ = nullptr;
  bool aborted_ = false;
  void* staging_ = nullptr;
  size_t staging_bytes_ = 0;
  void* barrier_buffer_ = nullptr;  // one float, all-reduced by barrier()
};

NcclCommunicator::NcclCommunicator(const RankInfo& info, std::chrono::milliseconds timeout, int device)
    : Communicator(timeout), device_(device) {
  select_device(device);
  rendezvous_ = std::make_unique<detail::Rendezvous>(info, timeout);
  const auto deadline = Clock::now() + timeout;
  ncclUniqueId id;
  exchange_id(id);

  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // lets the wait below give up and abort at the deadline
  const ncclResult_t started = ncclCommInitRankConfig(&comm_, info.world_size, id, info.rank, &config);
  await_enqueue("NCCL init", started, deadline);

  const cudaError_t allocated = cudaMalloc(&barrier_buffer_, sizeof(float));
  if (allocated != cudaSuccess) abort_and_fail("NCCL init", cuda_text(allocated, "cudaMalloc"));
  const cudaError_t zeroed = cudaMemset(barrier_buffer_, 0, sizeof(float));
  if (zeroed != cudaSuccess) abort_and_fail("NCCL init", cuda_text(zeroed, "cudaMemset"));
}

NcclCommunicator::~NcclCommunicator() {
  if (rendezvous_) rendezvous_->begin_teardown();
  cudaSetDevice(device_);
  if (comm_ != nullptr) {
    // Finalize flushes what is still in flight; on a non-blocking communicator it completes
    // asynchronously, so it gets the timeout too, and an abort when it does not make it.
    const auto deadline = Clock::now() + timeout();
    ncclResult_t state = ncclCommFinalize(comm_);
    for (int spins = 0; state == ncclInProgress && Clock::now() < deadline; ++spins) {
      pause(spins);
      ncclCommGetAsyncError(comm_, &state);
    }
    if (state == ncclSuccess) {
      ncclCommDestroy(comm_);
    } else {
      ncclCommAbort(comm_);
    }
    comm_ = nullptr;
  }
  if (staging_ != nullptr) cudaFree(staging_);
  if (barrier_buffer_ != nullptr) cudaFree(barrier_buffer_);
}

// Rank 0 creates the id; the others read it from rank 0's store (the read waits for it).
void NcclCommunicator::exchange_id(ncclUniqueId& id) {
  const auto& store = rendezvous_->store();
  if (rank() == 0) {
    const ncclResult_t made = ncclGetUniqueId(&id);
    if (made != ncclSuccess) rendezvous_->fail("NCCL init", "ncclGetUniqueId: " + nccl_text(made, nullptr));
    const auto* bytes = reinterpret_cast<const uint8_t*>(&id);
    try {
      store->set(kIdKey, std::vector<uint8_t>(bytes, bytes + sizeof(id)));
    } catch (const std::exception& e) {
      rendezvous_->fail("NCCL init", std::string("writing the NCCL id to the rendezvous store: ") + store_error_text(e));
    }
    return;
  }
  std::vector<uint8_t> bytes;
  try {
    bytes = store->get(kIdKey);
  } catch (const std::exception& e) {
    rendezvous_->fail("NCCL init", std::string("reading the NCCL id from the rendezvous store: ") + store_error_text(e));
  }
  if (bytes.size() != sizeof(id)) {
    rendezvous_->fail("NCCL init", "the NCCL id in the rendezvous store has " + std::to_string(bytes.size()) +
                                       " bytes, expected " + std::to_string(sizeof(id)));
  }
  std::memcpy(&id, bytes.data(), sizeof(id));
}

void NcclCommunicator::begin(const char* op) {
  if (aborted_) rendezvous_->fail(op, "the NCCL communicator was aborted by an earlier failure");
  const cudaError_t set = cudaSetDevice(device_);
  if (set != cudaSuccess) abort_and_fail(op, cuda_text(set, "cudaSetDevice"));
}

// Gives every operand its device pointer and copies the CPU ones NCCL reads to the device.
void NcclCommunicator::stage(const char* op, std::vector<Operand>& operands) {
  size_t needed = 0;
  std::vector<size_t> offsets(operands.size(), 0);
  for (size_t i = 0; i < operands.size(); ++i) {
    if (operands[i].tensor.is_cuda()) continue;
    offsets[i] = needed;
    needed += (byte_size(operands[i].tensor) + kStagingAlignment - 1) / kStagingAlignment * kStagingAlignment;
  }
  if (needed > staging_bytes_) {
    if (staging_ != nullptr) cudaFree(staging_);
    staging_ = nullptr;
    staging_bytes_ = 0;
    const cudaError_t allocated = cudaMalloc(&staging_, needed);
    if (allocated != cudaSuccess) {
      abort_and_fail(op, cuda_text(allocated, "cudaMalloc") + " (staging " + std::to_string(needed) + " bytes of CPU tensors)");
    }
    staging_bytes_ = needed;
  }
  for (size_t i = 0; i < operands.size(); ++i) {
    Operand& operand = operands[i];
    if (operand.tensor.is_cuda()) {
      operand.device = operand.tensor.data_ptr();
      continue;
    }
    operand.device = static_cast<char*>(staging_) + offsets[i];
    if (operand.copy_in && operand.tensor.numel() > 0) {
      const cudaError_t copied =
          cudaMemcpy(operand.device, operand.tensor.data_ptr(), byte_size(operand.tensor), cudaMemcpyHostToDevice);
      if (copied != cudaSuccess) abort_and_fail(op, cuda_text(copied, "cudaMemcpy to the device"));
    }
  }
}

// Copies the results NCCL wrote for CPU operands back into their tensors.
void NcclCommunicator::unstage(const char* op, const std::vector<Operand>& operands) {
  for (const Operand& operand : operands) {
    if (operand.tensor.is_cuda() || !operand.copy_out || operand.tensor.numel() == 0) continue;
    const cudaError_t copied =
        cudaMemcpy(operand.tensor.data_ptr(), operand.device, byte_size(operand.tensor), cudaMemcpyDeviceToHost);
    if (copied != cudaSuccess) abort_and_fail(op, cuda_text(copied, "cudaMemcpy to the host"));
  }
}

// A non-blocking communicator may answer ncclInProgress: the call is still being set up, and
// its outcome shows in the async error.
void NcclCommunicator::await_enqueue(const char* op, ncclResult_t result, Clock::time_point deadline) {
  for (int spins = 0; result == ncclInProgress; ++spins) {
    if (Clock::now() > deadline) abort_and_fail(op, timeout_text());
    pause(spins);
    const ncclResult_t queried = ncclCommGetAsyncError(comm_, &result);
    if (queried != ncclSuccess) result = queried;
  }
  if (result != ncclSuccess) abort_and_fail(op, nccl_text(result, comm_));
}

// Waits for the stream to drain while watching NCCL's async error and the deadline: a peer that
// dies mid-collective leaves the kernel spinning, and only the abort frees it.
void NcclCommunicator::await_stream(const char* op, Clock::time_point deadline) {
  for (int spins = 0;; ++spins) {
    const cudaError_t state = cudaStreamQuery(kStream);
    if (state == cudaSuccess) return;
    if (state != cudaErrorNotReady) abort_and_fail(op, cuda_text(state, "cudaStreamQuery"));
    ncclResult_t async = ncclSuccess;
    const ncclResult_t queried = ncclCommGetAsyncError(comm_, &async);
    if (queried != ncclSuccess) async = queried;
    if (async != ncclSuccess && async != ncclInProgress) abort_and_fail(op, nccl_text(async, comm_));
    if (Clock::now() > deadline) abort_and_fail(op, timeout_text());
    pause(spins);
  }
}

void NcclCommunicator::abort_and_fail(const char* op, const std::string& cause) {
  if (comm_ != nullptr) ncclCommAbort(comm_);
  comm_ = nullptr;
  aborted_ = true;
  rendezvous_->fail(op, cause);
}

void NcclCommunicator::all_reduce(std::vector<torch::Tensor>& tensors, ReduceOp op) {
  const char* name = "all_reduce";
  begin(name);
  const ncclRedOp_t reduction = nccl_op(op);
  std::vector<ncclDataType_t> types;
  std::vector<Operand> operands;
  for (size_t i = 0; i < tensors.size(); ++i) {
    types.push_back(checked_type(name, "tensor " + std::to_string(i), tensors[i], device_));
    operands.push_back(Operand{tensors[i], true, true});
  }
  if (tensors.empty()) return;
  stage(name, operands);
  const auto deadline = Clock::now() + timeout();
  ncclGroupStart();
  for (size_t i = 0; i < operands.size(); ++i) {
    const ncclResult_t queued = ncclAllReduce(operands[i].device, operands[i].device, operands[i].tensor.numel(),
                                              types[i], reduction, comm_, kStream);
    if (queued != ncclSuccess && queued != ncclInProgress) {
      const std::string cause = nccl_text(queued, comm_);
      ncclGroupEnd();
      abort_and_fail(name, cause);
    }
  }
  await_enqueue(name, ncclGroupEnd(), deadline);
  await_stream(name, deadline);
  unstage(name, operands);
}

void NcclCommunicator::broadcast(torch::Tensor& tensor, int root) {
  const char* name = "broadcast";
  begin(name);
  const ncclDataType_t type = checked_type(name, "tensor", tensor, device_);
  if (root < 0 || root >= world_size()) {
    fail("NCCL broadcast: root " + std::to_string(root) + " is outside the ranks 0.." + std::to_string(world_size() - 1));
  }
  // Only the root's values travel; only the others' tensors change.
  std::vector<Operand> operands{Operand{tensor, rank() == root, rank() != root}};
  stage(name, operands);
  const auto deadline = Clock::now() + timeout();
  void* buffer = operands[0].device;
  await_enqueue(name, ncclBroadcast(buffer, buffer, tensor.numel(), type, root, comm_, kStream), deadline);
  await_stream(name, deadline);
  unstage(name, operands);
}

void NcclCommunicator::reduce_scatter(torch::Tensor& output, torch::Tensor& input, ReduceOp op) {
  const char* name = "reduce_scatter";
  begin(name);
  const ncclRedOp_t reduction = nccl_op(op);
  const ncclDataType_t type = checked_type(name, "input", input, device_);
  if (checked_type(name, "output", output, device_) != type) {
    fail(std::string("NCCL reduce_scatter: output dtype ") + c10::toString(output.scalar_type()) +
         " differs from input dtype " + c10::toString(input.scalar_type()));
  }
  if (input.numel() != output.numel() * world_size()) {
    fail("NCCL reduce_scatter: input has " + std::to_string(input.numel()) + " elements, expected world size " +
         std::to_string(world_size()) + " x output's " + std::to_string(output.numel()));
  }
  std::vector<Operand> operands{Operand{input, true, false}, Operand{output, false, true}};
  stage(name, operands);
  const auto deadline = Clock::now() + timeout();
  await_enqueue(name,
                ncclReduceScatter(operands[0].device, operands[1].device, output.numel(), type, reduction, comm_, kStream),
                deadline);
  await_stream(name, deadline);
  unstage(name, operands);
}

void NcclCommunicator::all_gather(torch::Tensor& output, const torch::Tensor& input) {
  const char* name = "all_gather";
  begin(name);
  const ncclDataType_t type = checked_type(name, "input", input, device_);
  if (checked_type(name, "output", output, device_) != type) {
    fail(std::string("NCCL all_gather: output dtype ") + c10::toString(output.scalar_type()) +
         " differs from input dtype " + c10::toString(input.scalar_type()));
  }
  if (output.numel() != input.numel() * world_size()) {
    fail("NCCL all_gather: output has " + std::to_string(output.numel()) + " elements, expected world size " +
         std::to_string(world_size()) + " x input's " + std::to_string(input.numel()));
  }
  std::vector<Operand> operands{Operand{input, true, false}, Operand{output, false, true}};
  stage(name, operands);
  const auto deadline = Clock::now() + timeout();
  await_enqueue(name, ncclAllGather(operands[0].device, operands[1].device, input.numel(), type, comm_, kStream),
                deadline);
  await_stream(name, deadline);
  unstage(name, operands);
}

void NcclCommunicator::barrier() {
  const char* name = "barrier";
  begin(name);
  const auto deadline = Clock::now() + timeout();
  await_enqueue(name, ncclAllReduce(barrier_buffer_, barrier_buffer_, 1, ncclFloat32, ncclSum, comm_, kStream),
                deadline);
  await_stream(name, deadline);
}

}  // namespace

bool nccl_available() { return true; }

namespace detail {

std::unique_ptr<Communicator> make_nccl_communicator(const RankInfo& info, std::chrono::milliseconds timeout,
                                                     int device) {
  return std::make_unique<NcclCommunicator>(info, timeout, device);
}

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count;
}

}  // namespace detail
}  // namespace speculators
