#include "engine/io/png.h"

#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

// stb_image_write, private to this translation unit (static functions: no clash with another TU that
// also embeds it), deflating with zlib instead of stb's own compressor (smaller, faster).
static unsigned char* DitserveZlibCompress(unsigned char* data, int len, int* out_len, int quality);
#define STBIW_ZLIB_COMPRESS DitserveZlibCompress
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

namespace {

// One zlib stream for `data`, deflated on up to kMaxPieces threads the way pigz does it: the input is cut
// into pieces of >= kMinPiece bytes; each is raw-deflated with the 32 KiB before it as its dictionary and
// ends on a byte boundary (sync flush; the last piece finishes the stream); the pieces go behind one zlib
// header, followed by the adler32 of the whole input combined from the pieces'. Any zlib decoder reads
// it; the size is within a fraction of a percent of a serial deflate. Empty on failure.
// Level 3: on a 1024x1024 photo-like image (gradients + grain) level 6 took 470 ms for 4% less than
// level 3's 115 ms (level 1: 71 ms, +7% over level 3); on noise (random-weight outputs) all levels take
// the same time, since nothing compresses.
constexpr size_t kMinPiece = size_t{1} << 18;
constexpr unsigned kMaxPieces = 8;
constexpr int kLevel = 3;

bool DeflatePiece(const uint8_t* data, size_t start, size_t n, bool last, std::vector<uint8_t>& out) {
  z_stream s{};
  if (deflateInit2(&s, kLevel, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) return false;
  bool ok = true;
  if (start > 0) {
    const size_t dict = start < 32768 ? start : 32768;
    ok = deflateSetDictionary(&s, data + start - dict, static_cast<uInt>(dict)) == Z_OK;
  }
  out.resize(deflateBound(&s, static_cast<uLong>(n)) + 64);  // + the sync flush's empty stored block
  s.next_in = const_cast<Bytef*>(data + start);
  s.avail_in = static_cast<uInt>(n);
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  if (ok) {
    const int rc = deflate(&s, last ? Z_FINISH : Z_SYNC_FLUSH);
    ok = (last ? rc == Z_STREAM_END : rc == Z_OK) && s.avail_in == 0 && s.avail_out > 0;
  }
  out.resize(out.size() - s.avail_out);
  deflateEnd(&s);
  return ok;
}

std::vector<uint8_t> ParallelZlib(const uint8_t* data, size_t len) {
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const size_t pieces = std::max<size_t>(1, std::min<size_t>({len / kMinPiece, hw, kMaxPieces}));
  std::vector<std::vector<uint8_t>> out(pieces);
  std::vector<uLong> adler(pieces);
  std::vector<char> ok(pieces, 0);
  const size_t step = (len + pieces - 1) / pieces;
  auto work = [&](size_t i) {
    const size_t start = i * step, n = std::min(step, len - start);
    ok[i] = DeflatePiece(data, start, n, i + 1 == pieces, out[i]);
    adler[i] = adler32_z(adler32_z(0, nullptr, 0), data + start, n);
  };
  std::vector<std::thread> threads;
  for (size_t i = 1; i < pieces; ++i) threads.emplace_back(work, i);
  work(0);
  for (std::thread& t : threads) t.join();
  std::vector<uint8_t> z = {0x78, 0x5e};  // deflate, 32 KiB window, "fast" level class; 0x785e % 31 == 0
  uLong sum = adler[0];
  for (size_t i = 0; i < pieces; ++i) {
    if (!ok[i]) return {};
    z.insert(z.end(), out[i].begin(), out[i].end());
    if (i > 0) sum = adler32_combine(sum, adler[i], static_cast<z_off_t>(std::min(step, len - i * step)));
  }
  for (int sh = 24; sh >= 0; sh -= 8) z.push_back(static_cast<uint8_t>(sum >> sh));
  return z;
}

}  // namespace

static unsigned char* DitserveZlibCompress(unsigned char* data, int len, int* out_len, int quality) {
  (void)quality;
  if (len < 0) return nullptr;
  const std::vector<uint8_t> z = ParallelZlib(data, static_cast<size_t>(len));
  if (z.empty() || z.size() > static_cast<size_t>(std::numeric_limits<int>::max())) return nullptr;
  auto* out = static_cast<unsigned char*>(STBIW_MALLOC(z.size()));
  if (out == nullptr) return nullptr;
  std::memcpy(out, z.data(), z.size());
  *out_len = static_cast<int>(z.size());
  return out;
}

namespace ditserve::io {
namespace {

constexpr uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
constexpr size_t kMaxInflated = 64u << 20;  // text chunk inflate limit (zip-bomb guard)

void PutU32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}
uint32_t GetU32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Decodes UTF-8 into code points; invalid sequences become U+FFFD.
std::vector<uint32_t> DecodeUtf8(const std::string& s) {
  std::vector<uint32_t> cps;
  size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<uint8_t>(s[i]);
    int n = b < 0x80 ? 0 : (b & 0xE0) == 0xC0 ? 1 : (b & 0xF0) == 0xE0 ? 2 : (b & 0xF8) == 0xF0 ? 3 : -1;
    uint32_t cp = n == 0 ? b : n == 1 ? (b & 0x1F) : n == 2 ? (b & 0x0F) : (b & 0x07);
    bool ok = n >= 0 && i + static_cast<size_t>(n) < s.size();
    for (int k = 1; ok && k <= n; ++k) {
      auto c = static_cast<uint8_t>(s[i + k]);
      if ((c & 0xC0) != 0x80) ok = false;
      else cp = (cp << 6) | (c & 0x3F);
    }
    static constexpr uint32_t kMin[4] = {0, 0x80, 0x800, 0x10000};
    if (ok && (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) ok = false;
    if (!ok) {
      cps.push_back(0xFFFD);
      ++i;
      continue;
    }
    cps.push_back(cp);
    i += static_cast<size_t>(n) + 1;
  }
  return cps;
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string Latin1ToUtf8(const uint8_t* p, size_t n) {
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) AppendUtf8(out, p[i]);
  return out;
}

// PNG keyword: 1-79 Latin-1 characters in 32..126 or 161..255.
bool KeywordToLatin1(const std::string& utf8, std::string* out) {
  out->clear();
  for (uint32_t cp : DecodeUtf8(utf8)) {
    if (!((cp >= 32 && cp <= 126) || (cp >= 161 && cp <= 255))) return false;
    *out += static_cast<char>(cp);
  }
  return !out->empty() && out->size() <= 79;
}

void AppendChunk(std::vector<uint8_t>& out, const char type[4], const std::string& data) {
  PutU32(out, static_cast<uint32_t>(data.size()));
  size_t start = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), data.begin(), data.end());
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, out.data() + start, static_cast<uInt>(out.size() - start));
  PutU32(out, static_cast<uint32_t>(crc));
}

