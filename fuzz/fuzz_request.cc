// Fuzzes what the public Generate handler does with a client's bytes before queueing: decoding
// (server/request_decode.h) and validation against a model catalogue (server/validate.h). Any input must
// give a request or INVALID_ARGUMENT; bounded messages (echoes cut).
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string_view>

#include "ditserve/model_info.h"
#include "server/request_decode.h"
#include "server/validate.h"

namespace {

const std::map<std::string, ditserve::ModelInfo>& Models() {
  static const auto* models = [] {
    auto* m = new std::map<std::string, ditserve::ModelInfo>();
    ditserve::ModelInfo image;
    image.name = "flux";
    image.family = "flux";
    image.width = {256, 2048, 16, 1024};
    image.height = {256, 2048, 16, 1024};
    image.num_frames = {1, 1, 1, 1};
    image.steps = {1, 100, 1, 28};
    image.max_prompt_chars = 512;
    ditserve::ModelInfo video = image;
    video.name = "video";
    video.output = ditserve::OutputKind::kVideo;
    video.num_frames = {1, 129, 4, 61, 1};
    (*m)["flux"] = image;
    (*m)["video"] = video;
    return m;
  }();
  return *models;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto req = ditserve::server::DecodeGenerateRequest(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!req.ok()) {
    if (req.status().code() != ditserve::StatusCode::kInvalidArgument || req.status().message().size() > 512) abort();
    return 0;
  }
  auto resolved = ditserve::server::ValidateAndResolve(*req, Models(), 42);
  if (!resolved.ok() && (resolved.status().code() != ditserve::StatusCode::kInvalidArgument ||
                         resolved.status().message().size() > 1024)) {
    abort();
  }
  return 0;
}
