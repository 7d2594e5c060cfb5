#include "server/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>
#include <set>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/echo.h"
#include "server/log_format.h"

namespace ditserve::server {
namespace {

using nlohmann::json;

// Rejects unknown keys so a typo ("queue_capacty") is an error, not a silently ignored setting.
Status CheckKeys(const json& obj, const std::string& where, const std::set<std::string>& allowed) {
  if (!obj.is_object()) return InvalidArgument(where + ": must be an object");
  for (const auto& [k, v] : obj.items()) {
    if (!allowed.count(k)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return InvalidArgument(where + "." + k + ": unknown key (allowed: " + list + ")");
    }
  }
  return Status::Ok();
}

// Typed reads that refuse what nlohmann would silently convert: a float where an integer belongs
// (`"ranks": 2.5` would become 2) and numbers outside the target type (`1e30`, or `1e752`, which parses as
// infinity; converting either to an integer is undefined behaviour).
Status Get(const json& obj, const std::string& where, const char* key, std::string& out) {
  if (!obj.contains(key)) return Status::Ok();
  if (!obj.at(key).is_string()) return InvalidArgument(where + "." + key + ": wrong type (need a string)");
  out = obj.at(key).get<std::string>();
  return Status::Ok();
}

Status Get(const json& obj, const std::string& where, const char* key, bool& out) {
  if (!obj.contains(key)) return Status::Ok();
  if (!obj.at(key).is_boolean()) return InvalidArgument(where + "." + key + ": wrong type (need true or false)");
  out = obj.at(key).get<bool>();
  return Status::Ok();
}

Status Get(const json& obj, const std::string& where, const char* key, double& out) {
  if (!obj.contains(key)) return Status::Ok();
  const json& v = obj.at(key);
  if (!v.is_number()) return InvalidArgument(where + "." + key + ": wrong type (need a number)");
  const double d = v.get<double>();
  if (!std::isfinite(d)) return InvalidArgument(where + "." + key + ": number too large");
  out = d;
  return Status::Ok();
}

Status Get(const json& obj, const std::string& where, const char* key, int64_t& out) {
  if (!obj.contains(key)) return Status::Ok();
  const json& v = obj.at(key);
  const std::string name = where + "." + key;
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return InvalidArgument(name + ": number too large");
    }
    out = static_cast<int64_t>(v.get<uint64_t>());
  } else if (v.is_number_integer()) {
    out = v.get<int64_t>();
  } else if (v.is_number_float()) {
    // 1e3 is an integer written as a float; 2.5 is not an integer at all.
    const double d = v.get<double>();
    if (!std::isfinite(d) || std::fabs(d) >= 9.0e18) return InvalidArgument(name + ": number too large");
    if (d != std::trunc(d)) return InvalidArgument(name + ": must be an integer, got " + Echo(v.dump()));
    out = static_cast<int64_t>(d);
  } else {
    return InvalidArgument(name + ": wrong type (need an integer)");
  }
  return Status::Ok();
}

Status Get(const json& obj, const std::string& where, const char* key, int& out) {
  int64_t v = out;
  RETURN_IF_ERROR(Get(obj, where, key, v));
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
    return InvalidArgument(where + "." + key + ": " + std::to_string(v) + " out of range");
  }
  out = static_cast<int>(v);
  return Status::Ok();
}

Status IntInRange(const std::string& key, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) {
    return InvalidArgument(key + ": " + std::to_string(v) + " out of range [" + std::to_string(lo) + ", " +
                           std::to_string(hi) + "]");
  }
  return Status::Ok();
}

// A file path setting: relative paths are relative to the config file's directory.
Status GetPath(const json& obj, const std::string& where, const char* key, const std::string& base_dir,
               std::string& out) {
  RETURN_IF_ERROR(Get(obj, where, key, out));
  if (!out.empty() && std::filesystem::path(out).is_relative() && !base_dir.empty()) {
    out = (std::filesystem::path(base_dir) / out).lexically_normal().string();
  }
  return Status::Ok();
}

