// torch.ops.ditserve.{halo_conv2d, halo_conv3d, group_norm, spatial_attention, gather_rows}: schemas and
// CPU/CUDA kernels.
#include "engine/runtime/spatial_ops.h"

#include <vector>

#include <ATen/ATen.h>
#include <torch/library.h>

#include "engine/runtime/cp/communicator.h"

namespace ditserve::runtime {

at::Tensor ExchangeHalo(const SpatialSplit& split, const at::Tensor& x, int64_t dim, int64_t halo, Border border) {
  dim = at::maybe_wrap_dim(dim, x.dim());
  if (halo == 0) return x;
  Communicator& comm = *split.comm;
  const int n = comm.size(), me = comm.rank();
  const int next = (me + 1) % n, prev = (me + n - 1) % n;
  const int64_t local = x.size(dim);
  TORCH_CHECK(halo <= local && halo <= split.Extent(prev, local) && halo <= split.Extent(next, local),
              "spatial split: a halo of ", halo, " rows needs at least that many rows on every rank; this rank has ",
              local);
  at::Tensor top = x.narrow(dim, 0, halo).contiguous();
  at::Tensor bottom = x.narrow(dim, local - halo, halo).contiguous();
  at::Tensor above = at::empty_like(top), below = at::empty_like(bottom);
  // My bottom rows are the next rank's upper halo and my top rows the previous rank's lower halo. The
  // ring wraps so that every rank both sends and receives in each SendRecv; the wrapped rows (the last
  // rank's bottom at rank 0, rank 0's top at the last rank) are replaced by the image border's rows.
  auto works = comm.SendRecv(bottom, next, above, prev, /*tag=*/0);
  auto up = comm.SendRecv(top, prev, below, next, /*tag=*/1);
  works.insert(works.end(), up.begin(), up.end());
  WaitAll(works);
  auto fill_border = [&](at::Tensor& rows, int64_t edge) {
    if (border == Border::kZeros) {
      rows.zero_();
    } else {
      rows.copy_(x.narrow(dim, edge, 1).expand_as(rows));
    }
  };
  if (me == 0) fill_border(above, 0);
  if (me == n - 1) fill_border(below, local - 1);
  return at::cat({above, x, below}, dim);
}

at::Tensor HaloConv2d(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                      c10::IntArrayRef padding) {
  TORCH_CHECK(x.dim() == 4 && weight.dim() == 4 && padding.size() == 2,
              "ditserve::halo_conv2d: x and weight must be 4-D and padding [rows, cols]; got x ", x.sizes(),
              ", weight ", weight.sizes(), ", padding ", padding);
  const SpatialSplit* split = CurrentSpatialSplit();
  if (split == nullptr) return at::conv2d(x, weight, bias, /*stride=*/1, padding);
  TORCH_CHECK(weight.size(2) == 2 * padding[0] + 1, "ditserve::halo_conv2d: kernel height ", weight.size(2),
              " with row padding ", padding[0], " changes the row count; it cannot be split by rows");
  const at::Tensor ext = ExchangeHalo(*split, x, 2, padding[0]);
  const std::vector<int64_t> cols_only{0, padding[1]};
  return at::conv2d(ext, weight, bias, /*stride=*/1, cols_only);
}

at::Tensor HaloConv3d(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                      c10::IntArrayRef stride, c10::IntArrayRef padding, bool replicate, int64_t time_pad) {
  TORCH_CHECK(x.dim() == 5 && weight.dim() == 5 && stride.size() == 3 && padding.size() == 2 && time_pad >= 0,
              "ditserve::halo_conv3d: x and weight must be 5-D, stride [t, h, w], padding [rows, cols] and "
              "time_pad >= 0; got x ", x.sizes(), ", weight ", weight.sizes(), ", stride ", stride, ", padding ",
              padding, ", time_pad ", time_pad);
  const int64_t pw = padding[1];
  int64_t ph = padding[0];
  at::Tensor ext = x;
  if (const SpatialSplit* split = CurrentSpatialSplit(); split != nullptr) {
    TORCH_CHECK(stride[1] == 1 && weight.size(3) == 2 * ph + 1, "ditserve::halo_conv3d: kernel height ",
                weight.size(3), ", row stride ", stride[1], " and row padding ", ph,
                " change the row count; it cannot be split by rows");
    ext = ExchangeHalo(*split, x, 3, ph, replicate ? Border::kReplicate : Border::kZeros);
    ph = 0;  // the rows are there now
  }
  if (!replicate) {  // zeros: the conv pads H and W itself; the front frames need a copy
    if (time_pad > 0) ext = at::constant_pad_nd(ext, {0, 0, 0, 0, time_pad, 0});
    return at::conv3d(ext, weight, bias, stride, {0, ph, pw});
  }
  if (ph == 0 && pw == 0 && time_pad == 0) return at::conv3d(ext, weight, bias, stride);
  // Every replicate border in one copy: the GPU's replication_pad3d is a slow gather, once per conv is enough.
  return at::conv3d(at::pad(ext, {pw, pw, ph, ph, time_pad, 0}, "replicate"), weight, bias, stride);
}

at::Tensor SplitGroupNorm(const at::Tensor& x, int64_t num_groups, const std::optional<at::Tensor>& weight,
                          const std::optional<at::Tensor>& bias, double eps) {
  const SpatialSplit* split = CurrentSpatialSplit();
  if (split == nullptr) return at::group_norm(x, num_groups, weight, bias, eps);
  TORCH_CHECK(x.dim() >= 3 && num_groups > 0 && x.size(1) % num_groups == 0,
              "ditserve::group_norm: x ", x.sizes(), " cannot be split into ", num_groups, " groups");
  const int64_t b = x.size(0), c = x.size(1);
  at::Tensor xs = x.reshape({b, num_groups, -1});
  if (at::isReducedFloatingType(xs.scalar_type())) xs = xs.to(at::kFloat);  // accumulate in fp32 as torch does
  auto [var, mean] = at::var_mean(xs, {2}, /*correction=*/0, /*keepdim=*/false);  // [B, G]
  const double count = static_cast<double>(xs.size(2));
  at::Tensor stats = at::stack({at::full_like(mean, count), mean, var * count}, -1).to(at::kDouble);
  at::Tensor all = split->comm->AllGatherSync(stats);  // [ranks, B, G, 3]
  const at::Tensor n_r = all.select(-1, 0), mean_r = all.select(-1, 1), m2_r = all.select(-1, 2);
  const at::Tensor n = n_r.sum(0);
  const at::Tensor g_mean = (n_r * mean_r).sum(0) / n;
  const at::Tensor g_m2 = (m2_r + n_r * (mean_r - g_mean).square()).sum(0);
  const at::Tensor rstd = (g_m2 / n + eps).rsqrt();  // [B, G]

  // y = x * scale + shift per (batch, channel), scale = rstd * weight, shift = bias - mean * scale.
  at::Tensor scale = rstd.repeat_interleave(c / num_groups, 1);  // [B, C]
  at::Tensor shift = -g_mean.repeat_interleave(c / num_groups, 1) * scale;
  if (weight.has_value() && weight->defined()) {
    scale = scale * weight->to(at::kDouble);
    shift = shift * weight->to(at::kDouble);
  }
  if (bias.has_value() && bias->defined()) shift = shift + bias->to(at::kDouble);
  std::vector<int64_t> bc(x.dim(), 1);
  bc[0] = b;
  bc[1] = c;
  const at::ScalarType math = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor y = at::addcmul(shift.to(math).view(bc), x, scale.to(math).view(bc));
  return y.to(x.scalar_type());
}

at::Tensor SpatialAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  TORCH_CHECK(q.dim() == 4 && k.sizes() == v.sizes() && k.dim() == 4,
              "ditserve::spatial_attention: q, k, v must be [B, H, S, D] with k and v alike; got q ", q.sizes(),
              ", k ", k.sizes(), ", v ", v.sizes());
  const SpatialSplit* split = CurrentSpatialSplit();
  if (split == nullptr) return at::scaled_dot_product_attention(q, k, v);
  // Keys and values of every rank, in rank order (= row order); one all-gather for both.
  const at::Tensor kv = GatherRows(*split, at::stack({k, v}), 3);  // [2, B, H, S_total, D]
  return at::scaled_dot_product_attention(q, kv.select(0, 0), kv.select(0, 1));
}

