// Encodes a request's frames as the output it asked for: PNG (one frame) or MP4 (H.264), with the request's
// parameters as metadata (PNG text chunks, MP4 tags); the prompts only where the server's setting allows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ditserve/engine.h"
#include "ditserve/status.h"

namespace ditserve::runtime {

struct EncodedOutput {
  std::vector<uint8_t> data;
  std::string mime_type;
};

struct OutputOptions {
  int crf = 18;                     // MP4 quality (x264 CRF)
  bool prompt_in_metadata = true;   // server.prompt_in_metadata: the prompts as metadata, or left out
};

// rgb: frames x height x width x 3. `model` names the model in the metadata.
StatusOr<EncodedOutput> EncodeOutput(const std::vector<uint8_t>& rgb, int64_t frames, int64_t width, int64_t height,
                                     const GenerateParams& params, const std::string& model,
                                     const OutputOptions& options);

}  // namespace ditserve::runtime
