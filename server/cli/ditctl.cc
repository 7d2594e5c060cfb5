// ditctl: command-line client for ditserve (generate, models, status, health).
// Exit codes (server/cli/ctl.h): 0 ok, 1 other error, 2 usage, 3 INVALID_ARGUMENT, 4 RESOURCE_EXHAUSTED,
// 5 UNAVAILABLE / cannot connect, 6 DEADLINE_EXCEEDED, 130 cancelled by the user (Ctrl-C).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdio>

#include "ctl.h"

using namespace ditctl;  // NOLINT

int main(int argc, char** argv) {
  CLI::App app{"ditctl: client for the ditserve diffusion inference server"};
  app.require_subcommand(1);
  app.fallthrough();  // global options are accepted after the subcommand too
  std::string addr = "127.0.0.1:50051";
  app.add_option("--server", addr, "ditserve address HOST:PORT")->envname("DITSERVE_ADDR")->capture_default_str();
  TlsOpts tls;
  app.add_flag("--tls", tls.tls, "connect with TLS (the system's root certificates unless --ca-file)");
  app.add_option("--ca-file", tls.ca_file, "PEM CA certificate(s) to verify the server with (implies --tls)");
  app.add_option("--cert-file", tls.cert_file, "PEM client certificate for mutual TLS (with --key-file)");
  app.add_option("--key-file", tls.key_file, "PEM client private key for mutual TLS");
  app.add_option("--api-key-file", tls.api_key_file, "file whose first word is the API key (sent as a bearer token)")
      ->envname("DITSERVE_API_KEY_FILE");

  GenerateOpts g;
  auto* gen = app.add_subcommand("generate", "generate an image or video, streaming progress");
  gen->add_option("--prompt,-p", g.prompt, "text prompt")->required();
  gen->add_option("--negative-prompt,-n", g.negative, "negative prompt");
  gen->add_option("--model,-m", g.model, "model name (default: the first listed by the server)");
  gen->add_option("--width,-W", g.width, "width in pixels (0 = model default)");
  gen->add_option("--height,-H", g.height, "height in pixels (0 = model default)");
  gen->add_option("--frames", g.frames, "frames (video models; 0 = model default)");
  gen->add_option("--steps,-s", g.steps, "denoising steps (0 = model default)");
  auto* guidance = gen->add_option("--guidance,-g", g.guidance, "guidance scale (default: model's)");
  auto* true_cfg = gen->add_option("--true-cfg", g.true_cfg, "true CFG scale (> 1 with a negative prompt)");
  auto* seed = gen->add_option("--seed", g.seed, "random seed (default: random, reported back)");
  gen->add_option("--cache-threshold", g.cache_threshold, "First Block Cache threshold (0 = off)");
  gen->add_option("--fps", g.fps, "video frame rate (0 = model default)");
  gen->add_flag("--dynamic-cfg", g.dynamic_cfg, "CogVideoX: guidance rising over the schedule (use_dynamic_cfg)");
  gen->add_option("--format,-f", g.format, "output format")->check(CLI::IsMember({"png", "mp4"}, CLI::ignore_case));
  gen->add_option("--timeout", g.timeout, "deadline in seconds (default: none)")->check(CLI::NonNegativeNumber);
  gen->add_option("--out,-o", g.out, "output path, - for stdout (default: ditserve-<request_id>.<ext>)");
  gen->add_flag("--quiet,-q", g.quiet, "no progress or summary on stderr");
  gen->add_flag("--json", g.json, "print the result metadata as JSON on stdout");

  double timeout = 10;
  std::string service;
  auto* models = app.add_subcommand("models", "list the models the server serves");
  auto* status = app.add_subcommand("status", "show worker groups and the queue");
  auto* health = app.add_subcommand("health", "gRPC health check (exit 0 when SERVING)");
  health->add_option("--service", service, "service name (default: the whole server)");
  for (auto* sub : {models, status, health}) {
    sub->add_option("--timeout", timeout, "deadline in seconds")->capture_default_str()->check(CLI::PositiveNumber);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  g.has_guidance = guidance->count() > 0;
  g.has_true_cfg = true_cfg->count() > 0;
  g.has_seed = seed->count() > 0;
  for (char& c : g.format) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (g.out == "-" && g.json) {
    std::fputs("ditctl: error: --out - and --json both write to stdout\n", stderr);
    return kExitUsage;
  }

  StartSignalWatcher();
  Ctl ctl;
  ctl.addr = addr;
  ctl.tty = isatty(STDERR_FILENO) != 0;
  // gRPC's default 4 MiB receive limit is enough: large results arrive in chunks (Result + ResultChunk).
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (!MakeCredentials(tls, ctl, &creds)) return kExitUsage;
  ctl.channel = grpc::CreateChannel(addr, creds);
  ctl.stub = v1::DitServe::NewStub(ctl.channel);

  if (*gen) return Generate(ctl, g);
  if (*models) return Models(ctl, timeout);
  if (*status) return ServerStatusCmd(ctl, timeout);
  return Health(ctl, service, timeout);
}
