// torch.ops.ditserve.attention under context parallelism (CPU, Gloo, one process per rank): every
// layout's output equals single-rank attention on the full tensors, with and without key padding
// masks, for sequence lengths that do and do not divide by the number of sequence ranks.
//
// Tolerance, fp32: max |out - ref| <= 2e-6 and normalised error (||out - ref|| / ||ref||) <= 1e-6.
// (ParaAttention's bar is rtol 1e-5, atol 1e-3 * world in fp16; fp32 and an exact LSE merge allow
// a far tighter one.) The FP8 backend (a group's fp8_attention) quantises each rank's blocks with their own
// scales, so its bar is FP8's: within 1.5x (+5e-3) of single-rank FP8 attention's error, and under 8e-2.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/runtime/attention_op.h"
#include "engine/runtime/cp/cp_attention.h"
#include "engine/runtime/cp/local_attention.h"
#include "engine/runtime/cp/mesh.h"
#include "engine/runtime/cp/sequence_shard.h"
#include "engine/runtime/fp8_attention.h"
#include "support/multi_rank.h"
#include "support/test_mesh.h"

namespace ditserve::runtime {
namespace {

constexpr double kMaxAbs = 2e-6;
constexpr double kMaxNorm = 1e-6;
constexpr double kFp8MaxNorm = 8e-2;  // 16-dim heads and <= 48 keys: little of the rounding averages out

struct Case {
  int64_t seq;
  bool mask;
};
// 48 divides by 2 and 4; 45 and 37 do not. One case per length masks random keys (a text mask).
const std::vector<Case> kCases = {{48, false}, {45, false}, {48, true}, {37, true}};

at::Tensor Randn(std::vector<int64_t> shape, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(shape, gen, at::kFloat);
}

at::Tensor RandomMask(int64_t seq, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor m = at::rand({1, seq}, gen) > 0.3;
  m.select(1, 0).fill_(true);  // at least one real key
  return m;
}

// --- single-process pieces --------------------------------------------------------------------------

TEST(LocalAttention, LseAndMaskMatchSdpa) {
  at::Tensor q = Randn({2, 3, 9, 16}, 1), k = Randn({2, 3, 11, 16}, 2), v = Randn({2, 3, 11, 16}, 3);
  at::Tensor mask = at::cat({RandomMask(11, 4), RandomMask(11, 5)});
  AttentionPartial p = AttentionWithLse(q, k, v, mask);
  at::Tensor ref = at::scaled_dot_product_attention(q, k, v, mask.view({2, 1, 1, 11}));
  EXPECT_LE((p.out - ref).abs().max().item<double>(), kMaxAbs);
  at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) / 4.0;
  scores = scores.masked_fill(mask.logical_not().view({2, 1, 1, 11}), -INFINITY);
  EXPECT_LE((p.lse - at::logsumexp(scores, -1)).abs().max().item<double>(), 1e-5);
}

TEST(LocalAttention, MergingBlocksEqualsFullAttentionEvenWithAFullyMaskedBlock) {
  at::Tensor q = Randn({1, 2, 7, 8}, 6), k = Randn({1, 2, 12, 8}, 7), v = Randn({1, 2, 12, 8}, 8);
  at::Tensor mask = RandomMask(12, 9);
  mask.narrow(1, 4, 4).fill_(false);  // the middle block attends to nothing
  at::Tensor ref = at::scaled_dot_product_attention(q, k, v, mask.view({1, 1, 1, 12}));
  // Start with the fully masked block: its partial must not leak into the result.
  at::Tensor out, lse;
  for (int64_t start : {4, 0, 8}) {
    MergeAttention(out, lse, AttentionWithLse(q, k.narrow(2, start, 4), v.narrow(2, start, 4),
                                              mask.narrow(1, start, 4).contiguous()));
  }
  EXPECT_LE((out - ref).abs().max().item<double>(), kMaxAbs);
}

TEST(SequenceShard, PadsAndGathersBack) {
  const SequenceSplit s = SplitSequence(10, 4);
  EXPECT_EQ(s.shard, 3);
  EXPECT_TRUE(s.has_padding());
  at::Tensor x = at::arange(10, at::kFloat).view({1, 10, 1});
  EXPECT_TRUE(at::equal(TakeShard(x, 1, s, 3).flatten(), at::tensor({9.f, 0.f, 0.f})));
  EXPECT_TRUE(at::equal(ShardValidMask(s, 3, at::kCPU), at::tensor({1, 0, 0}).to(at::kBool)));
  EXPECT_TRUE(at::equal(ShardValidMask(s, 1, at::kCPU), at::tensor({1, 1, 1}).to(at::kBool)));
}

// --- one process per rank -----------------------------------------------------------------------------

struct Layout {
  int cfg, ulysses, ring;
  int world() const { return cfg * ulysses * ring; }
  std::string Name() const {
    return "cfg" + std::to_string(cfg) + "xulysses" + std::to_string(ulysses) + "xring" + std::to_string(ring);
  }
};

// Child: joins the mesh, runs every case on its shard, gathers and compares with the full attention.
// Writes "seq mask max_abs norm_err fp8_norm_err fp8_single_rank_norm_err" lines to `out_file`. Exit code 0 unless something threw.
int ChildMain(int rank, const Layout& layout, int port, const std::string& out_file) {
  std::shared_ptr<DeviceMesh> mesh = testing::JoinTestMesh(rank, port, layout.cfg, layout.ulysses, layout.ring);
  ContextParallelAttention backend(mesh), fp8_backend(mesh, /*fp8=*/true);
  std::ofstream out(out_file);
  const int parts = mesh->sequence_size();
  for (const Case& c : kCases) {
    // 8 heads (divisible by ulysses 2 and 4), head dim 16; k/v same length as q (self-attention).
    at::Tensor q = Randn({1, 8, c.seq, 16}, 11 + c.seq), k = Randn({1, 8, c.seq, 16}, 12 + c.seq),
               v = Randn({1, 8, c.seq, 16}, 13 + c.seq);
    std::optional<at::Tensor> full_mask;
    if (c.mask) full_mask = RandomMask(c.seq, 14 + c.seq);
    const at::Tensor ref = at::scaled_dot_product_attention(
        q, k, v, full_mask ? std::optional<at::Tensor>(full_mask->view({1, 1, 1, c.seq})) : std::nullopt);

    const SequenceSplit split = SplitSequence(c.seq, parts);
    const int idx = mesh->sequence_index();
    std::optional<at::Tensor> local_mask;
    if (c.mask || split.has_padding()) {
      at::Tensor valid = ShardValidMask(split, idx, at::kCPU).unsqueeze(0);
      if (c.mask) valid = valid.logical_and(TakeShard(*full_mask, 1, split, idx));
      local_mask = valid;
    }
    auto run = [&](AttentionBackend& b) {
      at::Tensor local = b.Attention(TakeShard(q, 2, split, idx), TakeShard(k, 2, split, idx),
                                     TakeShard(v, 2, split, idx), local_mask);
      return GatherShards(*mesh->sequence(), local, 2, split);
    };
    auto norm_err = [&](const at::Tensor& x) { return ((x - ref).norm() / ref.norm()).item<double>(); };
    const at::Tensor full = run(backend);
    const double max_abs = (full - ref).abs().max().item<double>();
    std::optional<at::Tensor> bias;
    if (full_mask) bias = MaskToBias(*full_mask, at::kFloat);
    const double fp8_single = norm_err(Fp8AttentionReference(q, k, v, bias, false).first);
    out << c.seq << " " << c.mask << " " << max_abs << " " << norm_err(full) << " " << norm_err(run(fp8_backend))
        << " " << fp8_single << "\n";
  }
  // Everyone finishes before anyone tears the groups down.
  mesh->AnyRank(false);
  return 0;
}

class ContextParallelAttentionTest : public ::testing::TestWithParam<Layout> {};

TEST_P(ContextParallelAttentionTest, EqualsSingleRankAttention) {
  const Layout layout = GetParam();
  const std::vector<testing::RankResult> ranks = testing::RunRanks(
      layout.world(), {std::to_string(layout.cfg), std::to_string(layout.ulysses), std::to_string(layout.ring)}, 240);
  for (int r = 0; r < layout.world(); ++r) {
    ASSERT_EQ(ranks[r].code, 0) << "rank " << r << " of " << layout.Name();
    std::istringstream in(ranks[r].output);
    int lines = 0;
    int64_t seq;
    int mask;
    double max_abs, norm, fp8, fp8_single;
    while (in >> seq >> mask >> max_abs >> norm >> fp8 >> fp8_single) {
      ++lines;
      EXPECT_LE(max_abs, kMaxAbs) << layout.Name() << " rank " << r << " seq " << seq << " mask " << mask;
      EXPECT_LE(norm, kMaxNorm) << layout.Name() << " rank " << r << " seq " << seq << " mask " << mask;
      EXPECT_LE(fp8, kFp8MaxNorm) << layout.Name() << " rank " << r << " seq " << seq << " mask " << mask;
      EXPECT_LE(fp8, 1.5 * fp8_single + 5e-3) << layout.Name() << " rank " << r << " seq " << seq << " mask " << mask;
      if (r == 0) {
        std::printf("%-22s seq %2ld mask %d: max|err| %.2e  normalised %.2e | fp8 %.2e (1 rank %.2e)\n",
                    layout.Name().c_str(), static_cast<long>(seq), mask, max_abs, norm, fp8, fp8_single);
      }
    }
    EXPECT_EQ(lines, static_cast<int>(kCases.size())) << "rank " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, ContextParallelAttentionTest,
                         ::testing::Values(Layout{1, 2, 1}, Layout{1, 1, 2}, Layout{1, 4, 1}, Layout{1, 1, 4},
                                           Layout{1, 2, 2}, Layout{2, 2, 1}, Layout{2, 1, 2}),
                         [](const auto& info) { return info.param.Name(); });

}  // namespace
}  // namespace ditserve::runtime

int main(int argc, char** argv) {
  ditserve::testing::ChildArgs child;
  if (ditserve::testing::ParseChildArgs(argc, argv, &child) && child.args.size() == 3) {
    const ditserve::runtime::Layout layout{std::stoi(child.args[0]), std::stoi(child.args[1]),
                                                std::stoi(child.args[2])};
    try {
      return ditserve::runtime::ChildMain(child.rank, layout, child.port, child.output);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rank %d: %s\n", child.rank, e.what());
      return 3;
    }
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