Status ParseTls(const json& s, const std::string& base_dir, TlsConfig& t) {
  if (!s.contains("tls")) return Status::Ok();
  RETURN_IF_ERROR(CheckKeys(s.at("tls"), "server.tls", {"cert_file", "key_file", "client_ca_file"}));
  RETURN_IF_ERROR(GetPath(s.at("tls"), "server.tls", "cert_file", base_dir, t.cert_file));
  RETURN_IF_ERROR(GetPath(s.at("tls"), "server.tls", "key_file", base_dir, t.key_file));
  RETURN_IF_ERROR(GetPath(s.at("tls"), "server.tls", "client_ca_file", base_dir, t.client_ca_file));
  if (t.cert_file.empty() || t.key_file.empty()) return InvalidArgument("server.tls: needs cert_file and key_file");
  return Status::Ok();
}

// Debian 12's civetweb (under prometheus-cpp's Exposer) loads libssl at run time by OpenSSL 1.1 symbol
// names; OpenSSL 3 lacks SSL_get_peer_certificate, so its TLS never works (connections are reset after the
// handshake). Asking for HTTPS metrics is refused rather than served as plain HTTP.
constexpr char kNoMetricsTls[] =
    "HTTPS for /metrics is not supported (the packaged civetweb cannot use OpenSSL 3): bind "
    "server.metrics_address to loopback or a private interface, or put a TLS proxy in front (docs/hardening.md)";

