// FFmpeg's demuxing, decoding and pixel-conversion libraries (Debian: libavformat-dev,
// libavcodec-dev, libswscale-dev, libavutil-dev), for ModelIO's video decoder.
#include <errno.h>
#include <libavformat/avformat.h>
#include <libavcodec/avcodec.h>
#include <libswscale/swscale.h>
#include <libavutil/avutil.h>
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libavutil/pixdesc.h>

// Swift cannot import FFmpeg's function-like error macros; these give their values.
static inline int cffmpeg_error_eagain(void) { return AVERROR(EAGAIN); }
static inline int cffmpeg_error_eof(void) { return AVERROR_EOF; }
static inline int cffmpeg_error_decoder_not_found(void) { return AVERROR_DECODER_NOT_FOUND; }
