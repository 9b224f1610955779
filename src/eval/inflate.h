// A small zlib (RFC 1950) / DEFLATE (RFC 1951) decoder, so the harness can read compressed data files (R's
// .rdb records) without linking zlib. Written for clarity, not speed: a few MB/s is plenty here.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace shadowkv::eval {

// Decodes one zlib stream starting at data. consumed (optional) receives the bytes used, header and Adler-32
// trailer included. Throws Error on a malformed or truncated stream or a checksum mismatch.
std::string zlib_inflate(const uint8_t* data, size_t size, size_t* consumed = nullptr);

}  // namespace shadowkv::eval
