// The fused DiT ops on a GPU (ditserve::rms_rope, layer_norm_rope, rms_rope_per_head, rms_scale, layer_norm_modulate,
// linear_gelu, gated_residual, swiglu;
// engine/runtime/fused_ops.h):
// the kernels against an fp64 reference by normalised error and against the unfused bf16 composition
// (the CPU path / the eager graph) they replace, on fresh random inputs with strided (column-slice) and
// two-part inputs; the raw kernel writes into a NaN-poisoned buffer whose guard must stay untouched.
// Perf (--gtest_also_run_disabled_tests --gtest_filter='*Perf*'): at FLUX's shape, the kernel vs the
// composition it replaces, and GB/s against a device copy of the same bytes in the same run.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <gtest/gtest.h>

#include <cstdio>

#include "engine/runtime/fused_ops.h"
#include "modulate.cuh"
#include "rms_rope.cuh"
#include "swiglu.cuh"
#include "support/cuda_timing.h"
#include "support/kernel_check.h"

namespace ditserve::runtime {
namespace {

using ditserve::testing::NormError;
using ditserve::testing::Seed;
at::TensorOptions Bf16() { return ditserve::testing::CudaBf16(); }

struct RopeInputs {
  at::Tensor x1, w1, x2, w2, cos, sin;  // x1/x2: column slices of wider projections
};

RopeInputs MakeRope(int64_t b, int64_t s1, int64_t s2, int64_t h, int64_t d) {
  at::manual_seed(Seed());
  RopeInputs r;
  const int64_t hd = h * d;
  r.x1 = (at::randn({b, s1, 3 * hd}, Bf16()) * 3).narrow(2, hd, hd);  // like k of a fused qkv
  r.x2 = (at::randn({b, s2, 3 * hd + 8}, Bf16()) * 3).narrow(2, 8, hd);
  r.w1 = at::rand({d}, Bf16()) + 0.5;
  r.w2 = at::rand({d}, Bf16()) + 0.5;
  const at::Tensor angles = at::rand({s1 + s2, d}, at::TensorOptions().dtype(at::kDouble)) * 6.3;
  r.cos = angles.cos().to(at::kFloat).cuda();
  r.sin = angles.sin().to(at::kFloat).cuda();
  return r;
}

// The math in fp64, no intermediate rounding.
at::Tensor RopeFp64(const RopeInputs& r, bool two) {
  auto norm = [](const at::Tensor& x, const at::Tensor& w) {
    const int64_t d = w.numel();
    at::Tensor xh = x.to(at::kDouble).cpu().reshape({x.size(0), x.size(1), x.size(2) / d, d}).transpose(1, 2);
    return xh * at::rsqrt(xh.pow(2).mean(-1, true) + 1e-6) * w.to(at::kDouble).cpu();
  };
  at::Tensor y = norm(r.x1, r.w1);
  if (two) y = at::cat({y, norm(r.x2, r.w2)}, 2);
  const int64_t s = y.size(2);
  const at::Tensor c = r.cos.to(at::kDouble).cpu().narrow(0, 0, s), sn = r.sin.to(at::kDouble).cpu().narrow(0, 0, s);
  at::Tensor even = y.slice(-1, 0, y.size(-1), 2), odd = y.slice(-1, 1, y.size(-1), 2);
  at::Tensor out = at::empty_like(y);
  out.slice(-1, 0, y.size(-1), 2).copy_(even * c.slice(-1, 0, c.size(-1), 2) - odd * sn.slice(-1, 0, c.size(-1), 2));
  out.slice(-1, 1, y.size(-1), 2).copy_(odd * c.slice(-1, 1, c.size(-1), 2) + even * sn.slice(-1, 1, c.size(-1), 2));
  return out;
}

TEST(FusedOpsGpu, RmsRopeKernelMatchesReferences) {
  struct Shape { int64_t b, s1, s2, h, d; };
  for (const Shape sh : {Shape{1, 512, 4096, 24, 128}, Shape{2, 7, 45, 3, 128}, Shape{1, 0, 33, 5, 64},
                         Shape{2, 13, 0, 2, 256}, Shape{1, 1, 1, 1, 128}}) {
    SCOPED_TRACE(::testing::Message() << "B=" << sh.b << " S1=" << sh.s1 << " S2=" << sh.s2 << " H=" << sh.h
                                      << " D=" << sh.d);
    RopeInputs r = MakeRope(sh.b, sh.s1, sh.s2, sh.h, sh.d);
    const int64_t s = sh.s1 + sh.s2, n = sh.b * sh.h * s * sh.d, guard = 128;
    // Raw kernel into a poisoned buffer (0xFFFF = NaN) with a guard after the output.
    at::Tensor buf = at::full({n + guard}, -1, at::TensorOptions().dtype(at::kShort).device(at::kCUDA));
    kernels::RmsRopePart p1{r.x1.data_ptr(), r.w1.data_ptr(), sh.s1, r.x1.stride(0), r.x1.stride(1)};
    kernels::RmsRopePart p2{r.x2.data_ptr(), r.w2.data_ptr(), sh.s2, r.x2.stride(0), r.x2.stride(1)};
    ASSERT_EQ(kernels::RmsRopeBf16(p1, p2, r.cos.data_ptr<float>(), r.sin.data_ptr<float>(), buf.data_ptr(), sh.b,
                                   sh.h, sh.d, 1e-6f, at::cuda::getCurrentCUDAStream()),
              cudaSuccess);
    at::cuda::getCurrentCUDAStream().synchronize();
    EXPECT_TRUE(buf.narrow(0, n, guard).eq(-1).all().item<bool>()) << "kernel wrote past its output";
    // stored [B, S, H, D]; compared as [B, H, S, D]
    const at::Tensor got = buf.narrow(0, 0, n).view(at::kBFloat16).view({sh.b, s, sh.h, sh.d}).transpose(1, 2);
    EXPECT_FALSE(got.isnan().any().item<bool>()) << "output not fully written";

    const double err = NormError(got, RopeFp64(r, true));
    // vs the unfused bf16 composition (same roundings): only the fp32 mean's summation order differs
    const at::Tensor composed = RmsRopeReference(r.x1, r.w1, r.cos, r.sin, 1e-6, r.x2, r.w2);
    const double err_composed = NormError(got, composed);
    std::printf("rms_rope B=%lld S=%lld+%lld H=%lld D=%lld: vs fp64 %.2e, vs unfused bf16 %.2e\n", (long long)sh.b,
                (long long)sh.s1, (long long)sh.s2, (long long)sh.h, (long long)sh.d, err, err_composed);
    EXPECT_LT(err, 6e-3);  // three bf16 roundings: ~3e-3 expected
    EXPECT_LT(err_composed, 1e-3);
    // The op picks the kernel for this layout and returns the same values.
    const at::Tensor op = RmsRope(r.x1, r.w1, r.cos, r.sin, 1e-6, r.x2, r.w2);
    EXPECT_EQ(op.strides(), got.strides());
    EXPECT_TRUE(at::equal(op, got));
  }
}

TEST(FusedOpsGpu, RmsRopeOnePartAndFallbacks) {
  RopeInputs r = MakeRope(1, 300, 0, 4, 128);
  const at::Tensor cos = r.cos.narrow(0, 0, 300), sin = r.sin.narrow(0, 0, 300);
  const at::Tensor got = RmsRope(r.x1, r.w1, cos, sin, 1e-6, std::nullopt, std::nullopt);
  EXPECT_LT(NormError(got, RopeFp64(r, false)), 6e-3);
  // fp32 on CUDA has no kernel: the composed path, equal to itself computed on the CPU
  const at::Tensor x32 = r.x1.to(at::kFloat), w32 = r.w1.to(at::kFloat);
  const at::Tensor gpu32 = RmsRope(x32, w32, cos, sin, 1e-6, std::nullopt, std::nullopt);
  const at::Tensor cpu32 = RmsRope(x32.cpu(), w32.cpu(), cos.cpu(), sin.cpu(), 1e-6, std::nullopt, std::nullopt);
  EXPECT_LT(NormError(gpu32, cpu32), 1e-6);
  EXPECT_THROW(RmsRope(r.x1, r.w1, cos.narrow(0, 0, 299), sin.narrow(0, 0, 299), 1e-6, std::nullopt, std::nullopt),
               c10::Error);
}

TEST(FusedOpsGpu, LayerNormModulateMatchesReferences) {
  at::manual_seed(Seed());
  for (int64_t b : {1, 2}) {
    const int64_t s = 777, d = 3072;
    const at::Tensor x = at::randn({b, s, d}, Bf16()) * 2 + 3;
    const at::Tensor m = at::randn({b, 6 * d}, Bf16()) * 0.5;  // adaLN projection; chunks are strided for B=2
    const at::Tensor shift = m.narrow(1, 0, d), scale = m.narrow(1, d, d);
    const at::Tensor got = LayerNormModulate(x, scale, shift, 1e-6);
    const at::Tensor xd = x.to(at::kDouble).cpu();
    const at::Tensor want = at::layer_norm(xd, {d}, {}, {}, 1e-6) * (1 + scale.to(at::kDouble).cpu().unsqueeze(1)) +
                            shift.to(at::kDouble).cpu().unsqueeze(1);
    const double err = NormError(got, want);
    const double err_composed = NormError(got, LayerNormModulateReference(x, scale, shift, 1e-6));
    std::printf("layer_norm_modulate B=%lld: vs fp64 %.2e, vs unfused bf16 %.2e\n", (long long)b, err, err_composed);
    EXPECT_LT(err, 4e-3);
    EXPECT_LT(err_composed, 6e-3);  // the composition rounds three times
  }
}

TEST(FusedOpsGpu, LinearGeluMatchesReferences) {
  at::manual_seed(Seed());
  const at::Tensor x = at::randn({1, 333, 3072}, Bf16()), w = at::randn({12288, 3072}, Bf16()) * 0.02,
                   b = at::randn({12288}, Bf16()) * 0.1;
  const at::Tensor got = LinearGelu(x, w, b);
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{1, 333, 12288}));
  const at::Tensor want = at::gelu(at::linear(x.to(at::kDouble), w.to(at::kDouble), b.to(at::kDouble)), "tanh");
  const double err = NormError(got, want), err_composed = NormError(got, LinearGeluReference(x, w, b));
  std::printf("linear_gelu (333x3072 -> 12288): vs fp64 %.2e, vs unfused bf16 %.2e\n", err, err_composed);
  EXPECT_LT(err, 6e-3);
  EXPECT_LT(err_composed, 6e-3);
}

