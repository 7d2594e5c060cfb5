#include "engine/io/mp4.h"

#include <memory>

#include "engine/io/ffmpeg_io.h"

namespace ditserve::io {
namespace {

using namespace ffmpeg;  // NOLINT(build/namespaces): the FFmpeg helpers of this library

Status FfmpegError(const std::string& what, int err) { return Internal("mp4: " + what + ": " + AvError(err)); }

// --- argument checks -----------------------------------------------------------------------------------
Status CheckArgs(const uint8_t* rgb, size_t rgb_bytes, int64_t frames, int64_t width, int64_t height,
                 const Mp4Options& o) {
  const auto range = [](const std::string& what, int64_t v, int64_t lo, int64_t hi) {
    return InvalidArgument("mp4: " + what + " " + std::to_string(v) + " is out of range; allowed [" +
                           std::to_string(lo) + ", " + std::to_string(hi) + "]");
  };
  if (frames < 1) return InvalidArgument("mp4: zero frames; a video needs at least one frame");
  if (frames > kMp4MaxFrames) return range("frames", frames, 1, kMp4MaxFrames);
  if (width < kMp4MinSide || width > kMp4MaxSide) return range("width", width, kMp4MinSide, kMp4MaxSide);
  if (height < kMp4MinSide || height > kMp4MaxSide) return range("height", height, kMp4MinSide, kMp4MaxSide);
  if (width % 2 != 0 || height % 2 != 0) {
    return InvalidArgument("mp4: " + std::to_string(width) + "x" + std::to_string(height) +
                           " has an odd side; yuv420p needs even width and height");
  }
  if (o.fps < 1 || o.fps > 120) return range("fps", o.fps, 1, 120);
  if (o.crf < 0 || o.crf > 51) return range("crf", o.crf, 0, 51);
  const auto expected = static_cast<uint64_t>(frames) * static_cast<uint64_t>(width) * static_cast<uint64_t>(height) * 3;
  if (rgb == nullptr) return InvalidArgument("mp4: no pixel buffer");
  if (rgb_bytes != expected) {
    return InvalidArgument("mp4: pixel buffer has " + std::to_string(rgb_bytes) + " bytes; " + std::to_string(frames) +
                           " frames of " + std::to_string(width) + "x" + std::to_string(height) + " RGB24 need " +
                           std::to_string(expected));
  }
  for (const auto& [key, value] : o.metadata) {
    if (key.empty() || key.find('\0') != std::string::npos) {
      return InvalidArgument("mp4: metadata key '" + key + "' must be non-empty and free of NUL bytes");
    }
    if (value.find('\0') != std::string::npos) {
      return InvalidArgument("mp4: metadata value of '" + key + "' contains a NUL byte");
    }
  }
  return Status::Ok();
}

// Sends one frame (nullptr: flush) and writes every packet the encoder has ready.
Status EncodeAndMux(AVCodecContext* enc, AVFormatContext* fmt, AVStream* st, const AVFrame* frame, AVPacket* pkt) {
  int rc = avcodec_send_frame(enc, frame);
  if (rc < 0) return FfmpegError("encoding a frame", rc);
  while (true) {
    rc = avcodec_receive_packet(enc, pkt);
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return Status::Ok();
    if (rc < 0) return FfmpegError("encoding a frame", rc);
    av_packet_rescale_ts(pkt, enc->time_base, st->time_base);
    pkt->stream_index = st->index;
    rc = av_interleaved_write_frame(fmt, pkt);  // takes the packet's reference
    if (rc < 0) return FfmpegError("writing a packet", rc);
  }
}

}  // namespace

StatusOr<std::vector<uint8_t>> EncodeMp4(const uint8_t* rgb, size_t rgb_bytes, int64_t frames, int64_t width,
                                         int64_t height, const Mp4Options& options) {
  RETURN_IF_ERROR(CheckArgs(rgb, rgb_bytes, frames, width, height, options));
  const int w = static_cast<int>(width), h = static_cast<int>(height);

  const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
  if (codec == nullptr) return Internal("mp4: this FFmpeg has no libx264 encoder");

  // The output, declared first so it outlives the muxer that writes to it.
  MemoryFile file;
  Cursor out_cursor{&file, 0};
  AvioPtr out = NewMemoryAvio(&out_cursor, /*write=*/true);
  if (!out) return Internal("mp4: out of memory for the output buffer");

  AVFormatContext* raw_fmt = nullptr;
  int rc = avformat_alloc_output_context2(&raw_fmt, nullptr, "mp4", nullptr);
  OutputFormatPtr fmt(raw_fmt);
  if (rc < 0 || !fmt) return FfmpegError("creating the mp4 muxer", rc);
  UseMemoryOutput(fmt.get(), out.get(), &file);
  for (const auto& [key, value] : options.metadata) av_dict_set(&fmt->metadata, key.c_str(), value.c_str(), 0);

  AVStream* st = avformat_new_stream(fmt.get(), nullptr);
  if (st == nullptr) return Internal("mp4: cannot add a video stream");

  CodecContextPtr enc(avcodec_alloc_context3(codec));
  if (!enc) return Internal("mp4: cannot allocate the libx264 encoder");
  enc->width = w;
  enc->height = h;
  enc->pix_fmt = AV_PIX_FMT_YUV420P;
  enc->time_base = AVRational{1, options.fps};
  enc->framerate = AVRational{options.fps, 1};
  enc->sample_aspect_ratio = AVRational{1, 1};
  // BT.709 primaries, transfer and matrix, limited ("TV") range: what HD players assume and what the
  // swscale conversion below produces. The tags go into the SPS (VUI) and the mp4's colr box.
  enc->color_primaries = AVCOL_PRI_BT709;
  enc->color_trc = AVCOL_TRC_BT709;
  enc->colorspace = AVCOL_SPC_BT709;
  enc->color_range = AVCOL_RANGE_MPEG;
  if (fmt->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  {
    Dict opts;
    opts.Set("crf", std::to_string(options.crf));
    opts.Set("preset", "medium");
    opts.Set("x264-params", "log=1");  // x264's warnings and errors only, not its per-encode statistics
    rc = avcodec_open2(enc.get(), codec, opts.get());
    if (rc < 0) return FfmpegError("opening libx264", rc);
  }
  rc = avcodec_parameters_from_context(st->codecpar, enc.get());
  if (rc < 0) return FfmpegError("copying the encoder parameters", rc);
  st->time_base = enc->time_base;  // a hint: the muxer picks its own timescale
  st->avg_frame_rate = enc->framerate;

  {
    Dict mux;
    // faststart: moov before mdat. use_metadata_tags: every key as an mdta tag (the default iTunes list
    // would drop keys it does not know, such as seed or prompt).
    mux.Set("movflags", "+faststart+use_metadata_tags+write_colr");
    rc = avformat_write_header(fmt.get(), mux.get());
    if (rc < 0) return FfmpegError("writing the mp4 header", rc);
  }

  SwsPtr sws(sws_getContext(w, h, AV_PIX_FMT_RGB24, w, h, AV_PIX_FMT_YUV420P, SWS_BICUBIC | SWS_ACCURATE_RND,
                            nullptr, nullptr, nullptr));
  if (!sws) return Internal("mp4: cannot create the RGB24 -> yuv420p converter");
  // Full-range RGB in, BT.709 limited-range YUV out (the tags above).
  const int* bt709 = sws_getCoefficients(SWS_CS_ITU709);
  if (sws_setColorspaceDetails(sws.get(), bt709, 1, bt709, 0, 0, 1 << 16, 1 << 16) < 0) {
    return Internal("mp4: swscale refused the BT.709 conversion");
  }

  FramePtr frame(av_frame_alloc());
  PacketPtr pkt(av_packet_alloc());
  if (!frame || !pkt) return Internal("mp4: out of memory for a frame");
  frame->format = AV_PIX_FMT_YUV420P;
  frame->width = w;
  frame->height = h;
  frame->color_primaries = enc->color_primaries;
  frame->color_trc = enc->color_trc;
  frame->colorspace = enc->colorspace;
  frame->color_range = enc->color_range;
  rc = av_frame_get_buffer(frame.get(), 0);
  if (rc < 0) return FfmpegError("allocating a frame", rc);

  const size_t frame_bytes = static_cast<size_t>(w) * static_cast<size_t>(h) * 3;
  for (int64_t i = 0; i < frames; ++i) {
    rc = av_frame_make_writable(frame.get());  // the encoder may still hold the previous frame
    if (rc < 0) return FfmpegError("allocating a frame", rc);
    const uint8_t* src[1] = {rgb + static_cast<size_t>(i) * frame_bytes};
    const int src_stride[1] = {3 * w};
    sws_scale(sws.get(), src, src_stride, 0, h, frame->data, frame->linesize);
    frame->pts = i;
    RETURN_IF_ERROR(EncodeAndMux(enc.get(), fmt.get(), st, frame.get(), pkt.get()));
  }
  RETURN_IF_ERROR(EncodeAndMux(enc.get(), fmt.get(), st, nullptr, pkt.get()));
  rc = av_write_trailer(fmt.get());
  if (rc < 0) return FfmpegError("finishing the mp4 (faststart pass)", rc);
  avio_flush(out.get());
  if (out->error < 0) return FfmpegError("writing the mp4", out->error);
  return std::move(file.bytes);
}

}  // namespace ditserve::io
