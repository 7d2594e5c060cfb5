// Test helper: decodes an MP4 in memory with libavformat/libavcodec (the way a player would) into RGB24
// frames plus what the container and stream say about themselves.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ditserve/status.h"

namespace ditserve::testing {

struct DecodedVideo {
  int64_t width = 0, height = 0;
  int64_t frames = 0;                      // frames decoded
  int fps_num = 0, fps_den = 1;            // the stream's avg_frame_rate
  int time_base_num = 0, time_base_den = 1;
  double duration_s = 0;                   // the stream's duration
  std::string codec, pix_fmt;              // "h264", "yuv420p"
  std::string color_space, color_range;    // FFmpeg's names, e.g. "bt709", "tv"
  std::map<std::string, std::string> metadata;  // container tags
  std::vector<std::string> top_level_boxes;     // ISO BMFF box types in file order ("ftyp", "moov", ...)
  std::vector<uint8_t> rgb;                // frames x height x width x 3, converted with the stream's tags
};

StatusOr<DecodedVideo> DecodeMp4(const std::vector<uint8_t>& mp4);

// Peak signal-to-noise ratio of two equally sized 8-bit buffers (dB; 99 when identical).
double Psnr(const uint8_t* a, const uint8_t* b, size_t n);

}  // namespace ditserve::testing
