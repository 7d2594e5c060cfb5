#include "server/log_format.h"

#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "server/config.h"

namespace ditserve::server {
namespace {

// Logs through the default logger, as ditserve does, into a string.
class LogFormatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_ = spdlog::default_logger();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>(
        "test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)));
  }
  void TearDown() override { spdlog::set_default_logger(saved_); }
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> saved_;
};

TEST_F(LogFormatTest, JsonIsOneObjectPerLineWithTheMessageEscaped) {
  ConfigureLogging("json", "worker g0r1");
  spdlog::warn("group {}: \"quoted\"\tand\nnewline \\ {}", 3, "\xff");  // invalid UTF-8 too
  spdlog::info("second");
  std::istringstream lines(out_.str());
  std::string line;
  ASSERT_TRUE(std::getline(lines, line));
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j.at("level"), "warning");
  EXPECT_EQ(j.at("source"), "worker g0r1");
  EXPECT_EQ(j.at("msg"), "group 3: \"quoted\"\tand\nnewline \\ \xEF\xBF\xBD");  // U+FFFD for the bad byte
  EXPECT_EQ(j.at("time").get<std::string>().size(), std::string("2026-12-05T07:24:16.123456+00:00").size());
  ASSERT_TRUE(std::getline(lines, line));
  EXPECT_EQ(nlohmann::json::parse(line).at("msg"), "second");
  EXPECT_FALSE(std::getline(lines, line));
}

TEST_F(LogFormatTest, TextKeepsTheBracketedPattern) {
  ConfigureLogging("text", "coordinator");
  spdlog::info("hello");
  const std::string s = out_.str();
  EXPECT_NE(s.find("] [coordinator] [info] hello\n"), std::string::npos) << s;
  EXPECT_EQ(s[0], '[');
}

TEST(LogFormat, ConfigKeyIsCheckedAndNamed) {
  EXPECT_TRUE(CheckLogFormat("text").ok());
  EXPECT_TRUE(CheckLogFormat("json").ok());
  auto c = ParseConfig(R"({"server": {"log_format": "json"}, "models": [{"name": "m", "path": "/m"}],
    "groups": [{"model": "m"}]})", "/");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->log_format, "json");
  auto d = ParseConfig(R"({"models": [{"name": "m", "path": "/m"}], "groups": [{"model": "m"}]})", "/");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->log_format, "text");
  auto bad = ParseConfig(R"({"server": {"log_format": "xml"}, "models": [{"name": "m", "path": "/m"}],
    "groups": [{"model": "m"}]})", "/");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "server.log_format: \"xml\" is not one of text, json");
}

}  // namespace
}  // namespace ditserve::server
