#include "eval/inflate.h"

#include <zlib.h>

#include <climits>

#include "util/error.h"

namespace shadowkv::eval {

std::string zlib_inflate(const uint8_t* data, size_t size, size_t* consumed) {
  if (size > UINT_MAX) throw Error("zlib: input too large");
  z_stream zs{};
  if (inflateInit(&zs) != Z_OK) throw Error("zlib: cannot initialise");
  zs.next_in = const_cast<Bytef*>(data);
  zs.avail_in = (uInt)size;
  std::string out;
  char buf[1 << 16];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof buf - zs.avail_out);
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;  // input ended before the stream did
  }
  const size_t used = zs.total_in;
  const std::string msg = zs.msg ? zs.msg : "";
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) throw Error("zlib: " + (msg.empty() ? std::string("truncated or malformed stream") : msg));
  if (consumed) *consumed = used;
  return out;
}

}  // namespace shadowkv::eval
