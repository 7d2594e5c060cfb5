// Row-parallel VAE decode (CPU, Gloo, one process per rank, world 2 and 4): each split-aware op
// (halo_conv2d, halo_conv3d with zero and replicate borders, group_norm, spatial_attention, gather_rows) and
// the whole tiny FLUX VAE decoder (build/test-models/flux-tiny-dev/vae_decoder.pt) split by rows equal the single-rank result, at row
// counts that do and do not divide by the world size (and 1 row per rank).
//
// Tolerance, fp32: max |parallel - single rank| <= 1e-5 for every case. Only float summation order
// differs (conv algorithms on differently shaped inputs, group statistics combined across ranks, SDPA
// over a gathered key tensor); the measured figures, printed by the test, are <= ~1e-6. One stress case
// (group_norm_offset40_vs_f64) is ill-conditioned for fp32 itself and is judged against float64 instead.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/script.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "engine/runtime/cp/mesh.h"
#include "engine/runtime/spatial_ops.h"
#include "engine/runtime/spatial_split.h"
#include "models/flux/flux_config.h"
#include "models/flux/flux_decode.h"
#include "models/flux/flux_latents.h"
#include "support/multi_rank.h"
#include "support/test_mesh.h"
#include "support/test_env.h"

namespace ditserve::runtime {
namespace {

constexpr double kTol = 1e-5;

at::Tensor Randn(std::vector<int64_t> shape, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(shape, gen, at::kFloat);
}

std::string FluxTinyDir() { return testing::TestModelsDir() + "/flux-tiny-dev"; }

// --- single process -----------------------------------------------------------------------------------

TEST(SpatialSplit, NearEqualContiguousRows) {
  const RowSplit s = SplitRows(13, 4);
  EXPECT_EQ(s.rows, (std::vector<int64_t>{4, 3, 3, 3}));
  EXPECT_EQ(s.begin(0), 0);
  EXPECT_EQ(s.begin(3), 10);
  EXPECT_EQ(SplitRows(2, 2).rows, (std::vector<int64_t>{1, 1}));
  EXPECT_THROW(SplitRows(3, 4), c10::Error);
}

TEST(SpatialOps, AreThePlainOpsWithoutASplit) {
  ASSERT_EQ(CurrentSpatialSplit(), nullptr);
  const at::Tensor x = Randn({2, 8, 9, 7}, 1), w = Randn({4, 8, 3, 3}, 2), b = Randn({4}, 3);
  EXPECT_TRUE(at::equal(HaloConv2d(x, w, b, {1, 1}), at::conv2d(x, w, b, 1, {1, 1})));
  const at::Tensor gw = Randn({8}, 4), gb = Randn({8}, 5);
  EXPECT_TRUE(at::equal(SplitGroupNorm(x, 4, gw, gb, 1e-6), at::group_norm(x, 4, gw, gb, 1e-6)));
  // halo_conv3d: H/W padding by zeros or edge copies, then conv3d; T untouched (the caller pads it causally).
  const at::Tensor video = Randn({1, 8, 4, 9, 7}, 9), w3 = Randn({4, 8, 3, 3, 3}, 10);
  EXPECT_TRUE(at::equal(HaloConv3d(video, w3, b, {1, 1, 1}, {1, 1}, false), at::conv3d(video, w3, b, 1, {0, 1, 1})));
  EXPECT_TRUE(at::equal(HaloConv3d(video, w3, b, {1, 1, 1}, {1, 1}, true),
                        at::conv3d(at::pad(video, {1, 1, 1, 1, 0, 0}, "replicate"), w3, b)));
  EXPECT_EQ(HaloConv3d(video, w3, b, {2, 1, 1}, {1, 1}, true).sizes(), (std::vector<int64_t>{1, 4, 1, 9, 7}));
  // time_pad: causal frames in front, edge copies or zeros, in the same pad as H/W.
  EXPECT_TRUE(at::equal(HaloConv3d(video, w3, b, {1, 1, 1}, {1, 1}, true, 2),
                        at::conv3d(at::pad(video, {1, 1, 1, 1, 2, 0}, "replicate"), w3, b)));
  EXPECT_TRUE(at::equal(HaloConv3d(video, w3, b, {1, 1, 1}, {1, 1}, false, 2),
                        at::conv3d(at::constant_pad_nd(video, {0, 0, 0, 0, 2, 0}), w3, b, 1, {0, 1, 1})));
  EXPECT_EQ(HaloConv3d(video, w3, b, {1, 1, 1}, {1, 1}, true, 2).sizes(), (std::vector<int64_t>{1, 4, 4, 9, 7}));
  const at::Tensor q = Randn({1, 1, 30, 16}, 6), k = Randn({1, 1, 30, 16}, 7), v = Randn({1, 1, 30, 16}, 8);
  EXPECT_TRUE(at::equal(SpatialAttention(q, k, v), at::scaled_dot_product_attention(q, k, v)));
  EXPECT_TRUE(at::equal(GatherRowsOp(video, 3), video));
  // Through the registered ops, as the exported decoder calls them.
  for (const char* name : {"ditserve::halo_conv2d", "ditserve::halo_conv3d", "ditserve::gather_rows"}) {
    auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
    EXPECT_TRUE(op.hasKernelForDispatchKey(c10::DispatchKey::CPU)) << name;
    EXPECT_TRUE(op.hasKernelForDispatchKey(c10::DispatchKey::CUDA)) << name;
  }
}

TEST(FluxTinyVae, ExportedForRowSplit) {
  auto config = models::flux::FluxConfig::Load(FluxTinyDir());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_TRUE(config->vae_parallel_rows) << "model.json vae.parallel should be \"rows\"";
}

// --- one process per rank -----------------------------------------------------------------------------

// Writes "name max_abs" lines; each compares a row-split result (gathered) with the full computation.
class Child {
 public:
  Child(std::shared_ptr<DeviceMesh> mesh, const std::string& out_file) : mesh_(std::move(mesh)), out_(out_file) {}