// CogVideoX's q/k: per-head LayerNorm (affine) of a fused-QKV column slice, RoPE on the rows after the text.
TEST(FusedOpsGpu, LayerNormRopeKernelMatchesReferences) {
  struct Shape { int64_t b, s, rope_from, h, d; bool rope; };
  for (const Shape sh : {Shape{2, 226 + 1755, 226, 48, 64, true}, Shape{1, 37, 0, 3, 128, true},
                         Shape{2, 9, 9, 2, 64, true}, Shape{2, 31, 5, 4, 64, false}, Shape{1, 3, 1, 1, 256, true}}) {
    SCOPED_TRACE(::testing::Message() << "B=" << sh.b << " S=" << sh.s << " rope_from=" << sh.rope_from
                                      << " H=" << sh.h << " D=" << sh.d << " rope=" << sh.rope);
    at::manual_seed(Seed());
    const int64_t hd = sh.h * sh.d, n = sh.b * sh.s * hd, guard = 128;
    const at::Tensor x = (at::randn({sh.b, sh.s, 3 * hd}, Bf16()) * 3 + 1).narrow(2, hd, hd);  // k of a fused qkv
    const at::Tensor w = at::rand({sh.d}, Bf16()) + 0.5, bias = at::randn({sh.d}, Bf16()) * 0.1;
    const at::Tensor angles = at::rand({sh.s - sh.rope_from, sh.d}, at::TensorOptions().dtype(at::kDouble)) * 6.3;
    std::optional<at::Tensor> cos, sin;
    if (sh.rope) {
      cos = angles.cos().to(at::kFloat).cuda();
      sin = angles.sin().to(at::kFloat).cuda();
    }
    at::Tensor buf = at::full({n + guard}, -1, at::TensorOptions().dtype(at::kShort).device(at::kCUDA));
    const kernels::RmsRopePart part{x.data_ptr(), w.data_ptr(), sh.s, x.stride(0), x.stride(1)};
    ASSERT_EQ(kernels::LayerNormRopeBf16(part, bias.data_ptr(), sh.rope ? sh.rope_from : sh.s,
                                         sh.rope ? cos->data_ptr<float>() : nullptr,
                                         sh.rope ? sin->data_ptr<float>() : nullptr, buf.data_ptr(), sh.b, sh.h, sh.d,
                                         1e-6f, at::cuda::getCurrentCUDAStream()),
              cudaSuccess);
    at::cuda::getCurrentCUDAStream().synchronize();
    EXPECT_TRUE(buf.narrow(0, n, guard).eq(-1).all().item<bool>()) << "kernel wrote past its output";
    const at::Tensor got = buf.narrow(0, 0, n).view(at::kBFloat16).view({sh.b, sh.s, sh.h, sh.d}).transpose(1, 2);
    EXPECT_FALSE(got.isnan().any().item<bool>()) << "output not fully written";
    // fp64: the same math without intermediate rounding
    const at::Tensor xd = x.to(at::kDouble).cpu().reshape({sh.b, sh.s, sh.h, sh.d});
    const at::Tensor mean = xd.mean(-1, true), var = (xd - mean).pow(2).mean(-1, true);
    at::Tensor want = (xd - mean) * at::rsqrt(var + 1e-6) * w.to(at::kDouble).cpu() + bias.to(at::kDouble).cpu();
    if (sh.rope) {
      at::Tensor r = want.narrow(1, sh.rope_from, sh.s - sh.rope_from).clone();
      const at::Tensor c = angles.cos().unsqueeze(0).unsqueeze(2), sn = angles.sin().unsqueeze(0).unsqueeze(2);
      const at::Tensor even = r.slice(-1, 0, sh.d, 2), odd = r.slice(-1, 1, sh.d, 2);
      at::Tensor out = at::empty_like(r);
      out.slice(-1, 0, sh.d, 2).copy_(even * c.slice(-1, 0, sh.d, 2) - odd * sn.slice(-1, 0, sh.d, 2));
      out.slice(-1, 1, sh.d, 2).copy_(odd * c.slice(-1, 1, sh.d, 2) + even * sn.slice(-1, 1, sh.d, 2));
      want.narrow(1, sh.rope_from, sh.s - sh.rope_from).copy_(out);
    }
    want = want.transpose(1, 2);
    const at::Tensor composed = LayerNormRopeReference(x, w, bias, cos, sin, 1e-6, sh.rope_from);
    const double err = NormError(got, want), err_composed = NormError(composed, want);
    std::printf("layer_norm_rope B=%lld S=%lld H=%lld D=%lld: vs fp64 %.2e, unfused bf16 vs fp64 %.2e\n",
                (long long)sh.b, (long long)sh.s, (long long)sh.h, (long long)sh.d, err, err_composed);
    EXPECT_LT(err, 6e-3);
    EXPECT_LT(err, err_composed * 1.25 + 1e-4) << "the kernel should be as close to fp64 as the composition";
    EXPECT_TRUE(at::equal(LayerNormRope(x, w, bias, cos, sin, 1e-6, sh.rope_from), got));  // the op takes the kernel
  }
  // fp32 on CUDA: the composition
  const at::Tensor x = at::randn({1, 10, 128}, Bf16()).to(at::kFloat), w = at::ones({64}, x.options());
  const at::Tensor cos = at::ones({6, 64}, x.options()), sin = at::zeros({6, 64}, x.options());
  EXPECT_LT(NormError(LayerNormRope(x, w, at::zeros_like(w), cos, sin, 1e-6, 4),
                      LayerNormRopeReference(x.cpu(), w.cpu(), at::zeros({64}), cos.cpu(), sin.cpu(), 1e-6, 4)),
            1e-6);
  EXPECT_THROW(LayerNormRope(x, w, at::zeros_like(w), cos, sin, 1e-6, 5), c10::Error);  // cos rows != S - rope_from
}

