#include "support/mp4_decode.h"

#include <cmath>

#include "engine/io/ffmpeg_io.h"

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace ditserve::testing {
namespace {

using namespace io::ffmpeg;  // NOLINT(build/namespaces)

Status Fail(const std::string& what, int err) { return Internal("decode mp4: " + what + ": " + AvError(err)); }

uint64_t BigEndian(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

// Top-level ISO BMFF boxes: [size:32][type:4], size 1 = a 64-bit size follows, 0 = to the end of file.
StatusOr<std::vector<std::string>> TopLevelBoxes(const std::vector<uint8_t>& f) {
  std::vector<std::string> boxes;
  size_t pos = 0;
  while (pos < f.size()) {
    if (f.size() - pos < 8) return InvalidArgument("decode mp4: truncated box header at " + std::to_string(pos));
    uint64_t size = BigEndian(&f[pos], 4);
    boxes.emplace_back(reinterpret_cast<const char*>(&f[pos + 4]), 4);
    if (size == 1) {
      if (f.size() - pos < 16) return InvalidArgument("decode mp4: truncated large box at " + std::to_string(pos));
      size = BigEndian(&f[pos + 8], 8);
    } else if (size == 0) {
      size = f.size() - pos;
    }
    if (size < 8 || size > f.size() - pos) return InvalidArgument("decode mp4: bad box size at " + std::to_string(pos));
    pos += size;
  }
  return boxes;
}

// Converts one decoded frame to RGB24 with the frame's own colour tags, as a player would.
Status AppendRgb(const AVFrame* f, std::vector<uint8_t>& rgb) {
  SwsPtr sws(sws_getContext(f->width, f->height, static_cast<AVPixelFormat>(f->format), f->width, f->height,
                            AV_PIX_FMT_RGB24, SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr,
                            nullptr, nullptr));
  if (!sws) return Internal("decode mp4: no converter to RGB24");
  const int* coefficients = sws_getCoefficients(f->colorspace);  // SWS_CS_* share AVColorSpace's values
  sws_setColorspaceDetails(sws.get(), coefficients, f->color_range == AVCOL_RANGE_JPEG ? 1 : 0, coefficients, 1, 0,
                           1 << 16, 1 << 16);
  const size_t start = rgb.size();
  rgb.resize(start + static_cast<size_t>(f->width) * f->height * 3);
  uint8_t* dst[1] = {rgb.data() + start};
  const int dst_stride[1] = {3 * f->width};
  sws_scale(sws.get(), f->data, f->linesize, 0, f->height, dst, dst_stride);
  return Status::Ok();
}

Status Drain(AVCodecContext* dec, AVFrame* frame, DecodedVideo& out) {
  while (true) {
    int rc = avcodec_receive_frame(dec, frame);
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return Status::Ok();
    if (rc < 0) return Fail("receive_frame", rc);
    out.color_space = av_color_space_name(frame->colorspace);
    out.color_range = av_color_range_name(frame->color_range);
    RETURN_IF_ERROR(AppendRgb(frame, out.rgb));
    ++out.frames;
    av_frame_unref(frame);
  }
}

}  // namespace

StatusOr<DecodedVideo> DecodeMp4(const std::vector<uint8_t>& mp4) {
  DecodedVideo out;
  ASSIGN_OR_RETURN(out.top_level_boxes, TopLevelBoxes(mp4));

  MemoryFile file{mp4};
  Cursor cursor{&file, 0};
  AvioPtr avio = NewMemoryAvio(&cursor, /*write=*/false);
  AVFormatContext* raw = avformat_alloc_context();
  if (!avio || raw == nullptr) return Internal("decode mp4: out of memory");
  raw->pb = avio.get();
  int rc = avformat_open_input(&raw, nullptr, nullptr, nullptr);  // frees raw on failure
  if (rc < 0) return Fail("open_input", rc);
  InputFormatPtr fmt(raw);
  rc = avformat_find_stream_info(fmt.get(), nullptr);
  if (rc < 0) return Fail("find_stream_info", rc);
  const AVDictionaryEntry* tag = nullptr;
  while ((tag = av_dict_get(fmt->metadata, "", tag, AV_DICT_IGNORE_SUFFIX)) != nullptr) {
    out.metadata[tag->key] = tag->value;
  }

  const int index = av_find_best_stream(fmt.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (index < 0) return Fail("no video stream", index);
  const AVStream* st = fmt->streams[index];
  out.width = st->codecpar->width;
  out.height = st->codecpar->height;
  out.fps_num = st->avg_frame_rate.num;
  out.fps_den = st->avg_frame_rate.den;
  out.time_base_num = st->time_base.num;
  out.time_base_den = st->time_base.den;
  out.duration_s = st->duration * av_q2d(st->time_base);
  out.codec = avcodec_get_name(st->codecpar->codec_id);
  const char* pix = av_get_pix_fmt_name(static_cast<AVPixelFormat>(st->codecpar->format));
  out.pix_fmt = pix ? pix : "?";

  const AVCodec* codec = avcodec_find_decoder(st->codecpar->codec_id);
  if (codec == nullptr) return Internal("decode mp4: no decoder for " + out.codec);
  CodecContextPtr dec(avcodec_alloc_context3(codec));
  if (!dec) return Internal("decode mp4: out of memory");
  rc = avcodec_parameters_to_context(dec.get(), st->codecpar);
  if (rc < 0) return Fail("parameters_to_context", rc);
  rc = avcodec_open2(dec.get(), codec, nullptr);
  if (rc < 0) return Fail("open decoder", rc);

  PacketPtr pkt(av_packet_alloc());
  FramePtr frame(av_frame_alloc());
  if (!pkt || !frame) return Internal("decode mp4: out of memory");
  while ((rc = av_read_frame(fmt.get(), pkt.get())) >= 0) {
    if (pkt->stream_index == index) {
      rc = avcodec_send_packet(dec.get(), pkt.get());
      av_packet_unref(pkt.get());
      if (rc < 0) return Fail("send_packet", rc);
      RETURN_IF_ERROR(Drain(dec.get(), frame.get(), out));
    } else {
      av_packet_unref(pkt.get());
    }
  }
  if (rc != AVERROR_EOF) return Fail("read_frame", rc);
  rc = avcodec_send_packet(dec.get(), nullptr);
  if (rc < 0) return Fail("flush", rc);
  RETURN_IF_ERROR(Drain(dec.get(), frame.get(), out));
  return out;
}

double Psnr(const uint8_t* a, const uint8_t* b, size_t n) {
  double sse = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    sse += d * d;
  }
  if (sse == 0) return 99;
  return 10 * std::log10(255.0 * 255.0 / (sse / static_cast<double>(n)));
}

}  // namespace ditserve::testing
