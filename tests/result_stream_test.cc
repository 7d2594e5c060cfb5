// server/result_stream: splitting an output into Result + ResultChunks and reassembling it, including
// every malformed stream the receiver must refuse.
#include "server/result_stream.h"

#include <gtest/gtest.h>

namespace ditserve::server {
namespace {

std::string Bytes(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + 7) % 251);
  return s;
}

struct Sent {
  v1::Result result;
  std::vector<v1::ResultChunk> chunks;
};

Sent Split(const std::string& data, uint64_t chunk) {
  Sent s;
  v1::Result header;
  header.set_mime_type("video/mp4");
  header.set_frames(49);
  EXPECT_TRUE(SendChunked(
      header, reinterpret_cast<const uint8_t*>(data.data()), data.size(), chunk,
      [&](v1::Result&& r) {
        s.result = std::move(r);
        return true;
      },
      [&](v1::ResultChunk&& c) {
        s.chunks.push_back(std::move(c));
        return true;
      }));
  return s;
}

TEST(ResultStream, SplitsAndReassemblesEverySize) {
  const uint64_t chunk = 1000;
  for (size_t n : {size_t{0}, size_t{1}, size_t{999}, size_t{1000}, size_t{1001}, size_t{2000}, size_t{3500}}) {
    const std::string data = Bytes(n);
    Sent s = Split(data, chunk);
    EXPECT_EQ(s.result.data_size(), n);
    EXPECT_EQ(s.result.data().size(), std::min<size_t>(n, chunk)) << n;
    EXPECT_EQ(s.result.mime_type(), "video/mp4");  // the header's other fields go through
    EXPECT_EQ(s.chunks.size(), n <= chunk ? 0 : (n - 1) / chunk) << n;  // small outputs: one message
    uint64_t offset = s.result.data().size();
    for (const auto& c : s.chunks) {
      EXPECT_EQ(c.offset(), offset);
      EXPECT_GT(c.data().size(), 0u);
      EXPECT_LE(c.data().size(), chunk);
      offset += c.data().size();
    }
    ResultAssembler a;
    ASSERT_TRUE(a.Add(s.result).ok());
    for (const auto& c : s.chunks) {
      EXPECT_FALSE(a.complete());
      ASSERT_TRUE(a.Add(c).ok());
    }
    EXPECT_TRUE(a.complete());
    auto r = a.Take();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->data(), data) << n;
    EXPECT_EQ(r->frames(), 49u);
  }
}

TEST(ResultStream, StopsWhenTheReceiverIsGone) {
  const std::string data = Bytes(5000);
  int chunks = 0;
  EXPECT_FALSE(SendChunked(
      v1::Result(), reinterpret_cast<const uint8_t*>(data.data()), data.size(), 1000,
      [](v1::Result&&) { return true; }, [&](v1::ResultChunk&&) { return ++chunks < 2; }));
  EXPECT_EQ(chunks, 2);
  EXPECT_FALSE(SendChunked(
      v1::Result(), reinterpret_cast<const uint8_t*>(data.data()), data.size(), 1000,
      [](v1::Result&&) { return false; }, [&](v1::ResultChunk&&) { return ++chunks > 0; }));
  EXPECT_EQ(chunks, 2);
}

TEST(ResultStream, VerifyOnlyModeChecksWithoutKeeping) {
  Sent s = Split(Bytes(2500), 1000);
  ResultAssembler a(/*keep_data=*/false);
  ASSERT_TRUE(a.Add(s.result).ok());
  ASSERT_TRUE(a.Add(s.chunks[0]).ok());
  EXPECT_FALSE(a.complete());
  EXPECT_NE(a.CheckComplete().message().find("after 2000 of 2500 bytes"), std::string::npos);
  ASSERT_TRUE(a.Add(s.chunks[1]).ok());
  EXPECT_TRUE(a.complete());
  EXPECT_TRUE(a.CheckComplete().ok());
  EXPECT_FALSE(a.Take().ok());
}

TEST(ResultStream, RefusesMalformedStreams) {
  const Sent s = Split(Bytes(2500), 1000);
  auto expect = [](const Status& st, const std::string& needle) {
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
    EXPECT_NE(st.message().find(needle), std::string::npos) << st.ToString();
  };
  {
    ResultAssembler a;
    expect(a.Add(s.chunks[0]), "before the Result");
    EXPECT_FALSE(a.has_result());
    expect(a.CheckComplete(), "no Result");
  }
  {
    ResultAssembler a;
    ASSERT_TRUE(a.Add(s.result).ok());
    expect(a.Add(s.result), "a second Result");
  }
  {
    ResultAssembler a;
    ASSERT_TRUE(a.Add(s.result).ok());
    expect(a.Add(s.chunks[1]), "at offset 2000, expected 1000");  // a chunk skipped
  }
  {
    ResultAssembler a;
    ASSERT_TRUE(a.Add(s.result).ok());
    ASSERT_TRUE(a.Add(s.chunks[0]).ok());
    expect(a.Add(s.chunks[0]), "at offset 1000, expected 2000");  // a chunk repeated
  }
  {
    ResultAssembler a;
    ASSERT_TRUE(a.Add(s.result).ok());
    ASSERT_TRUE(a.Add(s.chunks[0]).ok());
    v1::ResultChunk big = s.chunks[1];
    big.set_data(std::string(501, 'x'));
    expect(a.Add(big), "overruns data_size 2500");
    v1::ResultChunk empty = s.chunks[1];
    empty.clear_data();
    expect(a.Add(empty), "empty ResultChunk");
  }
  {
    ResultAssembler a;
    v1::Result r = s.result;
    r.set_data_size(10);
    expect(a.Add(r), "more than data_size 10");
  }
  {
    ResultAssembler a;  // the stream ended early
    ASSERT_TRUE(a.Add(s.result).ok());
    auto t = a.Take();
    ASSERT_FALSE(t.ok());
    expect(t.status(), "ended after 1000 of 2500 bytes");
  }
}

}  // namespace
}  // namespace ditserve::server
