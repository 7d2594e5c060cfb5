// GPU tests of kernels/ (labelled "gpu": needs a CUDA device and FAILS without one; CPU CI runs -LE gpu).
// Correctness: fresh random inputs per check, outputs poisoned with NaN (0xFF bytes) plus an untouched
// guard region after them, compared with a CPU fp64 reference by ||out - ref|| / ||ref||.
// Perf (--gtest_also_run_disabled_tests --gtest_filter='*Perf*'): GB/s (bytes read + written / median of 50
// cudaEvent-timed runs) next to a device-to-device cudaMemcpy ceiling measured in the same run.
#include "modulate.cuh"

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

namespace k = ditserve::kernels;

#define CUDA_OK(expr)                                                                              \
  do {                                                                                             \
    const cudaError_t e_ = (expr);                                                                 \
    ASSERT_EQ(e_, cudaSuccess) << #expr << " -> " << cudaGetErrorName(e_) << ": " << cudaGetErrorString(e_); \
  } while (0)

uint16_t ToBf16(float f) {  // round to nearest even
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (std::isnan(f)) return 0x7fc0;
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
float FromBf16(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

enum class Op { kModulateBf16, kModulateF32, kLayerNormModulateBf16 };
const char* OpName(Op op) {
  switch (op) {
    case Op::kModulateBf16: return "ModulateBf16";
    case Op::kModulateF32: return "ModulateF32";
    case Op::kLayerNormModulateBf16: return "LayerNormModulateBf16";
  }
  return "?";
}

struct Shape {
  int64_t B, S, D;
};
std::string ShapeStr(const Shape& s) {
  return "B=" + std::to_string(s.B) + " S=" + std::to_string(s.S) + " D=" + std::to_string(s.D);
}

constexpr size_t kGuardBytes = 256;  // after y; must stay 0xFF
constexpr float kEps = 1e-6f;

struct DeviceBuffer {
  void* p = nullptr;
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (p) EXPECT_EQ(cudaFree(p), cudaSuccess);
  }
};

uint64_t NextSeed() {  // fresh inputs for every check, reproducible from the printed seed
  static uint64_t seed = [] {
    const char* env = std::getenv("DITSERVE_KERNEL_SEED");
    return env ? std::strtoull(env, nullptr, 10) : uint64_t(std::random_device{}()) << 32 | std::random_device{}();
  }();
  return seed++;
}

// One op on one shape: host inputs (already rounded to the device type), device buffers, reference check.
class Case {
 public:
  Case(Op op, Shape shape, cudaStream_t stream) : op_(op), sh_(shape), stream_(stream) {}

  // Random inputs (new seed), uploaded; y poisoned. Call with ASSERT_NO_FATAL_FAILURE.
  void Setup(bool in_place = false) {
    seed_ = NextSeed();
    in_place_ = in_place;
    std::mt19937_64 rng(seed_);
    const bool ln = op_ == Op::kLayerNormModulateBf16;
    std::normal_distribution<double> xd(ln ? 3.0 : 0.0, ln ? 2.0 : 1.0), sd(0.0, 0.5), hd(0.0, 1.0);
    const size_t n = size_t(sh_.B * sh_.S * sh_.D), m = size_t(sh_.B * sh_.D);
    x_.resize(n), scale_.resize(m), shift_.resize(m);
    for (auto& v : x_) v = xd(rng);
    for (auto& v : scale_) v = sd(rng);
    for (auto& v : shift_) v = hd(rng);
    ASSERT_NO_FATAL_FAILURE(Upload(x_, dx_, in_place ? kGuardBytes : 0));
    ASSERT_NO_FATAL_FAILURE(Upload(scale_, dscale_, 0));
    ASSERT_NO_FATAL_FAILURE(Upload(shift_, dshift_, 0));
    if (!in_place) {
      CUDA_OK(cudaMalloc(&dy_.p, YBytes() + kGuardBytes));
      ASSERT_NO_FATAL_FAILURE(Poison());
    }
    CUDA_OK(cudaDeviceSynchronize());
  }

  void Poison() {  // 0xFF bytes: NaN in bf16 and fp32
    ASSERT_FALSE(in_place_);
    CUDA_OK(cudaMemsetAsync(dy_.p, 0xFF, YBytes() + kGuardBytes, stream_));
    CUDA_OK(cudaStreamSynchronize(stream_));
  }

  cudaError_t Launch() const {
    void* y = in_place_ ? dx_.p : dy_.p;
    switch (op_) {
      case Op::kModulateBf16:
        return k::ModulateBf16(dx_.p, dscale_.p, dshift_.p, y, sh_.B, sh_.S, sh_.D, stream_);
      case Op::kModulateF32:
        return k::ModulateF32(static_cast<const float*>(dx_.p), static_cast<const float*>(dscale_.p),
                              static_cast<const float*>(dshift_.p), static_cast<float*>(y), sh_.B, sh_.S, sh_.D,
                              stream_);
      case Op::kLayerNormModulateBf16:
        return k::LayerNormModulateBf16(dx_.p, dscale_.p, dshift_.p, y, sh_.B, sh_.S, sh_.D, kEps, stream_);
    }
    return cudaErrorInvalidValue;
  }

  // Downloads y (+ guard) and compares with the fp64 reference.
  void Verify() const {
    CUDA_OK(cudaStreamSynchronize(stream_));
    CUDA_OK(cudaGetLastError());
    const size_t n = x_.size();
    std::vector<unsigned char> raw(YBytes() + kGuardBytes);
    CUDA_OK(cudaMemcpy(raw.data(), in_place_ ? dx_.p : dy_.p, raw.size(), cudaMemcpyDeviceToHost));
    const auto where = std::string(OpName(op_)) + " " + ShapeStr(sh_) + (in_place_ ? " in-place" : "") +
                       " seed=" + std::to_string(seed_) + " (DITSERVE_KERNEL_SEED)";
    if (!in_place_) {
      size_t touched = 0;
      for (size_t i = YBytes(); i < raw.size(); ++i) touched += raw[i] != 0xFF;
      EXPECT_EQ(touched, 0u) << where << ": wrote past the end of y";
    }
    const int64_t D = sh_.D, S = sh_.S;
    double num = 0, den = 0, max_abs = 0;
    size_t non_finite = 0;
    std::vector<double> row(size_t(D), 0.0);
    for (size_t r = 0; r < n / size_t(D); ++r) {
      const size_t b = r / size_t(S);
      const double* xr = &x_[r * size_t(D)];
      double mean = 0, rstd = 1;
      if (op_ == Op::kLayerNormModulateBf16) {
        for (int64_t c = 0; c < D; ++c) mean += xr[c];
        mean /= double(D);
        double var = 0;
        for (int64_t c = 0; c < D; ++c) var += (xr[c] - mean) * (xr[c] - mean);
        rstd = 1.0 / std::sqrt(var / double(D) + double(kEps));
      }
      for (int64_t c = 0; c < D; ++c) {
        const double xn = op_ == Op::kLayerNormModulateBf16 ? (xr[c] - mean) * rstd : xr[c];
        const double ref = xn * (1.0 + scale_[b * size_t(D) + size_t(c)]) + shift_[b * size_t(D) + size_t(c)];
        const size_t i = r * size_t(D) + size_t(c);
        double out;
        if (op_ == Op::kModulateF32) {
          float f;
          std::memcpy(&f, &raw[i * 4], 4);
          out = f;
        } else {
          uint16_t h;
          std::memcpy(&h, &raw[i * 2], 2);
          out = FromBf16(h);
        }
        if (!std::isfinite(out)) {
          ++non_finite;
          continue;
        }
        num += (out - ref) * (out - ref);
        den += ref * ref;
        max_abs = std::max(max_abs, std::abs(out - ref));
      }
    }
    EXPECT_EQ(non_finite, 0u) << where << ": non-finite (unwritten/poisoned) outputs";
    const double err = std::sqrt(num) / std::sqrt(den);
    const double bound = op_ == Op::kModulateF32 ? 1e-5 : 1e-2;
    EXPECT_LT(err, bound) << where << ": normalised error " << err << " (max abs " << max_abs << ")";
    if (std::getenv("DITSERVE_KERNEL_VERBOSE"))
      std::printf("%-22s %-24s err=%.3e max_abs=%.3e\n", OpName(op_), ShapeStr(sh_).c_str(), err, max_abs);
  }

  size_t ElemBytes() const { return op_ == Op::kModulateF32 ? 4 : 2; }
  size_t YBytes() const { return x_.size() * ElemBytes(); }
  // Bytes the op must move: x read, y written, scale + shift read once.
  double TrafficBytes() const { return double(2 * x_.size() + 2 * scale_.size()) * double(ElemBytes()); }
  void* x() const { return dx_.p; }
  void* y() const { return dy_.p; }

 private:
  // Rounds `v` in place to the device type (the reference then sees exactly the device's inputs).
  void Upload(std::vector<double>& v, DeviceBuffer& buf, size_t extra) {
    std::vector<unsigned char> raw(v.size() * ElemBytes() + extra, 0xFF);
    for (size_t i = 0; i < v.size(); ++i) {
      if (op_ == Op::kModulateF32) {
        const float f = float(v[i]);
        v[i] = f;
        std::memcpy(&raw[i * 4], &f, 4);
      } else {
        const uint16_t h = ToBf16(float(v[i]));
        v[i] = FromBf16(h);
        std::memcpy(&raw[i * 2], &h, 2);
      }
    }
    CUDA_OK(cudaMalloc(&buf.p, raw.size()));
    CUDA_OK(cudaMemcpy(buf.p, raw.data(), raw.size(), cudaMemcpyHostToDevice));
  }

  Op op_;
  Shape sh_;
  cudaStream_t stream_;
  uint64_t seed_ = 0;
  bool in_place_ = false;
  std::vector<double> x_, scale_, shift_;
  DeviceBuffer dx_, dscale_, dshift_, dy_;
};

class KernelsGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    ASSERT_EQ(e, cudaSuccess) << "kernels_gpu_test needs a CUDA device (label gpu; CPU-only runs use ctest -LE gpu): "
                              << "cudaGetDeviceCount -> " << cudaGetErrorName(e) << ": " << cudaGetErrorString(e);
    ASSERT_GT(n, 0) << "kernels_gpu_test needs a CUDA device and found none (label gpu; CPU-only: ctest -LE gpu)";
    CUDA_OK(cudaSetDevice(0));
    // A blocking stream: orders after the (legacy default stream) cudaMemcpy uploads.
    CUDA_OK(cudaStreamCreate(&stream_));
  }
  void TearDown() override {
    if (stream_) EXPECT_EQ(cudaStreamDestroy(stream_), cudaSuccess);
  }

  void Check(Op op, Shape shape, bool in_place = false) {
    SCOPED_TRACE(std::string(OpName(op)) + " " + ShapeStr(shape));
    Case c(op, shape, stream_);
    ASSERT_NO_FATAL_FAILURE(c.Setup(in_place));
    CUDA_OK(c.Launch());
    ASSERT_NO_FATAL_FAILURE(c.Verify());
  }

  cudaStream_t stream_ = nullptr;
};