// Mochi's q/k: RMSNorm rounded once, per-head RoPE angles on the video rows, text rows unrotated.
TEST(FusedOpsGpu, RmsRopePerHeadMatchesReferences) {
  struct Shape { int64_t b, s1, s2, h, d; };
  for (const Shape sh : {Shape{2, 2000, 256, 24, 128}, Shape{1, 7, 0, 3, 64}, Shape{2, 5, 3, 2, 256}}) {
    SCOPED_TRACE(::testing::Message() << "B=" << sh.b << " S1=" << sh.s1 << " S2=" << sh.s2 << " H=" << sh.h
                                      << " D=" << sh.d);
    at::manual_seed(Seed());
    const int64_t hd = sh.h * sh.d;
    const at::Tensor x = (at::randn({sh.b, sh.s1, 3 * hd}, Bf16()) * 3).narrow(2, 0, hd);
    const at::Tensor x2 = (at::randn({sh.b, sh.s2, 3 * hd}, Bf16()) * 3).narrow(2, hd, hd);
    const at::Tensor w = at::rand({sh.d}, Bf16()) + 0.5, w2 = at::rand({sh.d}, Bf16()) + 0.5;
    const at::Tensor angles = at::rand({sh.s1, sh.h, sh.d / 2}, at::TensorOptions().dtype(at::kDouble)) * 6.3;
    const at::Tensor cos = angles.cos().to(at::kFloat).cuda(), sin = angles.sin().to(at::kFloat).cuda();
    const at::Tensor got = RmsRopePerHead(x, w, cos, sin, 1e-5, x2, w2);
    // fp64
    auto norm = [](const at::Tensor& t, const at::Tensor& wt) {
      const at::Tensor th = t.to(at::kDouble).cpu().reshape({t.size(0), t.size(1), t.size(2) / wt.size(0), wt.size(0)});
      return th * at::rsqrt(th.pow(2).mean(-1, true) + 1e-5) * wt.to(at::kDouble).cpu();
    };
    const at::Tensor n = norm(x, w);
    const at::Tensor e = n.slice(-1, 0, sh.d, 2), o = n.slice(-1, 1, sh.d, 2);
    const at::Tensor c = angles.cos(), sn = angles.sin();
    const at::Tensor want =
        at::cat({at::stack({e * c - o * sn, e * sn + o * c}, -1).flatten(-2), norm(x2, w2)}, 1).transpose(1, 2);
    const at::Tensor composed = RmsRopePerHeadReference(x, w, cos, sin, 1e-5, x2, w2);
    const double err = NormError(got, want), err_composed = NormError(composed, want);
    const int64_t differ = got.ne(composed).sum().item<int64_t>();
    std::printf("rms_rope_per_head B=%lld S=%lld+%lld H=%lld D=%lld: vs fp64 %.2e, unfused bf16 vs fp64 %.2e, "
                "elements != unfused %lld of %lld\n", (long long)sh.b, (long long)sh.s1, (long long)sh.s2,
                (long long)sh.h, (long long)sh.d, err, err_composed, (long long)differ, (long long)got.numel());
    EXPECT_EQ(got.sizes(), composed.sizes());
    EXPECT_EQ(got.stride(2), sh.h * sh.d) << "stored [B, S, H, D]";
    EXPECT_LT(err, 6e-3);
    EXPECT_LT(err, err_composed * 1.25 + 1e-4);
    EXPECT_LE(differ, got.numel() / 1000) << "the kernel should round like the unfused graph";
  }
  const at::Tensor x = at::randn({1, 4, 128}, Bf16()), w = at::ones({64}, Bf16());
  EXPECT_THROW(RmsRopePerHead(x, w, at::ones({4, 2, 16}, x.options().dtype(at::kFloat)),
                              at::zeros({4, 2, 16}, x.options().dtype(at::kFloat)), 1e-5, {}, {}),
               c10::Error);  // table [S, H, D/2] must be [4, 2, 32]
}

