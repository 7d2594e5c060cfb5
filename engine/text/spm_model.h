// Reader for SentencePiece's spiece.model (a serialized sentencepiece.ModelProto), without
// libsentencepiece or libprotobuf: a minimal protobuf wire-format parser that keeps only what the T5
// tokenizer needs (pieces with score and type, trainer_spec.model_type / unk_id, and
// normalizer_spec.precompiled_charsmap).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ditserve/status.h"

namespace ditserve::text {

struct SpmModel {
  // ModelProto.SentencePiece.Type
  enum PieceType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };
  // TrainerSpec.ModelType
  enum ModelType { kUnigram = 1, kBpe = 2, kWord = 3, kChar = 4 };

  struct Piece {
    std::string piece;
    float score = 0.0f;
    int type = kNormal;
  };
  std::vector<Piece> pieces;
  int model_type = kUnigram;
  int64_t unk_id = 0;
  std::string precompiled_charsmap;  // NormalizerSpec.precompiled_charsmap (may be empty)

  // Parses serialized ModelProto bytes; false on malformed wire data.
  static bool Parse(const std::string& bytes, SpmModel* out);
  // Reads and parses `path`, and checks it is a usable unigram model (pieces present, unk_id in range,
  // the unk piece typed UNKNOWN).
  static StatusOr<SpmModel> Load(const std::string& path);
};

}  // namespace ditserve::text
