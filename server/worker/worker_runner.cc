#include "server/worker/worker_runner.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <map>
#include <string>

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "server/log_format.h"
#include "server/worker/worker_service.h"

namespace ditserve::worker {

int RunWorker(int argc, char** argv, const EngineFactory& factory) {
  std::map<std::string, std::string> a = {{"--listen", ""},     {"--model-dir", ""},  {"--device", "cpu"},
                                          {"--group", "0"},      {"--rank", "0"},      {"--world-size", "1"},
                                          {"--store-host", "127.0.0.1"}, {"--store-port", "29500"},
                                          {"--cfg", "1"},        {"--ulysses", "1"},   {"--ring", "1"},
                                          {"--threads", "0"},    {"--step-delay-ms", "0"}, {"--parent-pid", "0"},
                                          {"--cache-warmup-steps", "1"}, {"--cache-max-skips", "0"},
                                          {"--cuda-graphs", "0"}, {"--fp8-attention", "0"}, {"--video-crf", "18"}, {"--prompt-in-metadata", "1"},
                                          {"--device-memory-limit-mib", "0"},
                                          {"--result-chunk-bytes", "1048576"}, {"--log-format", "text"},
                                          {"--failure-file", ""}};
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (!a.count(k) || i + 1 >= argc) {
      std::cerr << "ditserve-worker: bad argument " << k << " (started by ditserve, not by hand)\n";
      return kExitBadArguments;
    }
    a[k] = argv[++i];
  }
  // Die with the coordinator: orphaned workers would hold GPUs forever.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int parent = std::stoi(a["--parent-pid"]);
  if (parent > 0 && getppid() != parent) return kExitOrphaned;

  const int rank = std::stoi(a["--rank"]);
  server::ConfigureLogging(a["--log-format"], "worker g" + a["--group"] + "r" + a["--rank"]);

  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  WorkerService service(rank, std::stoi(a["--world-size"]), static_cast<uint32_t>(std::stoul(a["--step-delay-ms"])),
                        std::stoull(a["--result-chunk-bytes"]));
  grpc::ServerBuilder builder;
  builder.AddListeningPort(a["--listen"], grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  if (!server) {
    spdlog::error("cannot listen on {}", a["--listen"]);
    return kExitBadArguments;
  }

  EngineOptions opts;
  opts.model_dir = a["--model-dir"];
  opts.device = a["--device"];
  opts.rank = rank;
  opts.world_size = std::stoi(a["--world-size"]);
  opts.store_host = a["--store-host"];
  opts.store_port = std::stoi(a["--store-port"]);
  opts.cfg = std::stoi(a["--cfg"]);
  opts.ulysses = std::stoi(a["--ulysses"]);
  opts.ring = std::stoi(a["--ring"]);
  opts.intra_op_threads = std::stoi(a["--threads"]);
  opts.cache_warmup_steps = std::stoi(a["--cache-warmup-steps"]);
  opts.cache_max_consecutive_skips = std::stoi(a["--cache-max-skips"]);
  opts.cuda_graphs = a["--cuda-graphs"] != "0";
  opts.fp8_attention = a["--fp8-attention"] != "0";
  opts.video_crf = std::stoi(a["--video-crf"]);
  opts.prompt_in_metadata = a["--prompt-in-metadata"] != "0";
  opts.device_memory_limit = std::stoull(a["--device-memory-limit-mib"]) << 20;
  auto engine = factory(opts);
  if (!engine.ok()) {
    spdlog::error("cannot load model {}: {}", opts.model_dir, engine.status().ToString());
    // The coordinator reports why the group failed (status, UNAVAILABLE answers) from this file.
    if (!a["--failure-file"].empty()) std::ofstream(a["--failure-file"]) << engine.status().ToString().substr(0, 2000);
    server->Shutdown();
    return kExitCannotLoad;
  }
  service.SetEngine(std::move(*engine));
  spdlog::info("ready: {} on {}", opts.model_dir, opts.device);

  int sig = 0;
  sigwait(&sigs, &sig);
  // Shutdown cancels a running Run; the engine stops at its next step boundary.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return 0;
}

}  // namespace ditserve::worker