// Mochi's modulated RMSNorm and gated residual: rms(x) * scale (fp32) -> bf16 [+ residual -> bf16].
TEST(FusedOpsGpu, RmsScaleMatchesReferences) {
  struct Shape { int64_t b, s, d; };
  for (const Shape sh : {Shape{2, 4000, 3072}, Shape{2, 256, 1536}, Shape{1, 3, 8}, Shape{3, 5, 16384}}) {
    SCOPED_TRACE(::testing::Message() << "B=" << sh.b << " S=" << sh.s << " D=" << sh.d);
    at::manual_seed(Seed());
    const at::Tensor x = at::randn({sh.b, sh.s, sh.d}, Bf16()) * 2, res = at::randn({sh.b, sh.s, sh.d}, Bf16());
    const at::Tensor mod = at::randn({sh.b, 3 * sh.d}, Bf16());
    const at::Tensor scale = (1 + mod.narrow(1, sh.d, sh.d).to(at::kFloat));  // a strided chunk: the op copies it
    for (const bool with_res : {false, true}) {
      const std::optional<at::Tensor> r = with_res ? std::optional<at::Tensor>(res) : std::nullopt;
      const at::Tensor got = RmsScale(x, scale, 1e-6, r);
      const at::Tensor composed = RmsScaleReference(x, scale, 1e-6, r);
      const at::Tensor xd = x.to(at::kDouble).cpu();
      at::Tensor want = xd * at::rsqrt(xd.pow(2).mean(-1, true) + 1e-6) * scale.to(at::kDouble).cpu().unsqueeze(1);
      if (with_res) want = want + res.to(at::kDouble).cpu();
      const double err = NormError(got, want);
      const int64_t differ = got.ne(composed).sum().item<int64_t>();
      std::printf("rms_scale B=%lld S=%lld D=%lld residual=%d: vs fp64 %.2e, elements != unfused %lld of %lld\n",
                  (long long)sh.b, (long long)sh.s, (long long)sh.d, int(with_res), err, (long long)differ,
                  (long long)got.numel());
      EXPECT_LT(err, 6e-3);
      EXPECT_LE(differ, got.numel() / 1000 + 1) << "the kernel should round like the unfused graph";
    }
  }
  const at::Tensor x = at::randn({2, 3, 64}, Bf16());
  EXPECT_THROW(RmsScale(x, at::ones({2, 32}, x.options().dtype(at::kFloat)), 1e-6, {}), c10::Error);
}

