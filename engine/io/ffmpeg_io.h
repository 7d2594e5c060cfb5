// FFmpeg plumbing shared by the MP4 encoder and its tests: owning pointers for FFmpeg objects and an
// in-memory, seekable, read-back-able file behind AVIOContexts. Include only from .cc files.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/dict.h>
#include <libswscale/swscale.h>
}

namespace ditserve::io::ffmpeg {

struct CodecContextFree {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct OutputFormatFree {  // a muxer context: never owns a custom pb
  void operator()(AVFormatContext* c) const { avformat_free_context(c); }
};
struct InputFormatFree {  // a demuxer context opened by avformat_open_input
  void operator()(AVFormatContext* c) const { avformat_close_input(&c); }
};
struct FrameFree {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketFree {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsFree {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};
struct AvioFree {  // a custom AVIOContext and its buffer (which FFmpeg may have reallocated)
  void operator()(AVIOContext* c) const;
};
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextFree>;
using OutputFormatPtr = std::unique_ptr<AVFormatContext, OutputFormatFree>;
using InputFormatPtr = std::unique_ptr<AVFormatContext, InputFormatFree>;
using FramePtr = std::unique_ptr<AVFrame, FrameFree>;
using PacketPtr = std::unique_ptr<AVPacket, PacketFree>;
using SwsPtr = std::unique_ptr<SwsContext, SwsFree>;
using AvioPtr = std::unique_ptr<AVIOContext, AvioFree>;

class Dict {  // an owned AVDictionary (options passed to *_open / write_header)
 public:
  Dict() = default;
  Dict(const Dict&) = delete;
  Dict& operator=(const Dict&) = delete;
  ~Dict() { av_dict_free(&d_); }
  void Set(const char* key, const std::string& value) { av_dict_set(&d_, key, value.c_str(), 0); }
  AVDictionary** get() { return &d_; }

 private:
  AVDictionary* d_ = nullptr;
};

std::string AvError(int err);  // av_strerror's text

// A file in memory. Every AVIOContext on it has its own Cursor (position), like file descriptors on one
// file: the mp4 muxer's `+faststart` pass reads the output back through a second context while still
// writing through the first.
struct MemoryFile {
  std::vector<uint8_t> bytes;
};
struct Cursor {
  MemoryFile* file = nullptr;
  int64_t pos = 0;
};

// A seekable AVIOContext on cursor->file, for writing or for reading. nullptr when out of memory.
AvioPtr NewMemoryAvio(Cursor* cursor, bool write);

// Makes a muxer write to `file` through `pb` (a NewMemoryAvio writer) and lets it reopen the output for
// reading (AVFormatContext io_open/io_close2), which `+faststart` needs.
void UseMemoryOutput(AVFormatContext* fmt, AVIOContext* pb, MemoryFile* file);

}  // namespace ditserve::io::ffmpeg
