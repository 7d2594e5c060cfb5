// ditserve::fp8_linear's CPU path (engine/runtime/fp8_linear.h; the GPU kernels: fp8_linear_gpu_test):
// the row-wise quantisation's invariants and the layer's error against fp64 on the unquantised inputs,
// for the three ways exports call it (plain, GELU on the input, [x, gelu(x2)]), and clear argument errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "engine/runtime/fp8_linear.h"

namespace ditserve::runtime {
namespace {

double NormError(const at::Tensor& got, const at::Tensor& want) {
  return ((got.to(at::kDouble) - want.to(at::kDouble)).norm() / want.to(at::kDouble).norm()).item<double>();
}

TEST(Fp8Linear, QuantizeRowsUsesE4m3RangePerRow) {
  at::manual_seed(1);
  const at::Tensor x = (at::randn({2, 7, 64}) * at::rand({2, 7, 1}) * 100).to(at::kBFloat16);
  const at::Tensor x2 = at::randn({2, 7, 32}).to(at::kBFloat16);
  const auto [q, scale] = Fp8QuantizeRows(x, false, x2, true);
  ASSERT_EQ(q.sizes(), (std::vector<int64_t>{14, 96}));
  ASSERT_EQ(q.scalar_type(), at::kFloat8_e4m3fn);
  ASSERT_EQ(scale.sizes(), (std::vector<int64_t>{14, 1}));
  const at::Tensor y = at::cat({x.reshape({14, 64}), at::gelu(x2, "tanh").reshape({14, 32})}, 1).to(at::kFloat);
  EXPECT_TRUE(at::allclose(scale, y.abs().amax(1, true) / 448.0));
  EXPECT_TRUE(q.to(at::kFloat).abs().amax(1).eq(448).all().item<bool>());  // every row uses the full range
  // e4m3 keeps 3 mantissa bits: each element within 2^-4 relative (or the subnormal step) of its input
  const at::Tensor deq = q.to(at::kFloat) * scale;
  EXPECT_TRUE(((deq - y).abs() <= y.abs() * 0.0625 + scale * 0.002).all().item<bool>());
  // all-zero rows quantise to zeros instead of dividing by zero
  const auto [qz, sz] = Fp8QuantizeRows(at::zeros({1, 2, 16}, at::kBFloat16), false, std::nullopt, false);
  EXPECT_TRUE(qz.to(at::kFloat).eq(0).all().item<bool>());
  EXPECT_GT(sz.min().item<float>(), 0.f);
}

TEST(Fp8Linear, LayerCloseToUnquantisedForEveryCallForm) {
  at::manual_seed(2);
  const int64_t n = 48, k1 = 64, k2 = 128;
  const at::Tensor w = at::randn({n, k1 + k2}) / 12.0, bias = at::randn({n}).to(at::kBFloat16) * 0.1;
  const at::Tensor ws = w.abs().amax(1).clamp_min(1e-12) / 448.0;
  const at::Tensor w8 = (w / ws.unsqueeze(1)).to(at::kFloat8_e4m3fn);
  const at::Tensor x = at::randn({2, 33, k1}).to(at::kBFloat16), x2 = at::randn({2, 33, k2}).to(at::kBFloat16);
  const at::Tensor wd = w.to(at::kDouble), bd = bias.to(at::kDouble);
  // [x, gelu(x2)] against the whole weight
  const at::Tensor got = Fp8Linear(x, w8, ws, bias, false, x2, true);
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{2, 33, n}));
  ASSERT_EQ(got.scalar_type(), at::kBFloat16);
  const at::Tensor want = at::linear(at::cat({x.to(at::kDouble), at::gelu(x2.to(at::kDouble), "tanh")}, 2), wd, bd);
  EXPECT_LT(NormError(got, want), 0.06);
  // gelu(x) against the first k1 columns (an MLP's down projection), and plain x without bias
  const at::Tensor w8a = w8.narrow(1, 0, k1).contiguous();
  EXPECT_LT(NormError(Fp8Linear(x, w8a, ws, bias, true, std::nullopt, false),
                      at::linear(at::gelu(x.to(at::kDouble), "tanh"), wd.narrow(1, 0, k1), bd)),
            0.06);
  EXPECT_LT(NormError(Fp8Linear(x, w8a, ws, std::nullopt, false, std::nullopt, false),
                      at::linear(x.to(at::kDouble), wd.narrow(1, 0, k1))),
            0.06);
}

TEST(Fp8Linear, NoFp8GemmsOnTheCpu) {
  // the engine serves fp8 exports on the CPU (composed) but refuses GPUs without FP8 GEMMs
  EXPECT_FALSE(Fp8GemmsRunOn(at::Device(at::kCPU)));
}

TEST(Fp8Linear, RejectsMismatchedArguments) {
  const at::Tensor x = at::randn({1, 4, 32}).to(at::kBFloat16);
  const at::Tensor w8 = at::randn({16, 32}).to(at::kFloat8_e4m3fn), ws = at::ones({16});
  EXPECT_THROW(Fp8Linear(x, w8.to(at::kBFloat16), ws, std::nullopt, false, std::nullopt, false), c10::Error);
  EXPECT_THROW(Fp8Linear(x, w8, at::ones({15}), std::nullopt, false, std::nullopt, false), c10::Error);
  EXPECT_THROW(Fp8Linear(x, w8, ws, at::ones({16}), false, at::randn({1, 4, 8}).to(at::kBFloat16), false),
               c10::Error);  // K = 32 + 8 != the weight's 32
  EXPECT_THROW(Fp8Linear(x, w8, ws, at::ones({16}), false, at::randn({1, 4, 8}), false), c10::Error);  // fp32 x2
  EXPECT_THROW(Fp8Linear(x, w8, ws, at::ones({16}), false, at::randn({1, 5, 8}).to(at::kBFloat16), false),
               c10::Error);
}

}  // namespace
}  // namespace ditserve::runtime