TEST(FusedOpsGpu, GatedResidualKernelMatchesReferences) {
  struct Shape { int64_t b, s, d; };
  for (const Shape sh : {Shape{1, 4608, 3072}, Shape{2, 7, 64}, Shape{1, 1, 8}, Shape{3, 5, 1032}}) {
    SCOPED_TRACE(::testing::Message() << "B=" << sh.b << " S=" << sh.s << " D=" << sh.d);
    at::manual_seed(Seed());
    const at::Tensor x = at::randn({sh.b, sh.s, sh.d}, Bf16()) * 4, y = at::randn({sh.b, sh.s, sh.d}, Bf16());
    const at::Tensor gate = at::randn({sh.b, sh.d}, Bf16());
    const int64_t n = x.numel(), guard = 64;
    at::Tensor buf = at::full({n + guard}, -1, at::TensorOptions().dtype(at::kShort).device(at::kCUDA));  // NaN
    ASSERT_EQ(kernels::GatedResidualBf16(x.data_ptr(), gate.data_ptr(), y.data_ptr(), sh.s * sh.d, buf.data_ptr(), sh.b,
                                         sh.s, sh.d, at::cuda::getCurrentCUDAStream()),
              cudaSuccess);
    at::cuda::getCurrentCUDAStream().synchronize();
    EXPECT_TRUE(buf.narrow(0, n, guard).eq(-1).all().item<bool>()) << "kernel wrote past its output";
    const at::Tensor got = buf.narrow(0, 0, n).view(at::kBFloat16).view(x.sizes());
    EXPECT_FALSE(got.isnan().any().item<bool>()) << "output not fully written";
    const at::Tensor want =
        x.to(at::kDouble).cpu() + gate.to(at::kDouble).cpu().unsqueeze(1) * y.to(at::kDouble).cpu();
    const at::Tensor composed = GatedResidualReference(x, gate, y);  // addcmul: the same single rounding
    const double err = NormError(got, want);
    const int64_t differ = got.ne(composed).sum().item<int64_t>();
    std::printf("gated_residual B=%lld S=%lld D=%lld: vs fp64 %.2e, elements != addcmul %lld of %lld\n",
                (long long)sh.b, (long long)sh.s, (long long)sh.d, err, (long long)differ, (long long)n);
    EXPECT_LT(err, 4e-3);  // one bf16 rounding: ~2e-3
    EXPECT_LE(differ, n / 100000) << "the kernel should round like addcmul (one fma in fp32)";
    EXPECT_TRUE(at::equal(GatedResidual(x, gate, y), got));  // the op takes the kernel
    // in place (out == x) is allowed by the contract
    const at::Tensor xi = x.clone();
    ASSERT_EQ(kernels::GatedResidualBf16(xi.data_ptr(), gate.data_ptr(), y.data_ptr(), sh.s * sh.d, xi.data_ptr(),
                                         sh.b, sh.s, sh.d, at::cuda::getCurrentCUDAStream()),
              cudaSuccess);
    EXPECT_TRUE(at::equal(xi, got));
  }
}

