// HunyuanVideo under context parallelism with the prompt's padding key mask: every rank of ulysses2, ring2,
// ring3, ulysses2 x ring2 and cfg2 groups (one process per rank, Gloo) ends with the single-rank latents, and the
// leader returns the single-rank frames (within one level), decoded split by latent rows over all the group's
// ranks. The sizes leave token counts that do not divide the ranks, and the ring3 case holds 1 video token over
// 3 ranks: the last ranks' ring blocks (padded video + the prompt's padding) have no real key at all, which the
// ring's LSE merge must absorb exactly.
//
// The parallel VAE decode alone (HunyuanVideoRowSplitDecode, 2 and 3 ranks): DecodeVideo split by rows equals
// the single-rank decode on every rank, max |diff| <= 1e-5 x max(1, max |ref|) in fp32 (only summation order
// differs: group statistics combined across ranks, convs on differently shaped inputs), through the plain decode, the spatial
// tiles, the temporal (framewise) chunks and, with tiling off, one whole-clip decode whose mid-block attention
// spans every rank's rows; row counts that do and do not divide the ranks, and tiles with fewer rows than ranks
// (every rank decodes those whole).
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
#include "engine/runtime/torchscript.h"
#include "models/hunyuan_video/hunyuan_video_config.h"
#include "models/hunyuan_video/hunyuan_video_decode.h"
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

// --- parallel VAE decode --------------------------------------------------------------------------------

constexpr double kDecodeTolerance = 1e-5;

struct DecodeCase {
  std::string name;
  int64_t frames, rows, cols;  // latent
  bool spatial_tiling;
};

// The tiny export's tiles are 32 px = 4 latent rows/columns (stride 3) and 16 frames = 4 latent frames: 4x3
// decodes in one piece, 7x6 in 3x2 spatial tiles (the last row of tiles 1 latent row high), 6 latent frames in
// two temporal chunks; without spatial tiling 7 rows decode at once (3+2+2 rows at 3 ranks).
const std::vector<DecodeCase> kDecodeCases = {
    {"plain_2x4x3", 2, 4, 3, true},          {"plain_1x5x2", 1, 5, 2, true},
    {"spatial_tiles_2x7x6", 2, 7, 6, true},  {"temporal_chunks_6x5x4", 6, 5, 4, true},
    {"untiled_3x7x5", 3, 7, 5, false},       {"untiled_temporal_6x6x3", 6, 6, 3, false},
};

// "name max|diff| max|ref|" per case: this rank's split decode against its own single-rank decode.
int DecodeChildMain(const testing::ChildArgs& a) {
  c10::InferenceMode inference;
  auto mesh = testing::JoinTestMesh(a.rank, a.port, 1, 1, std::stoi(a.args[1]));
  auto config = HunyuanVideoConfig::Load(testing::TestModelsDir() + "/hunyuan-video-tiny");
  TORCH_CHECK(config.ok(), config.status().ToString());
  auto vae = runtime::LoadTorchScript(config->Path(config->vae_file), at::kCPU);
  TORCH_CHECK(vae.ok(), vae.status().ToString());
  std::ofstream out(a.output);
  for (const DecodeCase& d : kDecodeCases) {
    HunyuanVideoConfig c = *config;
    c.tiling.spatial = d.spatial_tiling;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(d.frames * 100 + d.rows * 10 + d.cols);
    const at::Tensor z = at::randn({1, 4, d.frames, d.rows, d.cols}, gen, at::kFloat);
    const at::Tensor want = DecodeVideo(*vae, c, z, nullptr);
    const at::Tensor got = DecodeVideo(*vae, c, z, mesh->world());
    TORCH_CHECK(got.sizes() == want.sizes(), d.name, ": ", got.sizes(), " != ", want.sizes());
    TORCH_CHECK(want.size(0) == 4 * (d.frames - 1) + 1 && want.size(2) == 8 * d.rows, d.name, ": ", want.sizes());
    out << d.name << " " << (got - want).abs().max().item<double>() << " " << want.abs().max().item<double>() << "\n";
  }
  mesh->AnyRank(false);
  return 0;
}

TEST(HunyuanVideoTinyVae, ExportedForRowSplit) {
  auto config = HunyuanVideoConfig::Load(testing::TestModelsDir() + "/hunyuan-video-tiny");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_TRUE(config->vae_parallel_rows) << "model.json vae.parallel should be \"rows\"";
}

class HunyuanVideoRowSplitDecode : public ::testing::TestWithParam<int> {};

TEST_P(HunyuanVideoRowSplitDecode, EveryRankEqualsOneRank) {
  const int world = GetParam();
  const auto ranks = testing::RunRanks(world, {"decode", std::to_string(world)}, 600);
  for (int r = 0; r < world; ++r) {
    ASSERT_EQ(ranks[r].code, 0) << "rank " << r;
    std::istringstream in(ranks[r].output);
    std::string name;
    double diff, ref;
    size_t n = 0;
    while (in >> name >> diff >> ref) {
      ASSERT_LT(n, kDecodeCases.size());
      EXPECT_EQ(name, kDecodeCases[n].name) << "rank " << r;
      EXPECT_GT(ref, 0.0) << name;
      EXPECT_LE(diff, kDecodeTolerance * std::max(1.0, ref)) << "world " << world << " rank " << r << " " << name;
      std::printf("world %d rank %d %-24s max|diff| %.2e (max|ref| %.2g)\n", world, r, name.c_str(), diff, ref);
      ++n;
    }
    EXPECT_EQ(n, kDecodeCases.size()) << "rank " << r << " ran too few cases";
  }
}

INSTANTIATE_TEST_SUITE_P(Worlds, HunyuanVideoRowSplitDecode, ::testing::Values(2, 3),
                         [](const auto& info) { return "world" + std::to_string(info.param); });

// --- the whole pipeline -----------------------------------------------------------------------------------

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
  if (ditserve::testing::ParseChildArgs(argc, argv, &child) && (child.args.size() == 7 || child.args.size() == 2)) {
    try {
      if (child.args.size() == 2) return ditserve::models::hunyuan_video::DecodeChildMain(child);
      return ditserve::models::hunyuan_video::ChildMain(child);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rank %d: %s\n", child.rank, e.what());
      return 3;
    }
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
