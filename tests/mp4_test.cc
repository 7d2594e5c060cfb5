// engine/io/mp4: encode synthetic moving frames, decode them back with libavformat/libavcodec, and check
// what a player would see (frame count, size, frame rate, moov before mdat, colours, tags, fidelity).
#include "engine/io/mp4.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <gtest/gtest.h>

#include "support/mp4_decode.h"
#include "support/synthetic_video.h"

namespace ditserve {
namespace {

using testing::DecodedVideo;
using testing::DecodeMp4;
using testing::MovingFrames;
using testing::Psnr;

double MeanFramePsnr(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, int64_t frames) {
  const size_t n = a.size() / static_cast<size_t>(frames);
  double sum = 0;
  for (int64_t f = 0; f < frames; ++f) sum += Psnr(a.data() + f * n, b.data() + f * n, n);
  return sum / static_cast<double>(frames);
}

StatusOr<std::vector<uint8_t>> Encode(const std::vector<uint8_t>& rgb, int64_t frames, int64_t w, int64_t h,
                                      const io::Mp4Options& o = {}) {
  return io::EncodeMp4(rgb.data(), rgb.size(), frames, w, h, o);
}

size_t IndexOf(const std::vector<std::string>& v, const std::string& s) {
  return static_cast<size_t>(std::find(v.begin(), v.end(), s) - v.begin());
}

TEST(Mp4, RoundTripAtDefaults) {
  // 130x98: not a multiple of 16, so the encoder pads and the stream must crop back to the exact size.
  const int64_t frames = 30, w = 130, h = 98;
  const std::vector<uint8_t> rgb = MovingFrames(frames, w, h);
  io::Mp4Options o;
  o.metadata = {{"title", "a lighthouse"}, {"comment", "ditserve test"}, {"seed", "42"}, {"prompt", "灯台 at dusk"}};
  auto mp4 = Encode(rgb, frames, w, h, o);
  ASSERT_TRUE(mp4.ok()) << mp4.status().ToString();
  auto v = DecodeMp4(*mp4);
  ASSERT_TRUE(v.ok()) << v.status().ToString();

  EXPECT_EQ(v->codec, "h264");
  EXPECT_EQ(v->pix_fmt, "yuv420p");
  EXPECT_EQ(v->frames, frames);
  EXPECT_EQ(v->width, w);
  EXPECT_EQ(v->height, h);
  EXPECT_EQ(v->fps_num, 24 * v->fps_den) << v->fps_num << "/" << v->fps_den;
  ASSERT_GT(v->time_base_num, 0);
  // The timescale holds whole frame durations.
  EXPECT_EQ(v->time_base_den % (24 * v->time_base_num), 0) << v->time_base_num << "/" << v->time_base_den;
  EXPECT_NEAR(v->duration_s, frames / 24.0, 1e-6);
  // faststart: the movie box comes before the media data.
  const size_t moov = IndexOf(v->top_level_boxes, "moov"), mdat = IndexOf(v->top_level_boxes, "mdat");
  ASSERT_LT(moov, v->top_level_boxes.size());
  ASSERT_LT(mdat, v->top_level_boxes.size());
  EXPECT_LT(moov, mdat);
  EXPECT_EQ(v->color_space, "bt709");
  EXPECT_EQ(v->color_range, "tv");
  for (const auto& [k, val] : o.metadata) EXPECT_EQ(v->metadata[k], val) << k;

  ASSERT_EQ(v->rgb.size(), rgb.size());
  const double psnr = MeanFramePsnr(rgb, v->rgb, frames);
  std::printf("130x98x30 at CRF 18: %zu bytes, mean PSNR %.2f dB\n", mp4->size(), psnr);
  EXPECT_GE(psnr, 38.0);
}

TEST(Mp4, FrameRateAndSingleFrame) {
  for (int fps : {1, 8, 30, 120}) {
    const int64_t frames = fps == 1 ? 1 : 10;
    const std::vector<uint8_t> rgb = MovingFrames(frames, 64, 48);
    io::Mp4Options o;
    o.fps = fps;
    auto mp4 = Encode(rgb, frames, 64, 48, o);
    ASSERT_TRUE(mp4.ok()) << fps << ": " << mp4.status().ToString();
    auto v = DecodeMp4(*mp4);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_EQ(v->frames, frames) << fps;
    EXPECT_EQ(v->fps_num, fps * v->fps_den) << fps << ": " << v->fps_num << "/" << v->fps_den;
    EXPECT_NEAR(v->duration_s, static_cast<double>(frames) / fps, 1e-6) << fps;
  }
}

TEST(Mp4, CrfTradesSizeForFidelity) {
  const int64_t frames = 12, w = 96, h = 64;
  const std::vector<uint8_t> rgb = MovingFrames(frames, w, h);
  io::Mp4Options fine, coarse;
  coarse.crf = 40;
  auto a = Encode(rgb, frames, w, h, fine);
  auto b = Encode(rgb, frames, w, h, coarse);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_LT(b->size(), a->size());
  auto va = DecodeMp4(*a), vb = DecodeMp4(*b);
  ASSERT_TRUE(va.ok() && vb.ok());
  EXPECT_GT(MeanFramePsnr(rgb, va->rgb, frames), MeanFramePsnr(rgb, vb->rgb, frames) + 3);
}

TEST(Mp4, BadArgumentsAreClearErrors) {
  const std::vector<uint8_t> rgb = MovingFrames(2, 64, 48);
  auto expect = [&](StatusOr<std::vector<uint8_t>> r, const std::string& needle) {
    ASSERT_FALSE(r.ok()) << needle;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().ToString();
  };
  expect(io::EncodeMp4(rgb.data(), 0, 0, 64, 48, {}), "zero frames");
  expect(io::EncodeMp4(rgb.data(), rgb.size(), -1, 64, 48, {}), "zero frames");
  expect(io::EncodeMp4(rgb.data(), 2 * 63 * 48 * 3, 2, 63, 48, {}), "odd");
  expect(io::EncodeMp4(rgb.data(), 2 * 64 * 47 * 3, 2, 64, 47, {}), "odd");
  expect(io::EncodeMp4(rgb.data(), 2 * 8 * 8 * 3, 2, 8, 8, {}), "width 8 is out of range");
  expect(io::EncodeMp4(rgb.data(), rgb.size(), 2, 16384, 48, {}), "width 16384 is out of range");
  expect(io::EncodeMp4(rgb.data(), rgb.size(), 2, 64, 100000, {}), "height 100000 is out of range");
  expect(io::EncodeMp4(rgb.data(), rgb.size() - 1, 2, 64, 48, {}), "need " + std::to_string(rgb.size()));
  expect(io::EncodeMp4(rgb.data(), rgb.size(), 3, 64, 48, {}), "has " + std::to_string(rgb.size()) + " bytes");
  expect(io::EncodeMp4(nullptr, rgb.size(), 2, 64, 48, {}), "no pixel buffer");
  io::Mp4Options o;
  o.fps = 0;
  expect(io::EncodeMp4(rgb.data(), rgb.size(), 2, 64, 48, o), "fps 0");
  o.fps = 121;
  expect(io::EncodeMp4(rgb.data(), rgb.size(), 2, 64, 48, o), "fps 121");
  o = {};
  o.crf = 52;
  expect(io::EncodeMp4(rgb.data(), rgb.size(), 2, 64, 48, o), "crf 52");
  o = {};
  o.metadata = {{"", "x"}};
  expect(io::EncodeMp4(rgb.data(), rgb.size(), 2, 64, 48, o), "metadata key");
  o.metadata = {{"comment", std::string("a\0b", 3)}};
  expect(io::EncodeMp4(rgb.data(), rgb.size(), 2, 64, 48, o), "NUL");
}

// Not a benchmark (no assertion on time): what one encode of a typical clip costs on this machine.
TEST(Mp4, EncodeTimeOf49FramesAt720x480) {
  const int64_t frames = 49, w = 720, h = 480;
  const std::vector<uint8_t> rgb = MovingFrames(frames, w, h);
  const auto t0 = std::chrono::steady_clock::now();
  auto mp4 = Encode(rgb, frames, w, h);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(mp4.ok()) << mp4.status().ToString();
  auto v = DecodeMp4(*mp4);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  ASSERT_EQ(v->frames, frames);
  std::printf("49 frames 720x480, CRF 18: encoded in %.2f s (%.1f frames/s), %.1f KiB, mean PSNR %.2f dB\n", s,
              frames / s, mp4->size() / 1024.0, MeanFramePsnr(rgb, v->rgb, frames));
}

}  // namespace
}  // namespace ditserve