TEST(FusedOpsGpu, GatedResidualLayoutsAndFallbacks) {
  at::manual_seed(Seed());
  const int64_t b = 2, s = 333, d = 3072;
  const at::Tensor x = at::randn({b, s, d}, Bf16()), y = at::randn({b, s, d}, Bf16());
  const at::Tensor m = at::randn({b, 6 * d}, Bf16());
  const at::Tensor gate = m.narrow(1, 2 * d, d);  // an adaLN chunk: strided for B=2 (the op copies it)
  const at::Tensor want = GatedResidualReference(x, gate, y);
  EXPECT_LT(NormError(GatedResidual(x, gate, y), want), 1e-4);
  // y = the video rows of a joint [text, video] output (batch stride (t + s) * d): the kernel, same result
  const at::Tensor joint = at::cat({at::randn({b, 226, d}, Bf16()), y}, 1);
  EXPECT_TRUE(at::equal(GatedResidual(x, gate, joint.narrow(1, 226, s)), GatedResidual(x, gate, y)));
  // a transposed y has no kernel: the composition
  const at::Tensor yt = y.transpose(0, 1).contiguous().transpose(0, 1);
  EXPECT_TRUE(at::equal(GatedResidual(x, gate, yt), want));
  // fp32 on CUDA: the composition, equal to the CPU's
  const at::Tensor g32 = GatedResidual(x.to(at::kFloat), gate.to(at::kFloat), y.to(at::kFloat));
  EXPECT_LT(NormError(g32, GatedResidual(x.to(at::kFloat).cpu(), gate.to(at::kFloat).cpu(), y.to(at::kFloat).cpu())),
            1e-7);
  EXPECT_THROW(GatedResidual(x, gate.narrow(1, 0, d - 8), y), c10::Error);
  EXPECT_THROW(GatedResidual(x, gate, y.narrow(1, 0, s - 1)), c10::Error);
}