// Builds the tEXt (all Latin-1) or iTXt (otherwise) chunk for one pair.
bool AppendTextChunk(std::vector<uint8_t>& out, const std::string& key, const std::string& value) {
  std::string keyword;
  if (!KeywordToLatin1(key, &keyword)) return false;
  std::vector<uint32_t> cps = DecodeUtf8(value);
  bool latin1 = true;
  for (uint32_t cp : cps) latin1 = latin1 && cp <= 0xFF;
  std::string data = keyword;
  data += '\0';
  if (latin1) {
    for (uint32_t cp : cps) {
      if (cp != 0) data += static_cast<char>(cp);
    }
    AppendChunk(out, "tEXt", data);
  } else {
    data += std::string("\0\0\0\0", 4);  // compression flag, method, empty language, empty translated keyword
    for (uint32_t cp : cps) {
      if (cp != 0) AppendUtf8(data, cp);
    }
    AppendChunk(out, "iTXt", data);
  }
  return true;
}

void WriteToVector(void* ctx, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(ctx);
  auto* p = static_cast<const uint8_t*>(data);
  out->insert(out->end(), p, p + size);
}

StatusOr<std::string> Inflate(const uint8_t* p, size_t n) {
  z_stream zs{};
  if (inflateInit(&zs) != Z_OK) return Internal("inflateInit failed");
  std::string out;
  uint8_t buf[16384];
  zs.next_in = const_cast<Bytef*>(p);
  zs.avail_in = static_cast<uInt>(n);
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = buf;
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(reinterpret_cast<char*>(buf), sizeof(buf) - zs.avail_out);
    if (out.size() > kMaxInflated) rc = Z_MEM_ERROR;
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) rc = Z_BUF_ERROR;  // truncated stream
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) return InvalidArgument("png: corrupt compressed text");
  return out;
}

// Returns the position of the first NUL in [p, p+n), or n.
size_t FindNul(const uint8_t* p, size_t n) {
  const void* z = std::memchr(p, 0, n);
  return z == nullptr ? n : static_cast<size_t>(static_cast<const uint8_t*>(z) - p);
}

Status ParseText(const char* type, const uint8_t* p, size_t n, PngText* text) {
  std::string t(type, 4);
  size_t k = FindNul(p, n);
  if (k == 0 || k > 79 || k == n) return InvalidArgument("png: " + t + " chunk has a bad keyword");
  std::string keyword = Latin1ToUtf8(p, k);
  const uint8_t* q = p + k + 1;
  size_t m = n - k - 1;
  if (t == "tEXt") {
    text->emplace_back(keyword, Latin1ToUtf8(q, m));
    return Status::Ok();
  }
  if (t == "zTXt") {
    if (m < 1 || q[0] != 0) return InvalidArgument("png: zTXt has an unknown compression method");
    ASSIGN_OR_RETURN(std::string raw, Inflate(q + 1, m - 1));
    text->emplace_back(keyword, Latin1ToUtf8(reinterpret_cast<const uint8_t*>(raw.data()), raw.size()));
    return Status::Ok();
  }
  // iTXt: compression flag, method, language\0, translated keyword\0, text.
  if (m < 2 || q[0] > 1 || q[1] != 0) return InvalidArgument("png: iTXt has a bad compression field");
  bool compressed = q[0] == 1;
  q += 2;
  m -= 2;
  for (int field = 0; field < 2; ++field) {
    size_t z = FindNul(q, m);
    if (z == m) return InvalidArgument("png: iTXt is truncated");
    q += z + 1;
    m -= z + 1;
  }
  if (compressed) {
    ASSIGN_OR_RETURN(std::string raw, Inflate(q, m));
    text->emplace_back(keyword, std::move(raw));
  } else {
    text->emplace_back(keyword, std::string(reinterpret_cast<const char*>(q), m));
  }
  return Status::Ok();
}

}  // namespace

