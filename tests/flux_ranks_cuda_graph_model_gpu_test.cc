// CUDA-graph replay on a 2-GPU group (one process per GPU, NCCL): the transformer step, with its
// Ulysses all-to-alls / ring send-recvs and the final all-gather, captured and replayed on every rank
// gives the final latents of one GPU running eagerly. Tiny FLUX (fp32) at 36x44 (99 image tokens:
// padded shards, key mask as a graph input) and 64x64 (even), two requests each so the second one
// replays with new inputs.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAFunctions.h>
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

namespace ditserve::models::flux {
namespace {

struct Request {
  const char* prompt;
  int w, h;
  uint64_t seed;
};
const std::vector<Request> kRequests = {
    {"a red fox", 36, 44, 3}, {"a lighthouse at dusk", 36, 44, 4}, {"a bowl of ramen", 64, 64, 5},
    {"a castle", 64, 64, 6}};

// Final packed latents of every request, one line each.
std::string RunRequests(const std::shared_ptr<runtime::DeviceMesh>& mesh, const std::string& device,
                        bool graphs) {
  auto info = ReadModelInfo(testing::TestModelsDir() + "/flux-tiny-dev");
  if (!info.ok()) throw std::runtime_error(info.status().ToString());
  runtime::PipelineOptions opts;
  opts.info = *info;
  opts.device = device;
  opts.mesh = mesh;
  opts.cuda_graphs = graphs;
  auto pipeline = models::CreatePipeline(opts);
  if (!pipeline.ok()) throw std::runtime_error(pipeline.status().ToString());
  std::ostringstream s;
  s.precision(9);
  for (const Request& r : kRequests) {
    GenerateParams p;
    p.prompt = r.prompt;
    p.width = r.w;
    p.height = r.h;
    p.steps = 6;  // 3 eager warm-up calls, then capture + replay
    p.guidance_scale = 3.5f;
    p.seed = r.seed;
    testing::RecordingJobControl control;
    auto out = (*pipeline)->GenerateRaw(p, control, {.record_intermediates = true});
    if (!out.ok()) throw std::runtime_error(out.status().ToString());
    for (float v : out->latents.data) s << v << " ";
    s << "\n";
  }
  return s.str();
}

std::vector<std::vector<double>> Parse(const std::string& text) {
  std::vector<std::vector<double>> rows;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream in(line);
    rows.emplace_back();
    double v;
    while (in >> v) rows.back().push_back(v);
  }
  return rows;
}

int ChildMain(const testing::ChildArgs& a) {
  const int ulysses = a.args[0] == "ulysses2" ? 2 : 1, ring = a.args[0] == "ring2" ? 2 : 1;
  c10::cuda::set_device(a.rank);
  auto mesh = testing::JoinTestMesh(a.rank, a.port, 1, ulysses, ring, at::Device(at::kCUDA, a.rank));
  runtime::SetAttentionBackend(std::make_shared<runtime::ContextParallelAttention>(mesh));
  std::ofstream(a.output) << RunRequests(mesh, "cuda:" + std::to_string(a.rank), /*graphs=*/true);
  mesh->AnyRank(false);  // nobody tears the groups down while another rank still uses them
  return 0;
}

class FluxRanksCudaGraph : public ::testing::TestWithParam<std::string> {};

TEST_P(FluxRanksCudaGraph, ReplayOnEveryRankEqualsOneGpuEager) {
  if (c10::cuda::device_count() < 2) GTEST_SKIP() << "needs 2 GPUs, found " << int(c10::cuda::device_count());
  runtime::SetAttentionBackend(nullptr);
  const auto want = Parse(RunRequests(nullptr, "cuda:0", /*graphs=*/false));
  ASSERT_EQ(want.size(), kRequests.size());
  const auto ranks = testing::RunRanks(2, {GetParam()}, 300);
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(ranks[r].code, 0) << GetParam() << " rank " << r;
    const auto got = Parse(ranks[r].output);
    ASSERT_EQ(got.size(), want.size()) << "rank " << r;
    for (size_t q = 0; q < want.size(); ++q) {
      ASSERT_EQ(got[q].size(), want[q].size());
      ASSERT_FALSE(want[q].empty());
      double max_diff = 0, max_ref = 0;
      for (size_t i = 0; i < want[q].size(); ++i) {
        max_diff = std::max(max_diff, std::fabs(got[q][i] - want[q][i]));
        max_ref = std::max(max_ref, std::fabs(want[q][i]));
      }
      std::printf("%s rank %d %dx%d seed %llu: graph replay vs 1-GPU eager, final latents max|diff| %.2e (max|ref| %.2f)\n",
                  GetParam().c_str(), r, kRequests[q].w, kRequests[q].h,
                  static_cast<unsigned long long>(kRequests[q].seed), max_diff, max_ref);
      EXPECT_LE(max_diff, 1e-4 * std::max(1.0, max_ref)) << "rank " << r << " request " << q;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, FluxRanksCudaGraph, ::testing::Values("ulysses2", "ring2"));

}  // namespace
}  // namespace ditserve::models::flux

int main(int argc, char** argv) {
  ditserve::testing::ChildArgs child;
  if (ditserve::testing::ParseChildArgs(argc, argv, &child) && child.args.size() == 1) {
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
