#include "server/result_stream.h"

#include <algorithm>

namespace ditserve::server {

bool SendChunked(v1::Result header, const uint8_t* data, size_t size, uint64_t chunk_bytes,
                 const std::function<bool(v1::Result&&)>& send_result,
                 const std::function<bool(v1::ResultChunk&&)>& send_chunk) {
  const auto chunk = static_cast<size_t>(std::max<uint64_t>(chunk_bytes, 1));
  size_t pos = std::min(size, chunk);
  header.set_data(reinterpret_cast<const char*>(data), pos);
  header.set_data_size(size);
  if (!send_result(std::move(header))) return false;
  while (pos < size) {
    const size_t n = std::min(chunk, size - pos);
    v1::ResultChunk c;
    c.set_offset(pos);
    c.set_data(reinterpret_cast<const char*>(data + pos), n);
    if (!send_chunk(std::move(c))) return false;
    pos += n;
  }
  return true;
}

Status ResultAssembler::Add(const v1::Result& result) {
  if (has_result_) return InvalidArgument("result stream: a second Result");
  if (result.data().size() > result.data_size()) {
    return InvalidArgument("result stream: Result.data has " + std::to_string(result.data().size()) +
                           " bytes, more than data_size " + std::to_string(result.data_size()));
  }
  has_result_ = true;
  expected_ = result.data_size();
  received_ = result.data().size();
  if (keep_data_) {
    result_ = result;
    // A hostile data_size must not make us allocate it up front; the pieces grow the buffer anyway.
    result_.mutable_data()->reserve(static_cast<size_t>(std::min<uint64_t>(expected_, uint64_t{1} << 30)));
  }
  return Status::Ok();
}

Status ResultAssembler::Add(const v1::ResultChunk& chunk) {
  if (!has_result_) return InvalidArgument("result stream: a ResultChunk before the Result");
  if (chunk.offset() != received_) {
    return InvalidArgument("result stream: ResultChunk at offset " + std::to_string(chunk.offset()) + ", expected " +
                           std::to_string(received_));
  }
  if (chunk.data().empty()) return InvalidArgument("result stream: an empty ResultChunk");
  if (chunk.data().size() > expected_ - received_) {
    return InvalidArgument("result stream: ResultChunk of " + std::to_string(chunk.data().size()) +
                           " bytes at offset " + std::to_string(received_) + " overruns data_size " +
                           std::to_string(expected_));
  }
  received_ += chunk.data().size();
  if (keep_data_) result_.mutable_data()->append(chunk.data());
  return Status::Ok();
}

Status ResultAssembler::CheckComplete() const {
  if (!has_result_) return InvalidArgument("result stream: no Result");
  if (received_ != expected_) {
    return InvalidArgument("result stream: ended after " + std::to_string(received_) + " of " +
                           std::to_string(expected_) + " bytes");
  }
  return Status::Ok();
}

StatusOr<v1::Result> ResultAssembler::Take() {
  if (!keep_data_) return Internal("result stream: this assembler does not keep data");
  RETURN_IF_ERROR(CheckComplete());
  v1::Result out = std::move(result_);
  result_ = v1::Result();
  has_result_ = false;
  received_ = expected_ = 0;
  return out;
}

}  // namespace ditserve::server
