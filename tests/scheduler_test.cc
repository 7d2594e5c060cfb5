// FlowMatchEulerScheduler vs diffusers 0.34 (tests/python/scheduler_reference.py, run at test time):
// sigmas, timesteps and one Euler step must match bit for bit.
#include <cstdio>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/runtime/schedulers/flow_match_euler.h"

#include <ATen/ATen.h>

namespace ditserve::runtime {
namespace {

std::string RunCommand(const std::string& cmd) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  if (!pipe) return "";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe.get())) > 0) out.append(buf, n);
  return out;
}

const nlohmann::json& Reference() {
  static const nlohmann::json* ref = [] {
    const std::string cmd = std::string(DITSERVE_PYTHON) + " " + DITSERVE_SOURCE_DIR +
                            "/tests/python/scheduler_reference.py";
    const std::string out = RunCommand(cmd);
    return new nlohmann::json(nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false));
  }();
  return *ref;
}

std::vector<float> ToFloats(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

std::vector<float> JsonFloats(const nlohmann::json& j) {
  std::vector<float> v;
  for (const auto& x : j) v.push_back(static_cast<float>(x.get<double>()));
  return v;
}

TEST(SchedulerTest, CalculateShiftMatchesFluxPipeline) {
  EXPECT_DOUBLE_EQ(CalculateShift(256, 256, 4096, 0.5, 1.15), 0.5);
  EXPECT_DOUBLE_EQ(CalculateShift(4096, 256, 4096, 0.5, 1.15), 1.15);
}

TEST(SchedulerTest, FluxSigmasAreNumpyLinspace) {
  const auto s = FlowMatchEulerScheduler::FluxSigmas(4);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0], 1.0);
  EXPECT_EQ(s[3], 0.25);
  EXPECT_EQ(FlowMatchEulerScheduler::FluxSigmas(1), std::vector<double>{1.0});
}

TEST(SchedulerTest, LinearSigmasAreNumpyLinspaceWithoutTheLastZero) {
  EXPECT_EQ(FlowMatchEulerScheduler::LinearSigmas(4), (std::vector<double>{1.0, 0.75, 0.5, 0.25}));
  EXPECT_EQ(FlowMatchEulerScheduler::LinearSigmas(1), std::vector<double>{1.0});
}

TEST(SchedulerTest, LinearQuadraticSigmasNeedTwoSteps) {
  EXPECT_EQ(FlowMatchEulerScheduler::LinearQuadraticSigmas(1, 0.025).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FlowMatchEulerScheduler::LinearQuadraticSigmas(0, 0.025).status().code(), StatusCode::kInvalidArgument);
  const auto two = FlowMatchEulerScheduler::LinearQuadraticSigmas(2, 0.025);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->size(), 2u);
  EXPECT_EQ((*two)[0], 1.0);
}

TEST(SchedulerTest, RejectsUnsupportedOptions) {
  auto j = nlohmann::json::parse(R"({"use_karras_sigmas": true})");
  EXPECT_EQ(FlowMatchEulerConfig::FromJson(j, "x").status().code(), StatusCode::kInvalidArgument);
  j = nlohmann::json::parse(R"({"_class_name": "EulerDiscreteScheduler"})");
  EXPECT_EQ(FlowMatchEulerConfig::FromJson(j, "x").status().code(), StatusCode::kInvalidArgument);
  FlowMatchEulerScheduler dynamic(*FlowMatchEulerConfig::FromJson(
      nlohmann::json::parse(R"({"use_dynamic_shifting": true})"), "x"));
  EXPECT_EQ(dynamic.SetTimesteps(4, std::nullopt, std::nullopt).code(), StatusCode::kInvalidArgument);
}

TEST(SchedulerTest, MatchesDiffusersBitForBit) {
  const nlohmann::json& ref = Reference();
  ASSERT_TRUE(ref.is_object() && ref.contains("cases")) << "reference script failed (see stderr above)";
  int cases = 0;
  for (const auto& c : ref["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    auto config = FlowMatchEulerConfig::FromJson(c["config"], "config");
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    FlowMatchEulerScheduler sched(*config);
    const int64_t steps = c["steps"].get<int64_t>();
    const double mu = CalculateShift(c["image_seq_len"].get<int64_t>(), config->base_image_seq_len,
                                     config->max_image_seq_len, config->base_shift, config->max_shift);
    EXPECT_EQ(mu, c["mu"].get<double>());
    std::optional<std::vector<double>> custom;
    if (c["flux_sigmas"].get<bool>()) custom = FlowMatchEulerScheduler::FluxSigmas(steps);
    if (c["linear_sigmas"].get<bool>()) custom = FlowMatchEulerScheduler::LinearSigmas(steps);
    if (c["linear_quadratic"].get<bool>()) {
      auto lq = FlowMatchEulerScheduler::LinearQuadraticSigmas(steps, 0.025);
      ASSERT_TRUE(lq.ok()) << lq.status().ToString();
      EXPECT_EQ(*lq, c["linear_quadratic_sigmas"].get<std::vector<double>>()) << "float64 schedule";
      custom = *lq;
    }
    ASSERT_TRUE(sched.SetTimesteps(steps, mu, custom).ok());
    EXPECT_EQ(sched.sigmas(), JsonFloats(c["sigmas"]));
    EXPECT_EQ(sched.timesteps(), JsonFloats(c["timesteps"]));
    if (c.contains("step")) {
      const auto& st = c["step"];
      const at::Tensor sample = at::tensor(JsonFloats(st["sample"])).view({1, 4, 4});
      const at::Tensor model_output = at::tensor(JsonFloats(st["model_output"])).view({1, 4, 4});
      const at::Tensor prev = sched.Step(model_output, st["index"].get<int64_t>(), sample);
      EXPECT_EQ(prev.scalar_type(), at::kFloat);
      EXPECT_EQ(ToFloats(prev), JsonFloats(st["prev"]));
    }
    ++cases;
  }
  EXPECT_GE(cases, 15);
}

}  // namespace
}  // namespace ditserve::runtime