at::Tensor GatherRowsOp(const at::Tensor& x, int64_t dim) {
  const SpatialSplit* split = CurrentSpatialSplit();
  if (split == nullptr) return x.clone();
  return GatherRows(*split, x.contiguous(), dim);
}

}  // namespace ditserve::runtime

TORCH_LIBRARY_FRAGMENT(ditserve, m) {
  m.def("halo_conv2d(Tensor x, Tensor weight, Tensor? bias, int[2] padding) -> Tensor");
  m.def("halo_conv3d(Tensor x, Tensor weight, Tensor? bias, int[3] stride, int[2] padding, bool replicate, "
        "int time_pad=0) -> Tensor");
  m.def("group_norm(Tensor x, int num_groups, Tensor? weight, Tensor? bias, float eps) -> Tensor");
  m.def("spatial_attention(Tensor q, Tensor k, Tensor v) -> Tensor");
  m.def("gather_rows(Tensor x, int dim) -> Tensor");
}

TORCH_LIBRARY_IMPL(ditserve, CPU, m) {
  m.impl("halo_conv2d", &ditserve::runtime::HaloConv2d);
  m.impl("halo_conv3d", &ditserve::runtime::HaloConv3d);
  m.impl("group_norm", &ditserve::runtime::SplitGroupNorm);
  m.impl("spatial_attention", &ditserve::runtime::SpatialAttention);
  m.impl("gather_rows", &ditserve::runtime::GatherRowsOp);
}

TORCH_LIBRARY_IMPL(ditserve, CUDA, m) {
  m.impl("halo_conv2d", &ditserve::runtime::HaloConv2d);
  m.impl("halo_conv3d", &ditserve::runtime::HaloConv3d);
  m.impl("group_norm", &ditserve::runtime::SplitGroupNorm);
  m.impl("spatial_attention", &ditserve::runtime::SpatialAttention);
  m.impl("gather_rows", &ditserve::runtime::GatherRowsOp);
}
