#include "models/hunyuan_video/hunyuan_video_denoiser.h"

#include "engine/runtime/torchscript.h"

namespace ditserve::models::hunyuan_video {
namespace {

// Inputs: [txt, mod, cos, sin, mask].
enum { kTxt, kMod, kCos, kSin, kMask };

runtime::TensorList Pair(const c10::IValue& v) {
  const auto& e = v.toTupleRef().elements();
  return {e[0].toTensor(), e[1].toTensor()};
}

}  // namespace

at::Tensor Unpatchify(const at::Tensor& tokens, const HunyuanVideoDenoiser::Grid& g) {
  const int64_t b = tokens.size(0), p = g.patch;
  return tokens.reshape({b, g.frames, g.rows, g.cols, g.channels, p, p})
      .permute({0, 4, 1, 2, 5, 3, 6})
      .reshape({b, g.channels, g.frames, g.rows * p, g.cols * p});
}

HunyuanVideoDenoiser::HunyuanVideoDenoiser(torch::jit::Module& transformer, int64_t num_layers,
                                           int64_t num_single_layers, runtime::SequenceLayout layout, Grid grid,
                                           at::Tensor cos, at::Tensor sin, std::vector<Branch> branches)
    : transformer_(transformer),
      num_layers_(num_layers),
      num_single_layers_(num_single_layers),
      layout_(std::move(layout)),
      grid_(grid),
      cos_(std::move(cos)),
      sin_(std::move(sin)),
      branches_(std::move(branches)) {}

runtime::TensorList HunyuanVideoDenoiser::Inputs(int branch, int64_t step) {
  const Branch& b = branches_.at(branch);
  return {b.txt.select(0, step), b.cond.select(0, step), cos_, sin_, b.mask};
}

std::string HunyuanVideoDenoiser::GraphKey() const {
  // The shard splits are baked into a graph; the token counts key them (the latents' shape is in the signature).
  return layout_.sharded() ? "hunyuan_video/txt" + std::to_string(layout_.length(kText)) : "hunyuan_video";
}

runtime::TensorList HunyuanVideoDenoiser::Begin(const at::Tensor& latents, const runtime::TensorList& in,
                                                int64_t end, at::Tensor* img_in) {
  const at::Tensor tokens = transformer_.get_method("embed_image")({latents}).toTensor();
  const at::Tensor img = layout_.Shard(kVideo, tokens, 1);
  if (img_in != nullptr) *img_in = img;
  return Pair(transformer_.get_method("double_blocks")(
      {int64_t{0}, end, img, in[kTxt], in[kMod], in[kCos], in[kSin], in[kMask]}));
}

at::Tensor HunyuanVideoDenoiser::Forward(const at::Tensor& latents, const runtime::TensorList& in) {
  return Head(Singles(Begin(latents, in, num_layers_, nullptr), in), in);
}

runtime::Denoiser::FirstBlock HunyuanVideoDenoiser::First(const at::Tensor& latents, const runtime::TensorList& in) {
  at::Tensor img_in;
  FirstBlock f;
  f.streams = Begin(latents, in, 1, &img_in);
  f.residual = f.streams[0] - img_in;
  return f;
}

runtime::TensorList HunyuanVideoDenoiser::Rest(const runtime::TensorList& streams, const runtime::TensorList& in) {
  runtime::TensorList s = streams;  // after double block 0
  if (num_layers_ > 1) {
    s = Pair(transformer_.get_method("double_blocks")(
        {int64_t{1}, num_layers_, s[0], s[1], in[kMod], in[kCos], in[kSin], in[kMask]}));
  }
  return Singles(s, in);
}

runtime::TensorList HunyuanVideoDenoiser::Singles(const runtime::TensorList& s, const runtime::TensorList& in) {
  return Pair(transformer_.get_method("single_blocks")(
      {int64_t{0}, num_single_layers_, s[0], s[1], in[kMod], in[kCos], in[kSin], in[kMask]}));
}

at::Tensor HunyuanVideoDenoiser::Head(const runtime::TensorList& streams, const runtime::TensorList& in) {
  const at::Tensor out = transformer_.get_method("head")({streams[0], in[kMod]}).toTensor();
  return Unpatchify(layout_.Gather(kVideo, out, 1), grid_);
}

at::Tensor HunyuanVideoDenoiser::ResidualValidTokens() const {
  return layout_.sharded() ? layout_.ValidTokens(kVideo, cos_.device()) : at::Tensor();
}

}  // namespace ditserve::models::hunyuan_video
