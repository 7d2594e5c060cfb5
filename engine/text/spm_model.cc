#include "engine/text/spm_model.h"

#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <unordered_set>
#include <utility>

namespace ditserve::text {
namespace {

// Protobuf wire format: enough to walk ModelProto and skip whatever we do not read.
class WireReader {
 public:
  WireReader(const char* data, size_t size)
      : p_(reinterpret_cast<const uint8_t*>(data)), end_(p_ + size) {}
  bool done() const { return p_ >= end_; }

  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) return false;
      const uint8_t b = *p_++;
      *v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  bool Tag(uint32_t* field, uint32_t* wire) {
    uint64_t t;
    if (!Varint(&t)) return false;
    *field = static_cast<uint32_t>(t >> 3);
    *wire = static_cast<uint32_t>(t & 7);
    return *field != 0;
  }
  bool Bytes(const char** data, size_t* size) {
    uint64_t n;
    if (!Varint(&n) || n > static_cast<uint64_t>(end_ - p_)) return false;
    *data = reinterpret_cast<const char*>(p_);
    *size = static_cast<size_t>(n);
    p_ += n;
    return true;
  }
  bool Fixed32(uint32_t* v) {
    if (end_ - p_ < 4) return false;
    *v = static_cast<uint32_t>(p_[0]) | (static_cast<uint32_t>(p_[1]) << 8) |
         (static_cast<uint32_t>(p_[2]) << 16) | (static_cast<uint32_t>(p_[3]) << 24);
    p_ += 4;
    return true;
  }
  bool Skip(uint32_t wire) {
    uint64_t v;
    uint32_t f;
    const char* d;
    size_t n;
    switch (wire) {
      case 0: return Varint(&v);
      case 1:
        if (end_ - p_ < 8) return false;
        p_ += 8;
        return true;
      case 2: return Bytes(&d, &n);
      case 5: return Fixed32(&f);
      default: return false;  // groups (3/4) are not used by ModelProto
    }
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// Calls on_field(field, wire, reader) for each field; it returns 1 when it consumed the field, 0 to
// skip it, -1 on error.
template <typename F>
bool ForEachField(const char* data, size_t size, F&& on_field) {
  WireReader r(data, size);
  while (!r.done()) {
    uint32_t field, wire;
    if (!r.Tag(&field, &wire)) return false;
    const int handled = on_field(field, wire, r);
    if (handled < 0) return false;
    if (handled == 0 && !r.Skip(wire)) return false;
  }
  return true;
}

bool ParsePiece(const char* data, size_t size, SpmModel::Piece* piece) {
  return ForEachField(data, size, [&](uint32_t field, uint32_t wire, WireReader& r) -> int {
    const char* d;
    size_t n;
    uint32_t bits;
    uint64_t v;
    if (field == 1 && wire == 2) {
      if (!r.Bytes(&d, &n)) return -1;
      piece->piece.assign(d, n);
    } else if (field == 2 && wire == 5) {
      if (!r.Fixed32(&bits)) return -1;
      std::memcpy(&piece->score, &bits, sizeof bits);
    } else if (field == 3 && wire == 0) {
      if (!r.Varint(&v)) return -1;
      piece->type = static_cast<int>(v);
    } else {
      return 0;
    }
    return 1;
  });
}

}  // namespace

bool SpmModel::Parse(const std::string& bytes, SpmModel* out) {
  *out = SpmModel();
  return ForEachField(bytes.data(), bytes.size(), [&](uint32_t field, uint32_t wire, WireReader& r) -> int {
    if (wire != 2 || field < 1 || field > 3) return 0;
    const char* d;
    size_t n;
    if (!r.Bytes(&d, &n)) return -1;
    if (field == 1) {  // repeated SentencePiece pieces
      Piece p;
      if (!ParsePiece(d, n, &p)) return -1;
      out->pieces.push_back(std::move(p));
      return 1;
    }
    if (field == 2) {  // TrainerSpec: model_type = 3, unk_id = 40
      return ForEachField(d, n, [&](uint32_t f, uint32_t w, WireReader& t) -> int {
               uint64_t v;
               if (w != 0 || (f != 3 && f != 40)) return 0;
               if (!t.Varint(&v)) return -1;
               if (f == 3) out->model_type = static_cast<int>(v);
               else out->unk_id = static_cast<int32_t>(static_cast<uint32_t>(v));
               return 1;
             })
                 ? 1
                 : -1;
    }
    // NormalizerSpec: precompiled_charsmap = 2
    return ForEachField(d, n, [&](uint32_t f, uint32_t w, WireReader& t) -> int {
             if (f != 2 || w != 2) return 0;
             const char* cd;
             size_t cn;
             if (!t.Bytes(&cd, &cn)) return -1;
             out->precompiled_charsmap.assign(cd, cn);
             return 1;
           })
               ? 1
               : -1;
  });
}

StatusOr<SpmModel> SpmModel::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open sentencepiece model " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  SpmModel m;
  if (!Parse(ss.str(), &m)) return InvalidArgument(path + ": malformed sentencepiece ModelProto");
  if (m.model_type != kUnigram) {
    return InvalidArgument(path + ": not a unigram sentencepiece model (model_type=" +
                           std::to_string(m.model_type) + ")");
  }
  if (m.pieces.empty()) return InvalidArgument(path + ": no pieces");
  if (m.unk_id < 0 || m.unk_id >= static_cast<int64_t>(m.pieces.size())) {
    return InvalidArgument(path + ": unk_id out of range");
  }
  if (m.pieces[static_cast<size_t>(m.unk_id)].type != kUnknown) {
    return InvalidArgument(path + ": piece at unk_id is not of type UNKNOWN");
  }
  std::unordered_set<std::string_view> seen;
  for (const Piece& p : m.pieces) {
    if (p.piece.empty()) return InvalidArgument(path + ": empty piece");
    if (!seen.insert(p.piece).second) return InvalidArgument(path + ": duplicate piece " + p.piece);
  }
  return m;
}

}  // namespace ditserve::text
