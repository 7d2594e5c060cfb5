// PNG encoder/inspector: pixel-exact round trip through stb_image, text chunks (tEXt / iTXt), CRCs,
// malformed input.
#include "engine/io/png.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

namespace ditserve::io {
namespace {

std::vector<uint8_t> RandomPixels(int w, int h, int c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * c);
  for (auto& v : px) v = static_cast<uint8_t>(rng());
  return px;
}

uint32_t U32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

struct Chunk {
  std::string type;
  size_t offset;  // of the length field
  uint32_t length;
};

std::vector<Chunk> Chunks(const std::vector<uint8_t>& png) {
  std::vector<Chunk> out;
  size_t pos = 8;
  while (pos + 12 <= png.size()) {
    uint32_t len = U32(&png[pos]);
    out.push_back({std::string(reinterpret_cast<const char*>(&png[pos + 4]), 4), pos, len});
    pos += 12 + len;
  }
  return out;
}

TEST(Png, RoundTripsPixelsExactly) {
  for (int c = 1; c <= 4; ++c) {
    for (auto [w, h] : {std::pair{1, 1}, std::pair{7, 3}, std::pair{64, 48}, std::pair{257, 31}}) {
      auto px = RandomPixels(w, h, c, static_cast<uint32_t>(w * 131 + h * 7 + c));
      auto png = EncodePng(px.data(), w, h, c, {{"prompt", "a cat"}});
      ASSERT_FALSE(png.empty()) << w << "x" << h << "x" << c;
      int dw = 0, dh = 0, dc = 0;
      uint8_t* dec = stbi_load_from_memory(png.data(), static_cast<int>(png.size()), &dw, &dh, &dc, c);
      ASSERT_NE(dec, nullptr) << stbi_failure_reason();
      EXPECT_EQ(dw, w);
      EXPECT_EQ(dh, h);
      EXPECT_EQ(dc, c);
      EXPECT_EQ(std::memcmp(dec, px.data(), px.size()), 0) << w << "x" << h << "x" << c;
      stbi_image_free(dec);

      auto info = InspectPng(png);
      ASSERT_TRUE(info.ok()) << info.status().ToString();
      EXPECT_EQ(info->width, w);
      EXPECT_EQ(info->height, h);
      EXPECT_EQ(info->channels, c);
      EXPECT_EQ(info->bit_depth, 8);
    }
  }
}

// Images of a few MB are deflated in pieces on several threads: still one valid zlib stream (adler32
// checked by zlib's inflate) and the same pixels, for incompressible and highly compressible content.
TEST(Png, LargeImagesDeflatedInPiecesRoundTrip) {
  const int w = 1024, h = 1031, c = 3;
  std::vector<uint8_t> smooth(static_cast<size_t>(w) * h * c);
  for (size_t i = 0; i < smooth.size(); ++i) smooth[i] = static_cast<uint8_t>((i / 3 / w + i % w) / 5);
  for (const auto& px : {RandomPixels(w, h, c, 7), smooth}) {
    auto png = EncodePng(px.data(), w, h, c, {});
    ASSERT_FALSE(png.empty());
    std::vector<uint8_t> idat;
    for (const Chunk& ch : Chunks(png)) {
      if (ch.type == "IDAT") idat.insert(idat.end(), png.begin() + ch.offset + 8, png.begin() + ch.offset + 8 + ch.length);
    }
    std::vector<uint8_t> raw(static_cast<size_t>(h) * (1 + w * c) + 1);
    uLongf raw_len = raw.size();
    ASSERT_EQ(uncompress(raw.data(), &raw_len, idat.data(), idat.size()), Z_OK);  // checks adler32 too
    EXPECT_EQ(raw_len, static_cast<uLongf>(h) * (1 + w * c));  // filter byte + row, per row
    int dw = 0, dh = 0, dc = 0;
    uint8_t* dec = stbi_load_from_memory(png.data(), static_cast<int>(png.size()), &dw, &dh, &dc, c);
    ASSERT_NE(dec, nullptr) << stbi_failure_reason();
    ASSERT_EQ(dw * dh * c, static_cast<int>(px.size()));
    EXPECT_EQ(std::memcmp(dec, px.data(), px.size()), 0);
    stbi_image_free(dec);
  }
}

// Perf mode (--gtest_also_run_disabled_tests --gtest_filter='*Perf*'): encode time (best of 5) and size at
// 1024x1024 RGB for noise (what random-weight models produce) and a photo-like image (gradients + grain).
TEST(Png, DISABLED_Perf) {
  const int w = 1024, h = 1024, c = 3;
  std::vector<uint8_t> photo(static_cast<size_t>(w) * h * c);
  std::mt19937 rng(3);
  for (size_t i = 0; i < photo.size(); ++i) photo[i] = static_cast<uint8_t>((i / 3 / w + i / 3 % w) / 8 + (rng() & 3));
  for (const auto& [name, px] : {std::pair{"noise", RandomPixels(w, h, c, 1)}, std::pair{"photo-like", photo}}) {
    double best = 1e9;
    size_t bytes = 0;
    for (int r = 0; r < 5; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      bytes = EncodePng(px.data(), w, h, c, {}).size();
      best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::printf("EncodePng 1024x1024 RGB %-10s %7.1f ms %9zu bytes (%u hardware threads)\n", name, best, bytes,
                std::thread::hardware_concurrency());
    EXPECT_GT(bytes, 0u);
  }
}

TEST(Png, TextChunksRoundTripAfterIhdr) {
  const PngText text = {
      {"prompt", "一只在月光下奔跑的猫 🐈‍⬛, cinematic"},  // CJK + emoji: iTXt
      {"negative_prompt", "blurry, lowres"},           // ASCII: tEXt
      {"Comment", "café crème à 100°"},                // Latin-1 beyond ASCII: tEXt (as Latin-1)
      {"parameters", "{\"seed\": 42, \"steps\": 28}"},
      {"empty", ""},
  };
  auto px = RandomPixels(32, 16, 3, 1);
  auto png = EncodePng(px.data(), 32, 16, 3, text);
  ASSERT_FALSE(png.empty());

  auto info = InspectPng(png);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->text, text);

  auto chunks = Chunks(png);
  ASSERT_GE(chunks.size(), 8u);
  EXPECT_EQ(chunks[0].type, "IHDR");
  EXPECT_EQ(chunks[1].type, "iTXt");
  EXPECT_EQ(chunks[2].type, "tEXt");
  EXPECT_EQ(chunks[3].type, "tEXt");
  EXPECT_EQ(chunks[4].type, "tEXt");
  EXPECT_EQ(chunks[5].type, "tEXt");
  EXPECT_EQ(chunks[6].type, "IDAT");
  EXPECT_EQ(chunks.back().type, "IEND");
  // tEXt stores Latin-1, one byte per character: "café crème à 100°" is 17 bytes, not UTF-8's 21.
  EXPECT_EQ(chunks[3].length, std::strlen("Comment") + 1 + 17);

  // Decoders still read the pixels with the extra chunks in place.
  int w, h, c;
  uint8_t* dec = stbi_load_from_memory(png.data(), static_cast<int>(png.size()), &w, &h, &c, 3);
  ASSERT_NE(dec, nullptr);
  EXPECT_EQ(std::memcmp(dec, px.data(), px.size()), 0);
  stbi_image_free(dec);
}

TEST(Png, EveryChunkCrcIsValid) {
  auto px = RandomPixels(100, 50, 4, 2);
  auto png = EncodePng(px.data(), 100, 50, 4, {{"prompt", "日本語のプロンプト"}, {"model", "flux-dev"}});
  ASSERT_FALSE(png.empty());
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  ASSERT_EQ(std::memcmp(png.data(), sig, 8), 0);
  size_t end = 8;
  for (const auto& ch : Chunks(png)) {
    uLong crc = crc32(crc32(0L, Z_NULL, 0), &png[ch.offset + 4], ch.length + 4);
    EXPECT_EQ(static_cast<uint32_t>(crc), U32(&png[ch.offset + 8 + ch.length])) << ch.type;
    end = ch.offset + 12 + ch.length;
  }
  EXPECT_EQ(end, png.size());
}

TEST(Png, InvalidUtf8AndNulAreSanitized) {
  auto px = RandomPixels(4, 4, 3, 3);
  std::string bad = std::string("ok\xff\xfe") + '\0' + "end\xe4\xb8";  // invalid bytes, NUL, cut sequence
  auto png = EncodePng(px.data(), 4, 4, 3, {{"prompt", bad}});
  ASSERT_FALSE(png.empty());
  auto info = InspectPng(png);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  ASSERT_EQ(info->text.size(), 1u);
  EXPECT_EQ(info->text[0].second, "ok\uFFFD\uFFFDend\uFFFD\uFFFD");
}

TEST(Png, RejectsBadArguments) {
  auto px = RandomPixels(4, 4, 3, 4);
  EXPECT_TRUE(EncodePng(nullptr, 4, 4, 3, {}).empty());
  EXPECT_TRUE(EncodePng(px.data(), 0, 4, 3, {}).empty());
  EXPECT_TRUE(EncodePng(px.data(), 4, -1, 3, {}).empty());
  EXPECT_TRUE(EncodePng(px.data(), 4, 4, 5, {}).empty());
  EXPECT_TRUE(EncodePng(px.data(), 4, 4, 3, {{"", "x"}}).empty());
  EXPECT_TRUE(EncodePng(px.data(), 4, 4, 3, {{std::string(80, 'k'), "x"}}).empty());
  EXPECT_TRUE(EncodePng(px.data(), 4, 4, 3, {{"日本", "x"}}).empty());
  EXPECT_TRUE(EncodePng(px.data(), 4, 4, 3, {{"tab\tkey", "x"}}).empty());
  EXPECT_FALSE(EncodePng(px.data(), 4, 4, 3, {{std::string(79, 'k'), "x"}}).empty());
}

TEST(Png, MalformedInputIsAnErrorNotACrash) {
  auto px = RandomPixels(16, 16, 3, 5);
  auto png = EncodePng(px.data(), 16, 16, 3, {{"prompt", "猫"}, {"seed", "1"}});
  ASSERT_TRUE(InspectPng(png).ok());

  EXPECT_FALSE(InspectPng(std::vector<uint8_t>{}).ok());
  EXPECT_FALSE(InspectPng(nullptr, 0).ok());
  // Every truncation fails cleanly.
  for (size_t n = 0; n < png.size(); ++n) {
    std::vector<uint8_t> cut(png.begin(), png.begin() + static_cast<std::ptrdiff_t>(n));
    auto r = InspectPng(cut);
    EXPECT_FALSE(r.ok()) << "truncated to " << n;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    }
  }
  // Any single flipped byte after the signature is caught (CRC, length, type or structure).
  for (size_t i = 8; i < png.size(); ++i) {
    auto bad = png;
    bad[i] ^= 0x01;
    EXPECT_FALSE(InspectPng(bad).ok()) << "flipped byte " << i;
  }
  // Wrong CRC on the text chunk specifically, with a readable message.
  auto bad = png;
  auto chunks = Chunks(png);
  ASSERT_EQ(chunks[1].type, "iTXt");
  bad[chunks[1].offset + 8 + chunks[1].length] ^= 0xFF;
  auto r = InspectPng(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("CRC"), std::string::npos) << r.status().message();
  // A chunk length pointing far past the end.
  bad = png;
  bad[chunks[1].offset] = 0x7F;
  EXPECT_FALSE(InspectPng(bad).ok());
  // Trailing garbage and a wrong signature.
  bad = png;
  bad.push_back(0);
  EXPECT_FALSE(InspectPng(bad).ok());
  bad = png;
  bad[1] = 'X';
  EXPECT_FALSE(InspectPng(bad).ok());
  // Random garbage never crashes.
  std::mt19937 rng(7);
  for (int t = 0; t < 200; ++t) {
    std::vector<uint8_t> junk(png.begin(), png.begin() + 8);
    junk.resize(8 + rng() % 200);
    for (size_t i = 8; i < junk.size(); ++i) junk[i] = static_cast<uint8_t>(rng());
    EXPECT_FALSE(InspectPng(junk).ok());
  }
}

