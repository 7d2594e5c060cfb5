#include "server/config.h"

#include <gtest/gtest.h>

namespace ditserve::server {
namespace {

const char* kGood = R"({
  "server": {"grpc_address": "0.0.0.0:1234", "queue_capacity": 4},
  "models": [{"name": "m", "path": "models/m"}],
  "groups": [{"model": "m", "count": 2, "ranks": 2, "devices": ["cuda:0","cuda:1","cuda:2","cuda:3"],
              "layout": {"cfg": 1, "ulysses": 1, "ring": 2}}]
})";

TEST(Config, ParsesAndExpandsGroups) {
  auto c = ParseConfig(kGood, "/etc/ditserve");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->grpc_address, "0.0.0.0:1234");
  EXPECT_EQ(c->queue_capacity, 4u);
  EXPECT_EQ(c->models[0].path, "/etc/ditserve/models/m");
  ASSERT_EQ(c->groups.size(), 2u);
  EXPECT_EQ(c->groups[0].id, 0);
  EXPECT_EQ(c->groups[1].id, 1);
  EXPECT_EQ(c->groups[1].devices, (std::vector<std::string>{"cuda:2", "cuda:3"}));
  EXPECT_EQ(c->groups[0].Layout(), "cfg1xulysses1xring2");
}

TEST(Config, DefaultsLayoutToUlyssesAndCpu) {
  auto c = ParseConfig(R"({"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m","ranks":2}]})", "");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->groups[0].ulysses, 2);
  EXPECT_EQ(c->groups[0].devices, (std::vector<std::string>{"cpu", "cpu"}));
  EXPECT_EQ(c->metrics_address, "127.0.0.1:9090");
  EXPECT_EQ(c->video_crf, 18);
  EXPECT_EQ(c->result_chunk_bytes, uint64_t{1} << 20);
}

TEST(Config, VideoCrfAndResultChunkBytes) {
  auto c = ParseConfig(R"({"server":{"video_crf":0,"result_chunk_bytes":1024},
                           "models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})", "");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->video_crf, 0);
  EXPECT_EQ(c->result_chunk_bytes, 1024u);
  c = ParseConfig(R"({"server":{"video_crf":51,"result_chunk_bytes":3145728},
                      "models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})", "");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->video_crf, 51);
  EXPECT_EQ(c->result_chunk_bytes, 3145728u);
}

struct BadCase {
  const char* json;
  const char* expect;  // substring of the error, naming the key
};

void ExpectRejected(const BadCase& c) {
  auto r = ParseConfig(c.json, "");
  ASSERT_FALSE(r.ok()) << c.json;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status().message();
}

