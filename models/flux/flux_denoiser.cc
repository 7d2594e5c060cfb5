#include "models/flux/flux_denoiser.h"

#include "engine/runtime/tensor_pair.h"
#include "engine/runtime/torchscript.h"

namespace ditserve::models::flux {
namespace {

// Inputs: [txt, mod, cos, sin, mask].
enum { kTxt, kMod, kCos, kSin, kMask };

}  // namespace

FluxDenoiser::FluxDenoiser(torch::jit::Module& transformer, int64_t num_layers, int64_t num_single_layers,
                           runtime::SequenceLayout layout, at::Tensor cos, at::Tensor sin, at::Tensor mask,
                           std::vector<Branch> branches)
    : transformer_(transformer),
      num_layers_(num_layers),
      num_single_layers_(num_single_layers),
      layout_(std::move(layout)),
      cos_(std::move(cos)),
      sin_(std::move(sin)),
      mask_(std::move(mask)),
      branches_(std::move(branches)) {}

runtime::TensorList FluxDenoiser::Inputs(int branch, int64_t step) {
  const Branch& b = branches_.at(branch);
  return {b.txt, b.cond.select(0, step), cos_, sin_, mask_};
}

std::string FluxDenoiser::GraphKey() const {
  // The shard splits are baked into a graph: the full text length keys it (the image length is the
  // latents' shape, part of the signature).
  return layout_.sharded() ? "flux/txt" + std::to_string(layout_.length(kText)) : "flux";
}

runtime::TensorList FluxDenoiser::Begin(const at::Tensor& latents, const runtime::TensorList& in, int64_t end,
                                        at::Tensor* img_in) {
  const at::Tensor img = transformer_.get_method("embed_image")({layout_.Shard(kImage, latents, 1)}).toTensor();
  if (img_in != nullptr) *img_in = img;
  return runtime::TensorPair(transformer_.get_method("double_blocks")(
      {int64_t{0}, end, img, in[kTxt], in[kMod], in[kCos], in[kSin], runtime::Optional(in[kMask])}));
}

at::Tensor FluxDenoiser::Forward(const at::Tensor& latents, const runtime::TensorList& in) {
  return Head(Singles(Begin(latents, in, num_layers_, nullptr), in), in);
}

runtime::Denoiser::FirstBlock FluxDenoiser::First(const at::Tensor& latents, const runtime::TensorList& in) {
  at::Tensor img_in;
  FirstBlock f;
  f.streams = Begin(latents, in, 1, &img_in);
  f.residual = f.streams[0] - img_in;
  return f;
}

runtime::TensorList FluxDenoiser::Rest(const runtime::TensorList& streams, const runtime::TensorList& in) {
  runtime::TensorList s = streams;  // after double block 0
  if (num_layers_ > 1) {
    s = runtime::TensorPair(transformer_.get_method("double_blocks")(
        {int64_t{1}, num_layers_, s[0], s[1], in[kMod], in[kCos], in[kSin], runtime::Optional(in[kMask])}));
  }
  return Singles(s, in);
}

runtime::TensorList FluxDenoiser::Singles(const runtime::TensorList& s, const runtime::TensorList& in) {
  return runtime::TensorPair(transformer_.get_method("single_blocks")(
      {int64_t{0}, num_single_layers_, s[0], s[1], in[kMod], in[kCos], in[kSin], runtime::Optional(in[kMask])}));
}

at::Tensor FluxDenoiser::Head(const runtime::TensorList& streams, const runtime::TensorList& in) {
  const at::Tensor out = transformer_.get_method("head")({streams[0], in[kMod]}).toTensor();
  return layout_.Gather(kImage, out, 1);
}

at::Tensor FluxDenoiser::ResidualValidTokens() const {
  return layout_.sharded() ? layout_.ValidTokens(kImage, cos_.device()) : at::Tensor();
}

}  // namespace ditserve::models::flux