TEST(Png, ReadsCompressedTextFromOtherEncoders) {
  // Hand-built zTXt and compressed iTXt chunks, spliced after IHDR of a real file.
  auto px = RandomPixels(2, 2, 3, 6);
  auto png = EncodePng(px.data(), 2, 2, 3, {});
  auto put_chunk = [](std::vector<uint8_t>& out, const std::string& type, const std::string& data) {
    std::vector<uint8_t> c;
    uint32_t n = static_cast<uint32_t>(data.size());
    for (int s = 24; s >= 0; s -= 8) c.push_back(static_cast<uint8_t>(n >> s));
    c.insert(c.end(), type.begin(), type.end());
    c.insert(c.end(), data.begin(), data.end());
    uint32_t crc = static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0), &c[4], n + 4));
    for (int s = 24; s >= 0; s -= 8) c.push_back(static_cast<uint8_t>(crc >> s));
    out.insert(out.begin() + 33, c.begin(), c.end());
  };
  auto deflate = [](const std::string& s) {
    uLongf n = compressBound(s.size());
    std::string out(n, '\0');
    compress2(reinterpret_cast<Bytef*>(out.data()), &n, reinterpret_cast<const Bytef*>(s.data()), s.size(), 9);
    out.resize(n);
    return out;
  };
  put_chunk(png, "iTXt", std::string("Title\0\1\0en\0Titel\0", 17) + deflate("東京タワー"));
  put_chunk(png, "zTXt", std::string("Comment\0\0", 9) + deflate("caf\xe9"));
  auto info = InspectPng(png);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  ASSERT_EQ(info->text.size(), 2u);
  EXPECT_EQ(info->text[0], (std::pair<std::string, std::string>{"Comment", "café"}));
  EXPECT_EQ(info->text[1], (std::pair<std::string, std::string>{"Title", "東京タワー"}));
}

}  // namespace
}  // namespace ditserve::io
