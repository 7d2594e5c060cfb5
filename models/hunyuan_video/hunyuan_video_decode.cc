#include "models/hunyuan_video/hunyuan_video_decode.h"

#include <algorithm>
#include <vector>

#include "engine/runtime/spatial_split.h"
#include "engine/runtime/torchscript.h"

namespace ditserve::models::hunyuan_video {
namespace {

// b's first `extent` slices along `dim` fade in from a's last ones (diffusers' blend_t / blend_v / blend_h,
// slice by slice with python-float weights); returns b, changed in place.
at::Tensor Blend(const at::Tensor& a, at::Tensor b, int64_t dim, int64_t extent) {
  extent = std::min({a.size(dim), b.size(dim), extent});
  for (int64_t x = 0; x < extent; ++x) {
    const double w = static_cast<double>(x) / static_cast<double>(extent);
    b.select(dim, x).copy_(a.select(dim, a.size(dim) - extent + x) * (1 - w) + b.select(dim, x) * w);
  }
  return b;
}

class TiledDecoder {
 public:
  TiledDecoder(torch::jit::Module& vae, const HunyuanVideoConfig& c, runtime::Communicator* split)
      : vae_(vae), c_(c), t_(c.tiling), split_(split) {}

  // AutoencoderKLHunyuanVideo._decode
  at::Tensor Decode(const at::Tensor& z) {
    if (t_.framewise && z.size(2) > t_.min_frames / c_.vae_temporal_scale_factor) return Temporal(z);
    if (Spatial(z)) return Tiled(z);
    return Tile(z);
  }

 private:
  bool Spatial(const at::Tensor& z) const {
    return t_.spatial && (z.size(4) > t_.min_width / c_.vae_scale_factor || z.size(3) > t_.min_height / c_.vae_scale_factor);
  }

  // One tile, split by latent rows over the ranks (when there are any): every rank gets the whole tile.
  at::Tensor Tile(const at::Tensor& z) {
    return runtime::RunSplitByRows(split_, z, /*dim=*/3, [this](const at::Tensor& rows) {
      at::Tensor out = runtime::FirstTensor(vae_.forward({rows}), "vae_decoder.pt");
      TORCH_CHECK(out.dim() == 5 && out.size(1) == 3, "vae_decoder.pt returned ", out.sizes(),
                  "; expected [B, 3, F, H, W]");
      return out;
    });
  }

  // _temporal_tiled_decode
  at::Tensor Temporal(const at::Tensor& z) {
    const int64_t frames = z.size(2), tr = c_.vae_temporal_scale_factor;
    const int64_t sample_frames = (frames - 1) * tr + 1;
    const int64_t min_frames = t_.min_frames / tr, stride = t_.stride_frames / tr;
    const int64_t blend = t_.min_frames - t_.stride_frames;
    std::vector<at::Tensor> row;
    for (int64_t i = 0; i < frames; i += stride) {
      const at::Tensor tile = z.slice(2, i, std::min(i + min_frames + 1, frames));
      at::Tensor decoded = Spatial(tile) ? Tiled(tile) : Tile(tile);
      if (i > 0) decoded = decoded.slice(2, 1);
      row.push_back(decoded);
    }
    std::vector<at::Tensor> result;
    for (size_t i = 0; i < row.size(); ++i) {
      if (i > 0) {
        row[i] = Blend(row[i - 1], row[i], 2, blend);
        result.push_back(row[i].slice(2, 0, t_.stride_frames));
      } else {
        result.push_back(row[i].slice(2, 0, t_.stride_frames + 1));
      }
    }
    return at::cat(result, 2).slice(2, 0, sample_frames);
  }

  // tiled_decode
  at::Tensor Tiled(const at::Tensor& z) {
    const int64_t s = c_.vae_scale_factor, h = z.size(3), w = z.size(4);
    const int64_t min_h = t_.min_height / s, min_w = t_.min_width / s;
    const int64_t stride_h = t_.stride_height / s, stride_w = t_.stride_width / s;
    const int64_t blend_h = t_.min_height - t_.stride_height, blend_w = t_.min_width - t_.stride_width;
    std::vector<std::vector<at::Tensor>> rows;
    for (int64_t i = 0; i < h; i += stride_h) {
      std::vector<at::Tensor> row;
      for (int64_t j = 0; j < w; j += stride_w) {
        row.push_back(Tile(z.slice(3, i, std::min(i + min_h, h)).slice(4, j, std::min(j + min_w, w))));
      }
      rows.push_back(std::move(row));
    }
    std::vector<at::Tensor> result_rows;
    for (size_t i = 0; i < rows.size(); ++i) {
      std::vector<at::Tensor> result_row;
      for (size_t j = 0; j < rows[i].size(); ++j) {
        at::Tensor& tile = rows[i][j];
        if (i > 0) tile = Blend(rows[i - 1][j], tile, 3, blend_h);
        if (j > 0) tile = Blend(rows[i][j - 1], tile, 4, blend_w);
        result_row.push_back(tile.slice(3, 0, t_.stride_height).slice(4, 0, t_.stride_width));
      }
      result_rows.push_back(at::cat(result_row, 4));
    }
    return at::cat(result_rows, 3).slice(3, 0, h * s).slice(4, 0, w * s);
  }

  torch::jit::Module& vae_;
  const HunyuanVideoConfig& c_;
  const VaeTiling& t_;
  runtime::Communicator* split_;
};

}  // namespace

at::Tensor DecodeVideo(torch::jit::Module& vae, const HunyuanVideoConfig& config, const at::Tensor& latents,
                       runtime::Communicator* split) {
  const at::Tensor z = latents.to(config.dtype) / config.scaling_factor;
  const at::Tensor video = TiledDecoder(vae, config, split).Decode(z);  // [1, 3, F, H, W]
  return video[0].transpose(0, 1);
}

}  // namespace ditserve::models::hunyuan_video
