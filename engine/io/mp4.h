// MP4 encoding (H.264 through FFmpeg's libx264 wrapper, yuv420p, moov before mdat), entirely in memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ditserve/status.h"

namespace ditserve::io {

struct Mp4Options {
  int fps = 24;  // frames per second (1..120)
  // x264 constant rate factor (0..51, lower = better; 0 = lossless). 18 is x264's "visually lossless"
  // point: generated video is the product, so a few MB more per clip beat visible banding on smooth
  // gradients (skies, skin), which is where generated frames lose first; each +6 roughly halves the size.
  int crf = 18;
  // Container tags, written as MP4 "mdta" metadata so any key survives (title, comment, seed, prompt, ...);
  // keys must be non-empty, keys and values free of NUL bytes, values UTF-8.
  std::vector<std::pair<std::string, std::string>> metadata;
};

// Allowed sizes. Both sides even (yuv420p halves chroma in both directions); 8192 is above any model's
// output and keeps one frame's RGB below 2^28 bytes.
inline constexpr int64_t kMp4MinSide = 16;
inline constexpr int64_t kMp4MaxSide = 8192;
inline constexpr int64_t kMp4MaxFrames = 100000;

// Encodes `frames` frames of height x width x 3 uint8 (RGB24, rows top to bottom, contiguous, frame
// after frame) as an MP4: H.264 High profile (libx264, preset "medium", CRF options.crf), yuv420p,
// BT.709 limited range (the conversion and the stream's colour tags agree, so players decode the colours
// as encoded), constant frame rate options.fps, moov box before mdat (`+faststart`: playback starts
// before the whole file has arrived). Errors (never crashes): InvalidArgument naming the problem for zero
// frames, odd or out-of-range sizes, a buffer size that does not match, bad fps/crf/metadata; Internal
// for FFmpeg failures (no libx264 in this FFmpeg, encoder or muxer errors).
StatusOr<std::vector<uint8_t>> EncodeMp4(const uint8_t* rgb, size_t rgb_bytes, int64_t frames, int64_t width,
                                         int64_t height, const Mp4Options& options);

}  // namespace ditserve::io
