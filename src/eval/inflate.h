// zlib stream decoding (via the zlib library) for the compressed data files the harness reads (R's .rdb records).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace shadowkv::eval {

// Decodes one zlib stream starting at data. consumed (optional) receives the bytes used, header and Adler-32
// trailer included. Throws Error on a malformed or truncated stream or a checksum mismatch.
std::string zlib_inflate(const uint8_t* data, size_t size, size_t* consumed = nullptr);

}  // namespace shadowkv::eval
