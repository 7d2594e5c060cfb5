// FP8 attention's reference (the CPU path of fp8_attention groups; engine/runtime/fp8_attention.h): its
// error against exact attention is FP8's (neither zero nor large), its quantisation is what the contract
// says, masks and the log-sum-exp hold, and the attention op serves it when the backend asks for FP8.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "engine/runtime/attention_op.h"
#include "engine/runtime/cp/local_attention.h"
#include "engine/runtime/fp8_attention.h"

namespace ditserve::runtime {
namespace {

at::Tensor Randn(std::vector<int64_t> shape, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(shape, gen, at::kFloat);
}

double NormErr(const at::Tensor& out, const at::Tensor& ref) { return ((out - ref).norm() / ref.norm()).item<double>(); }

// Queries and keys of a trained transformer after QK norm: unit-scale entries, scores spread over a few units.
struct Qkv {
  at::Tensor q, k, v;
};
Qkv Make(int64_t b, int64_t h, int64_t sq, int64_t sk, int64_t d, uint64_t seed) {
  return {Randn({b, h, sq, d}, seed), Randn({b, h, sk, d}, seed + 1), Randn({b, h, sk, d}, seed + 2)};
}

TEST(Fp8Attention, ReferenceErrorIsFp8Sized) {
  const Qkv t = Make(2, 4, 37, 53, 64, 1);
  const at::Tensor exact = at::scaled_dot_product_attention(t.q, t.k, t.v);
  const auto [out, lse] = Fp8AttentionReference(t.q, t.k, t.v, std::nullopt, /*with_lse=*/true);
  const double err = NormErr(out, exact);
  // e4m3 keeps 3 mantissa bits (relative rounding error up to 1/16, ~1/30 rms): q, k, v, P and O each add some.
  EXPECT_GT(err, 5e-3);
  EXPECT_LT(err, 6e-2);
  const at::Tensor exact_lse = at::logsumexp(at::matmul(t.q, t.k.transpose(-1, -2)) / 8.0, -1);
  EXPECT_LT((lse - exact_lse).abs().max().item<double>(), 0.1);
  EXPECT_EQ(out.scalar_type(), at::kFloat);
  EXPECT_EQ(out.sizes(), t.q.sizes());
}

TEST(Fp8Attention, ScalesArePowersOfTwoSoExactlyRepresentableInputsSurvive) {
  // Entries that e4m3 holds exactly at a power-of-two scale (multiples of 1/8 up to 2): q, k and v pass through
  // unchanged, so with one key the output is that key's value, up to O's own rounding (none for these values).
  at::Tensor q = at::full({1, 1, 1, 16}, 0.5), k = at::full({1, 1, 1, 16}, 0.25);
  at::Tensor v = at::arange(16, at::kFloat).view({1, 1, 1, 16}) / 8.0;
  const at::Tensor out = Fp8AttentionReference(q, k, v, std::nullopt, false).first;
  EXPECT_TRUE(at::equal(out, v)) << out;
}

TEST(Fp8Attention, MaskedKeysEqualDroppedKeys) {
  const Qkv t = Make(1, 2, 9, 12, 32, 4);
  // The padded keys are half the real ones' size, so the per-tensor scales do not change when they are dropped.
  at::Tensor k = t.k.clone(), v = t.v.clone();
  k.narrow(2, 8, 4).mul_(0.5).clamp_(-1, 1);
  v.narrow(2, 8, 4).mul_(0.5).clamp_(-1, 1);
  at::Tensor mask = at::ones({1, 12}, at::kBool);
  mask.narrow(1, 8, 4).fill_(false);
  const auto masked = Fp8AttentionReference(t.q, k, v, MaskToBias(mask, at::kFloat), true);
  const auto dropped = Fp8AttentionReference(t.q, k.narrow(2, 0, 8), v.narrow(2, 0, 8), std::nullopt, true);
  EXPECT_LE((masked.first - dropped.first).abs().max().item<double>(), 1e-6);
  EXPECT_LE((masked.second - dropped.second).abs().max().item<double>(), 1e-5);
}

TEST(Fp8Attention, ZeroInputsGiveZerosNotNans) {
  const at::Tensor z = at::zeros({1, 2, 5, 16});
  const at::Tensor out = Fp8AttentionReference(z, z, z, std::nullopt, false).first;
  EXPECT_TRUE(at::equal(out, z));
}

TEST(Fp8Attention, OpServesFp8WhenTheBackendAsks) {
  const Qkv t = Make(1, 3, 20, 20, 32, 7);
  at::Tensor mask = at::ones({1, 20}, at::kBool);
  mask.narrow(1, 15, 5).fill_(false);
  SdpaAttentionBackend fp8(/*fp8=*/true), exact;
  EXPECT_STREQ(fp8.name(), "sdpa-fp8");
  for (const std::optional<at::Tensor>& m : {std::optional<at::Tensor>(), std::optional<at::Tensor>(mask)}) {
    std::optional<at::Tensor> bias;
    if (m) bias = MaskToBias(*m, at::kFloat);
    const at::Tensor want = Fp8AttentionReference(t.q, t.k, t.v, bias, false).first;
    EXPECT_TRUE(at::equal(fp8.Attention(t.q, t.k, t.v, m), want));
    const double err = NormErr(fp8.Attention(t.q, t.k, t.v, m), exact.Attention(t.q, t.k, t.v, m));
    EXPECT_GT(err, 1e-3);
    EXPECT_LT(err, 6e-2);
  }
}

TEST(Fp8Attention, RingBlocksMergeToFp8SizedError) {
  // Each ring block quantises with its own scales; merged by their log-sum-exp they still give FP8's error.
  const Qkv t = Make(1, 2, 16, 48, 32, 9);
  const at::Tensor exact = at::scaled_dot_product_attention(t.q, t.k, t.v);
  at::Tensor out, lse;
  for (int64_t start : {0, 16, 32}) {
    MergeAttention(out, lse, AttentionWithLse(t.q, t.k.narrow(2, start, 16), t.v.narrow(2, start, 16),
                                              std::nullopt, /*fp8=*/true));
  }
  const double err = NormErr(out, exact);
  EXPECT_GT(err, 1e-3);
  EXPECT_LT(err, 6e-2);
  // and the bf16 path is untouched by the flag's default
  at::Tensor out_exact, lse_exact;
  MergeAttention(out_exact, lse_exact, AttentionWithLse(t.q, t.k, t.v, std::nullopt));
  EXPECT_LE((out_exact - exact).abs().max().item<double>(), 2e-6);
}

}  // namespace
}  // namespace ditserve::runtime
