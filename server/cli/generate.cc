// ditctl generate: streams Generate, draws progress on stderr, writes the result.
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <vector>

#include "ctl.h"
#include "server/result_stream.h"

namespace ditctl {
namespace {

using Clock = std::chrono::steady_clock;

class ProgressLine {
 public:
  ProgressLine(Ctl& ctl, bool quiet) : ctl_(ctl), quiet_(quiet) {}
  void Show(const std::string& text) {
    if (quiet_ || text == last_) return;
    last_ = text;
    std::string line = text + Fmt("  %.1fs", std::chrono::duration<double>(Clock::now() - start_).count());
    if (ctl_.tty) {
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
      ctl_.line_open = true;
    } else {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    std::fflush(stderr);
  }
  void Update(const v1::Progress& p) {
    std::string name = StageName(p.stage());
    if (p.total_steps() == 0) return Show(name);
    if (p.stage() != v1::STAGE_DENOISE) {
      return Show(name + " " + std::to_string(p.step()) + "/" + std::to_string(p.total_steps()));
    }
    // Without a TTY, log denoise at ~10% granularity rather than every step.
    uint32_t bucket = p.step() * 10 / p.total_steps();
    if (!ctl_.tty && p.step() != 0 && p.step() != p.total_steps() && bucket == bucket_) return;
    bucket_ = bucket;
    const int kWidth = 20;
    int filled = static_cast<int>(static_cast<uint64_t>(p.step()) * kWidth / p.total_steps());
    Show(name + " [" + std::string(filled, '#') + std::string(kWidth - filled, '.') + "] " +
         std::to_string(p.step()) + "/" + std::to_string(p.total_steps()));
  }
  double Elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  Ctl& ctl_;
  bool quiet_;
  std::string last_;
  uint32_t bucket_ = ~0u;
  Clock::time_point start_ = Clock::now();
};

bool WriteFile(const std::string& path, const std::string& data, std::string* err) {
  if (path == "-") {
    std::cout.write(data.data(), static_cast<std::streamsize>(data.size()));
    std::cout.flush();
    return static_cast<bool>(std::cout);
  }
  std::string tmp = path + ".part";  // never leave a half-written output under the real name
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    f.close();
    if (!f) {
      *err = "cannot write " + path + ": " + std::strerror(errno);
      std::remove(tmp.c_str());
      return false;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    *err = "cannot rename " + tmp + " to " + path + ": " + std::strerror(errno);
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace

int Generate(Ctl& ctl, const GenerateOpts& o) {
  v1::GenerateRequest req;
  req.set_model(o.model);
  if (req.model().empty()) {  // default: the first model the server lists
    grpc::ClientContext ctx;
    PrepareCall(ctl, ctx, o.timeout > 0 ? o.timeout : 10);
    ActiveCall guard(&ctx);
    v1::ListModelsResponse models;
    grpc::Status st = ctl.stub->ListModels(&ctx, v1::ListModelsRequest(), &models);
    if (!st.ok()) return ctl.Fail(st);
    if (models.models().empty()) return ctl.Fail("FAILED_PRECONDITION", "the server lists no models", kExitError);
    req.set_model(models.models(0).name());
  }
  req.set_prompt(o.prompt);
  req.set_negative_prompt(o.negative);
  req.set_width(o.width);
  req.set_height(o.height);
  req.set_num_frames(o.frames);
  req.set_num_inference_steps(o.steps);
  if (o.has_guidance) req.set_guidance_scale(o.guidance);
  if (o.has_true_cfg) req.set_true_cfg_scale(o.true_cfg);
  if (o.has_seed) req.set_seed(o.seed);
  req.set_fps(o.fps);
  req.set_use_dynamic_cfg(o.dynamic_cfg);
  req.set_cache_threshold(o.cache_threshold);
  req.set_output_format(o.format == "png"   ? v1::OUTPUT_FORMAT_PNG
                        : o.format == "mp4" ? v1::OUTPUT_FORMAT_MP4
                                            : v1::OUTPUT_FORMAT_UNSPECIFIED);

  grpc::ClientContext ctx;
  PrepareCall(ctl, ctx, o.timeout);
  ActiveCall guard(&ctx);
  ProgressLine progress(ctl, o.quiet);
  auto reader = ctl.stub->Generate(&ctx, req);
  v1::GenerateEvent ev;
  ditserve::server::ResultAssembler assembler;
  ditserve::Status stream_error;
  std::string request_id;
  while (reader->Read(&ev)) {
    if (ev.has_queued()) {
      request_id = ev.queued().request_id();
      progress.Show("queued (position " + std::to_string(ev.queued().position()) + ")");
    } else if (ev.has_progress()) {
      progress.Update(ev.progress());
    } else if (ev.has_result()) {
      stream_error = assembler.Add(ev.result());
      if (assembler.expected() > ev.result().data().size()) progress.Show("receiving " + HumanBytes(assembler.expected()));
    } else if (ev.has_result_chunk()) {
      stream_error = assembler.Add(ev.result_chunk());
    }
    if (!stream_error.ok()) {
      ctx.TryCancel();
      break;
    }
  }
  grpc::Status st = reader->Finish();
  if (!stream_error.ok()) return ctl.Fail("INTERNAL", stream_error.message(), kExitError);
  if (!st.ok()) return ctl.Fail(st);
  if (!assembler.has_result()) return ctl.Fail("INTERNAL", "the stream ended without a result", kExitError);
  auto result = assembler.Take();  // checks that every byte of data_size arrived
  if (!result.ok()) return ctl.Fail("INTERNAL", result.status().message(), kExitError);
  double total = progress.Elapsed();
  ctl.EndLine();

  const v1::Result& r = *result;
  std::string id = r.request_id().empty() ? request_id : r.request_id();
  std::string ext = r.format() == v1::OUTPUT_FORMAT_MP4 || r.mime_type() == "video/mp4" ? "mp4" : "png";
  std::string path = o.out.empty() ? "ditserve-" + (id.empty() ? "out" : id) + "." + ext : o.out;
  std::string err;
  if (!WriteFile(path, r.data(), &err)) return ctl.Fail("IO", err, kExitError);

  std::vector<std::pair<std::string, double>> timings;
  bool has_queue = false;
  for (const auto& t : r.timings()) has_queue = has_queue || t.stage() == v1::STAGE_QUEUED;
  if (!has_queue) timings.emplace_back("queue", r.queue_seconds());
  for (const auto& t : r.timings()) timings.emplace_back(StageName(t.stage(), o.json), t.seconds());
  std::string dims = std::to_string(r.width()) + "x" + std::to_string(r.height()) +
                     (r.frames() > 1 ? "x" + std::to_string(r.frames()) : "");
  if (!o.quiet) {
    std::fprintf(stderr, "wrote %s (%s, %s, seed %llu, request %s, group %u)\n",
                 path == "-" ? "stdout" : path.c_str(),
                 HumanBytes(r.data().size()).c_str(), dims.c_str(), static_cast<unsigned long long>(r.seed()),
                 id.c_str(), r.group());
    if (ext == "mp4") {
      std::fprintf(stderr, "video: %u frames, %u fps, %s\n", r.frames(), r.fps(),
                   r.fps() ? Fmt("%.2f s", static_cast<double>(r.frames()) / r.fps()).c_str() : "duration unknown");
    }
    std::string line = "timings:";
    for (size_t i = 0; i < timings.size(); ++i) {
      line += (i ? ", " : " ") + timings[i].first + Fmt(" %.2fs", timings[i].second);
    }
    std::fprintf(stderr, "%s; total %.2fs\n", line.c_str(), total);
    std::string mem;
    for (const auto& t : r.timings()) {
      if (t.peak_device_bytes() == 0) continue;
      mem += std::string(mem.empty() ? " " : ", ") + StageName(t.stage(), false) + " " + HumanBytes(t.peak_device_bytes());
    }
    if (!mem.empty()) std::fprintf(stderr, "peak GPU memory:%s\n", mem.c_str());
    if (r.cache().steps_skipped() + r.cache().steps_computed() > 0) {
      std::fprintf(stderr, "cache: %u steps computed, %u skipped\n", r.cache().steps_computed(),
                   r.cache().steps_skipped());
    }
  }
  if (o.json) {
    std::ostringstream js;
    js << "{\"path\":" << JsonStr(path) << ",\"bytes\":" << r.data().size() << ",\"mime_type\":"
       << JsonStr(r.mime_type()) << ",\"format\":\"" << FormatName(r.format()) << "\",\"model\":"
       << JsonStr(req.model()) << ",\"width\":" << r.width() << ",\"height\":" << r.height()
       << ",\"frames\":" << r.frames() << ",\"fps\":" << r.fps() << ",\"duration_seconds\":"
       << (r.fps() ? static_cast<double>(r.frames()) / r.fps() : 0.0) << ",\"seed\":" << r.seed() << ",\"request_id\":" << JsonStr(id)
       << ",\"client_request_id\":" << JsonStr(r.client_request_id()) << ",\"group\":" << r.group()
       << ",\"queue_seconds\":" << r.queue_seconds() << ",\"total_seconds\":" << total << ",\"timings\":{";
    for (size_t i = 0; i < timings.size(); ++i) {
      js << (i ? "," : "") << JsonStr(timings[i].first) << ":" << timings[i].second;
    }
    js << "},\"peak_device_bytes\":{";
    bool first = true;
    for (const auto& t : r.timings()) {
      if (t.peak_device_bytes() == 0) continue;
      js << (first ? "" : ",") << JsonStr(StageName(t.stage(), true)) << ":" << t.peak_device_bytes();
      first = false;
    }
    js << "},\"cache\":{\"steps_computed\":" << r.cache().steps_computed()
       << ",\"steps_skipped\":" << r.cache().steps_skipped() << "}}";
    std::printf("%s\n", js.str().c_str());
  }
  return kExitOk;
}

}  // namespace ditctl
