#include "engine/runtime/cp/communicator.h"

#include <c10/util/Exception.h>

namespace ditserve::runtime {

Communicator::Communicator(std::string name, c10::intrusive_ptr<c10d::Backend> backend, std::vector<int> ranks)
    : name_(std::move(name)),
      backend_(std::move(backend)),
      ranks_(std::move(ranks)),
      rank_(backend_->getRank()),
      size_(backend_->getSize()),
      nccl_(backend_->getBackendName() == "nccl") {}

c10::intrusive_ptr<c10d::Work> Communicator::AllGather(at::Tensor& out, at::Tensor& in) {
  TORCH_CHECK(out.is_contiguous() && in.is_contiguous(), name_, ": AllGather needs contiguous tensors");
  TORCH_CHECK(out.numel() == in.numel() * size_, name_, ": AllGather output has ", out.numel(), " elements, want ",
              in.numel() * size_);
  at::Tensor flat_out = out.view({-1});
  at::Tensor flat_in = in.view({-1});
  return backend_->_allgather_base(flat_out, flat_in);
}

c10::intrusive_ptr<c10d::Work> Communicator::AllToAll(at::Tensor& out, at::Tensor& in) {
  TORCH_CHECK(out.is_contiguous() && in.is_contiguous(), name_, ": AllToAll needs contiguous tensors");
  TORCH_CHECK(in.size(0) == size_ && out.sizes() == in.sizes(), name_, ": AllToAll wants [", size_, ", ...] got ",
              in.sizes(), " -> ", out.sizes());
  std::vector<int64_t> equal_splits;  // empty = equal split of dim 0
  return backend_->alltoall_base(out, in, equal_splits, equal_splits);
}

c10::intrusive_ptr<c10d::Work> Communicator::AllReduce(at::Tensor& t, c10d::ReduceOp op) {
  std::vector<at::Tensor> ts{t};
  c10d::AllreduceOptions opts;
  opts.reduceOp = op;
  return backend_->allreduce(ts, opts);
}

c10::intrusive_ptr<c10d::Work> Communicator::Broadcast(at::Tensor& t, int root) {
  std::vector<at::Tensor> ts{t};
  c10d::BroadcastOptions opts;
  opts.rootRank = root;
  return backend_->broadcast(ts, opts);
}

std::vector<c10::intrusive_ptr<c10d::Work>> Communicator::SendRecv(at::Tensor& send, int dst, at::Tensor& recv,
                                                                   int src, int tag) {
  std::vector<at::Tensor> s{send}, r{recv};
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  if (nccl_) {
    // One NCCL group call: every rank's send and recv are posted together.
    backend_->startCoalescing();
    backend_->send(s, dst, tag);
    backend_->recv(r, src, tag);
    works.push_back(backend_->endCoalescing());
  } else {
    // Gloo sends are buffered and asynchronous: posting both cannot deadlock.
    works.push_back(backend_->send(s, dst, tag));
    works.push_back(backend_->recv(r, src, tag));
  }
  return works;
}

at::Tensor Communicator::AllGatherSync(const at::Tensor& in) {
  at::Tensor src = in.contiguous();
  std::vector<int64_t> shape{size_};
  shape.insert(shape.end(), src.sizes().begin(), src.sizes().end());
  at::Tensor out = at::empty(shape, src.options());
  AllGather(out, src)->wait();
  return out;
}

void Communicator::AllReduceSync(at::Tensor& t, c10d::ReduceOp op) { AllReduce(t, op)->wait(); }

void WaitAll(std::vector<c10::intrusive_ptr<c10d::Work>>& works) {
  for (auto& w : works) w->wait();
  works.clear();
}

}  // namespace ditserve::runtime
