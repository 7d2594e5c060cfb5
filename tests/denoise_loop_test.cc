// The shared denoise loop (engine/runtime/denoise_loop.h) with a fake denoiser and scheduler, no model:
// CFG sequential / batched / split over cfg ranks, the guidance formula and its precision, First Block Cache
// decisions, cancellation at a step boundary, progress order, and the cross-rank agreements (Gloo ranks).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/runtime/cfg_plan.h"
#include "engine/runtime/cp/mesh.h"
#include "engine/runtime/denoise_loop.h"
#include "support/multi_rank.h"
#include "support/recording_job_control.h"
#include "support/test_mesh.h"

namespace ditserve::runtime {
namespace {

// prediction = (latents + offset of the branch) * 0.5, computed as Forward or as Head(Rest(First)):
// First -> streams {latents + offset}, residual = ones * residual_at[step]; Rest -> streams * 2; Head -> * 0.25.
class FakeDenoiser final : public Denoiser {
 public:
  FakeDenoiser(std::vector<float> offsets, std::vector<float> residual_at = {})
      : offsets_(std::move(offsets)), residual_at_(std::move(residual_at)) {}

  int num_branches() const override { return static_cast<int>(offsets_.size()); }
  TensorList Inputs(int branch, int64_t step) override {
    return {at::full({1, 1, 1}, offsets_.at(branch)), at::full({1}, static_cast<double>(step)), at::Tensor()};
  }
  std::vector<int64_t> InputBatchDims() const override { return {0, -1, 0}; }
  std::string GraphKey() const override { return "fake"; }
  at::Tensor Forward(const at::Tensor& latents, const TensorList& in) override {
    forward_batches.push_back(latents.size(0));
    EXPECT_FALSE(in[2].defined());  // absent optional inputs stay absent when batched
    return (latents + in[0].to(latents.scalar_type())) * 0.5;
  }
  FirstBlock First(const at::Tensor& latents, const TensorList& in) override {
    const int64_t step = in[1].item<int64_t>();
    return {{latents + in[0].to(latents.scalar_type())}, at::ones_like(latents) * residual_at_.at(step)};
  }
  TensorList Rest(const TensorList& streams, const TensorList&) override {
    ++rest_calls;
    return {streams[0] * 2};
  }
  at::Tensor Head(const TensorList& streams, const TensorList&) override { return streams[0] * 0.25; }
  at::Tensor ResidualValidTokens() const override { return {}; }

  std::vector<int64_t> forward_batches;
  int rest_calls = 0;

 private:
  std::vector<float> offsets_, residual_at_;
};

// prev = sample - 0.1 * model_output, in the model output's dtype; records what it was given.
class FakeScheduler final : public Scheduler {
 public:
  explicit FakeScheduler(int64_t steps) : timesteps_(steps, 0.f) {}
  const char* name() const override { return "Fake"; }
  Status SetTimesteps(const ScheduleRequest&) override { return Status::Ok(); }
  const std::vector<float>& timesteps() const override { return timesteps_; }
  at::Tensor Step(const at::Tensor& model_output, int64_t step, const at::Tensor& sample) override {
    output_dtypes.push_back(model_output.scalar_type());
    steps.push_back(step);
    return (sample.to(model_output.scalar_type()) - 0.1 * model_output);
  }
  std::vector<at::ScalarType> output_dtypes;
  std::vector<int64_t> steps;

