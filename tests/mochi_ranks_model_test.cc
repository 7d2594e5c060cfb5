// The Mochi pipeline on context-parallel groups equals one rank: ulysses2, ring2, cfg2, ulysses2 x ring2 and
// cfg2 x ring2 groups (one process per rank, Gloo) at a size whose token count divides no rank count (75 video
// tokens, a 7-token prompt padded to 256 and masked). Every rank's final latents must match the single-rank
// run, and the leader's frames too: those are decoded split by latent rows over all ranks of the group
// (3+3+2+2 rows at 4 ranks; 5 latent frames in three T chunks), so this also checks the parallel VAE decode.
// With First Block Cache on, every rank must skip the same steps as one rank.
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

namespace ditserve::models::mochi {
namespace {

GenerateParams Params(float cache_threshold) {
  GenerateParams p;
  p.prompt = "a red fox in the snow";
  p.negative_prompt = "fog";
  p.width = 48;   // latent 6 columns -> 3 patches
  p.height = 80;  // latent 10 rows -> 5 patches: 15 tokens a latent frame
  p.num_frames = 25;  // 5 latent frames: 75 video tokens
  p.steps = 6;
  p.guidance_scale = 4.5f;
  p.seed = 11;
  p.fps = 30;
  p.format = GenerateParams::Format::kMp4;
  p.cache_threshold = cache_threshold;
  return p;
}

// "<pattern> <n latents> <latents...> <pixels...>"
std::string RunPipeline(const std::shared_ptr<runtime::DeviceMesh>& mesh, float cache_threshold) {
  auto info = ReadModelInfo(testing::TestModelsDir() + "/mochi-tiny");
  if (!info.ok()) throw std::runtime_error(info.status().ToString());
  runtime::PipelineOptions opts;
  opts.info = *info;
  opts.mesh = mesh;
  auto pipeline = models::CreatePipeline(opts);
  if (!pipeline.ok()) throw std::runtime_error(pipeline.status().ToString());
  testing::RecordingJobControl control;
  auto out = (*pipeline)->GenerateRaw(Params(cache_threshold), control, {.record_intermediates = true});
  if (!out.ok()) throw std::runtime_error(out.status().ToString());
  return testing::SerializeRankRun(*out);
}

int ChildMain(const testing::ChildArgs& a) {
  auto mesh = testing::JoinTestMesh(a.rank, a.port, std::stoi(a.args[0]), std::stoi(a.args[1]), std::stoi(a.args[2]));
  if (mesh->sequence_size() > 1) {
    runtime::SetAttentionBackend(std::make_shared<runtime::ContextParallelAttention>(mesh));
  }
  std::ofstream(a.output) << RunPipeline(mesh, std::stof(a.args[3]));
  mesh->AnyRank(false);  // nobody tears the groups down while another rank still uses them
  return 0;
}

using testing::RankRun;

struct Layout {
  int cfg, ulysses, ring;
  float cache_threshold;
};

class MochiRanks : public ::testing::TestWithParam<Layout> {};

TEST_P(MochiRanks, EveryRankMatchesOneRank) {
  const Layout l = GetParam();
  runtime::SetAttentionBackend(nullptr);
  const RankRun want = testing::ParseRankRun(RunPipeline(nullptr, l.cache_threshold));
  ASSERT_FALSE(want.pixels.empty());
  if (l.cache_threshold > 0) {
    ASSERT_NE(want.pattern.find('S'), std::string::npos) << "threshold too low: " << want.pattern;
    ASSERT_NE(want.pattern.find('C', 2), std::string::npos) << "threshold too high: " << want.pattern;
  }
  const int world = l.cfg * l.ulysses * l.ring;
  const auto ranks = testing::RunRanks(world, {std::to_string(l.cfg), std::to_string(l.ulysses),
                                               std::to_string(l.ring), std::to_string(l.cache_threshold)}, 600);
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
    int max_pixel = -1;
    if (r == 0) {  // the leader returns the frames
      ASSERT_EQ(got.pixels.size(), want.pixels.size());
      max_pixel = 0;
      for (size_t i = 0; i < want.pixels.size(); ++i) max_pixel = std::max(max_pixel, std::abs(got.pixels[i] - want.pixels[i]));
      EXPECT_LE(max_pixel, 1);
    }
    std::printf("cfg%d ulysses%d ring%d cache %g rank %d: pattern %s (1 rank %s), latents max|diff| %.2e (max|ref| "
                "%.2f), frames max|diff| %d\n",
                l.cfg, l.ulysses, l.ring, l.cache_threshold, r, got.pattern.c_str(), want.pattern.c_str(), max_diff,
                max_ref, max_pixel);
    EXPECT_LE(max_diff, 1e-4 * std::max(1.0, max_ref)) << "rank " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, MochiRanks,
                         ::testing::Values(Layout{1, 2, 1, 0.f}, Layout{1, 1, 2, 0.f}, Layout{2, 1, 1, 0.f},
                                           Layout{1, 2, 2, 0.f}, Layout{2, 1, 2, 0.f}, Layout{1, 2, 2, 0.2f}),
                         [](const auto& info) {
                           const Layout& l = info.param;
                           return "cfg" + std::to_string(l.cfg) + "ulysses" + std::to_string(l.ulysses) + "ring" +
                                  std::to_string(l.ring) + (l.cache_threshold > 0 ? "FirstBlockCache" : "");
                         });

}  // namespace
}  // namespace ditserve::models::mochi

int main(int argc, char** argv) {
  ditserve::testing::ChildArgs child;
  if (ditserve::testing::ParseChildArgs(argc, argv, &child) && child.args.size() == 4) {
    try {
      return ditserve::models::mochi::ChildMain(child);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rank %d: %s\n", child.rank, e.what());
      return 3;
    }
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
