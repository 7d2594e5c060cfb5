// Decoding a Generate request from its wire bytes at the edge. gRPC's generated handler would parse
// it for us, but a parse failure then reaches the client as INTERNAL with an empty message, is never
// counted, and protobuf logs an ERROR line per request with invalid UTF-8 in a string field (a log
// flood anyone can trigger). Decoding here turns each into INVALID_ARGUMENT naming the field.
#pragma once

#include <string_view>

#include "ditserve/status.h"
#include "ditserve/v1/ditserve.pb.h"

namespace ditserve::server {

// The byte offset of the first invalid UTF-8 sequence in `s` (overlong forms, surrogates and code points
// above U+10FFFF included, as protobuf checks them), or npos when `s` is valid.
size_t FindInvalidUtf8(std::string_view s);

// INVALID_ARGUMENT naming the string field with invalid UTF-8 (and where), or saying the bytes are not
// a GenerateRequest at all.
StatusOr<v1::GenerateRequest> DecodeGenerateRequest(std::string_view wire);

}  // namespace ditserve::server