// FLUX (1, 4608, 3072) first; odd S; D with more than one column block (4104 = 8 * 513); tiny rows.
const Shape kShapes[] = {{1, 4608, 3072}, {2, 333, 1024}, {3, 1, 8},     {1, 7, 24},
                         {4, 129, 4104},  {2, 5, 8192},   {1, 9, 2056},  {2, 3, 16384}};

TEST_F(KernelsGpu, ModulateBf16MatchesReference) {
  for (const Shape& s : kShapes) ASSERT_NO_FATAL_FAILURE(Check(Op::kModulateBf16, s));
  ASSERT_NO_FATAL_FAILURE(Check(Op::kModulateBf16, {2, 333, 1024}, /*in_place=*/true));
}

TEST_F(KernelsGpu, ModulateF32MatchesReference) {
  for (const Shape& s : kShapes) ASSERT_NO_FATAL_FAILURE(Check(Op::kModulateF32, s));
  ASSERT_NO_FATAL_FAILURE(Check(Op::kModulateF32, {1, 4, 12}));  // fp32 needs only D % 4
}

TEST_F(KernelsGpu, LayerNormModulateBf16MatchesReference) {
  for (const Shape& s : kShapes) ASSERT_NO_FATAL_FAILURE(Check(Op::kLayerNormModulateBf16, s));
  ASSERT_NO_FATAL_FAILURE(Check(Op::kLayerNormModulateBf16, {2, 333, 1024}, /*in_place=*/true));
}

