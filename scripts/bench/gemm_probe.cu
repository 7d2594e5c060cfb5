// GEMM probe: how fast cuBLASLt runs FLUX.1's GEMM shapes with its first heuristic vs the best of its
// candidate algorithms, and whether the epilogues ditserve wants (bias, GELU+bias, per-feature alpha with an
// in-place residual) are offered. Study tool for scripts/bench; build: nvcc -O2 -arch=sm_90 gemm_probe.cu -lcublasLt
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

// Random-looking bf16 in [-1, 1): GEMM power (and so the clock under the power cap) depends on the data.
__global__ void fill(__nv_bfloat16* p, size_t n, unsigned seed, float scale) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    unsigned h = unsigned(i) * 2654435761u ^ seed;
    h ^= h >> 15; h *= 2246822519u; h ^= h >> 13;
    p[i] = __float2bfloat16(scale * (float(h & 0xffff) / 32768.f - 1.f));
  }
}

#define CK(x) do { auto e_ = (x); if (e_ != 0) { std::printf("error %d at %s:%d\n", int(e_), __FILE__, __LINE__); std::exit(1); } } while (0)

struct Shape { const char* name; int m, n, k; };  // row-major: out[m, n] = x[m, k] · w[n, k]^T

enum Variant { kPlain, kBias, kGeluBias, kGateResidual };
const char* kVariantName[] = {"plain", "bias", "gelu+bias", "gate*()+bias+res"};

int main(int argc, char** argv) {
  int iters = argc > 1 ? std::atoi(argv[1]) : 20;
  std::vector<Shape> shapes = {
      {"img qkv", 4096, 9216, 3072},   {"img out", 4096, 3072, 3072},   {"img mlp1", 4096, 12288, 3072},
      {"img mlp2", 4096, 3072, 12288}, {"txt qkv", 512, 9216, 3072},    {"txt out", 512, 3072, 3072},
      {"txt mlp1", 512, 12288, 3072},  {"txt mlp2", 512, 3072, 12288},  {"single qkv", 4608, 9216, 3072},
      {"single mlp", 4608, 12288, 3072}, {"single out a", 4608, 3072, 3072}, {"single out m", 4608, 3072, 12288},
  };
  // FLUX.1-dev per forward: 19 double blocks (img + txt), 38 single blocks.
  std::vector<int> count = {19, 19, 19, 19, 19, 19, 19, 19, 38, 38, 38, 38};
  cublasLtHandle_t lt;
  CK(cublasLtCreate(&lt));
  size_t ws_size = 64u << 20;
  void* ws;
  CK(cudaMalloc(&ws, ws_size));
  size_t maxe = 4608ull * 12288;
  __nv_bfloat16 *x, *w, *out, *bias, *gate;
  CK(cudaMalloc(&x, maxe * 2)); CK(cudaMalloc(&w, 12288ull * 12288 * 2)); CK(cudaMalloc(&out, maxe * 2 * 2));
  CK(cudaMalloc(&bias, 12288 * 2)); CK(cudaMalloc(&gate, 12288 * 4));
  fill<<<1024, 256>>>(x, maxe, 1, 1.f);
  fill<<<1024, 256>>>(w, 12288ull * 12288, 2, 0.02f);
  CK(cudaGetLastError());
  CK(cudaMemset(out, 0, maxe * 4)); CK(cudaMemset(bias, 0, 12288 * 2)); CK(cudaMemset(gate, 0, 12288 * 4));
  cudaStream_t stream;
  CK(cudaStreamCreate(&stream));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
  double total_first = 0, total_best = 0, total_flop = 0;
  std::printf("%-13s %-17s %5s %9s %9s %6s %9s\n", "shape", "variant", "algos", "first ms", "best ms", "best#",
              "TFLOP/s");
  for (size_t si = 0; si < shapes.size(); ++si) {
    const Shape& s = shapes[si];
    for (int v = kPlain; v <= kGateResidual; ++v) {
      cublasLtMatmulDesc_t op;
      CK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
      cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
      CK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
      CK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
      cublasLtEpilogue_t epi = v == kPlain ? CUBLASLT_EPILOGUE_DEFAULT
                               : v == kGeluBias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
      CK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
      if (v != kPlain) CK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
      float one = 1.f, zero = 0.f, beta = v == kGateResidual ? 1.f : 0.f;
      const void* alpha = &one;
      if (v == kGateResidual) {
        cublasLtPointerMode_t pm = CUBLASLT_POINTER_MODE_ALPHA_DEVICE_VECTOR_BETA_HOST;
        CK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_POINTER_MODE, &pm, sizeof(pm)));
        alpha = gate;
      }
      // Column-major view: D^T[n, m] = W[n, k] (op T on a k×n col-major) · x^T (k×m col-major).
      cublasLtMatrixLayout_t la, lb, lc;
      CK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, s.k, s.n, s.k));
      CK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, s.k, s.m, s.k));
      CK(cublasLtMatrixLayoutCreate(&lc, CUDA_R_16BF, s.n, s.m, s.n));
      cublasLtMatmulPreference_t pref;
      CK(cublasLtMatmulPreferenceCreate(&pref));
      CK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_size,
                                              sizeof(ws_size)));
      cublasLtMatmulHeuristicResult_t res[32];
      int found = 0;
      cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 32, res, &found);
      if (hs != CUBLAS_STATUS_SUCCESS || found == 0) {
        std::printf("%-13s %-17s %5d  (not supported: status %d)\n", s.name, kVariantName[v], 0, int(hs));
      } else {
        float first = -1, best = 1e30f;
        int best_i = -1;
        for (int i = 0; i < found; ++i) {
          if (res[i].state != CUBLAS_STATUS_SUCCESS) continue;
          auto run = [&] {
            return cublasLtMatmul(lt, op, alpha, w, la, x, lb, v == kGateResidual ? (void*)&beta : (void*)&zero,
                                  out, lc, out, lc, &res[i].algo, ws, ws_size, stream);
          };
          if (run() != CUBLAS_STATUS_SUCCESS) continue;
          for (int r = 0; r < 2; ++r) run();
          CK(cudaEventRecord(e0, stream));
          for (int r = 0; r < iters; ++r) run();
          CK(cudaEventRecord(e1, stream));
          CK(cudaEventSynchronize(e1));
          float ms;
          CK(cudaEventElapsedTime(&ms, e0, e1));
          ms /= iters;
          if (first < 0) first = ms;
          if (ms < best) { best = ms; best_i = i; }
        }
        double flop = 2.0 * s.m * s.n * s.k;
        std::printf("%-13s %-17s %5d %9.4f %9.4f %6d %9.1f\n", s.name, kVariantName[v], found, first, best, best_i,
                    flop / best / 1e9);
        if (v == kPlain) {
          total_first += first * count[si];
          total_best += best * count[si];
          total_flop += flop * count[si];
        }
      }
      cublasLtMatmulPreferenceDestroy(pref);
      cublasLtMatrixLayoutDestroy(la); cublasLtMatrixLayoutDestroy(lb); cublasLtMatrixLayoutDestroy(lc);
      cublasLtMatmulDescDestroy(op);
    }
  }
  std::printf("per FLUX forward (plain): first heuristic %.2f ms, best %.2f ms, %.1f TFLOP -> %.1f TFLOP/s best\n",
              total_first, total_best, total_flop / 1e12, total_flop / total_best / 1e9);
  return 0;
}
