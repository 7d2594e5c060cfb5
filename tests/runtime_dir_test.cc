// The coordinator's private runtime directory (issue 19, defect 12: /tmp/ditserve-<pid> was predictable,
// world-traversable and never removed).
#include "server/runtime_dir.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "server/rate_limited_log.h"
#include "support/test_env.h"

namespace ditserve::server {
namespace {

namespace fs = std::filesystem;

TEST(RuntimeDir, PrivateRandomAndRemoved) {
  const std::string parent = testing::MakeTempDir("ditserve-rtdir");
  std::string a_path, b_path;
  {
    auto a = RuntimeDir::Create(parent + "/sub");  // the parent is made when missing
    auto b = RuntimeDir::Create(parent + "/sub");
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    a_path = (*a)->path();
    b_path = (*b)->path();
    EXPECT_NE(a_path, b_path);
    EXPECT_EQ(fs::path(a_path).filename().string().rfind("ditserve-", 0), 0u);
    EXPECT_NE(fs::path(a_path).filename().string(), "ditserve-" + std::to_string(getpid()));
    struct stat st;
    ASSERT_EQ(stat(a_path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    std::ofstream(a_path + "/g0r0.sock") << "x";
  }
  EXPECT_FALSE(fs::exists(a_path));
  EXPECT_FALSE(fs::exists(b_path));
}

TEST(RuntimeDir, RemovesStaleDirectoriesOfDeadOwnersOnly) {
  const std::string parent = testing::MakeTempDir("ditserve-rtdir");
  // A pid that is certainly gone: a child that exited and was reaped.
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  waitpid(dead, nullptr, 0);
  fs::create_directories(parent + "/ditserve-stale1");
  std::ofstream(parent + "/ditserve-stale1/owner.pid") << dead << "\n";
  fs::create_directories(parent + "/ditserve-alive1");
  std::ofstream(parent + "/ditserve-alive1/owner.pid") << getpid() << "\n";
  fs::create_directories(parent + "/ditserve-nofile");
  fs::create_directories(parent + "/other-dir");
  std::ofstream(parent + "/other-dir/owner.pid") << dead << "\n";

  auto d = RuntimeDir::Create(parent);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_FALSE(fs::exists(parent + "/ditserve-stale1"));
  EXPECT_TRUE(fs::exists(parent + "/ditserve-alive1"));
  EXPECT_TRUE(fs::exists(parent + "/ditserve-nofile"));
  EXPECT_TRUE(fs::exists(parent + "/other-dir"));
}

TEST(RuntimeDir, UnwritableParentIsAClearError) {
  // /proc refuses new directories even to root.
  auto d = RuntimeDir::Create("/proc/ditserve-cannot");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(d.status().message().find("server.runtime_dir"), std::string::npos) << d.status().message();
}

TEST(RateLimitedLog, OneLinePerInterval) {
  RateLimitedLog log(std::chrono::hours(1));
  EXPECT_TRUE(log.Warn("first"));
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(log.Warn("again"));
  EXPECT_EQ(log.suppressed_total(), 1000u);
  RateLimitedLog fast(std::chrono::milliseconds(0));
  EXPECT_TRUE(fast.Warn("a"));
  EXPECT_TRUE(fast.Warn("b"));
}

}  // namespace
}  // namespace ditserve::server
