#include "models/mochi/mochi_denoiser.h"

#include "engine/runtime/tensor_pair.h"
#include "engine/runtime/torchscript.h"

namespace ditserve::models::mochi {
namespace {

// Inputs: [txt, mod, cos, sin, mask].
enum { kTxt, kMod, kCos, kSin, kMask };

}  // namespace

MochiDenoiser::MochiDenoiser(torch::jit::Module& transformer, int64_t num_layers, int64_t patch, LatentGrid grid,
                             runtime::SequenceLayout layout, at::Tensor cos, at::Tensor sin,
                             std::vector<Branch> branches)
    : transformer_(transformer),
      num_layers_(num_layers),
      patch_(patch),
      grid_(grid),
      layout_(std::move(layout)),
      cos_(std::move(cos)),
      sin_(std::move(sin)),
      branches_(std::move(branches)) {}

runtime::TensorList MochiDenoiser::Inputs(int branch, int64_t step) {
  const Branch& b = branches_.at(branch);
  return {b.txt, b.cond.select(0, step), cos_, sin_, b.mask};
}

std::string MochiDenoiser::GraphKey() const {
  return layout_.sharded() ? "mochi/txt" + std::to_string(layout_.length(kText)) : "mochi";
}

at::Tensor MochiDenoiser::Embed(const at::Tensor& latents) const {
  // The patch embedding is per token: embed all, keep this rank's shard.
  return layout_.Shard(kVideo, transformer_.get_method("embed_video")({latents}).toTensor(), 1);
}

runtime::TensorList MochiDenoiser::Blocks(int64_t start, int64_t end, const runtime::TensorList& s,
                                          const runtime::TensorList& in) {
  return runtime::TensorPair(transformer_.get_method("blocks")(
      {start, end, s[0], s[1], in[kMod], in[kCos], in[kSin], runtime::Optional(in[kMask])}));
}

at::Tensor MochiDenoiser::Forward(const at::Tensor& latents, const runtime::TensorList& in) {
  return Head(Blocks(0, num_layers_, {Embed(latents), in[kTxt]}, in), in);
}

runtime::Denoiser::FirstBlock MochiDenoiser::First(const at::Tensor& latents, const runtime::TensorList& in) {
  const at::Tensor x = Embed(latents);
  FirstBlock f;
  f.streams = Blocks(0, 1, {x, in[kTxt]}, in);
  f.residual = f.streams[0] - x;
  return f;
}

runtime::TensorList MochiDenoiser::Rest(const runtime::TensorList& streams, const runtime::TensorList& in) {
  return Blocks(1, num_layers_, streams, in);
}

at::Tensor MochiDenoiser::Head(const runtime::TensorList& streams, const runtime::TensorList& in) {
  const at::Tensor out = transformer_.get_method("head")({streams[0], in[kMod]}).toTensor();
  return Unpatchify(layout_.Gather(kVideo, out, 1), grid_, patch_);
}

at::Tensor MochiDenoiser::ResidualValidTokens() const {
  return layout_.sharded() ? layout_.ValidTokens(kVideo, cos_.device()) : at::Tensor();
}

}  // namespace ditserve::models::mochi