TEST(Config, RejectsWithTheKeyNamed) {
  const BadCase cases[] = {
      {"{", "invalid JSON"},
      {R"({"models":[],"groups":[]})", "models:"},
      {R"({"models":[{"name":"m","path":"/m"}],"groups":[{"model":"x"}]})", "groups[0].model: unknown model 'x'"},
      {R"({"server":{"queue_capacty":3},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "server.queue_capacty: unknown key"},
      {R"({"server":{"queue_capacity":0},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "server.queue_capacity: 0 out of range [1, 100000]"},
      {R"({"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m","ranks":4,"layout":{"ulysses":2}}]})",
       "groups[0].layout: cfg*ulysses*ring = 2 must equal ranks = 4"},
      {R"({"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m","ranks":2,"devices":["cuda:0"]}]})",
       "groups[0].devices: 1 entries, need ranks*count = 2"},
      {R"({"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m","devices":["gpu0"]}]})",
       "groups[0].devices: entries must be"},
      {R"({"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m","devices":["cuda:0"]},{"model":"m","devices":["cuda:0"]}]})",
       "groups[1].devices: cuda:0 is already used"},
      {R"({"models":[{"name":"m","path":"/m"},{"name":"m","path":"/n"}],"groups":[{"model":"m"}]})",
       "models[1].name: duplicate"},
      {R"({"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m","count":"two"}]})", "groups[0].count: wrong type"},
      {R"({"server":{"video_crf":52},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "server.video_crf: 52 out of range [0, 51]"},
      {R"({"server":{"video_crf":-1},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "server.video_crf: -1 out of range [0, 51]"},
      {R"({"server":{"video_crf":"high"},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "server.video_crf: wrong type"},
      {R"({"server":{"result_chunk_bytes":1023},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "server.result_chunk_bytes: 1023 out of range [1024, 3145728]"},
      {R"({"server":{"result_chunk_bytes":4194304},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "server.result_chunk_bytes: 4194304 out of range [1024, 3145728]"},
  };
  for (const auto& c : cases) ExpectRejected(c);
}

// Issue 19, defects 7 and 11: each of these was accepted (or crashed, or gave a confusing error) before.
TEST(Config, StrictNumbersKeysAndPorts) {
  const BadCase cases[] = {
      // ranks: 2.5 silently became 2.
      {R"({"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m","ranks":2.5}]})",
       "groups[0].ranks: must be an integer, got 2.5"},
      // Duplicate keys were last-wins.
      {R"({"server":{"queue_capacity":4,"queue_capacity":8},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "key \"queue_capacity\" appears twice"},
      {R"({"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}],"groups":[{"model":"m"}]})",
       "key \"groups\" appears twice"},
      // 1e30 gave a confusing error; 1e752 parses as infinity and converting it to an integer is UB.
      {R"({"server":{"queue_capacity":1e30},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "server.queue_capacity: number too large"},
      // 1e752 overflowed the JSON parser itself with an exception that escaped ParseConfig (a crash).
      {R"({"server":{"queue_capacity":1e752},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "invalid JSON: [json.exception.out_of_range.406] number overflow parsing '1e752'"},
      {R"({"server":{"drain_timeout_s":-1e752},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "number overflow"},
      {R"({"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m","count":18446744073709551615}]})",
       "groups[0].count: number too large"},
      {R"({"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m","ranks":4294967298}]})",
       "groups[0].ranks: 4294967298 out of range"},
      // Port 99999 wrapped around to another port.
      {R"({"server":{"grpc_address":"127.0.0.1:99999"},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "server.grpc_address: \"127.0.0.1:99999\" is not HOST:PORT with PORT in [1, 65535]"},
      {R"({"server":{"metrics_address":"127.0.0.1:0"},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "server.metrics_address:"},
      {R"({"server":{"grpc_address":"localhost"},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "server.grpc_address:"},
      {R"({"server":{"grpc_address":7},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "server.grpc_address: wrong type"},
      {R"({"server":{"cuda_graphs":1},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "server.cuda_graphs: wrong type"},
      {R"({"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m","fp8_attention":"yes"}]})",
       "groups[0].fp8_attention: wrong type"},
      {R"({"server":{"tls":{"cert_file":"c.pem"}},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "server.tls: needs cert_file and key_file"},
      {R"({"server":{"tls":{"cert":"c.pem"}},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "server.tls.cert: unknown key"},
      {R"({"server":{"auth":{"keys":"k"}},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "server.auth.keys: unknown key"},
  };
  for (const auto& c : cases) ExpectRejected(c);
  // Integers written as floats are still integers; IPv6 and empty metrics addresses are fine.
  auto ok = ParseConfig(R"({"server":{"queue_capacity":1e3,"grpc_address":"[::1]:50051","metrics_address":""},
                            "models":[{"name":"m","path":"/m"}],"groups":[{"model":"m","ranks":2.0}]})", "");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->queue_capacity, 1000u);
  EXPECT_EQ(ok->groups[0].ranks, 2);
  EXPECT_TRUE(CheckListenAddress("--grpc-address", "0.0.0.0:65535", false).ok());
  EXPECT_FALSE(CheckListenAddress("--grpc-address", "0.0.0.0:65536", false).ok());
  EXPECT_FALSE(CheckListenAddress("--grpc-address", "", false).ok());
  EXPECT_TRUE(CheckListenAddress("--metrics-address", "", true).ok());
}

// Echoed values are bounded: a huge key must not make a huge error.
TEST(Config, EchoesBoundedValues) {
  std::string big(100000, 'k');
  auto r = ParseConfig("{\"server\":{\"grpc_address\":\"" + big + ":99999\"},\"models\":[{\"name\":\"m\",\"path\":\"/m\"}],"
                       "\"groups\":[{\"model\":\"m\"}]}", "");
  ASSERT_FALSE(r.ok());
  EXPECT_LT(r.status().message().size(), 300u) << r.status().message().substr(0, 300);
}

TEST(Config, TlsAndAuthPathsAreRelativeToTheConfig) {
  auto c = ParseConfig(R"({"server": {"tls": {"cert_file": "s.pem", "key_file": "/k/s.key", "client_ca_file": "ca.pem"},
    "auth": {"api_keys_file": "keys"}}, "models": [{"name": "m", "path": "/m"}], "groups": [{"model": "m"}]})",
                       "/etc/ditserve");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->tls.cert_file, "/etc/ditserve/s.pem");
  EXPECT_EQ(c->tls.key_file, "/k/s.key");
  EXPECT_EQ(c->tls.client_ca_file, "/etc/ditserve/ca.pem");
  EXPECT_EQ(c->api_keys_file, "/etc/ditserve/keys");
  EXPECT_FALSE(c->reflection);
  EXPECT_FALSE(c->metrics_open);
}

// HTTPS metrics cannot work with the packaged civetweb (docs/hardening.md): asking for them is an error
// naming the alternative, never plain HTTP served where TLS was asked for. "https://HOST:PORT" used to
// pass the HOST:PORT check (its host "https://HOST") and then serve plain HTTP or fail to bind.
TEST(Config, HttpsMetricsAreRefusedClearly) {
  const BadCase cases[] = {
      {R"({"server":{"metrics_address":"https://127.0.0.1:9443"},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "server.metrics_address: HTTPS for /metrics is not supported"},
      {R"({"server":{"metrics_tls":{"cert_file":"m.pem"}},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "server.metrics_tls: HTTPS for /metrics is not supported"},
      {R"({"server":{"metrics_address":"http://127.0.0.1:9090"},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "server.metrics_address: \"http://127.0.0.1:9090\" is not HOST:PORT (no scheme)"},
      {R"({"server":{"metrics_address":"127.0.0.1:9443s"},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
       "server.metrics_address: \"127.0.0.1:9443s\" is not HOST:PORT"},
  };
  for (const auto& c : cases) ExpectRejected(c);
}

// server.store_host: where multi-rank groups' TCPStores listen (loopback unless set).
TEST(Config, StoreHostIsAnIpAddress) {
  auto c = ParseConfig(R"({"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})", "");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->store_host, "127.0.0.1");
  c = ParseConfig(R"({"server":{"store_host":"10.1.2.3"},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})", "");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->store_host, "10.1.2.3");
  ExpectRejected({R"({"server":{"store_host":"0.0.0.0:1"},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
                  "server.store_host: \"0.0.0.0:1\" is not an IP address"});
  ExpectRejected({R"({"server":{"store_host":"0.0.0.0"},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
                  "server.store_host: the store has no authentication"});
}

TEST(Config, PromptInMetadataDefaultsOn) {
  auto c = ParseConfig(R"({"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})", "");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->prompt_in_metadata);
  c = ParseConfig(R"({"server":{"prompt_in_metadata":false},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})", "");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->prompt_in_metadata);
  ExpectRejected({R"({"server":{"prompt_in_metadata":"no"},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
                  "server.prompt_in_metadata: wrong type"});
}

TEST(Config, DeviceMemoryLimitInMiB) {
  auto c = ParseConfig(R"({"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})", "");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->device_memory_limit_mib, 0);
  c = ParseConfig(R"({"server":{"device_memory_limit_mib":70000},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})", "");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->device_memory_limit_mib, 70000);
  ExpectRejected({R"({"server":{"device_memory_limit_mib":-1},"models":[{"name":"m","path":"/m"}],"groups":[{"model":"m"}]})",
                  "server.device_memory_limit_mib: -1 out of range [0, 1073741824]"});
}

TEST(Config, MissingFileIsNotFound) {
  auto r = LoadConfig("/nonexistent/ditserve.json");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

// The shipped example configs stay valid as the schema evolves.
TEST(Config, ExampleConfigsParse) {
  for (const char* name : {"quickstart.json", "flux-dev-h100x2.json", "flux-dev-2gpu-ulysses2.json"}) {
    auto c = LoadConfig(std::string(DITSERVE_SOURCE_DIR) + "/configs/" + name);
    EXPECT_TRUE(c.ok()) << name << ": " << c.status().ToString();
  }
}

TEST(Config, CacheAndGraphSettings) {
  auto c = ParseConfig(R"({"server": {"cache_warmup_steps": 2, "cache_max_consecutive_skips": 3, "cuda_graphs": true},
    "models": [{"name": "m", "path": "/m"}], "groups": [{"model": "m", "devices": "cpu"}]})", "/");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->cache_warmup_steps, 2);
  EXPECT_EQ(c->cache_max_consecutive_skips, 3);
  EXPECT_TRUE(c->cuda_graphs);
  EXPECT_FALSE(c->groups[0].fp8_attention);  // off unless asked
  auto fp8 = ParseConfig(R"({"models": [{"name": "m", "path": "/m"}],
    "groups": [{"model": "m", "devices": "cpu"}, {"model": "m", "devices": "cpu", "fp8_attention": true}]})", "/");
  ASSERT_TRUE(fp8.ok()) << fp8.status().ToString();
  EXPECT_FALSE(fp8->groups[0].fp8_attention);
  EXPECT_TRUE(fp8->groups[1].fp8_attention);
  auto bad = ParseConfig(R"({"server": {"cache_warmup_steps": 0}, "models": [{"name": "m", "path": "/m"}],
    "groups": [{"model": "m", "devices": "cpu"}]})", "/");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("server.cache_warmup_steps"), std::string::npos) << bad.status().ToString();
}

}  // namespace
}  // namespace ditserve::server