std::vector<uint8_t> EncodePng(const uint8_t* rgb, int width, int height, int channels,
                               const PngText& text) {
  if (rgb == nullptr || width <= 0 || height <= 0 || channels < 1 || channels > 4) return {};
  if (static_cast<int64_t>(width) * channels > std::numeric_limits<int>::max() / 2) return {};
  std::vector<uint8_t> chunks;
  for (const auto& [key, value] : text) {
    if (!AppendTextChunk(chunks, key, value)) return {};
  }
  std::vector<uint8_t> png;
  if (stbi_write_png_to_func(WriteToVector, &png, width, height, channels, rgb, width * channels) == 0) {
    return {};
  }
  // stb writes signature, IHDR (8 + 13 + 4 bytes), then IDAT...: splice the text chunks after IHDR.
  constexpr size_t kAfterIhdr = 8 + 8 + 13 + 4;
  if (png.size() < kAfterIhdr || GetU32(png.data() + 8) != 13 || std::memcmp(png.data() + 12, "IHDR", 4) != 0) {
    return {};
  }
  png.insert(png.begin() + kAfterIhdr, chunks.begin(), chunks.end());
  return png;
}

StatusOr<PngInfo> InspectPng(const std::vector<uint8_t>& png) { return InspectPng(png.data(), png.size()); }

StatusOr<PngInfo> InspectPng(const uint8_t* data, size_t size) {
  if (data == nullptr || size < sizeof(kSignature) || std::memcmp(data, kSignature, sizeof(kSignature)) != 0) {
    return InvalidArgument("png: bad signature");
  }
  PngInfo info;
  size_t pos = sizeof(kSignature);
  bool have_ihdr = false, have_idat = false, have_iend = false;
  int index = 0;
  while (!have_iend) {
    if (size - pos < 12) return InvalidArgument("png: truncated at byte " + std::to_string(pos));
    uint32_t len = GetU32(data + pos);
    if (len > 0x7FFFFFFFu || len > size - pos - 12) {
      return InvalidArgument("png: chunk at byte " + std::to_string(pos) + " overruns the file");
    }
    const uint8_t* type = data + pos + 4;
    const uint8_t* body = type + 4;
    std::string t(reinterpret_cast<const char*>(type), 4);
    for (char c : t) {
      if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) {
        return InvalidArgument("png: bad chunk type at byte " + std::to_string(pos));
      }
    }
    uLong crc = crc32(crc32(0L, Z_NULL, 0), type, len + 4);
    if (static_cast<uint32_t>(crc) != GetU32(body + len)) return InvalidArgument("png: CRC mismatch in " + t);
    if (index == 0 && t != "IHDR") return InvalidArgument("png: first chunk is " + t + ", not IHDR");
    if (t == "IHDR") {
      if (index != 0 || len != 13) return InvalidArgument("png: bad IHDR");
      info.width = static_cast<int>(GetU32(body));
      info.height = static_cast<int>(GetU32(body + 4));
      info.bit_depth = body[8];
      switch (body[9]) {
        case 0: info.channels = 1; break;
        case 2: case 3: info.channels = 3; break;
        case 4: info.channels = 2; break;
        case 6: info.channels = 4; break;
        default: return InvalidArgument("png: bad color type " + std::to_string(body[9]));
      }
      if (info.width <= 0 || info.height <= 0) return InvalidArgument("png: zero or oversized dimensions");
      have_ihdr = true;
    } else if (t == "PLTE") {  // palette: nothing to read
    } else if (t == "IDAT") {
      have_idat = true;
    } else if (t == "IEND") {
      have_iend = true;
    } else if (t == "tEXt" || t == "zTXt" || t == "iTXt") {
      RETURN_IF_ERROR(ParseText(t.c_str(), body, len, &info.text));
    } else if (!(type[0] & 0x20)) {
      return InvalidArgument("png: unknown critical chunk " + t);
    }
    pos += 12 + static_cast<size_t>(len);
    ++index;
  }
  if (!have_ihdr || !have_idat) return InvalidArgument("png: missing IHDR or IDAT");
  if (pos != size) return InvalidArgument("png: " + std::to_string(size - pos) + " trailing bytes after IEND");
  return info;
}

}  // namespace ditserve::io
