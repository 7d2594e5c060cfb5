// CogVideoXDDIMScheduler / CogVideoXDPMScheduler vs diffusers 0.34 (tests/python/cogvideox_scheduler_reference.py,
// run at test time): timesteps, alphas_cumprod and every step of a whole schedule, bit for bit; the DPM
// solver's noise from the request's seed after the initial latents, as the pipeline's shared generator.
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <ATen/ATen.h>

#include "engine/runtime/noise.h"
#include "engine/runtime/schedulers/cogvideox_ddim.h"
#include "support/python_reference.h"

namespace ditserve::runtime {
namespace {

at::Tensor FromJson(const nlohmann::json& values, const std::vector<int64_t>& shape) {
  std::vector<float> v;
  for (const auto& x : values) v.push_back(static_cast<float>(x.get<double>()));
  return at::tensor(v, at::kFloat).reshape(shape);
}

TEST(CogVideoXSchedulerTest, MatchesDiffusersBitForBit) {
  const testing::PythonReference r = testing::RunPythonReference("tests/python/cogvideox_scheduler_reference.py");
  ASSERT_TRUE(r.ok) << r.error;
  const nlohmann::json& ref = r.data;
  int cases = 0;
  for (const auto& c : ref["cases"]) {
    SCOPED_TRACE(c["class"].get<std::string>() + " " + c["config"].dump() + " steps " + c["steps"].dump());
    nlohmann::json config = c["config"];
    config["_class_name"] = c["class"];
    auto made = MakeScheduler(config, "case");
    ASSERT_TRUE(made.ok()) << made.status().message();
    std::unique_ptr<Scheduler> s = std::move(*made);
    const uint64_t seed = c["seed"].get<uint64_t>();
    ASSERT_TRUE(s->SetTimesteps({.steps = c["steps"].get<int64_t>(), .seed = seed}).ok());
    ASSERT_EQ(s->num_inference_steps(), static_cast<int64_t>(c["timesteps"].size()));
    for (size_t i = 0; i < c["timesteps"].size(); ++i) {
      EXPECT_EQ(s->timesteps()[i], static_cast<float>(c["timesteps"][i].get<int64_t>())) << "timestep " << i;
    }
    const at::Tensor ac = static_cast<CogVideoXSchedulerBase&>(*s).alphas_cumprod().slice(0, 0, {}, 97).to(at::kFloat);
    ASSERT_EQ(ac.numel(), static_cast<int64_t>(c["alphas_cumprod"].size()));
    for (int64_t i = 0; i < ac.numel(); ++i) {
      EXPECT_EQ(ac[i].item<float>(), static_cast<float>(c["alphas_cumprod"][i].get<double>())) << "alphas_cumprod " << i;
    }

    const std::vector<int64_t> shape = c["shape"].get<std::vector<int64_t>>();
    at::Tensor sample = InitialNoise(seed, shape, at::kFloat, at::kCPU);
    ASSERT_TRUE(at::equal(sample, FromJson(c["latents"], shape))) << "initial noise differs";
    for (int64_t i = 0; i < s->num_inference_steps(); ++i) {
      sample = s->Step(FromJson(c["model_outputs"][i], shape), i, sample);
      const at::Tensor want = FromJson(c["prevs"][i], shape);
      ASSERT_TRUE(at::equal(sample, want)) << "step " << i << ": max abs diff "
                                           << (sample - want).abs().max().item<float>();
    }
    ++cases;
  }
  EXPECT_EQ(cases, 12);
}

TEST(CogVideoXSchedulerTest, RefusesUnsupportedOptionsNamingThem) {
  auto bad = [](const char* text) {
    return CogVideoXSchedulerConfig::FromJson(nlohmann::json::parse(text), "model.json: scheduler").status();
  };
  EXPECT_NE(bad(R"({"beta_schedule": "squaredcos_cap_v2"})").message().find("beta_schedule"), std::string::npos);
  EXPECT_NE(bad(R"({"timestep_spacing": "karras"})").message().find("timestep_spacing"), std::string::npos);
  EXPECT_NE(bad(R"({"prediction_type": "flow"})").message().find("prediction_type"), std::string::npos);
  EXPECT_NE(bad(R"({"trained_betas": [0.1]})").message().find("trained_betas"), std::string::npos);
  EXPECT_TRUE(bad(R"({"snr_shift_scale": 1.0})").ok());
  CogVideoXDDIMScheduler s(*CogVideoXSchedulerConfig::FromJson(nlohmann::json::object(), "x"));
  EXPECT_EQ(s.SetTimesteps({.steps = 1001}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.SetTimesteps({.steps = 0}).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ditserve::runtime
