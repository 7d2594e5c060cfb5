// Context-parallel attention under NCCL, one process per GPU (needs 2 GPUs): ulysses2 and ring2 at
// FLUX's shape (24 heads x 128, 4608 tokens; 4601 with a padding mask for an uneven split) in bf16 equal
// single-GPU attention on the full tensors (normalised error vs the single-GPU result), and the time
// of the distributed operator next to single-GPU attention. DISABLED_Perf adds the HunyuanVideo-like
// length (32,896 tokens).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAFunctions.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/runtime/cp/cp_attention.h"
#include "engine/runtime/cp/mesh.h"
#include "engine/runtime/cp/sequence_shard.h"
#include "support/cuda_timing.h"
#include "support/multi_rank.h"
#include "support/test_mesh.h"

namespace ditserve::runtime {
namespace {

at::Tensor Randn(std::vector<int64_t> shape, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(shape, gen, at::kFloat);
}


// Child: "<layout> <seq list>" -> lines "seq masked norm_err cp_ms single_ms".
int ChildMain(const testing::ChildArgs& a) {
  const int ulysses = a.args[0] == "ulysses2" ? 2 : 1, ring = a.args[0] == "ring2" ? 2 : 1;
  c10::cuda::set_device(a.rank);
  const at::Device dev(at::kCUDA, a.rank);
  auto mesh = testing::JoinTestMesh(a.rank, a.port, 1, ulysses, ring, dev);
  ContextParallelAttention backend(mesh);
  std::ofstream out(a.output);
  for (size_t i = 1; i < a.args.size(); ++i) {
    const int64_t seq = std::stoll(a.args[i]);
    const bool masked = seq % 2 != 0;  // odd lengths: uneven split, padding masked
    auto bf = [&](uint64_t seed) { return Randn({1, 24, seq, 128}, seed).to(dev).to(at::kBFloat16); };
    const at::Tensor q = bf(1), k = bf(2), v = bf(3);
    const at::Tensor ref = at::scaled_dot_product_attention(q, k, v);
    const SequenceSplit split = SplitSequence(seq, 2);
    const int idx = mesh->sequence_index();
    std::optional<at::Tensor> mask;
    if (split.has_padding()) mask = ShardValidMask(split, idx, dev).unsqueeze(0);
    const at::Tensor lq = TakeShard(q, 2, split, idx), lk = TakeShard(k, 2, split, idx), lv = TakeShard(v, 2, split, idx);
    const at::Tensor full = GatherShards(*mesh->sequence(), backend.Attention(lq, lk, lv, mask), 2, split);
    const double err = ((full.to(at::kFloat) - ref.to(at::kFloat)).norm() / ref.to(at::kFloat).norm()).item<double>();
    const int iters = seq > 10000 ? 5 : 20;
    const double cp_ms = testing::CudaTimeMs([&] { backend.Attention(lq, lk, lv, mask); }, iters);
    const double single_ms = testing::CudaTimeMs([&] { at::scaled_dot_product_attention(q, k, v); }, iters);
    out << seq << " " << masked << " " << err << " " << cp_ms << " " << single_ms << "\n";
  }
  mesh->AnyRank(false);
  return 0;
}

void RunLayouts(const std::vector<std::string>& seqs) {
  if (c10::cuda::device_count() < 2) GTEST_SKIP() << "needs 2 GPUs, found " << int(c10::cuda::device_count());
  for (const std::string layout : {"ulysses2", "ring2"}) {
    std::vector<std::string> args{layout};
    args.insert(args.end(), seqs.begin(), seqs.end());
    const auto ranks = testing::RunRanks(2, args, 600);
    for (int r = 0; r < 2; ++r) {
      ASSERT_EQ(ranks[r].code, 0) << layout << " rank " << r;
      std::istringstream in(ranks[r].output);
      int64_t seq;
      int masked;
      double err, cp_ms, single_ms;
      int lines = 0;
      while (in >> seq >> masked >> err >> cp_ms >> single_ms) {
        ++lines;
        if (r == 0) {
          std::printf("%-9s seq %6ld%s: normalised error vs 1 GPU %.2e | 2-GPU op %.3f ms vs 1-GPU %.3f ms\n",
                      layout.c_str(), static_cast<long>(seq), masked ? " (padded)" : "", err, cp_ms, single_ms);
        }
        EXPECT_LT(err, 1e-2) << layout << " seq " << seq;  // bf16 outputs: ~4e-3 expected
      }
      EXPECT_EQ(lines, static_cast<int>(seqs.size()));
    }
  }
}

TEST(ContextParallelNccl, LayoutsEqualSingleGpuAttention) { RunLayouts({"4608", "4601"}); }

TEST(ContextParallelNccl, DISABLED_Perf) { RunLayouts({"4608", "32896"}); }

}  // namespace
}  // namespace ditserve::runtime

int main(int argc, char** argv) {
  ditserve::testing::ChildArgs child;
  if (ditserve::testing::ParseChildArgs(argc, argv, &child)) {
    try {
      return ditserve::runtime::ChildMain(child);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rank %d: %s\n", child.rank, e.what());
      return 3;
    }
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
