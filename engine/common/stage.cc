#include "ditserve/engine.h"

namespace ditserve {

const char* StageName(Stage s) {
  switch (s) {
    case Stage::kTextEncode: return "text_encode";
    case Stage::kDenoise: return "denoise";
    case Stage::kDecode: return "decode";
    case Stage::kEncode: return "encode";
  }
  return "unknown";
}

}  // namespace ditserve