Status ParseServer(const json& s, const std::string& base_dir, ServerConfig& c) {
  if (s.is_object() && s.contains("metrics_tls")) return InvalidArgument(std::string("server.metrics_tls: ") + kNoMetricsTls);
  RETURN_IF_ERROR(CheckKeys(s, "server",
                            {"grpc_address", "metrics_address", "queue_capacity", "worker_binary", "runtime_dir",
                             "worker_start_timeout_s", "drain_timeout_s", "worker_threads", "store_base_port", "store_host",
                             "debug_step_delay_ms", "cache_warmup_steps", "cache_max_consecutive_skips",
                             "cuda_graphs", "video_crf", "prompt_in_metadata", "device_memory_limit_mib", "result_chunk_bytes", "log_format", "max_start_attempts",
                             "stall_timeout_s", "keep_running_without_groups", "tls", "auth",
                             "reflection"}));
  RETURN_IF_ERROR(Get(s, "server", "grpc_address", c.grpc_address));
  RETURN_IF_ERROR(CheckListenAddress("server.grpc_address", c.grpc_address, /*may_be_empty=*/false));
  RETURN_IF_ERROR(Get(s, "server", "metrics_address", c.metrics_address));
  if (c.metrics_address.rfind("https://", 0) == 0) return InvalidArgument(std::string("server.metrics_address: ") + kNoMetricsTls);
  RETURN_IF_ERROR(CheckListenAddress("server.metrics_address", c.metrics_address, /*may_be_empty=*/true));
  int64_t cap = c.queue_capacity;
  RETURN_IF_ERROR(Get(s, "server", "queue_capacity", cap));
  RETURN_IF_ERROR(IntInRange("server.queue_capacity", cap, 1, 100000));
  c.queue_capacity = static_cast<uint32_t>(cap);
  RETURN_IF_ERROR(Get(s, "server", "worker_binary", c.worker_binary));
  RETURN_IF_ERROR(Get(s, "server", "runtime_dir", c.runtime_dir));
  RETURN_IF_ERROR(Get(s, "server", "worker_start_timeout_s", c.worker_start_timeout_s));
  RETURN_IF_ERROR(Get(s, "server", "drain_timeout_s", c.drain_timeout_s));
  if (c.worker_start_timeout_s <= 0) return InvalidArgument("server.worker_start_timeout_s: must be > 0");
  if (c.drain_timeout_s < 0) return InvalidArgument("server.drain_timeout_s: must be >= 0");
  RETURN_IF_ERROR(Get(s, "server", "worker_threads", c.worker_threads));
  RETURN_IF_ERROR(IntInRange("server.worker_threads", c.worker_threads, 0, 1024));
  RETURN_IF_ERROR(Get(s, "server", "store_base_port", c.store_base_port));
  RETURN_IF_ERROR(IntInRange("server.store_base_port", c.store_base_port, 1024, 65000));
  RETURN_IF_ERROR(Get(s, "server", "store_host", c.store_host));
  if (in6_addr a6; inet_pton(AF_INET, c.store_host.c_str(), &a6) != 1 && inet_pton(AF_INET6, c.store_host.c_str(), &a6) != 1) {
    return InvalidArgument("server.store_host: \"" + Echo(c.store_host) +
                           "\" is not an IP address (the interface multi-rank groups listen on; default 127.0.0.1)");
  }
  if (c.store_host == "0.0.0.0" || c.store_host == "::") {
    return InvalidArgument("server.store_host: the store has no authentication; name one interface, not every one");
  }
  RETURN_IF_ERROR(Get(s, "server", "cache_warmup_steps", c.cache_warmup_steps));
  RETURN_IF_ERROR(IntInRange("server.cache_warmup_steps", c.cache_warmup_steps, 1, 1000));
  RETURN_IF_ERROR(Get(s, "server", "cache_max_consecutive_skips", c.cache_max_consecutive_skips));
  RETURN_IF_ERROR(IntInRange("server.cache_max_consecutive_skips", c.cache_max_consecutive_skips, 0, 1000));
  RETURN_IF_ERROR(Get(s, "server", "cuda_graphs", c.cuda_graphs));
  RETURN_IF_ERROR(Get(s, "server", "video_crf", c.video_crf));
  RETURN_IF_ERROR(IntInRange("server.video_crf", c.video_crf, 0, 51));
  RETURN_IF_ERROR(Get(s, "server", "prompt_in_metadata", c.prompt_in_metadata));
  RETURN_IF_ERROR(Get(s, "server", "device_memory_limit_mib", c.device_memory_limit_mib));
  RETURN_IF_ERROR(IntInRange("server.device_memory_limit_mib", c.device_memory_limit_mib, 0, int64_t{1} << 30));
  int64_t chunk = static_cast<int64_t>(c.result_chunk_bytes);
  RETURN_IF_ERROR(Get(s, "server", "result_chunk_bytes", chunk));
  RETURN_IF_ERROR(IntInRange("server.result_chunk_bytes", chunk, kMinResultChunkBytes, kMaxResultChunkBytes));
  c.result_chunk_bytes = static_cast<uint64_t>(chunk);
  int64_t delay = 0;
  RETURN_IF_ERROR(Get(s, "server", "debug_step_delay_ms", delay));
  RETURN_IF_ERROR(IntInRange("server.debug_step_delay_ms", delay, 0, 60000));
  c.debug_step_delay_ms = static_cast<uint32_t>(delay);
  RETURN_IF_ERROR(Get(s, "server", "log_format", c.log_format));
  if (Status st = CheckLogFormat(c.log_format); !st.ok()) return InvalidArgument("server.log_format: " + st.message());
  RETURN_IF_ERROR(Get(s, "server", "max_start_attempts", c.max_start_attempts));
  RETURN_IF_ERROR(IntInRange("server.max_start_attempts", c.max_start_attempts, 1, 1000));
  RETURN_IF_ERROR(Get(s, "server", "stall_timeout_s", c.stall_timeout_s));
  if (c.stall_timeout_s < 0) return InvalidArgument("server.stall_timeout_s: must be >= 0 (0 = automatic)");
  RETURN_IF_ERROR(Get(s, "server", "keep_running_without_groups", c.keep_running_without_groups));
  RETURN_IF_ERROR(ParseTls(s, base_dir, c.tls));
  if (s.contains("auth")) {
    RETURN_IF_ERROR(CheckKeys(s.at("auth"), "server.auth", {"api_keys_file", "metrics_open"}));
    RETURN_IF_ERROR(GetPath(s.at("auth"), "server.auth", "api_keys_file", base_dir, c.api_keys_file));
    RETURN_IF_ERROR(Get(s.at("auth"), "server.auth", "metrics_open", c.metrics_open));
  }
  RETURN_IF_ERROR(Get(s, "server", "reflection", c.reflection));
  return Status::Ok();
}

