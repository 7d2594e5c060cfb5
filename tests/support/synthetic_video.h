// Deterministic synthetic pixels for encoder and server tests.
#pragma once

#include <cstdint>
#include <vector>

namespace ditserve::testing {

// `frames` RGB24 frames of smooth moving content, like a generated clip and unlike noise: a horizontal
// wave drifting right, a vertical ramp and a soft blob circling the centre.
std::vector<uint8_t> MovingFrames(int64_t frames, int64_t width, int64_t height);

// One RGB24 image of uniform noise from `seed`: incompressible, so its PNG is about 3 bytes per pixel.
std::vector<uint8_t> NoiseImage(int64_t width, int64_t height, uint64_t seed);

}  // namespace ditserve::testing
