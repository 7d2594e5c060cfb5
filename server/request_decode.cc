#include "server/request_decode.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/unknown_field_set.h>

namespace ditserve::server {

size_t FindInvalidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4, cp = c & 0x07;
    } else {
      return i;  // a continuation byte, C0/C1 (overlong) or F5..FF
    }
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    const bool overlong = (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (overlong || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return i;
    i += len;
  }
  return std::string_view::npos;
}

StatusOr<v1::GenerateRequest> DecodeGenerateRequest(std::string_view wire) {
  // The request's string fields are top-level; read them as unknown fields first (no UTF-8 check, no
  // log) and check each against the descriptor, so protobuf's own parse below never meets bad UTF-8.
  google::protobuf::UnknownFieldSet fields;
  if (!fields.ParseFromArray(wire.data(), static_cast<int>(wire.size()))) {
    return InvalidArgument("request: not a valid ditserve.v1.GenerateRequest message");
  }
  const google::protobuf::Descriptor* desc = v1::GenerateRequest::descriptor();
  for (int i = 0; i < fields.field_count(); ++i) {
    const auto& f = fields.field(i);
    if (f.type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) continue;
    const google::protobuf::FieldDescriptor* fd = desc->FindFieldByNumber(f.number());
    if (!fd || fd->type() != google::protobuf::FieldDescriptor::TYPE_STRING) continue;
    const size_t bad = FindInvalidUtf8(f.length_delimited());
    if (bad != std::string_view::npos) {
      return InvalidArgument(fd->name() + ": not valid UTF-8 (invalid byte sequence at byte " + std::to_string(bad) +
                             "); string fields must be UTF-8 text");
    }
  }
  v1::GenerateRequest req;
  if (!req.ParseFromArray(wire.data(), static_cast<int>(wire.size()))) {
    return InvalidArgument("request: not a valid ditserve.v1.GenerateRequest message");
  }
  return req;
}

}  // namespace ditserve::server
