// CogVideoX on context-parallel groups equals one rank: each rank of ring3 (226 text tokens and 18 video tokens
// do not divide 3, so both segments are padded and masked), ulysses3, ulysses2 x ring2 and cfg2 x ring2 groups
// (one process per rank, Gloo) records its final latents, First Block Cache decisions and frames; all must
// equal the single-rank run. The 2b-style model has sin-cos positions, the 5b-style one RoPE and the DPM solver.
// The VAE decode ("vae.parallel": "rows") splits the 4 latent rows over all of a group's ranks (2, 3 and 4: uneven
// 2/1/1 rows at 3), each rank keeping its own conv cache across frame batches; the leader's frames must stay
// within 1 level of the single-rank decode.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ditserve/model_info.h"
#include "engine/runtime/attention_op.h"
#include "engine/runtime/cp/cp_attention.h"
#include "engine/runtime/cp/mesh.h"
#include "models/registry.h"
#include "support/multi_rank.h"
#include "support/rank_run.h"
#include "support/recording_job_control.h"
#include "support/test_env.h"
#include "support/test_mesh.h"

namespace ditserve::models::cogvideox {
namespace {

GenerateParams Params(float cache_threshold) {
  GenerateParams p;
  p.prompt = "a red fox in the snow";
  p.width = 48;  // latent 6 x 4, 3 x 2 patches x 3 latent frames = 18 video tokens
  p.height = 32;
  p.num_frames = 9;
  p.steps = 3;
  p.guidance_scale = 6.f;
  p.use_dynamic_cfg = true;
  p.seed = 5;
  p.cache_threshold = cache_threshold;
  p.fps = 8;
  p.format = GenerateParams::Format::kMp4;
  return p;
}

// "<pattern> <n latents> <latents...> <frame bytes...>" of a run.
std::string RunPipeline(const std::shared_ptr<runtime::DeviceMesh>& mesh, const std::string& model, float threshold) {
  auto info = ReadModelInfo(testing::TestModelsDir() + "/" + model);
  if (!info.ok()) throw std::runtime_error(info.status().ToString());
  runtime::PipelineOptions opts;
  opts.info = *info;
  opts.mesh = mesh;
  auto pipeline = models::CreatePipeline(opts);
  if (!pipeline.ok()) throw std::runtime_error(pipeline.status().ToString());
  // The tiny exports must split the decode, or the multi-rank runs would only check the leader's whole decode.
  if (!(*pipeline)->model().SplitsDecode()) throw std::runtime_error(model + ": model.json lacks \"vae.parallel\": \"rows\"");
  testing::RecordingJobControl control;
  auto out = (*pipeline)->GenerateRaw(Params(threshold), control, {.record_intermediates = true});
  if (!out.ok()) throw std::runtime_error(out.status().ToString());
  return testing::SerializeRankRun(*out);
}

int ChildMain(const testing::ChildArgs& a) {
  auto mesh = testing::JoinTestMesh(a.rank, a.port, std::stoi(a.args[0]), std::stoi(a.args[1]), std::stoi(a.args[2]));
  if (mesh->sequence_size() > 1) {
    runtime::SetAttentionBackend(std::make_shared<runtime::ContextParallelAttention>(mesh));
  }
  std::ofstream(a.output) << RunPipeline(mesh, a.args[3], std::stof(a.args[4]));
  mesh->AnyRank(false);  // nobody tears the groups down while another rank still uses them
  return 0;
}

using testing::RankRun;

struct Layout {
  int cfg, ulysses, ring;
  std::string model;
  float threshold;
};

class CogVideoXRanks : public ::testing::TestWithParam<Layout> {};

TEST_P(CogVideoXRanks, EveryRankEqualsOneRank) {
  const Layout l = GetParam();
  runtime::SetAttentionBackend(nullptr);
  const RankRun want = testing::ParseRankRun(RunPipeline(nullptr, "cogvideox-tiny-" + l.model, l.threshold));
  ASSERT_FALSE(want.latents.empty());
  ASSERT_FALSE(want.pixels.empty());
  const int world = l.cfg * l.ulysses * l.ring;
  const auto ranks = testing::RunRanks(world, {std::to_string(l.cfg), std::to_string(l.ulysses),
                                               std::to_string(l.ring), "cogvideox-tiny-" + l.model,
                                               std::to_string(l.threshold)}, 600);
  for (int r = 0; r < world; ++r) {
    ASSERT_EQ(ranks[r].code, 0) << "rank " << r;
    const RankRun got = testing::ParseRankRun(ranks[r].output);
    EXPECT_EQ(got.pattern, want.pattern) << "rank " << r;
    ASSERT_EQ(got.latents.size(), want.latents.size()) << "rank " << r;
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < want.latents.size(); ++i) {
      max_diff = std::max(max_diff, std::fabs(got.latents[i] - want.latents[i]));
      max_ref = std::max(max_ref, std::fabs(want.latents[i]));
    }
    EXPECT_LE(max_diff, 1e-4 * std::max(1.0, max_ref)) << "rank " << r;
    int max_pixel = 0;
    if (r == 0) {  // the leader decodes and returns the frames
      ASSERT_EQ(got.pixels.size(), want.pixels.size());
      for (size_t i = 0; i < want.pixels.size(); ++i) max_pixel = std::max(max_pixel, std::abs(got.pixels[i] - want.pixels[i]));
      EXPECT_LE(max_pixel, 1);
    }
    std::printf("%s cfg%d ulysses%d ring%d rank %d: pattern %s (1 rank %s), latents max|diff| %.2e, frames max|diff| %d\n",
                l.model.c_str(), l.cfg, l.ulysses, l.ring, r, got.pattern.c_str(), want.pattern.c_str(), max_diff,
                max_pixel);
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, CogVideoXRanks,
                         ::testing::Values(Layout{1, 1, 3, "5b", 0.f}, Layout{1, 3, 1, "2b", 0.f},
                                           Layout{1, 2, 1, "2b", 0.f},
                                           Layout{1, 2, 2, "1.5", 0.f}, Layout{2, 1, 2, "5b", 0.2f}),
                         [](const auto& info) {
                           const Layout& l = info.param;
                           std::string m = l.model == "1.5" ? "OneFive" : l.model == "5b" ? "FiveB" : "TwoB";
                           return m + "Cfg" + std::to_string(l.cfg) + "Ulysses" + std::to_string(l.ulysses) + "Ring" +
                                  std::to_string(l.ring) + (l.threshold > 0 ? "Cache" : "");
                         });

}  // namespace
}  // namespace ditserve::models::cogvideox

int main(int argc, char** argv) {
  ditserve::testing::ChildArgs child;
  if (ditserve::testing::ParseChildArgs(argc, argv, &child) && child.args.size() == 5) {
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
