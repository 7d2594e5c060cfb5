// Decoding Generate requests at the edge (issue 19, defect 9) and the bounded echo (defect 6).
#include "server/request_decode.h"

#include <gtest/gtest.h>

#include "server/echo.h"

namespace ditserve::server {
namespace {

TEST(Utf8, FindsTheFirstInvalidSequence) {
  EXPECT_EQ(FindInvalidUtf8(""), std::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("a red fox"), std::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("\xe7\x8c\xab \xf0\x9f\xa6\x8a"), std::string_view::npos);  // 猫 🦊
  EXPECT_EQ(FindInvalidUtf8("ab\xff"), 2u);
  EXPECT_EQ(FindInvalidUtf8("a\x80"), 1u);                  // lone continuation byte
  EXPECT_EQ(FindInvalidUtf8("\xc0\xaf"), 0u);               // overlong '/'
  EXPECT_EQ(FindInvalidUtf8("\xe0\x80\xaf"), 0u);           // overlong, 3 bytes
  EXPECT_EQ(FindInvalidUtf8("\xed\xa0\x80"), 0u);           // surrogate U+D800
  EXPECT_EQ(FindInvalidUtf8("\xf4\x90\x80\x80"), 0u);       // U+110000
  EXPECT_EQ(FindInvalidUtf8("x\xe7\x8c"), 1u);              // truncated sequence
}

std::string Wire(const v1::GenerateRequest& r) { return r.SerializeAsString(); }

// A GenerateRequest whose `prompt` (field 2) holds arbitrary bytes: the C++ API would refuse to
// serialize invalid UTF-8 only in debug builds, so the wire bytes are written by hand.
std::string WireWithRawPrompt(const std::string& bytes) {
  v1::GenerateRequest r;
  r.set_model("flux");
  std::string wire = r.SerializeAsString();
  wire += '\x12';  // field 2, length-delimited
  wire += static_cast<char>(bytes.size());
  return wire + bytes;
}

TEST(DecodeGenerateRequest, RoundTripsAValidRequest) {
  v1::GenerateRequest r;
  r.set_model("flux");
  r.set_prompt("\xe7\x8c\xab");
  r.set_seed(7);
  auto d = DecodeGenerateRequest(Wire(r));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->prompt(), r.prompt());
  EXPECT_EQ(d->seed(), 7u);
}

// Before: gRPC's parse failed with INTERNAL and an empty message, plus one ERROR log line per request.
TEST(DecodeGenerateRequest, InvalidUtf8NamesTheField) {
  auto d = DecodeGenerateRequest(WireWithRawPrompt("ok \xff\xfe"));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find("prompt: not valid UTF-8"), std::string::npos) << d.status().message();
  EXPECT_NE(d.status().message().find("at byte 3"), std::string::npos) << d.status().message();
}

TEST(DecodeGenerateRequest, GarbageIsInvalidArgument) {
  for (const std::string& wire : {std::string("\xff\xff\xff\xff", 4), std::string("\x12\x7f", 2),
                                  std::string("\x0a\x05" "ab", 4)}) {
    auto d = DecodeGenerateRequest(wire);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(d.status().message().find("not a valid ditserve.v1.GenerateRequest"), std::string::npos);
  }
}

TEST(Echo, TruncatesOnACharacterBoundaryAndHidesControls) {
  EXPECT_EQ(Echo("short"), "short");
  EXPECT_EQ(Echo("a\nb"), "a?b");
  std::string cjk;
  for (int i = 0; i < 100; ++i) cjk += "\xe7\x8c\xab";  // 300 bytes
  std::string e = Echo(cjk, 64);
  EXPECT_EQ(e.substr(0, 63), cjk.substr(0, 63));  // 21 whole characters, not 64 bytes
  EXPECT_EQ(e.substr(63), "... (300 bytes)");
}

}  // namespace
}  // namespace ditserve::server