Status ParseDevices(const json& g, const std::string& where, int total, std::vector<std::string>& out) {
  static const std::regex kDevice(R"(cpu|cuda:\d+)");
  if (!g.contains("devices")) {
    out.assign(total, "cpu");
    return Status::Ok();
  }
  const json& d = g.at("devices");
  if (d.is_string()) {
    std::string dev = d.get<std::string>();
    if (dev != "cpu") return InvalidArgument(where + ".devices: a single string may only be \"cpu\"; list cuda devices one per rank");
    out.assign(total, dev);
    return Status::Ok();
  }
  if (!d.is_array()) return InvalidArgument(where + ".devices: must be \"cpu\" or a list of \"cpu\"/\"cuda:N\"");
  if (static_cast<int>(d.size()) != total) {
    return InvalidArgument(where + ".devices: " + std::to_string(d.size()) + " entries, need ranks*count = " +
                           std::to_string(total));
  }
  std::set<std::string> seen;
  for (const auto& e : d) {
    if (!e.is_string() || !std::regex_match(e.get<std::string>(), kDevice)) {
      return InvalidArgument(where + ".devices: entries must be \"cpu\" or \"cuda:N\"");
    }
    std::string dev = e.get<std::string>();
    if (dev != "cpu" && !seen.insert(dev).second) return InvalidArgument(where + ".devices: " + dev + " listed twice");
    out.push_back(dev);
  }
  return Status::Ok();
}

}  // namespace

Status CheckListenAddress(const std::string& key, const std::string& address, bool may_be_empty) {
  if (address.empty()) {
    return may_be_empty ? Status::Ok() : InvalidArgument(key + ": required (HOST:PORT)");
  }
  // HOST:PORT, HOST an IPv4 address, a name, or a bracketed IPv6 address. A port above 65535 would
  // wrap around in the socket layer and listen somewhere else than the operator asked for.
  if (address.find("://") != std::string::npos) {
    return InvalidArgument(key + ": \"" + Echo(address) + "\" is not HOST:PORT (no scheme)");
  }
  const size_t colon = address.rfind(':');
  const std::string port = colon == std::string::npos ? "" : address.substr(colon + 1);
  if (colon == 0 || port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) < 1 || std::stoi(port) > 65535) {
    return InvalidArgument(key + ": \"" + Echo(address) + "\" is not HOST:PORT with PORT in [1, 65535]");
  }
  return Status::Ok();
}

std::string GroupConfig::Layout() const {
  return "cfg" + std::to_string(cfg) + "xulysses" + std::to_string(ulysses) + "xring" + std::to_string(ring);
}

