// First Block Cache decisions are the same on every rank of a context-parallel group, and the same as
// on one rank: each rank of ulysses2, ring2, cfg2 and ulysses2xring2 groups (one process per rank, Gloo)
// records its own per-step skip pattern and final latents; all must equal the single-rank run.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
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
#include "support/test_mesh.h"
#include "support/recording_job_control.h"
#include "support/test_env.h"

namespace ditserve::models::flux {
namespace {

constexpr float kThreshold = 0.3f;  // mixed pattern on the tiny model (see flux_parity_model_test)

GenerateParams Params(bool cfg) {
  GenerateParams p;
  p.prompt = "a red fox";
  p.width = 36;  // 9 x 11 = 99 image tokens: padded shards on every layout
  p.height = 44;
  p.steps = 8;
  p.guidance_scale = 3.5f;
  p.seed = 3;
  p.cache_threshold = kThreshold;
  if (cfg) {
    p.negative_prompt = "fog";
    p.true_cfg_scale = 2.5f;
  }
  return p;
}

// "<pattern> <latents>": the skip pattern (S/C per step) and the final packed latents.
std::string RunPipeline(const std::shared_ptr<runtime::DeviceMesh>& mesh, bool cfg) {
  auto info = ReadModelInfo(testing::TestModelsDir() + "/flux-tiny-dev");
  if (!info.ok()) throw std::runtime_error(info.status().ToString());
  runtime::PipelineOptions opts;
  opts.info = *info;
  opts.mesh = mesh;
  auto pipeline = models::CreatePipeline(opts);
  if (!pipeline.ok()) throw std::runtime_error(pipeline.status().ToString());
  testing::RecordingJobControl control;
  auto out = (*pipeline)->GenerateRaw(Params(cfg), control, {.record_intermediates = true});
  if (!out.ok()) throw std::runtime_error(out.status().ToString());
  std::ostringstream s;
  for (bool d : out->cache_decisions) s << (d ? 'S' : 'C');
  s.precision(9);
  for (float v : out->latents.data) s << " " << v;
  return s.str();
}

int ChildMain(const testing::ChildArgs& a) {
  auto mesh = testing::JoinTestMesh(a.rank, a.port, std::stoi(a.args[0]), std::stoi(a.args[1]), std::stoi(a.args[2]));
  if (mesh->sequence_size() > 1) {
    runtime::SetAttentionBackend(std::make_shared<runtime::ContextParallelAttention>(mesh));
  }
  std::ofstream(a.output) << RunPipeline(mesh, a.args[3] == "1");
  mesh->AnyRank(false);  // nobody tears the groups down while another rank still uses them
  return 0;
}

struct Split {
  std::string pattern;
  std::vector<double> latents;
};
Split Parse(const std::string& text) {
  std::istringstream in(text);
  Split s;
  in >> s.pattern;
  double v;
  while (in >> v) s.latents.push_back(v);
  return s;
}

struct Layout {
  int cfg, ulysses, ring;
  bool true_cfg;
};

class FirstBlockCacheRanks : public ::testing::TestWithParam<Layout> {};

TEST_P(FirstBlockCacheRanks, EveryRankDecidesLikeOneRank) {
  const Layout l = GetParam();
  runtime::SetAttentionBackend(nullptr);
  const Split want = Parse(RunPipeline(nullptr, l.true_cfg));
  ASSERT_NE(want.pattern.find('S'), std::string::npos) << want.pattern;
  ASSERT_NE(want.pattern.find('C', 1), std::string::npos) << want.pattern;
  const int world = l.cfg * l.ulysses * l.ring;
  const auto ranks = testing::RunRanks(world, {std::to_string(l.cfg), std::to_string(l.ulysses),
                                               std::to_string(l.ring), l.true_cfg ? "1" : "0"}, 300);
  for (int r = 0; r < world; ++r) {
    ASSERT_EQ(ranks[r].code, 0) << "rank " << r;
    const Split got = Parse(ranks[r].output);
    EXPECT_EQ(got.pattern, want.pattern) << "rank " << r;
    ASSERT_EQ(got.latents.size(), want.latents.size()) << "rank " << r;
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < want.latents.size(); ++i) {
      max_diff = std::max(max_diff, std::fabs(got.latents[i] - want.latents[i]));
      max_ref = std::max(max_ref, std::fabs(want.latents[i]));
    }
    std::printf("cfg%d ulysses%d ring%d%s rank %d: pattern %s (1 rank: %s), final latents max|diff| %.2e\n", l.cfg,
                l.ulysses, l.ring, l.true_cfg ? " true-CFG" : "", r, got.pattern.c_str(), want.pattern.c_str(),
                max_diff);
    EXPECT_LE(max_diff, 1e-4 * std::max(1.0, max_ref)) << "rank " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, FirstBlockCacheRanks,
                         ::testing::Values(Layout{1, 2, 1, false}, Layout{1, 1, 2, false}, Layout{2, 1, 1, true},
                                           Layout{1, 2, 2, true}),
                         [](const auto& info) {
                           const Layout& l = info.param;
                           return "cfg" + std::to_string(l.cfg) + "ulysses" + std::to_string(l.ulysses) + "ring" +
                                  std::to_string(l.ring) + (l.true_cfg ? "TrueCfg" : "");
                         });

}  // namespace
}  // namespace ditserve::models::flux

int main(int argc, char** argv) {
  ditserve::testing::ChildArgs child;
  if (ditserve::testing::ParseChildArgs(argc, argv, &child) && child.args.size() == 4) {
    try {
      return ditserve::models::flux::ChildMain(child);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rank %d: %s\n", child.rank, e.what());
      return 3;
    }
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
