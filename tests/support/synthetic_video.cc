#include "support/synthetic_video.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace ditserve::testing {

std::vector<uint8_t> MovingFrames(int64_t frames, int64_t width, int64_t height) {
  std::vector<uint8_t> rgb(static_cast<size_t>(frames * width * height * 3));
  const double pi = 3.14159265358979;
  size_t i = 0;
  for (int64_t t = 0; t < frames; ++t) {
    const double cx = width * (0.5 + 0.3 * std::cos(2 * pi * t / 24.0));
    const double cy = height * (0.5 + 0.3 * std::sin(2 * pi * t / 24.0));
    const double sigma = 0.12 * static_cast<double>(std::min(width, height));
    for (int64_t y = 0; y < height; ++y) {
      for (int64_t x = 0; x < width; ++x) {
        const double d2 = (x - cx) * (x - cx) + (y - cy) * (y - cy);
        rgb[i++] = static_cast<uint8_t>(128 + 90 * std::sin(2 * pi * (static_cast<double>(x) / width + t / 30.0)));
        rgb[i++] = static_cast<uint8_t>(30 + 190.0 * y / height);
        rgb[i++] = static_cast<uint8_t>(40 + 200 * std::exp(-d2 / (2 * sigma * sigma)));
      }
    }
  }
  return rgb;
}

std::vector<uint8_t> NoiseImage(int64_t width, int64_t height, uint64_t seed) {
  std::vector<uint8_t> rgb(static_cast<size_t>(width * height * 3));
  std::mt19937_64 gen(seed);
  for (size_t i = 0; i < rgb.size(); i += 8) {
    uint64_t r = gen();
    for (size_t k = 0; k < 8 && i + k < rgb.size(); ++k) rgb[i + k] = static_cast<uint8_t>(r >> (8 * k));
  }
  return rgb;
}

}  // namespace ditserve::testing
