// ditserve: the daemon. Serves ditserve.v1 over gRPC, /metrics over HTTP, and owns the worker
// processes. SIGTERM/SIGINT: stop accepting, finish what is queued and running, exit 0 (a second
// signal: stop now). SIGHUP: reload the API keys file.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <thread>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include "server/config.h"
#include "server/coordinator.h"
#include "server/log_format.h"
#include "server/service.h"
#include "server/tls_credentials.h"

namespace {

void Usage() {
  std::cerr << "usage: ditserve --config FILE [--grpc-address HOST:PORT] [--metrics-address HOST:PORT]\n"
               "                [--worker-binary PATH] [--log-level debug|info|warn|error] [--log-format text|json]\n";
}

// One write(2) per message: once the coordinator runs, its threads log to the same stderr, and an
// iostream chain may be split between their lines (a test looking for the message then misses it).
void PrintError(const std::string& message) {
  const std::string line = "ditserve: " + message + "\n";
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
}

std::string SelfDir() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "." : p.parent_path().string();
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path, grpc_addr, metrics_addr, worker_bin, log_level = "info", log_format;
  bool metrics_set = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        Usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--config") config_path = next();
    else if (a == "--grpc-address") grpc_addr = next();
    else if (a == "--metrics-address") { metrics_addr = next(); metrics_set = true; }
    else if (a == "--worker-binary") worker_bin = next();
    else if (a == "--log-level") log_level = next();
    else if (a == "--log-format") log_format = next();
    else if (a == "-h" || a == "--help") { Usage(); return 0; }
    else { PrintError("unknown argument " + a); Usage(); return 2; }
  }
  if (config_path.empty()) {
    Usage();
    return 2;
  }
  spdlog::set_level(spdlog::level::from_str(log_level));
  if (!log_format.empty()) {
    if (auto st = ditserve::server::CheckLogFormat(log_format); !st.ok()) {
      PrintError("--log-format: " + std::string(st.message()));
      return 2;
    }
  }

  auto cfg = ditserve::server::LoadConfig(config_path);
  if (!cfg.ok()) {
    PrintError(std::string(cfg.status().message()));
    return 2;
  }
  if (!log_format.empty()) cfg->log_format = log_format;  // the workers take it from the config
  ditserve::server::ConfigureLogging(cfg->log_format, "coordinator");
  if (!grpc_addr.empty()) cfg->grpc_address = grpc_addr;
  if (metrics_set) cfg->metrics_address = metrics_addr;
  for (const auto& st : {ditserve::server::CheckListenAddress("--grpc-address", cfg->grpc_address, false),
                         ditserve::server::CheckListenAddress("--metrics-address", cfg->metrics_address, true)}) {
    if (!st.ok()) {
      PrintError(std::string(st.message()));
      return 2;
    }
  }
  if (worker_bin.empty()) worker_bin = cfg->worker_binary.empty() ? SelfDir() + "/ditserve-worker" : cfg->worker_binary;
  if (access(worker_bin.c_str(), X_OK) != 0) {
    PrintError("worker binary not executable: " + worker_bin);
    return 2;
  }

  // Termination signals are taken by one sigwait thread; every other thread (and, via the spawn
  // attributes, no worker) has them blocked.
  // SIGHUP (reload the API keys) is taken by the same thread.
  sigset_t sigs, term_sigs;
  sigemptyset(&term_sigs);
  sigaddset(&term_sigs, SIGTERM);
  sigaddset(&term_sigs, SIGINT);
  sigs = term_sigs;
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto credentials = ditserve::server::MakeServerCredentials(cfg->tls);
  if (!credentials.ok()) {
    PrintError(std::string(credentials.status().message()));
    return 2;
  }
  std::unique_ptr<ditserve::server::ApiKeys> api_keys;
  if (!cfg->api_keys_file.empty()) {
    auto keys = ditserve::server::ApiKeys::Load(cfg->api_keys_file);
    if (!keys.ok()) {
      PrintError(std::string(keys.status().message()));
      return 2;
    }
    api_keys = std::move(*keys);
  }

  auto coord = ditserve::server::Coordinator::Create(*cfg, worker_bin, api_keys.get());
  if (!coord.ok()) {
    PrintError(std::string(coord.status().message()));
    return 2;
  }
  ditserve::server::DitServeService service(**coord, api_keys.get());

  grpc::EnableDefaultHealthCheckService(true);
  // Off by default: reflection answers from the whole descriptor pool, the internal worker protocol included.
  if (cfg->reflection) grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(cfg->grpc_address, *credentials, &bound_port);
  // gRPC sets SO_REUSEPORT by default: a second server on the same port would then start and take half
  // of the connections. Off, the bind fails and we say so.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(4 << 20);  // requests are small; results go out in chunks (result_stream.h)
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound_port == 0) {
    PrintError("cannot listen on " + cfg->grpc_address +
               " (address in use by another process, or not an address of this host)");
    (*coord)->Shutdown();
    return 2;
  }
  auto* health = server->GetHealthCheckService();
  // Health answers for the server as a whole ("") and by service name, as grpc.health.v1 clients ask.
  const std::string service_name = ditserve::v1::DitServe::service_full_name();
  auto set_serving = [&](bool serving) {
    health->SetServingStatus(serving);
    health->SetServingStatus(service_name, serving);
  };
  set_serving(false);
  const std::string host = cfg->grpc_address.substr(0, cfg->grpc_address.rfind(':'));
  spdlog::info("listening on {}:{} ({}{}; metrics: {}), {} group(s), queue capacity {}", host, bound_port,
               cfg->tls.enabled() ? (cfg->tls.client_ca_file.empty() ? "TLS" : "mutual TLS") : "plaintext",
               api_keys ? ", API keys" : "", cfg->metrics_address.empty() ? "off" : cfg->metrics_address,
               cfg->groups.size(), cfg->queue_capacity);

  std::atomic<bool> stopping{false};
  std::atomic<int> exit_code{0};
  std::thread health_thread([&] {
    while (!stopping) {
      if ((*coord)->AllModelsReady()) {
        set_serving(true);
        spdlog::info("ready: every model has a worker group up (or only FAILED groups)");
        return;
      }
      if ((*coord)->AllGroupsFailed()) {
        if (cfg->keep_running_without_groups) {
          spdlog::error("every worker group FAILED; running on (server.keep_running_without_groups)");
          return;
        }
        spdlog::error("every worker group FAILED: nothing can be served; exiting (reasons above and in GetServerStatus)");
        exit_code = 3;
        kill(getpid(), SIGTERM);  // the main thread's sigwait takes it: the usual orderly stop
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });

  int sig = 0;
  while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP) {
    if (!api_keys) {
      spdlog::info("SIGHUP: no server.auth.api_keys_file to reload");
      continue;
    }
    if (auto st = api_keys->Reload(); st.ok()) {
      spdlog::info("SIGHUP: reloaded {} API key(s) from {}", api_keys->size(), api_keys->path());
    } else {
      spdlog::error("SIGHUP: keeping the API keys in use: {}", st.message());
    }
  }
  stopping = true;
  health_thread.join();
  spdlog::info("received {}: draining (up to {:.0f}s; a second signal stops at once)", strsignal(sig),
               cfg->drain_timeout_s);
  set_serving(false);
  (*coord)->BeginDrain();
  // A second SIGTERM/SIGINT during the drain: stop now (running requests end UNAVAILABLE).
  std::atomic<bool> drain_over{false};
  std::thread second_signal([&] {
    const timespec poll = {0, 100 * 1000 * 1000};
    while (!drain_over) {
      int s2 = sigtimedwait(&term_sigs, nullptr, &poll);
      if (s2 > 0) {
        spdlog::warn("received {} again: stopping now", strsignal(s2));
        (*coord)->ForceStop();
        return;
      }
    }
  });
  bool drained = (*coord)->WaitIdle(cfg->drain_timeout_s);
  drain_over = true;
  second_signal.join();
  if (!drained) spdlog::warn("drain ended early or timed out: failing what is left");
  (*coord)->Shutdown();  // fails leftovers with UNAVAILABLE, stops workers
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  spdlog::info("stopped");
  return exit_code;
}