  // Splits `full` (and whatever `op` reads through the installed split) by rows along `dim`.
  void Compare(const std::string& name, const at::Tensor& full, int64_t dim,
               const std::function<at::Tensor(const at::Tensor&)>& op) {
    const at::Tensor want = op(full);
    int64_t rows = -1;
    const at::Tensor got = RunSplitByRows(mesh_->world(), full, dim, [&](const at::Tensor& t) {
      rows = t.size(dim);
      return op(t);
    });
    const int world = mesh_->world()->size();
    TORCH_CHECK(rows == SplitRows(full.size(dim), world).rows[mesh_->rank()], name, ": ran on ", rows, " of ",
                full.size(dim), " rows, not this rank's share");
    Record(name, got, want);
  }

  void Record(const std::string& name, const at::Tensor& got, const at::Tensor& want, double tol = kTol) {
    TORCH_CHECK(got.sizes() == want.sizes(), name, ": shape ", got.sizes(), " != ", want.sizes());
    out_ << name << " " << tol << " " << (got - want).abs().max().item<double>() << "\n";
  }

  DeviceMesh& mesh() { return *mesh_; }

 private:
  std::shared_ptr<DeviceMesh> mesh_;
  std::ofstream out_;
};

void OpCases(Child& c, int world) {
  for (int64_t h : {16, 18, 13, 7}) {
    const std::string rows = "_h" + std::to_string(h);
    const uint64_t seed = 100 * h;
    const at::Tensor x = Randn({2, 8, h, 5}, seed);
    const at::Tensor w3 = Randn({6, 8, 3, 3}, seed + 1), b3 = Randn({6}, seed + 2);
    c.Compare("halo_conv2d_k3" + rows, x, 2, [&](const at::Tensor& t) { return HaloConv2d(t, w3, b3, {1, 1}); });
    if (h / world >= 2) {  // a 2-row halo needs 2 rows on every rank
      const at::Tensor w5 = Randn({6, 8, 5, 5}, seed + 3);
      c.Compare("halo_conv2d_k5_nobias" + rows, x, 2,
                [&](const at::Tensor& t) { return HaloConv2d(t, w5, std::nullopt, {2, 2}); });
    }
    // Video [B, C, T, H, W] split along H (dim 3): zero and replicate borders, a causal-style T kernel with
    // T stride 1 and 2 (T is never split), a 5x5 spatial kernel where every rank has 2 rows.
    const at::Tensor v = Randn({1, 6, 3, h, 5}, seed + 7);
    const at::Tensor k3 = Randn({4, 6, 3, 3, 3}, seed + 8), kb = Randn({4}, seed + 9);
    for (bool rep : {false, true}) {
      const std::string mode = rep ? "_replicate" : "_zeros";
      c.Compare("halo_conv3d_k3" + mode + rows, v, 3,
                [&](const at::Tensor& t) { return HaloConv3d(t, k3, kb, {1, 1, 1}, {1, 1}, rep); });
      c.Compare("halo_conv3d_k3_tstride2" + mode + rows, v, 3,
                [&](const at::Tensor& t) { return HaloConv3d(t, k3, std::nullopt, {2, 1, 1}, {1, 1}, rep); });
      c.Compare("halo_conv3d_k3_causal" + mode + rows, v, 3,
                [&](const at::Tensor& t) { return HaloConv3d(t, k3, kb, {1, 1, 1}, {1, 1}, rep, 2); });
      if (h / world >= 2) {
        const at::Tensor k5 = Randn({4, 6, 1, 5, 5}, seed + 10);
        c.Compare("halo_conv3d_k155" + mode + rows, v, 3,
                  [&](const at::Tensor& t) { return HaloConv3d(t, k5, kb, {1, 1, 1}, {2, 2}, rep); });
      }
    }
    // group_norm over (C/G, T, H, W) of a video split along H.
    const at::Tensor vgw = Randn({6}, seed + 11), vgb = Randn({6}, seed + 12);
    c.Compare("group_norm_5d" + rows, v, 3,
              [&](const at::Tensor& t) { return SplitGroupNorm(t, 3, vgw, vgb, 1e-6); });
    const at::Tensor gw = Randn({8}, seed + 4), gb = Randn({8}, seed + 5);
    auto gn4 = [&](const at::Tensor& t) { return SplitGroupNorm(t, 4, gw, gb, 1e-6); };
    c.Compare("group_norm_4d" + rows, x, 2, gn4);
    // [B, C, H*W] as the mid-block attention normalises it: each rank's rows flattened with the columns.
    c.Compare("group_norm_3d" + rows, x, 2, [&](const at::Tensor& t) {
      return SplitGroupNorm(t.flatten(2), 2, std::nullopt, std::nullopt, 1e-6).view_as(t);
    });
    // Large mean, small spread (mean 40, std 0.5): here torch's own fp32 group_norm is ~1e-5 off the
    // float64 result, so the split one is held to being no further from float64 than torch's (x1.5).
    const at::Tensor xg = x * 0.5 + 40.0;
    const at::Tensor truth = at::group_norm(xg.to(at::kDouble), 4, gw.to(at::kDouble), gb.to(at::kDouble), 1e-6);
    const double single_err = (gn4(xg) - truth).abs().max().item<double>();
    c.Record("group_norm_offset40_vs_f64" + rows, RunSplitByRows(c.mesh().world(), xg, 2, gn4).to(at::kDouble),
             truth, 1.5 * single_err);
    // gather_rows: every rank's rows of a [2, B, F, h, W, C] key/value stack, in row order, on every rank
    // (exactly: it only moves data).
    {
      const at::Tensor kv = Randn({2, 1, 3, h, 5, 4}, seed + 13);
      const SpatialSplit split{c.mesh().world(), SplitRows(h, world)};
      const int me = c.mesh().world()->rank();
      const at::Tensor mine = kv.narrow(3, split.split.begin(me), split.split.rows[me]);
      SpatialSplitGuard guard(&split);
      c.Record("gather_rows" + rows, GatherRowsOp(mine, 3), kv, 0.0);
    }
    // q | k | v along the last dim of [1, 1, h, 5, 48]: tokens = a rank's rows x 5 columns, head dim 16.
    const at::Tensor qkv = Randn({1, 1, h, 5, 48}, seed + 6);
    c.Compare("spatial_attention" + rows, qkv, 2, [&](const at::Tensor& t) {
      const at::Tensor tokens = t.flatten(2, 3);
      return SpatialAttention(tokens.narrow(3, 0, 16), tokens.narrow(3, 16, 16), tokens.narrow(3, 32, 16))
          .unflatten(2, {-1, 5});
    });
  }
}

void DecoderCases(Child& c, int world) {
  auto config_or = models::flux::FluxConfig::Load(FluxTinyDir());
  TORCH_CHECK(config_or.ok(), config_or.status().ToString());
  const models::flux::FluxConfig& cfg = *config_or;
  torch::jit::Module vae = torch::jit::load(cfg.Path(cfg.vae_file));
  vae.eval();
  auto decode = [&vae](const at::Tensor& z) { return vae.forward({z}).toTensor(); };
  // Odd sizes go through the split directly (FLUX latents are packed 2x2, so always even).
  for (auto [h, w] : std::vector<std::pair<int64_t, int64_t>>{{16, 16}, {18, 10}, {13, 7}}) {
    const at::Tensor z = Randn({1, cfg.latent_channels(), h, w}, 7 * h + w);
    c.Compare("decoder_" + std::to_string(h) + "x" + std::to_string(w), z, 2, decode);
  }
  // The FLUX entry point: packed latents in, the full image on every rank. 2 rows: one per rank at
  // world 2, the single-rank fallback at world 4.
  for (auto [h, w] : std::vector<std::pair<int64_t, int64_t>>{{16, 16}, {18, 10}, {2, 6}}) {
    const at::Tensor packed =
        models::flux::PackLatents(Randn({1, cfg.latent_channels(), h, w}, 11 * h + w));
    const at::Tensor want =
        models::flux::DecodeLatentsParallel(vae, packed, h, w, cfg.scaling_factor, cfg.shift_factor, nullptr);
    const at::Tensor got = models::flux::DecodeLatentsParallel(vae, packed, h, w, cfg.scaling_factor,
                                                               cfg.shift_factor, c.mesh().world());
    TORCH_CHECK(got.size(2) == h * cfg.vae_scale_factor && got.size(3) == w * cfg.vae_scale_factor);
    c.Record("DecodeLatentsParallel_" + std::to_string(h) + "x" + std::to_string(w) +
                 (h < world ? "_fallback" : ""),
             got, want);
  }
}

int ChildMain(int rank, int world, int port, const std::string& out_file) {
  c10::InferenceMode inference;
  Child child(testing::JoinTestMesh(rank, port, 1, 1, world), out_file);
  OpCases(child, world);
  DecoderCases(child, world);
  child.mesh().AnyRank(false);  // everyone finishes before anyone tears the groups down
  return 0;
}

class ParallelVaeTest : public ::testing::TestWithParam<int> {};

TEST_P(ParallelVaeTest, RowSplitEqualsSingleRank) {
  const int world = GetParam();
  const std::vector<testing::RankResult> ranks = testing::RunRanks(world, {std::to_string(world)}, 300);
  std::vector<std::string> first_names;
  for (int r = 0; r < world; ++r) {
    ASSERT_EQ(ranks[r].code, 0) << "rank " << r << " of " << world;
    std::istringstream in(ranks[r].output);
    std::vector<std::string> names;
    std::string name;
    double tol, max_abs;
    while (in >> name >> tol >> max_abs) {
      names.push_back(name);
      EXPECT_LE(max_abs, tol) << "world " << world << " rank " << r << " " << name;
      if (r == 0) std::printf("world %d %-38s max|err| %.2e (tol %.1e)\n", world, name.c_str(), max_abs, tol);
    }
    EXPECT_GE(names.size(), 20u) << "rank " << r << " ran too few cases";
    if (r == 0) first_names = names;
    EXPECT_EQ(names, first_names) << "rank " << r << " ran other cases than rank 0";
  }
}

INSTANTIATE_TEST_SUITE_P(Worlds, ParallelVaeTest, ::testing::Values(2, 4),
                         [](const auto& info) { return "world" + std::to_string(info.param); });

}  // namespace
}  // namespace ditserve::runtime

int main(int argc, char** argv) {
  ditserve::testing::ChildArgs child;
  if (ditserve::testing::ParseChildArgs(argc, argv, &child) && child.args.size() == 1) {
    try {
      return ditserve::runtime::ChildMain(child.rank, std::stoi(child.args[0]), child.port, child.output);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rank %d: %s\n", child.rank, e.what());
      return 3;
    }
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