StatusOr<ServerConfig> ParseConfig(const std::string& json_text, const std::string& base_dir) {
  // nlohmann keeps the last of duplicate keys; a config that says a setting twice is a mistake to
  // report, not to resolve silently. The parser callback sees each object's keys in order.
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto check_duplicates = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty() && duplicate.empty()) {
      if (!open_objects.back().insert(parsed.get<std::string>()).second) duplicate = parsed.get<std::string>();
    }
    return true;
  };
  json root;
  try {
    root = json::parse(json_text, check_duplicates);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers such as 1e752
    return InvalidArgument("config: invalid JSON: " + Echo(e.what(), 256));  // what() quotes the input
  }
  if (!duplicate.empty()) return InvalidArgument("config: key \"" + Echo(duplicate) + "\" appears twice in one object");
  ServerConfig c;
  RETURN_IF_ERROR(CheckKeys(root, "config", {"server", "models", "groups"}));
  if (root.contains("server")) RETURN_IF_ERROR(ParseServer(root.at("server"), base_dir, c));

  if (!root.contains("models") || !root.at("models").is_array() || root.at("models").empty()) {
    return InvalidArgument("models: need a non-empty list of {\"name\", \"path\"}");
  }
  std::set<std::string> names;
  for (size_t i = 0; i < root.at("models").size(); ++i) {
    const json& m = root.at("models")[i];
    std::string where = "models[" + std::to_string(i) + "]";
    RETURN_IF_ERROR(CheckKeys(m, where, {"name", "path"}));
    ModelConfig mc;
    RETURN_IF_ERROR(Get(m, where, "name", mc.name));
    RETURN_IF_ERROR(Get(m, where, "path", mc.path));
    if (mc.name.empty()) return InvalidArgument(where + ".name: required");
    if (mc.path.empty()) return InvalidArgument(where + ".path: required");
    if (!names.insert(mc.name).second) return InvalidArgument(where + ".name: duplicate model name " + mc.name);
    std::filesystem::path p(mc.path);
    if (p.is_relative() && !base_dir.empty()) p = std::filesystem::path(base_dir) / p;
    mc.path = p.lexically_normal().string();
    c.models.push_back(mc);
  }

  if (!root.contains("groups") || !root.at("groups").is_array() || root.at("groups").empty()) {
    return InvalidArgument("groups: need a non-empty list of worker groups");
  }
  std::set<std::string> cuda_used;
  for (size_t i = 0; i < root.at("groups").size(); ++i) {
    const json& g = root.at("groups")[i];
    std::string where = "groups[" + std::to_string(i) + "]";
    RETURN_IF_ERROR(CheckKeys(g, where, {"model", "count", "ranks", "devices", "layout", "fp8_attention"}));
    GroupConfig gc;
    RETURN_IF_ERROR(Get(g, where, "model", gc.model));
    if (!names.count(gc.model)) return InvalidArgument(where + ".model: unknown model '" + gc.model + "'");
    int count = 1;
    RETURN_IF_ERROR(Get(g, where, "count", count));
    RETURN_IF_ERROR(IntInRange(where + ".count", count, 1, 256));
    RETURN_IF_ERROR(Get(g, where, "ranks", gc.ranks));
    RETURN_IF_ERROR(IntInRange(where + ".ranks", gc.ranks, 1, 64));
    if (g.contains("layout")) {
      const json& l = g.at("layout");
      RETURN_IF_ERROR(CheckKeys(l, where + ".layout", {"cfg", "ulysses", "ring"}));
      RETURN_IF_ERROR(Get(l, where + ".layout", "cfg", gc.cfg));
      RETURN_IF_ERROR(Get(l, where + ".layout", "ulysses", gc.ulysses));
      RETURN_IF_ERROR(Get(l, where + ".layout", "ring", gc.ring));
      RETURN_IF_ERROR(IntInRange(where + ".layout.cfg", gc.cfg, 1, 2));
      RETURN_IF_ERROR(IntInRange(where + ".layout.ulysses", gc.ulysses, 1, 64));
      RETURN_IF_ERROR(IntInRange(where + ".layout.ring", gc.ring, 1, 64));
    } else {
      gc.ulysses = gc.ranks;  // default layout: all ranks on the Ulysses axis
    }
    if (gc.cfg * gc.ulysses * gc.ring != gc.ranks) {
      return InvalidArgument(where + ".layout: cfg*ulysses*ring = " + std::to_string(gc.cfg * gc.ulysses * gc.ring) +
                             " must equal ranks = " + std::to_string(gc.ranks));
    }
    RETURN_IF_ERROR(Get(g, where, "fp8_attention", gc.fp8_attention));
    std::vector<std::string> devices;
    RETURN_IF_ERROR(ParseDevices(g, where, gc.ranks * count, devices));
    for (const auto& d : devices) {
      if (d != "cpu" && !cuda_used.insert(d).second) {
        return InvalidArgument(where + ".devices: " + d + " is already used by another group");
      }
    }
    for (int k = 0; k < count; ++k) {
      GroupConfig inst = gc;
      inst.id = static_cast<int>(c.groups.size());
      inst.devices.assign(devices.begin() + k * gc.ranks, devices.begin() + (k + 1) * gc.ranks);
      c.groups.push_back(inst);
    }
  }
  return c;
}

StatusOr<ServerConfig> LoadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("config: cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto base = std::filesystem::absolute(path).parent_path().string();
  auto cfg = ParseConfig(ss.str(), base);
  if (!cfg.ok()) return Status(cfg.status().code(), path + ": " + cfg.status().message());
  return cfg;
}

}  // namespace ditserve::server