 private:
  std::vector<float> timesteps_;
};

at::Tensor Latents(at::ScalarType dtype = at::kFloat) {
  return at::arange(12, at::TensorOptions().dtype(at::kFloat)).view({1, 4, 3}).to(dtype) / 7;
}

// The loop's arithmetic written out: what every test compares with.
at::Tensor Expected(at::Tensor x, int64_t steps, bool cfg, const std::function<double(int64_t)>& scale) {
  for (int64_t i = 0; i < steps; ++i) {
    const at::Tensor pos = (x + 1.f) * 0.5;
    at::Tensor pred = pos;
    if (cfg) {
      const at::Tensor neg = (x - 1.f) * 0.5;
      pred = neg + (pos - neg) * scale(i);
    }
    x = x - 0.1 * pred;
  }
  return x;
}

CfgPlan Plan(bool cfg) { return *CfgPlan::Make(nullptr, cfg, "a negative prompt"); }

DenoiseOptions Options(bool batch = false) {
  DenoiseOptions o;
  o.guidance.scale = [](int64_t step) { return 2.0 + step; };  // per step, as CogVideoX's dynamic CFG
  o.batch_branches = batch;
  return o;
}

TEST(DenoiseLoop, WithoutCfgStepsEveryStepAndReportsProgressInOrder) {
  FakeDenoiser d({1.f});
  FakeScheduler s(3);
  testing::RecordingJobControl control;
  auto out = Denoise(d, s, Latents(), Plan(false), nullptr, control, Options());
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_TRUE(at::allclose(out->latents, Expected(Latents(), 3, false, nullptr)));
  EXPECT_EQ(s.steps, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(d.forward_batches, (std::vector<int64_t>{1, 1, 1}));
  using E = testing::RecordingJobControl::Event;
  EXPECT_EQ(control.events, (std::vector<E>{{Stage::kDenoise, 1, 3}, {Stage::kDenoise, 2, 3}, {Stage::kDenoise, 3, 3}}));
  EXPECT_EQ(control.polls, 3);  // once per step, before it
  EXPECT_EQ(out->steps_computed, 3);
  EXPECT_EQ(out->steps_skipped, 0);
  EXPECT_TRUE(out->cache_decisions.empty());
}

TEST(DenoiseLoop, CfgSequentialAndBatchedGiveTheGuidanceFormula) {
  const auto want = Expected(Latents(), 4, true, Options().guidance.scale);
  for (bool batch : {false, true}) {
    FakeDenoiser d({1.f, -1.f});
    FakeScheduler s(4);
    testing::RecordingJobControl control;
    auto out = Denoise(d, s, Latents(), Plan(true), nullptr, control, Options(batch));
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_TRUE(at::allclose(out->latents, want)) << "batch " << batch;
    EXPECT_EQ(d.forward_batches, batch ? std::vector<int64_t>(4, 2) : std::vector<int64_t>(8, 1));
  }
}

TEST(DenoiseLoop, Float32GuidanceStepsInFloat32AndKeepsTheLatentDtype) {
  for (bool f32 : {false, true}) {
    FakeDenoiser d({1.f, -1.f});
    FakeScheduler s(2);
    testing::RecordingJobControl control;
    DenoiseOptions o = Options();
    o.guidance.float32 = f32;
    auto out = Denoise(d, s, Latents(at::kBFloat16), Plan(true), nullptr, control, o);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ(out->latents.scalar_type(), at::kBFloat16);
    EXPECT_EQ(s.output_dtypes, std::vector<at::ScalarType>(2, f32 ? at::kFloat : at::kBFloat16));
  }
}

TEST(DenoiseLoop, FirstBlockCacheSkipsBySumsAndHonoursWarmupAndCap) {
  // First-block residuals per step: |r - prev| / |prev| = 0, 0.01, 0.49, 0, 0 against the last computed step.
  const std::vector<float> residuals = {1.f, 1.f, 1.01f, 1.5f, 1.5f, 1.5f};
  struct Case {
    int64_t cap;
    std::vector<bool> want;
  };
  for (const Case& c : {Case{0, {false, true, true, false, true, true}}, Case{1, {false, true, false, false, true, false}}}) {
    FakeDenoiser d({1.f, -1.f}, residuals);
    FakeScheduler s(6);
    testing::RecordingJobControl control;
    DenoiseOptions o = Options();
    o.cache = {.threshold = 0.05, .warmup_steps = 1, .max_consecutive_skips = c.cap};
    auto out = Denoise(d, s, Latents(), Plan(true), nullptr, control, o);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ(out->cache_decisions, c.want) << "cap " << c.cap;
    const int64_t skipped = std::count(c.want.begin(), c.want.end(), true);
    EXPECT_EQ(out->steps_skipped, skipped);
    EXPECT_EQ(out->steps_computed, 6 - skipped);
    EXPECT_EQ(d.rest_calls, 2 * (6 - skipped));  // both branches, computed steps only
    EXPECT_TRUE(d.forward_batches.empty());
  }
}

TEST(DenoiseLoop, CacheThatNeverSkipsEqualsTheUncachedLoop) {
  FakeDenoiser plain({1.f, -1.f}), cached({1.f, -1.f}, std::vector<float>(5, 1.f));
  FakeScheduler s1(5), s2(5);
  testing::RecordingJobControl c1, c2;
  DenoiseOptions o = Options();
  auto a = Denoise(plain, s1, Latents(), Plan(true), nullptr, c1, o);
  o.cache.threshold = 0.5;
  o.cache.warmup_steps = 100;  // longer than the schedule: every step runs First, Rest and Head
  auto b = Denoise(cached, s2, Latents(), Plan(true), nullptr, c2, o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(b->steps_skipped, 0);
  EXPECT_TRUE(at::equal(a->latents, b->latents));
}

TEST(DenoiseLoop, CancelStopsAtAStepBoundary) {
  for (int64_t after : {0, 2}) {
    FakeDenoiser d({1.f, -1.f});
    FakeScheduler s(4);
    testing::RecordingJobControl control(after);
    auto out = Denoise(d, s, Latents(), Plan(true), nullptr, control, Options());
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), StatusCode::kCancelled);
    EXPECT_EQ(out.status().message(), "cancelled before step " + std::to_string(after + 1) + " of 4");
    EXPECT_EQ(static_cast<int64_t>(control.events.size()), after);
    EXPECT_EQ(static_cast<int64_t>(d.forward_batches.size()), 2 * after);
  }
}

TEST(DenoiseLoop, RefusesADenoiserThatDoesNotMatchThePlan) {
  FakeDenoiser d({1.f});
  FakeScheduler s(2);
  testing::RecordingJobControl control;
  auto out = Denoise(d, s, Latents(), Plan(true), nullptr, control, Options());
  EXPECT_EQ(out.status().code(), StatusCode::kInternal);
}

// ---- several ranks (one process each, Gloo) ----------------------------------------------------------------
// Child: args {cfg, ulysses, cancel_rank, cache}. Writes "<code> <steps seen> <decisions> <latents...>".
int ChildMain(const testing::ChildArgs& a) {
  const int cfg = std::stoi(a.args[0]), ulysses = std::stoi(a.args[1]), cancel_rank = std::stoi(a.args[2]);
  const bool cache = a.args[3] == "1";
  auto mesh = testing::JoinTestMesh(a.rank, a.port, cfg, ulysses, 1);
  auto plan = CfgPlan::Make(mesh.get(), true, "a negative prompt");
  if (!plan.ok()) throw std::runtime_error(plan.status().ToString());
  std::vector<float> offsets;
  for (Branch b : plan->branches()) offsets.push_back(b == Branch::kPositive ? 1.f : -1.f);
  // Residuals differ by rank: rank 1 alone would compute step 2 (change 0.08 > 0.05), the group's summed
  // measure (0.08 / 2) skips it, and every rank must follow the group.
  std::vector<float> residuals;
  for (int i = 0; i < 6; ++i) residuals.push_back(1.f + (i >= 3 ? 0.5f : 0.f) + (a.rank == 1 && i >= 2 ? 0.08f : 0.f));
  FakeDenoiser d(offsets, residuals);
  FakeScheduler s(6);
  testing::RecordingJobControl control(a.rank == cancel_rank ? 2 : -1);
  DenoiseOptions o = Options();
  if (cache) o.cache = {.threshold = 0.05, .warmup_steps = 1, .max_consecutive_skips = 0};
  auto out = Denoise(d, s, Latents(), *plan, mesh.get(), control, o);
  std::ostringstream w;
  w << static_cast<int>(out.status().code()) << " " << control.events.size() << " ";
  if (out.ok()) {
    for (bool skip : out->cache_decisions) w << (skip ? 'S' : 'C');
    w << (out->cache_decisions.empty() ? "- " : " ");
    w.precision(9);
    const at::Tensor l = out->latents.contiguous();
    for (int64_t i = 0; i < l.numel(); ++i) w << l.data_ptr<float>()[i] << " ";
  }
  std::ofstream(a.output) << w.str();
  mesh->AnyRank(false);  // nobody tears the groups down while another rank still uses them
  return 0;
}

struct RankOut {
  int code = -1;
  size_t steps = 0;
  std::string decisions;
  std::vector<float> latents;
};
RankOut Parse(const std::string& s) {
  std::istringstream in(s);
  RankOut r;
  in >> r.code >> r.steps;
  if (r.code == 0) {
    in >> r.decisions;
    float v;
    while (in >> v) r.latents.push_back(v);
  }
  return r;
}

TEST(DenoiseLoopRanks, CfgSplitOverTwoRanksEqualsOneRank) {
  const at::Tensor want = Expected(Latents(), 6, true, Options().guidance.scale).contiguous();
  const auto ranks = testing::RunRanks(2, {"2", "1", "-1", "0"}, 120);
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(ranks[r].code, 0) << "rank " << r;
    const RankOut o = Parse(ranks[r].output);
    ASSERT_EQ(o.code, 0) << "rank " << r << ": " << ranks[r].output;
    ASSERT_EQ(o.latents.size(), static_cast<size_t>(want.numel()));
    for (int64_t i = 0; i < want.numel(); ++i) EXPECT_NEAR(o.latents[i], want.data_ptr<float>()[i], 1e-6) << i;
  }
}

TEST(DenoiseLoopRanks, EveryRankTakesTheSameCacheDecisions) {
  const auto ranks = testing::RunRanks(2, {"1", "2", "-1", "1"}, 120);
  ASSERT_EQ(ranks[0].code, 0);
  ASSERT_EQ(ranks[1].code, 0);
  const RankOut a = Parse(ranks[0].output), b = Parse(ranks[1].output);
  ASSERT_EQ(a.code, 0);
  // Summed over both ranks: 2, 2, 2.08 (0.04 < 0.05: skip), 3.08 (computed), 3.08, 3.08.
  EXPECT_EQ(a.decisions, "CSSCSS");
  EXPECT_EQ(b.decisions, a.decisions);
}

TEST(DenoiseLoopRanks, OneRankCancellingStopsEveryRankAtTheSameStep) {
  const auto ranks = testing::RunRanks(2, {"1", "2", "1", "0"}, 120);
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(ranks[r].code, 0) << "rank " << r;
    const RankOut o = Parse(ranks[r].output);
    EXPECT_EQ(o.code, static_cast<int>(StatusCode::kCancelled)) << "rank " << r;
    EXPECT_EQ(o.steps, 2u) << "rank " << r;
  }
}

}  // namespace
}  // namespace ditserve::runtime

int main(int argc, char** argv) {
  ditserve::testing::ChildArgs child;
  if (ditserve::testing::ParseChildArgs(argc, argv, &child) && child.args.size() == 4) {
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
