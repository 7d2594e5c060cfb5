// The pipeline's output encoding: PNG for one frame, MP4 for video, chosen by the request's output_format, with
// the request's parameters as metadata.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "engine/io/png.h"
#include "engine/runtime/output_encoder.h"

namespace ditserve::runtime {
namespace {

std::vector<uint8_t> Frames(int64_t f, int64_t w, int64_t h) {
  std::vector<uint8_t> rgb(static_cast<size_t>(f * w * h * 3));
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>((i * 7) % 251);
  return rgb;
}

GenerateParams Params(GenerateParams::Format format) {
  GenerateParams p;
  p.prompt = "a fox in the snow";
  p.seed = 42;
  p.steps = 4;
  p.fps = 8;
  p.format = format;
  return p;
}

TEST(OutputEncoder, PngCarriesTheRequestAsText) {
  auto out = EncodeOutput(Frames(1, 32, 16), 1, 32, 16, Params(GenerateParams::Format::kPng), "tiny", OutputOptions{});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->mime_type, "image/png");
  auto png = io::InspectPng(out->data);
  ASSERT_TRUE(png.ok()) << png.status().ToString();
  EXPECT_EQ(png->width, 32);
  EXPECT_EQ(png->height, 16);
  bool prompt = false, seed = false;
  for (const auto& [k, v] : png->text) {
    prompt = prompt || (k == "prompt" && v == "a fox in the snow");
    seed = seed || (k == "seed" && v == "42");
  }
  EXPECT_TRUE(prompt && seed);
}

TEST(OutputEncoder, Mp4ForVideo) {
  auto out = EncodeOutput(Frames(5, 32, 16), 5, 32, 16, Params(GenerateParams::Format::kMp4), "tiny", OutputOptions{});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->mime_type, "video/mp4");
  ASSERT_GT(out->data.size(), 12u);
  EXPECT_EQ(std::string(out->data.begin() + 4, out->data.begin() + 8), "ftyp");
  const std::string bytes(out->data.begin(), out->data.end());
  EXPECT_NE(bytes.find("a fox in the snow"), std::string::npos);  // the prompt as a tag
}

// server.prompt_in_metadata: false leaves the prompts out of PNG text chunks and MP4 tags, and only them.
TEST(OutputEncoder, PromptsStayOutWhenTheSettingIsOff) {
  OutputOptions off;
  off.prompt_in_metadata = false;
  GenerateParams params = Params(GenerateParams::Format::kPng);
  params.negative_prompt = "blurry haze";
  auto png = EncodeOutput(Frames(1, 32, 16), 1, 32, 16, params, "tiny", off);
  ASSERT_TRUE(png.ok()) << png.status().ToString();
  auto info = io::InspectPng(png->data);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  std::set<std::string> keys;
  for (const auto& [k, v] : info->text) keys.insert(k);
  EXPECT_EQ(keys.count("prompt"), 0u);
  EXPECT_EQ(keys.count("negative_prompt"), 0u);
  EXPECT_EQ(keys.count("seed"), 1u);
  EXPECT_EQ(keys.count("model"), 1u);
  const std::string png_bytes(png->data.begin(), png->data.end());
  EXPECT_EQ(png_bytes.find("a fox in the snow"), std::string::npos);
  EXPECT_EQ(png_bytes.find("blurry haze"), std::string::npos);

  params.format = GenerateParams::Format::kMp4;
  auto with = EncodeOutput(Frames(5, 32, 16), 5, 32, 16, params, "tiny", OutputOptions{});
  auto without = EncodeOutput(Frames(5, 32, 16), 5, 32, 16, params, "tiny", off);
  ASSERT_TRUE(with.ok() && without.ok());
  const std::string with_bytes(with->data.begin(), with->data.end());
  const std::string without_bytes(without->data.begin(), without->data.end());
  EXPECT_NE(with_bytes.find("blurry haze"), std::string::npos);
  EXPECT_EQ(without_bytes.find("a fox in the snow"), std::string::npos);
  EXPECT_EQ(without_bytes.find("blurry haze"), std::string::npos);
  EXPECT_NE(without_bytes.find("ditserve"), std::string::npos) << "the other tags stay";
}

TEST(OutputEncoder, RefusesWhatItCannotEncode) {
  auto png3 = EncodeOutput(Frames(3, 32, 16), 3, 32, 16, Params(GenerateParams::Format::kPng), "tiny", OutputOptions{});
  EXPECT_EQ(png3.status().code(), StatusCode::kInvalidArgument);
  auto short_buffer = EncodeOutput(Frames(1, 32, 15), 1, 32, 16, Params(GenerateParams::Format::kPng), "tiny", OutputOptions{});
  EXPECT_EQ(short_buffer.status().code(), StatusCode::kInternal);
  auto odd = EncodeOutput(Frames(2, 31, 16), 2, 31, 16, Params(GenerateParams::Format::kMp4), "tiny", OutputOptions{});
  EXPECT_EQ(odd.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ditserve::runtime