TEST_F(KernelsGpu, RejectsBadArgumentsWithoutLaunching) {
  Case c(Op::kModulateBf16, {1, 4, 64}, stream_);
  ASSERT_NO_FATAL_FAILURE(c.Setup());
  const auto* x = static_cast<const char*>(c.x());
  auto* y = static_cast<char*>(c.y());
  EXPECT_EQ(k::ModulateBf16(x, x, x, y, 1, 4, 12, stream_), cudaErrorInvalidValue);      // D % 8
  EXPECT_EQ(k::ModulateBf16(x + 2, x, x, y, 1, 4, 56, stream_), cudaErrorInvalidValue);  // misaligned
  EXPECT_EQ(k::ModulateBf16(x, x, x, y, -1, 4, 64, stream_), cudaErrorInvalidValue);
  EXPECT_EQ(k::ModulateF32(nullptr, nullptr, nullptr, nullptr, 1, 1, 6, stream_), cudaErrorInvalidValue);
  EXPECT_EQ(k::LayerNormModulateBf16(x, x, x, y, 1, 1, 16392, kEps, stream_), cudaErrorInvalidValue);  // D cap
  EXPECT_EQ(k::LayerNormModulateBf16(x, x, x, y, 1, 4, 64, -1.0f, stream_), cudaErrorInvalidValue);
  EXPECT_EQ(k::ModulateBf16(x, x, x, y, 0, 4, 64, stream_), cudaSuccess);  // empty: no launch
  EXPECT_EQ(k::LayerNormModulateBf16(x, x, x, y, 1, 0, 64, kEps, stream_), cudaSuccess);
  // Nothing ran: y (poisoned by Setup) is still all 0xFF.
  CUDA_OK(cudaStreamSynchronize(stream_));
  std::vector<unsigned char> raw(c.YBytes());
  CUDA_OK(cudaMemcpy(raw.data(), c.y(), raw.size(), cudaMemcpyDeviceToHost));
  EXPECT_TRUE(std::all_of(raw.begin(), raw.end(), [](unsigned char b) { return b == 0xFF; }));
  CUDA_OK(cudaGetLastError());
}

