#include "models/cogvideox/cogvideox_denoiser.h"

#include "engine/runtime/torchscript.h"

namespace ditserve::models::cogvideox {
namespace {

// Inputs: [text, emb, cos, sin, pos, mask].
enum { kTextIn, kEmb, kCos, kSin, kPos, kMask };

runtime::TensorList Pair(const c10::IValue& v) {
  const auto& e = v.toTupleRef().elements();
  return {e[0].toTensor(), e[1].toTensor()};
}

}  // namespace

CogVideoXDenoiser::CogVideoXDenoiser(torch::jit::Module& transformer, int64_t num_layers,
                                     runtime::SequenceLayout layout, at::Tensor cos, at::Tensor sin, at::Tensor pos,
                                     at::Tensor mask, std::vector<int64_t> grid, std::vector<Branch> branches)
    : transformer_(transformer),
      num_layers_(num_layers),
      layout_(std::move(layout)),
      cos_(std::move(cos)),
      sin_(std::move(sin)),
      pos_(std::move(pos)),
      mask_(std::move(mask)),
      grid_(std::move(grid)),
      branches_(std::move(branches)) {}

runtime::TensorList CogVideoXDenoiser::Inputs(int branch, int64_t step) {
  const Branch& b = branches_.at(branch);
  return {b.text, b.emb.select(0, step), cos_, sin_, pos_, mask_};
}

std::string CogVideoXDenoiser::GraphKey() const {
  return layout_.sharded() ? "cogvideox/txt" + std::to_string(layout_.length(kText)) : "cogvideox";
}

at::Tensor CogVideoXDenoiser::EmbedVideo(const at::Tensor& latents, const runtime::TensorList& in) {
  // Patch embedding of the whole latent video (cheap, token-local), then this rank's tokens.
  const at::Tensor video =
      transformer_.get_method("embed_video")({latents, runtime::Optional(in[kPos])}).toTensor();
  return layout_.Shard(kVideo, video, 1);
}

runtime::TensorList CogVideoXDenoiser::Blocks(int64_t start, int64_t end, const runtime::TensorList& s,
                                              const runtime::TensorList& in) {
  return Pair(transformer_.get_method("blocks")({start, end, s[0], s[1], in[kEmb], runtime::Optional(in[kCos]),
                                                 runtime::Optional(in[kSin]), runtime::Optional(in[kMask])}));
}

at::Tensor CogVideoXDenoiser::Forward(const at::Tensor& latents, const runtime::TensorList& in) {
  return Head(Blocks(0, num_layers_, {EmbedVideo(latents, in), in[kTextIn]}, in), in);
}

runtime::Denoiser::FirstBlock CogVideoXDenoiser::First(const at::Tensor& latents, const runtime::TensorList& in) {
  const at::Tensor video = EmbedVideo(latents, in);
  FirstBlock f;
  f.streams = Blocks(0, 1, {video, in[kTextIn]}, in);
  f.residual = f.streams[0] - video;
  return f;
}

runtime::TensorList CogVideoXDenoiser::Rest(const runtime::TensorList& streams, const runtime::TensorList& in) {
  return num_layers_ > 1 ? Blocks(1, num_layers_, streams, in) : streams;
}

at::Tensor CogVideoXDenoiser::Head(const runtime::TensorList& streams, const runtime::TensorList& in) {
  const at::Tensor out = layout_.Gather(kVideo, transformer_.get_method("head")({streams[0], in[kEmb]}).toTensor(), 1);
  return transformer_.get_method("unpatchify")({out, grid_[0], grid_[1], grid_[2]}).toTensor();
}

at::Tensor CogVideoXDenoiser::ResidualValidTokens() const {
  return layout_.sharded() ? layout_.ValidTokens(kVideo, branches_.at(0).text.device()) : at::Tensor();
}

}  // namespace ditserve::models::cogvideox
