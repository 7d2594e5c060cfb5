// ditctl models / status / health.
#include <grpcpp/generic/generic_stub.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <vector>

#include "ctl.h"

namespace ditctl {
namespace {

std::string RangeStr(const v1::Range& r) {
  if (r.max() == 0) return "-";
  std::string s = r.min() == r.max() ? std::to_string(r.min()) : std::to_string(r.min()) + "-" + std::to_string(r.max());
  if (r.multiple_of() > 1) s += "/" + std::to_string(r.multiple_of());
  return s + " (" + std::to_string(r.default_value()) + ")";
}

void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w;
  for (const auto& r : rows) {
    w.resize(std::max(w.size(), r.size()));
    for (size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(w[i] - r[i].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

}  // namespace

int Models(Ctl& ctl, double timeout) {
  grpc::ClientContext ctx;
  PrepareCall(ctl, ctx, timeout);
  ActiveCall guard(&ctx);
  v1::ListModelsResponse resp;
  grpc::Status st = ctl.stub->ListModels(&ctx, v1::ListModelsRequest(), &resp);
  if (!st.ok()) return ctl.Fail(st);
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "FAMILY", "KIND", "WEIGHTS", "WIDTH", "HEIGHT", "FRAMES", "STEPS", "GUIDANCE", "FORMATS", "GROUPS"}};
  for (const auto& m : resp.models()) {
    std::string formats;
    for (int f : m.output_formats()) {
      formats += (formats.empty() ? "" : ",") + std::string(FormatName(static_cast<v1::OutputFormat>(f)));
    }
    rows.push_back({m.name(), m.family(), m.video() ? "video" : "image", m.weights().empty() ? "-" : m.weights(),
                    RangeStr(m.width()),
                    RangeStr(m.height()), m.video() ? RangeStr(m.num_frames()) : "-",
                    RangeStr(m.num_inference_steps()),
                    Fmt("%g", m.default_guidance_scale()) + (m.guidance_embeds() ? " (distilled)" : ""),
                    formats.empty() ? "-" : formats, std::to_string(m.groups())});
  }
  PrintTable(rows);
  return kExitOk;
}

int ServerStatusCmd(Ctl& ctl, double timeout) {
  grpc::ClientContext ctx;
  PrepareCall(ctl, ctx, timeout);
  ActiveCall guard(&ctx);
  v1::ServerStatus s;
  grpc::Status st = ctl.stub->GetServerStatus(&ctx, v1::GetServerStatusRequest(), &s);
  if (!st.ok()) return ctl.Fail(st);
  std::printf("ditserve %s at %s, up %s, queue %u/%u%s\n\n", s.version().c_str(), ctl.addr.c_str(),
              Fmt("%.0fs", s.uptime_seconds()).c_str(), s.queue_depth(), s.queue_capacity(),
              s.draining() ? ", DRAINING" : "");
  std::vector<std::vector<std::string>> rows = {
      {"GROUP", "MODEL", "RANKS", "LAYOUT", "DEVICES", "STATE", "REQUEST", "RESTARTS", "COMPLETED"}};
  for (const auto& g : s.groups()) {
    std::string devices;
    for (const auto& d : g.devices()) devices += (devices.empty() ? "" : ",") + d;
    std::string state = v1::GroupState_Name(g.state());
    state = state.rfind("GROUP_STATE_", 0) == 0 ? state.substr(12) : state;
    for (char& c : state) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    rows.push_back({std::to_string(g.id()), g.model(), std::to_string(g.ranks()),
                    g.layout() + (g.fp8_attention() ? " fp8-attention" : ""),
                    devices.empty() ? "-" : devices, state, g.request_id().empty() ? "-" : g.request_id(),
                    std::to_string(g.restarts()), std::to_string(g.completed())});
  }
  PrintTable(rows);
  for (const auto& g : s.groups()) {
    if (!g.failure().empty()) std::printf("\ngroup %u: %s", g.id(), g.failure().c_str());
  }
  return kExitOk;
}

// grpc.health.v1.Health/Check through a generic stub with hand-encoded protobuf (Debian ships no
// health.proto): HealthCheckRequest{string service = 1}, HealthCheckResponse{ServingStatus status = 1}.
int Health(Ctl& ctl, const std::string& service, double timeout) {
  std::string req;
  if (!service.empty()) {
    req += '\x0a';
    for (size_t n = service.size(); ; n >>= 7) {  // varint length
      req += static_cast<char>((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
      if (n <= 0x7f) break;
    }
    req += service;
  }
  grpc::Slice slice(req);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext ctx;
  PrepareCall(ctl, ctx, timeout);
  ActiveCall guard(&ctx);
  grpc::CompletionQueue cq;
  grpc::GenericStub stub(ctl.channel);
  auto call = stub.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", request, &cq);
  grpc::Status st;
  call->StartCall();
  call->Finish(&response, &st, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (st.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    return ctl.Fail("UNIMPLEMENTED", "the server at " + ctl.addr + " has no grpc.health.v1.Health service", kExitError);
  }
  if (!st.ok()) return ctl.Fail(st);
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (response.Dump(&slices).ok()) {
    for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  // The only field is 1 (varint; values 0..3 fit in one byte); absent means UNKNOWN (0).
  int status = bytes.size() >= 2 && bytes[0] == '\x08' ? static_cast<unsigned char>(bytes[1]) : 0;
  static const char* kNames[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};
  std::printf("%s\n", status >= 0 && status < 4 ? kNames[status] : "UNKNOWN");
  return status == 1 ? kExitOk : kExitError;
}

}  // namespace ditctl
