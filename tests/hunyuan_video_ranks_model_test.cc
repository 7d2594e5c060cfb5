// HunyuanVideo under context parallelism with the prompt's padding key mask: every rank of ulysses2, ring2,
// ring3, ulysses2 x ring2 and cfg2 groups (one process per rank, Gloo) ends with the single-rank latents, and the
// leader decodes the single-rank frames. The sizes leave token counts that do not divide the ranks, and the
// ring3 case holds 1 video token over 3 ranks: the last ranks' ring blocks (padded video + the prompt's
// padding) have no real key at all, which the ring's LSE merge must absorb exactly.
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
#include "support/recording_job_control.h"
#include "support/test_env.h"
#include "support/test_mesh.h"

namespace ditserve::models::hunyuan_video {
namespace {

struct Size {
  int64_t width, height, frames;
};

GenerateParams Params(const Size& s, bool cfg) {
  GenerateParams p;
  p.prompt = "a lighthouse on a rocky coast at sunset";
  p.width = s.width;
  p.height = s.height;
  p.num_frames = s.frames;
  p.steps = 3;
  p.guidance_scale = 6.f;
  p.seed = 5;
  if (cfg) {
    p.negative_prompt = "fog";
    p.true_cfg_scale = 3.f;
  }
  return p;
}

// "<n latents> <latents...> <n pixels> <pixels...>" (pixels only on the leader).
std::string RunPipeline(const std::shared_ptr<runtime::DeviceMesh>& mesh, const Size& s, bool cfg) {
  auto info = ReadModelInfo(testing::TestModelsDir() + "/hunyuan-video-tiny");
  if (!info.ok()) throw std::runtime_error(info.status().ToString());
  runtime::PipelineOptions opts;
  opts.info = *info;
  opts.mesh = mesh;
  auto pipeline = models::CreatePipeline(opts);
  if (!pipeline.ok()) throw std::runtime_error(pipeline.status().ToString());
  testing::RecordingJobControl control;
  auto out = (*pipeline)->GenerateRaw(Params(s, cfg), control, {.record_intermediates = true});
  if (!out.ok()) throw std::runtime_error(out.status().ToString());
  std::ostringstream o;
  o.precision(9);
  o << out->latents.data.size();
  for (float v : out->latents.data) o << " " << v;
  o << " " << out->rgb.size();
  for (uint8_t v : out->rgb) o << " " << int(v);
  return o.str();
}

struct Result {
  std::vector<double> latents;
  std::vector<int> rgb;
};
Result Parse(const std::string& text) {
  std::istringstream in(text);
  Result r;
  size_t n = 0;
  in >> n;
  r.latents.resize(n);
  for (double& v : r.latents) in >> v;
  in >> n;
  r.rgb.resize(n);
  for (int& v : r.rgb) in >> v;
  return r;
}

int ChildMain(const testing::ChildArgs& a) {
  auto mesh = testing::JoinTestMesh(a.rank, a.port, std::stoi(a.args[0]), std::stoi(a.args[1]), std::stoi(a.args[2]));
  if (mesh->sequence_size() > 1) {
    runtime::SetAttentionBackend(std::make_shared<runtime::ContextParallelAttention>(mesh));
  }
  const Size s{std::stoll(a.args[4]), std::stoll(a.args[5]), std::stoll(a.args[6])};
  std::ofstream(a.output) << RunPipeline(mesh, s, a.args[3] == "1");
  mesh->AnyRank(false);  // nobody tears the groups down while another rank still uses them
  return 0;
}

struct Layout {
  int cfg, ulysses, ring;
  bool true_cfg;
  Size size;
};

class HunyuanVideoRanks : public ::testing::TestWithParam<Layout> {};

TEST_P(HunyuanVideoRanks, EveryRankMatchesOneRank) {
  const Layout l = GetParam();
  runtime::SetAttentionBackend(nullptr);
  const Result want = Parse(RunPipeline(nullptr, l.size, l.true_cfg));
  ASSERT_FALSE(want.latents.empty());
  ASSERT_FALSE(want.rgb.empty());
  const int world = l.cfg * l.ulysses * l.ring;
  const auto ranks = testing::RunRanks(
      world, {std::to_string(l.cfg), std::to_string(l.ulysses), std::to_string(l.ring), l.true_cfg ? "1" : "0",
              std::to_string(l.size.width), std::to_string(l.size.height), std::to_string(l.size.frames)},
      600);
  for (int r = 0; r < world; ++r) {
    ASSERT_EQ(ranks[r].code, 0) << "rank " << r;
    const Result got = Parse(ranks[r].output);
    ASSERT_EQ(got.latents.size(), want.latents.size()) << "rank " << r;
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < want.latents.size(); ++i) {
      max_diff = std::max(max_diff, std::fabs(got.latents[i] - want.latents[i]));
      max_ref = std::max(max_ref, std::fabs(want.latents[i]));
    }
    int max_pixel = 0;
    if (r == 0) {
      ASSERT_EQ(got.rgb.size(), want.rgb.size()) << "the leader returns the frames";
      for (size_t i = 0; i < want.rgb.size(); ++i) max_pixel = std::max(max_pixel, std::abs(got.rgb[i] - want.rgb[i]));
      EXPECT_LE(max_pixel, 1);
    }
    std::printf("cfg%d ulysses%d ring%d%s %lldx%lldx%lld rank %d: final latents max|diff| %.2e (max|ref| %.2g)%s\n",
                l.cfg, l.ulysses, l.ring, l.true_cfg ? " true-CFG" : "", (long long)l.size.width,
                (long long)l.size.height, (long long)l.size.frames, r, max_diff, max_ref,
                r == 0 ? (", pixels max|diff| " + std::to_string(max_pixel)).c_str() : "");
    EXPECT_LE(max_diff, 1e-4 * std::max(1.0, max_ref)) << "rank " << r;
  }
}

// 48 x 16 px, 9 frames: 3 latent frames of 1 x 3 patches = 9 video tokens (odd) and 256 text tokens (not a
// multiple of 3).
constexpr Size kUneven{48, 16, 9};
// 16 x 16 px, 1 frame: 1 video token; over 3 ring ranks the last two hold only padding.
constexpr Size kTiny{16, 16, 1};

INSTANTIATE_TEST_SUITE_P(Layouts, HunyuanVideoRanks,
                         ::testing::Values(Layout{1, 2, 1, false, kUneven}, Layout{1, 1, 2, false, kUneven},
                                           Layout{1, 1, 3, false, kUneven}, Layout{1, 1, 3, false, kTiny},
                                           Layout{1, 2, 2, true, kUneven}, Layout{2, 1, 1, true, kUneven}),
                         [](const auto& info) {
                           const Layout& l = info.param;
                           return "cfg" + std::to_string(l.cfg) + "ulysses" + std::to_string(l.ulysses) + "ring" +
                                  std::to_string(l.ring) + (l.true_cfg ? "TrueCfg" : "") + "_" +
                                  std::to_string(l.size.width) + "x" + std::to_string(l.size.height) + "x" +
                                  std::to_string(l.size.frames);
                         });

}  // namespace
}  // namespace ditserve::models::hunyuan_video

int main(int argc, char** argv) {
  ditserve::testing::ChildArgs child;
  if (ditserve::testing::ParseChildArgs(argc, argv, &child) && child.args.size() == 7) {
    try {
      return ditserve::models::hunyuan_video::ChildMain(child);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rank %d: %s\n", child.rank, e.what());
      return 3;
    }
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
