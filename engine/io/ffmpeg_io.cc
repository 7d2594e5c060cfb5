#include "engine/io/ffmpeg_io.h"

#include <algorithm>
#include <cstring>

extern "C" {
#include <libavutil/error.h>
#include <libavutil/mem.h>
}

namespace ditserve::io::ffmpeg {
namespace {

#if LIBAVFORMAT_VERSION_MAJOR >= 61
using WriteBuf = const uint8_t*;  // FFmpeg 7 made the write callback's buffer const
#else
using WriteBuf = uint8_t*;
#endif

int WritePacket(void* opaque, WriteBuf buf, int size) {
  auto* c = static_cast<Cursor*>(opaque);
  std::vector<uint8_t>& bytes = c->file->bytes;
  const size_t end = static_cast<size_t>(c->pos) + static_cast<size_t>(size);
  if (end > bytes.size()) bytes.resize(end);
  std::memcpy(bytes.data() + c->pos, buf, static_cast<size_t>(size));
  c->pos = static_cast<int64_t>(end);
  return size;
}

int ReadPacket(void* opaque, uint8_t* buf, int size) {
  auto* c = static_cast<Cursor*>(opaque);
  const auto total = static_cast<int64_t>(c->file->bytes.size());
  if (c->pos >= total) return AVERROR_EOF;
  const int n = static_cast<int>(std::min<int64_t>(size, total - c->pos));
  std::memcpy(buf, c->file->bytes.data() + c->pos, static_cast<size_t>(n));
  c->pos += n;
  return n;
}

int64_t Seek(void* opaque, int64_t offset, int whence) {
  auto* c = static_cast<Cursor*>(opaque);
  const auto total = static_cast<int64_t>(c->file->bytes.size());
  int64_t pos = 0;
  switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE: return total;
    case SEEK_SET: pos = offset; break;
    case SEEK_CUR: pos = c->pos + offset; break;
    case SEEK_END: pos = total + offset; break;
    default: return AVERROR(EINVAL);
  }
  if (pos < 0) return AVERROR(EINVAL);
  c->pos = pos;  // past the end is allowed, as with files: a later write fills the gap with zeros
  return pos;
}

// io_open / io_close2 of a muxer writing to a MemoryFile (its opaque): the faststart pass reopens the
// output for reading; the new context gets its own cursor, owned by the context.
int OpenReadBack(AVFormatContext* s, AVIOContext** pb, const char*, int flags, AVDictionary**) {
  if (flags & AVIO_FLAG_WRITE) return AVERROR(ENOSYS);  // a muxer writing a second file: not supported
  auto cursor = std::make_unique<Cursor>(Cursor{static_cast<MemoryFile*>(s->opaque), 0});
  AvioPtr avio = NewMemoryAvio(cursor.get(), /*write=*/false);
  if (!avio) return AVERROR(ENOMEM);
  cursor.release();  // CloseReadBack deletes it with the context
  *pb = avio.release();
  return 0;
}

int CloseReadBack(AVFormatContext*, AVIOContext* pb) {
  if (pb == nullptr) return 0;
  delete static_cast<Cursor*>(pb->opaque);
  AvioFree()(pb);
  return 0;
}

constexpr int kAvioBuffer = 1 << 16;

}  // namespace

void AvioFree::operator()(AVIOContext* c) const {
  if (c == nullptr) return;
  av_freep(&c->buffer);
  avio_context_free(&c);
}

std::string AvError(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(err, buf, sizeof buf);
  return buf;
}

AvioPtr NewMemoryAvio(Cursor* cursor, bool write) {
  auto* buf = static_cast<unsigned char*>(av_malloc(kAvioBuffer));
  if (buf == nullptr) return nullptr;
  AVIOContext* pb = avio_alloc_context(buf, kAvioBuffer, write ? 1 : 0, cursor, write ? nullptr : ReadPacket,
                                       write ? WritePacket : nullptr, Seek);
  if (pb == nullptr) av_free(buf);
  return AvioPtr(pb);
}

void UseMemoryOutput(AVFormatContext* fmt, AVIOContext* pb, MemoryFile* file) {
  fmt->pb = pb;
  fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
  fmt->opaque = file;
  fmt->io_open = OpenReadBack;
  fmt->io_close2 = CloseReadBack;
}

}  // namespace ditserve::io::ffmpeg
