// What one rank's pipeline run hands the parent test process (support/multi_rank.h runs a process per rank):
// the First Block Cache decisions, the final latents and the frames' bytes, as one line of text.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "engine/runtime/diffusion_pipeline.h"

namespace ditserve::testing {

struct RankRun {
  std::string pattern;  // "p" then C (computed) / S (skipped) per step
  std::vector<double> latents;
  std::vector<int> pixels;
};

inline std::string SerializeRankRun(const runtime::RawOutput& out) {
  std::ostringstream s;
  s << "p";
  for (bool d : out.cache_decisions) s << (d ? 'S' : 'C');
  s.precision(9);
  s << " " << out.latents.data.size();
  for (float v : out.latents.data) s << " " << v;
  for (uint8_t v : out.rgb) s << " " << int(v);
  return s.str();
}

inline RankRun ParseRankRun(const std::string& text) {
  std::istringstream in(text);
  RankRun r;
  size_t n = 0;
  in >> r.pattern >> n;
  r.latents.resize(n);
  for (double& v : r.latents) in >> v;
  int px;
  while (in >> px) r.pixels.push_back(px);
  return r;
}

}  // namespace ditserve::testing