TEST(FusedOpsGpu, SwiGluKernelEqualsEagerComposition) {
  for (const int64_t inner : {int64_t{8}, int64_t{1032}, int64_t{8192}}) {
    SCOPED_TRACE(::testing::Message() << "inner=" << inner);
    at::manual_seed(Seed());
    const int64_t rows = 333;
    // [h, g] spanning silu's saturated and linear ranges, plus zeros and huge magnitudes in g (silu -> -0, g)
    at::Tensor x = (at::randn({rows, 2 * inner}, Bf16()) * 6).to(at::kBFloat16);
    x.select(0, 3).narrow(0, inner, inner).fill_(0);
    x.select(0, 5).narrow(0, inner, 8).fill_(-3e38);
    x.select(0, 6).narrow(0, inner, 8).fill_(3e38);
    const int64_t n = rows * inner, guard = 64;
    at::Tensor buf = at::full({n + guard}, -1, at::TensorOptions().dtype(at::kShort).device(at::kCUDA));  // NaN
    ASSERT_EQ(kernels::SwiGluBf16(x.data_ptr(), 2 * inner, buf.data_ptr(), rows, inner,
                                  at::cuda::getCurrentCUDAStream()),
              cudaSuccess);
    at::cuda::getCurrentCUDAStream().synchronize();
    EXPECT_TRUE(buf.narrow(0, n, guard).eq(-1).all().item<bool>()) << "kernel wrote past its output";
    const at::Tensor got = buf.narrow(0, 0, n).view(at::kBFloat16).view({rows, inner});
    const at::Tensor want = SwiGluReference(x);  // h * F.silu(g) in bf16: the eager graph
    EXPECT_TRUE(at::equal(got.view(at::kShort), want.view(at::kShort))) << "not bit-equal to h * silu(g)";
    EXPECT_TRUE(at::equal(SwiGlu(x.view({1, rows, 2 * inner})), got.view({1, rows, inner})));  // the op's kernel
  }
  at::manual_seed(Seed());
  const at::Tensor x = at::randn({2, 7, 64}, Bf16());
  EXPECT_TRUE(at::equal(SwiGlu(x.narrow(2, 0, 48)), SwiGluReference(x.narrow(2, 0, 48))));  // strided: composition
  EXPECT_TRUE(at::equal(SwiGlu(x.narrow(2, 0, 24)), SwiGluReference(x.narrow(2, 0, 24))));  // N % 8 != 0
  EXPECT_EQ(kernels::SwiGluBf16(x.data_ptr(), 64, x.data_ptr(), 14, 12, at::cuda::getCurrentCUDAStream()),
            cudaErrorInvalidValue);
  EXPECT_THROW(SwiGlu(x.narrow(2, 0, 63)), c10::Error);
  EXPECT_EQ(SwiGlu(at::empty({3, 0}, Bf16())).sizes(), at::IntArrayRef({3, 0}));  // no rows to divide by
}

