// CogVideoX's VAE decode split by latent rows ("vae.parallel": "rows") over 2 and 3 ranks (CPU, Gloo, one
// process per rank) equals the single-rank decode of the same latents. The cases run every frame-batch path of
// AutoencoderKLCogVideoX._decode's loop: a first batch of 1, 2 or 3 latent frames and then 1 or 2 more batches
// whose causal convolutions read the conv cache each rank carries for its own rows (4 and 7 frames), CogVideoX
// 1.5's dropped padding frame, and row counts that divide unevenly (5 rows: 3/2 and 2/2/1; 4 rows: 2/1/1).
// The end-to-end pipelines on such groups are in cogvideox_ranks_model_test.
//
// Tolerance, fp32: max |split - single rank| <= 1e-5 * max(1, max |single rank|): only float summation order
// differs (convs on differently shaped inputs, group-norm statistics combined across ranks).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/script.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/runtime/cp/mesh.h"
#include "models/cogvideox/cogvideox_config.h"
#include "models/cogvideox/cogvideox_decode.h"
#include "support/multi_rank.h"
#include "support/test_env.h"
#include "support/test_mesh.h"

namespace ditserve::models::cogvideox {
namespace {

std::string ModelDir() { return testing::TestModelsDir() + "/cogvideox-tiny-5b"; }

struct Case {
  int64_t frames, pad_frames, rows;
};
const Case kCases[] = {{1, 0, 5}, {2, 0, 5}, {3, 0, 4}, {4, 0, 5}, {7, 0, 5}, {8, 1, 4}};

std::string CaseName(const Case& c) {
  return "f" + std::to_string(c.frames) + "_pad" + std::to_string(c.pad_frames) + "_h" + std::to_string(c.rows);
}

TEST(CogVideoXTinyVae, ExportedForRowSplit) {
  auto config = CogVideoXConfig::Load(ModelDir());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_TRUE(config->vae_parallel_rows) << "model.json vae.parallel should be \"rows\"";
}

// Writes "<case> <max |split - single|> <max |single|> <frames>" per case.
int ChildMain(const testing::ChildArgs& a) {
  c10::InferenceMode inference;
  auto mesh = testing::JoinTestMesh(a.rank, a.port, 1, 1, std::stoi(a.args[0]));
  auto config = CogVideoXConfig::Load(ModelDir());
  TORCH_CHECK(config.ok(), config.status().ToString());
  torch::jit::Module vae = torch::jit::load(config->Path(config->vae_file));
  vae.eval();
  std::ofstream out(a.output);
  for (const Case& c : kCases) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(uint64_t(100 * c.frames + c.rows));
    const at::Tensor latents = at::randn({1, c.frames, config->in_channels, c.rows, 6}, gen, at::kFloat);
    const at::Tensor want = DecodeLatents(vae, latents, c.pad_frames, config->scaling_factor, nullptr);
    const at::Tensor got = DecodeLatents(vae, latents, c.pad_frames, config->scaling_factor, mesh->world());
    TORCH_CHECK(got.sizes() == want.sizes(), CaseName(c), ": ", got.sizes(), " != ", want.sizes());
    out << CaseName(c) << " " << (got - want).abs().max().item<double>() << " " << want.abs().max().item<double>()
        << " " << want.size(0) << "\n";
  }
  mesh->AnyRank(false);  // nobody tears the groups down while another rank still uses them
  return 0;
}

class CogVideoXVaeSplit : public ::testing::TestWithParam<int> {};

TEST_P(CogVideoXVaeSplit, EqualsSingleRankDecode) {
  const int world = GetParam();
  const auto ranks = testing::RunRanks(world, {std::to_string(world)}, 600);
  for (int r = 0; r < world; ++r) {
    ASSERT_EQ(ranks[r].code, 0) << "rank " << r;
    std::istringstream in(ranks[r].output);
    std::string name;
    double diff, ref;
    int64_t frames;
    size_t n = 0;
    while (in >> name >> diff >> ref >> frames) {
      EXPECT_EQ(name, CaseName(kCases[n])) << "rank " << r;
      EXPECT_LE(diff, 1e-5 * std::max(1.0, ref)) << "world " << world << " rank " << r << " " << name;
      if (r == 0) {
        std::printf("world %d %-14s %2ld frames: max|split - single| %.2e (max|single| %.2f)\n", world,
                    name.c_str(), static_cast<long>(frames), diff, ref);
      }
      ++n;
    }
    EXPECT_EQ(n, std::size(kCases)) << "rank " << r << " ran too few cases";
  }
}

INSTANTIATE_TEST_SUITE_P(Worlds, CogVideoXVaeSplit, ::testing::Values(2, 3),
                         [](const auto& info) { return "world" + std::to_string(info.param); });

}  // namespace
}  // namespace ditserve::models::cogvideox

int main(int argc, char** argv) {
  ditserve::testing::ChildArgs child;
  if (ditserve::testing::ParseChildArgs(argc, argv, &child) && child.args.size() == 1) {
    try {
      return ditserve::models::cogvideox::ChildMain(child);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rank %d: %s\n", child.rank, e.what());
      return 3;
    }
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
