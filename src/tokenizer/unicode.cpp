#include "tokenizer/unicode.h"

#include <array>

namespace shadowkv::unicode {

namespace {

// Length n of the sequence lead byte b0 starts (0 if it starts none) and the allowed range [lo, hi] of the
// second byte, which rules out overlongs, surrogates and code points above U+10FFFF.
struct LeadByte {
  size_t n = 0;
  uint8_t lo = 0x80, hi = 0xBF;
};

LeadByte lead_byte(uint8_t b0) {
  LeadByte l;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    l.n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    l.n = 3;
    if (b0 == 0xE0) l.lo = 0xA0;
    if (b0 == 0xED) l.hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    l.n = 4;
    if (b0 == 0xF0) l.lo = 0x90;
    if (b0 == 0xF4) l.hi = 0x8F;
  }
  return l;
}

}  // namespace

size_t valid_utf8_len(std::string_view s, size_t i) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data()) + i;
  const size_t avail = s.size() - i;
  if (p[0] < 0x80) return 1;
  const LeadByte l = lead_byte(p[0]);
  if (l.n == 0 || avail < l.n) return 0;
  if (p[1] < l.lo || p[1] > l.hi) return 0;
  for (size_t k = 2; k < l.n; ++k)
    if ((p[k] & 0xC0) != 0x80) return 0;
  return l.n;
}

bool is_incomplete_utf8(std::string_view s, size_t i) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data()) + i;
  const size_t avail = s.size() - i;
  const LeadByte l = lead_byte(p[0]);
  if (l.n == 0 || avail >= l.n) return false;
  if (avail >= 2 && (p[1] < l.lo || p[1] > l.hi)) return false;
  for (size_t k = 2; k < avail; ++k)
    if ((p[k] & 0xC0) != 0x80) return false;
  return true;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

uint32_t decode_utf8(std::string_view s, size_t i, size_t n) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data()) + i;
  switch (n) {
    case 1:
      return p[0];
    case 2:
      return ((p[0] & 0x1Fu) << 6) | (p[1] & 0x3Fu);
    case 3:
      return ((p[0] & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
    default:
      return ((p[0] & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
  }
}

namespace {
// Printable bytes keep their code point; the other 68 are moved to U+0100.. in increasing byte order.
struct ByteAlphabet {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 512> to_byte{};
  ByteAlphabet() {
    to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool keep = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[b] = keep ? static_cast<uint32_t>(b) : next++;
      to_byte[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};
const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}
}  // namespace

uint32_t byte_to_codepoint(uint8_t b) { return alphabet().to_cp[b]; }

int codepoint_to_byte(uint32_t cp) { return cp < 512 ? alphabet().to_byte[cp] : -1; }

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (true) {
    size_t hit = s.find(from, pos);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
  }
  out.append(s.substr(pos));
  return out;
}

}  // namespace shadowkv::unicode
