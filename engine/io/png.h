// PNG encoding (stb_image_write + zlib) with text metadata chunks, and a small validating inspector.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ditserve/status.h"

namespace ditserve::io {

using PngText = std::vector<std::pair<std::string, std::string>>;  // (keyword, text), both UTF-8

// Encodes 8-bit interleaved pixels (channels 1..4: gray, gray+alpha, RGB, RGBA; rows top to bottom,
// tightly packed) as PNG, then inserts one text chunk per pair right after IHDR. A text that is all
// Latin-1 goes into tEXt (converted from UTF-8 to Latin-1); anything else (CJK, emoji, ...) into an
// uncompressed iTXt with UTF-8 text. Invalid UTF-8 is replaced by U+FFFD, NUL bytes are dropped.
// Keywords must be 1-79 printable Latin-1 characters (PNG rule). Returns an empty vector on bad
// arguments (null pixels, non-positive size, channels outside 1..4, invalid keyword).
std::vector<uint8_t> EncodePng(const uint8_t* rgb, int width, int height, int channels,
                               const PngText& text);

struct PngInfo {
  int width = 0;
  int height = 0;
  int channels = 0;  // 1 gray, 2 gray+alpha, 3 RGB or palette, 4 RGBA
  int bit_depth = 0;
  PngText text;      // tEXt / zTXt / iTXt chunks in file order, decoded to UTF-8
};

// Validates the signature, walks every chunk (bounds, CRC-32), requires IHDR first, at least one IDAT
// and IEND last, and reads IHDR and the text chunks. Never crashes on malformed input: returns
// InvalidArgument naming what is wrong.
StatusOr<PngInfo> InspectPng(const std::vector<uint8_t>& png);
StatusOr<PngInfo> InspectPng(const uint8_t* data, size_t size);

}  // namespace ditserve::io
