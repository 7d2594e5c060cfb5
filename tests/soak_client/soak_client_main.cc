// soak_client: the load side of scripts/soak.sh (a benchmark, not a test). Sends N small Generate requests
// from C threads, a fixed mix of good, invalid, unknown-model, deadline-exceeded and client-cancelled ones,
// and samples the coordinator's and the workers' resident memory (/proc/PID/status VmRSS) every K
// requests. Prints one JSON object: the samples, the status counts and the coordinator's growth per
// request after warm-up.
//   soak_client --write-fake-model DIR NAME          writes a fake-engine model dir and exits
//   soak_client --server ADDR --coordinator-pid PID [--requests N] [--concurrency C] [--sample-every K]
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "ditserve/v1/ditserve.grpc.pb.h"
#include "support/fake_engine.h"

namespace {

using namespace ditserve;  // NOLINT

long RssKb(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

v1::GenerateRequest Request(int i, const std::string& model) {
  v1::GenerateRequest r;
  r.set_model(model);
  r.set_prompt("soak " + std::to_string(i));
  r.set_width(32);
  r.set_height(32);
  r.set_num_frames(1);
  r.set_num_inference_steps(2);
  r.set_output_format(v1::OUTPUT_FORMAT_PNG);
  r.set_client_request_id("soak-" + std::to_string(i));
  switch (i % 10) {
    case 6: r.set_width(33); break;                                              // INVALID_ARGUMENT
    case 7: r.set_model("no-such-model-" + std::to_string(i)); break;             // unknown model
    case 8: r.set_num_inference_steps(50); break;                                 // deadline below
    default: break;
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> a = {{"--server", "127.0.0.1:50051"}, {"--coordinator-pid", "0"},
                                          {"--requests", "10000"},         {"--concurrency", "8"},
                                          {"--sample-every", "500"},       {"--model", "fake-video"}};
  if (argc == 4 && std::string(argv[1]) == "--write-fake-model") {
    testing::WriteFakeVideoModel(argv[2], argv[3]);
    return 0;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!a.count(argv[i])) {
      std::fprintf(stderr, "soak_client: unknown argument %s\n", argv[i]);
      return 2;
    }
    a[argv[i]] = argv[i + 1];
  }
  const int n = std::stoi(a["--requests"]), threads = std::stoi(a["--concurrency"]);
  const int every = std::stoi(a["--sample-every"]);
  const long coordinator = std::stol(a["--coordinator-pid"]);
  auto channel = grpc::CreateChannel(a["--server"], grpc::InsecureChannelCredentials());
  auto stub = v1::DitServe::NewStub(channel);

  auto worker_pids = [&] {
    grpc::ClientContext ctx;
    v1::ServerStatus s;
    std::vector<long> pids;
    if (stub->GetServerStatus(&ctx, v1::GetServerStatusRequest(), &s).ok()) {
      for (const auto& g : s.groups()) pids.insert(pids.end(), g.pids().begin(), g.pids().end());
    }
    return pids;
  };

  std::mutex mu;
  std::map<std::string, int> counts;
  std::vector<std::string> samples;
  std::atomic<int> next{0}, done{0};
  auto sample = [&](int at) {
    std::string w;
    for (long p : worker_pids()) w += (w.empty() ? "" : ",") + std::to_string(RssKb(p));
    samples.push_back("{\"requests\": " + std::to_string(at) + ", \"coordinator_rss_kb\": " +
                      std::to_string(RssKb(coordinator)) + ", \"worker_rss_kb\": [" + w + "]}");
  };
  sample(0);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int i = next++; i < n; i = next++) {
        grpc::ClientContext ctx;
        const int kind = i % 10;
        ctx.set_deadline(std::chrono::system_clock::now() +
                         (kind == 8 ? std::chrono::milliseconds(30) : std::chrono::milliseconds(30000)));
        auto reader = stub->Generate(&ctx, Request(i, a["--model"]));
        v1::GenerateEvent ev;
        while (reader->Read(&ev)) {
          if (kind == 9) ctx.TryCancel();  // the client walks away after the first event
        }
        grpc::Status st = reader->Finish();
        const int d = ++done;
        std::lock_guard<std::mutex> lock(mu);
        ++counts[std::to_string(static_cast<int>(st.error_code()))];
        if (d % every == 0) sample(d);
      }
    });
  }
  for (auto& t : pool) t.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  sample(n);

  static const char* kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                                 "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                 "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  std::string c;
  for (const auto& [code, k] : counts) {
    c += (c.empty() ? "" : ", ") + std::string("\"") + kNames[std::stoi(code)] + "\": " + std::to_string(k);
  }
  std::string s;
  for (const auto& x : samples) s += (s.empty() ? "" : ",\n    ") + x;
  std::printf("{\"requests\": %d, \"concurrency\": %d, \"seconds\": %.1f, \"status\": {%s},\n  \"samples\": [\n    %s]}\n",
              n, threads, secs, c.c_str(), s.c_str());
  return 0;
}