// Perf mode is a benchmark, not a check: disabled by default (gtest lists it as disabled), run with
// --gtest_also_run_disabled_tests --gtest_filter='*Perf*'.
TEST_F(KernelsGpu, DISABLED_Perf) {
  constexpr int kWarmup = 5, kRuns = 50;
  const Shape flux{1, 4608, 3072};
  cudaEvent_t start = nullptr, stop = nullptr;
  CUDA_OK(cudaEventCreate(&start));
  CUDA_OK(cudaEventCreate(&stop));
  // Median over kRuns of one enqueue (fn returns cudaError_t), each timed by its own event pair.
  auto median_ms = [&](auto&& fn, float* out) {
    for (int i = 0; i < kWarmup; ++i) CUDA_OK(fn());
    std::vector<float> ms(kRuns);
    for (int i = 0; i < kRuns; ++i) {
      CUDA_OK(cudaEventRecord(start, stream_));
      CUDA_OK(fn());
      CUDA_OK(cudaEventRecord(stop, stream_));
      CUDA_OK(cudaEventSynchronize(stop));
      CUDA_OK(cudaEventElapsedTime(&ms[i], start, stop));
    }
    std::nth_element(ms.begin(), ms.begin() + kRuns / 2, ms.end());
    *out = ms[kRuns / 2];
  };
  cudaDeviceProp prop{};
  CUDA_OK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s; shape %s; median of %d runs\n", prop.name, ShapeStr(flux).c_str(), kRuns);
  for (Op op : {Op::kModulateBf16, Op::kLayerNormModulateBf16, Op::kModulateF32}) {
    Case c(op, flux, stream_);
    ASSERT_NO_FATAL_FAILURE(c.Setup());
    float op_ms = 0, copy_ms = 0;
    ASSERT_NO_FATAL_FAILURE(median_ms([&] { return c.Launch(); }, &op_ms));
    // Ceiling: D2D copy of x into y (reads and writes x's bytes), same sizes, same stream.
    ASSERT_NO_FATAL_FAILURE(median_ms(
        [&] { return cudaMemcpyAsync(c.y(), c.x(), c.YBytes(), cudaMemcpyDeviceToDevice, stream_); }, &copy_ms));
    const double op_gbs = c.TrafficBytes() / (op_ms * 1e-3) / 1e9;
    const double copy_gbs = 2.0 * double(c.YBytes()) / (copy_ms * 1e-3) / 1e9;
    std::printf("%-22s %8.1f us %8.1f GB/s | memcpy D2D %8.1f us %8.1f GB/s | %5.1f%% of ceiling\n", OpName(op),
                op_ms * 1e3, op_gbs, copy_ms * 1e3, copy_gbs, 100.0 * op_gbs / copy_gbs);
    // The timed launches must still be correct.
    ASSERT_NO_FATAL_FAILURE(c.Poison());
    CUDA_OK(c.Launch());
    ASSERT_NO_FATAL_FAILURE(c.Verify());
  }
  CUDA_OK(cudaEventDestroy(start));
  CUDA_OK(cudaEventDestroy(stop));
}

}  // namespace