TEST(FusedOpsGpu, DISABLED_Perf) {
  // FLUX.1 at 1024x1024: 512 text + 4096 image tokens, 24 heads x 128, q of fused qkv projections
  RopeInputs r = MakeRope(1, 512, 4096, 24, 128);
  const double bytes = 2.0 * 2 * (512 + 4096) * 24 * 128;  // bf16 read + write
  const double fused = ditserve::testing::CudaTimeMs([&] { RmsRope(r.x1, r.w1, r.cos, r.sin, 1e-6, r.x2, r.w2); }, 50);
  const double composed =
      ditserve::testing::CudaTimeMs([&] { RmsRopeReference(r.x1, r.w1, r.cos, r.sin, 1e-6, r.x2, r.w2); }, 50);
  at::Tensor src = at::empty({int64_t(bytes / 4)}, Bf16()), dst = at::empty_like(src);
  const double copy = ditserve::testing::CudaTimeMs([&] { dst.copy_(src); }, 50);
  std::printf("rms_rope (512+4096 tokens, 24x128): fused %.1f us (%.0f GB/s), unfused composition %.1f us, "
              "copy of the same bytes %.1f us (%.0f GB/s)\n", fused * 1e3, bytes / fused / 1e6, composed * 1e3,
              copy * 1e3, bytes / copy / 1e6);
  const at::Tensor x = at::randn({1, 4608, 3072}, Bf16()), m = at::randn({1, 6 * 3072}, Bf16());
  const double ln = ditserve::testing::CudaTimeMs(
      [&] { LayerNormModulate(x, m.narrow(1, 3072, 3072), m.narrow(1, 0, 3072), 1e-6); }, 50);
  const double ln_composed = ditserve::testing::CudaTimeMs(
      [&] { LayerNormModulateReference(x, m.narrow(1, 3072, 3072), m.narrow(1, 0, 3072), 1e-6); }, 50);
  std::printf("layer_norm_modulate (4608x3072): fused %.1f us, unfused composition %.1f us\n", ln * 1e3,
              ln_composed * 1e3);
  const at::Tensor w = at::randn({12288, 3072}, Bf16()) * 0.02, b = at::randn({12288}, Bf16());
  const double lg = ditserve::testing::CudaTimeMs([&] { LinearGelu(x, w, b); }, 20);
  const double lg_composed = ditserve::testing::CudaTimeMs([&] { LinearGeluReference(x, w, b); }, 20);
  std::printf("linear_gelu (4608x3072 -> 12288): epilogue %.1f us (%.0f TFLOP/s), GEMM + gelu %.1f us\n", lg * 1e3,
              2.0 * 4608 * 3072 * 12288 / lg / 1e9, lg_composed * 1e3);
  // gated residual at FLUX's single-block shape: reads x and y, writes out
  const at::Tensor ry = at::randn({1, 4608, 3072}, Bf16()), gate = m.narrow(1, 2 * 3072, 3072);
  const double gr_bytes = 3.0 * 2 * 4608 * 3072;
  at::Tensor gsrc = at::empty({int64_t(gr_bytes / 4)}, Bf16()), gdst = at::empty_like(gsrc);
  const double gr = ditserve::testing::CudaTimeMs([&] { GatedResidual(x, gate, ry); }, 50);
  const double gr_composed = ditserve::testing::CudaTimeMs([&] { GatedResidualReference(x, gate, ry); }, 50);
  const double gr_copy = ditserve::testing::CudaTimeMs([&] { gdst.copy_(gsrc); }, 50);
  std::printf("gated_residual (4608x3072): kernel %.1f us (%.0f GB/s), addcmul %.1f us (%.0f GB/s), copy of the "
              "same bytes %.1f us (%.0f GB/s)\n", gr * 1e3, gr_bytes / gr / 1e6, gr_composed * 1e3,
              gr_bytes / gr_composed / 1e6, gr_copy * 1e3, gr_bytes / gr_copy / 1e6);
  // SwiGLU at Mochi's feed-forward (44,776 tokens x 2 x 8192, one CFG branch)
  const at::Tensor sx = at::randn({1, 44776, 2 * 8192}, Bf16());
  const double sw_bytes = 3.0 * 2 * 44776 * 8192;
  const double sw = ditserve::testing::CudaTimeMs([&] { SwiGlu(sx); }, 20);
  const double sw_composed = ditserve::testing::CudaTimeMs([&] { SwiGluReference(sx); }, 20);
  std::printf("swiglu (44776 x 2 x 8192): kernel %.1f us (%.0f GB/s), h * silu(g) %.1f us\n", sw * 1e3,
              sw_bytes / sw / 1e6, sw_composed * 1e3);
  EXPECT_LT(fused, composed);
  EXPECT_LT(sw, sw_composed);
}

}  // namespace
}  // namespace ditserve::runtime
