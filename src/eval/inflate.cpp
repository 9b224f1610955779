// Canonical-Huffman DEFLATE decoding in the style of zlib's contrib/puff: codes are decoded bit by bit by
// walking the code lengths, which needs no lookup tables beyond per-length counts.
#include "eval/inflate.h"

#include <algorithm>
#include <array>

#include "util/error.h"

namespace shadowkv::eval {
namespace {

struct BitReader {
  const uint8_t* p;
  size_t n;
  size_t pos = 0;
  uint32_t buf = 0;
  int cnt = 0;

  int bit() {
    if (cnt == 0) {
      if (pos >= n) throw Error("inflate: truncated stream");
      buf = p[pos++];
      cnt = 8;
    }
    const int b = buf & 1;
    buf >>= 1;
    --cnt;
    return b;
  }
  uint32_t bits(int k) {
    uint32_t v = 0;
    for (int i = 0; i < k; ++i) v |= static_cast<uint32_t>(bit()) << i;
    return v;
  }
  void align() { cnt = 0; }
  uint8_t byte() {
    if (pos >= n) throw Error("inflate: truncated stream");
    return p[pos++];
  }
};

struct Huffman {
  std::array<uint16_t, 16> count{};    // codes of each length
  std::array<uint16_t, 320> symbol{};  // symbols ordered by code
};

void build(Huffman& h, const uint8_t* lengths, int n) {
  h.count.fill(0);
  for (int i = 0; i < n; ++i) h.count[lengths[i]]++;
  h.count[0] = 0;
  std::array<uint16_t, 16> offs{};
  for (int len = 1; len < 15; ++len) offs[len + 1] = offs[len] + h.count[len];
  for (int i = 0; i < n; ++i)
    if (lengths[i]) h.symbol[offs[lengths[i]]++] = static_cast<uint16_t>(i);
}

int decode(BitReader& br, const Huffman& h) {
  int code = 0, first = 0, index = 0;
  for (int len = 1; len < 16; ++len) {
    code |= br.bit();
    const int count = h.count[len];
    if (code - count < first) return h.symbol[index + (code - first)];
    index += count;
    first = (first + count) << 1;
    code <<= 1;
  }
  throw Error("inflate: invalid Huffman code");
}

constexpr uint16_t kLenBase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                   31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr uint8_t kLenExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                   2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr uint16_t kDistBase[30] = {1,    2,    3,    4,    5,    7,    9,    13,    17,    25,
                                    33,   49,   65,   97,   129,  193,  257,  385,   513,   769,
                                    1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr uint8_t kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                    6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

void inflate_codes(BitReader& br, std::string& out, const Huffman& lit, const Huffman& dist) {
  for (;;) {
    const int sym = decode(br, lit);
    if (sym < 256) {
      out.push_back(static_cast<char>(sym));
    } else if (sym == 256) {
      return;
    } else {
      const int li = sym - 257;
      if (li >= 29) throw Error("inflate: bad length symbol");
      const size_t len = kLenBase[li] + br.bits(kLenExtra[li]);
      const int di = decode(br, dist);
      if (di >= 30) throw Error("inflate: bad distance symbol");
      const size_t d = kDistBase[di] + br.bits(kDistExtra[di]);
      if (d > out.size()) throw Error("inflate: distance before the start of the output");
      const size_t from = out.size() - d;
      for (size_t i = 0; i < len; ++i) out.push_back(out[from + i]);  // may overlap: copy byte by byte
    }
  }
}

void fixed_tables(Huffman& lit, Huffman& dist) {
  uint8_t l[288];
  std::fill(l, l + 144, 8);
  std::fill(l + 144, l + 256, 9);
  std::fill(l + 256, l + 280, 7);
  std::fill(l + 280, l + 288, 8);
  build(lit, l, 288);
  uint8_t d[30];
  std::fill(d, d + 30, 5);
  build(dist, d, 30);
}

void dynamic_tables(BitReader& br, Huffman& lit, Huffman& dist) {
  static constexpr uint8_t kOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
  const int nlen = br.bits(5) + 257, ndist = br.bits(5) + 1, ncode = br.bits(4) + 4;
  if (nlen > 286 || ndist > 30) throw Error("inflate: bad dynamic block header");
  uint8_t lengths[320] = {};
  for (int i = 0; i < ncode; ++i) lengths[kOrder[i]] = static_cast<uint8_t>(br.bits(3));
  Huffman lencode;
  build(lencode, lengths, 19);
  std::fill(lengths, lengths + 320, 0);
  for (int i = 0; i < nlen + ndist;) {
    const int sym = decode(br, lencode);
    if (sym < 16) {
      lengths[i++] = static_cast<uint8_t>(sym);
      continue;
    }
    uint8_t val = 0;
    int rep;
    if (sym == 16) {
      if (i == 0) throw Error("inflate: repeat with no previous length");
      val = lengths[i - 1];
      rep = 3 + br.bits(2);
    } else if (sym == 17) {
      rep = 3 + br.bits(3);
    } else {
      rep = 11 + br.bits(7);
    }
    if (i + rep > nlen + ndist) throw Error("inflate: code lengths overflow");
    while (rep--) lengths[i++] = val;
  }
  build(lit, lengths, nlen);
  build(dist, lengths + nlen, ndist);
}

uint32_t adler32(const std::string& s) {
  uint32_t a = 1, b = 0;
  for (unsigned char c : s) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  return (b << 16) | a;
}

}  // namespace

std::string zlib_inflate(const uint8_t* data, size_t size, size_t* consumed) {
  if (size < 6) throw Error("inflate: stream too short");
  const int cmf = data[0], flg = data[1];
  if ((cmf & 15) != 8 || ((cmf << 8) | flg) % 31 != 0) throw Error("inflate: not a zlib stream");
  if (flg & 0x20) throw Error("inflate: preset dictionaries are not supported");
  BitReader br{data + 2, size - 2};
  std::string out;
  Huffman lit, dist;
  for (bool last = false; !last;) {
    last = br.bit();
    const int type = br.bits(2);
    if (type == 0) {
      br.align();
      const uint16_t len = br.byte() | (br.byte() << 8);
      const uint16_t nlen = br.byte() | (br.byte() << 8);
      if (static_cast<uint16_t>(~nlen) != len) throw Error("inflate: stored block length mismatch");
      for (int i = 0; i < len; ++i) out.push_back(static_cast<char>(br.byte()));
    } else if (type == 1) {
      fixed_tables(lit, dist);
      inflate_codes(br, out, lit, dist);
    } else if (type == 2) {
      dynamic_tables(br, lit, dist);
      inflate_codes(br, out, lit, dist);
    } else {
      throw Error("inflate: invalid block type");
    }
  }
  br.align();
  uint32_t want = 0;
  for (int i = 0; i < 4; ++i) want = (want << 8) | br.byte();
  if (want != adler32(out)) throw Error("inflate: Adler-32 checksum mismatch");
  if (consumed) *consumed = 2 + br.pos;
  return out;
}

}  // namespace shadowkv::eval
