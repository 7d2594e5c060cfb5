// A result's encoded output on a stream: split into a Result (header + first part) and ResultChunk
// events by the sender, checked and put back together by the receiver. The protocol is documented on
// ditserve.v1.Result; the worker, the coordinator and ditctl all use this one implementation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "ditserve/status.h"
#include "ditserve/v1/ditserve.pb.h"

namespace ditserve::server {

// Sends `header` with data = the first min(size, chunk_bytes) bytes and data_size = size, then the rest
// as ResultChunks of at most chunk_bytes, in order. Returns false as soon as a send returns false (the
// receiver went away). chunk_bytes must be > 0.
bool SendChunked(v1::Result header, const uint8_t* data, size_t size, uint64_t chunk_bytes,
                 const std::function<bool(v1::Result&&)>& send_result,
                 const std::function<bool(v1::ResultChunk&&)>& send_chunk);

// Follows one stream's Result and ResultChunks: checks order, offsets and sizes against data_size and,
// when keeping data, concatenates the bytes. Errors name what is wrong (InvalidArgument); a failed Add
// leaves the assembler unusable.
class ResultAssembler {
 public:
  explicit ResultAssembler(bool keep_data = true) : keep_data_(keep_data) {}

  Status Add(const v1::Result& result);      // the header; exactly once, before any chunk
  Status Add(const v1::ResultChunk& chunk);  // the next piece

  bool has_result() const { return has_result_; }
  bool complete() const { return has_result_ && received_ == expected_; }
  uint64_t received() const { return received_; }
  uint64_t expected() const { return expected_; }
  // Error unless complete(): "N of M bytes".
  Status CheckComplete() const;
  // The Result with the whole output in data (keep_data only); the assembler is empty afterwards.
  StatusOr<v1::Result> Take();

 private:
  const bool keep_data_;
  bool has_result_ = false;
  uint64_t received_ = 0, expected_ = 0;
  v1::Result result_;
};

}  // namespace ditserve::server
