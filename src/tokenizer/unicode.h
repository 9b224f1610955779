// Small UTF-8 helpers shared by the tokenizers, plus the GPT-2 byte <-> code point alphabet used by byte-level BPE.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace shadowkv::unicode {

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 if the bytes there are not one (bad lead byte,
// bad continuation, overlong form, surrogate, > U+10FFFF, or truncated by the end of s).
size_t valid_utf8_len(std::string_view s, size_t i);

// Length of the character at s[i] for splitting purposes: the valid sequence length, or 1 for a stray byte.
inline size_t char_len(std::string_view s, size_t i) {
  size_t n = valid_utf8_len(s, i);
  return n ? n : 1;
}

// True when s[i..] is a proper prefix of some valid sequence (more bytes could complete it).
bool is_incomplete_utf8(std::string_view s, size_t i);

void append_utf8(std::string& out, uint32_t cp);

// Decodes the valid sequence of length n at s[i].
uint32_t decode_utf8(std::string_view s, size_t i, size_t n);

// GPT-2 byte-level alphabet: byte b <-> one printable code point.
uint32_t byte_to_codepoint(uint8_t b);
// The byte for a code point of the alphabet, or -1 if cp is not in it.
int codepoint_to_byte(uint32_t cp);

// Replaces every occurrence of `from` with `to`.
std::string replace_all(std::string_view s, std::string_view from, std::string_view to);

}  // namespace shadowkv::unicode
