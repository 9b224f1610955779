// Scalar reference kernels. Dequantisation follows gguf-py's numpy formulas operation by operation (same f32
// products in the same order) so results are bit-identical; the dot product dequantises and accumulates in f32.
#include <cstring>

#include "ops/f16.h"
#include "ops/quant_dispatch.h"

namespace shadowkv::simd {
namespace {

void deq_q4_0(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  for (int j = 0; j < 16; ++j) {
    y[j] = d * (float)((b[2 + j] & 0xF) - 8);
    y[j + 16] = d * (float)((b[2 + j] >> 4) - 8);
  }
}

void deq_q4_1(const uint8_t* b, float* y) {
  const float d = load_f16(b), m = load_f16(b + 2);
  for (int j = 0; j < 16; ++j) {
    y[j] = d * (float)(b[4 + j] & 0xF) + m;
    y[j + 16] = d * (float)(b[4 + j] >> 4) + m;
  }
}

void deq_q5_0(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  uint32_t h;
  std::memcpy(&h, b + 2, 4);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * (float)((int)((qs[j] & 0xF) | ((h >> j & 1) << 4)) - 16);
    y[j + 16] = d * (float)((int)((qs[j] >> 4) | ((h >> (j + 16) & 1) << 4)) - 16);
  }
}

void deq_q5_1(const uint8_t* b, float* y) {
  const float d = load_f16(b), m = load_f16(b + 2);
  uint32_t h;
  std::memcpy(&h, b + 4, 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * (float)((qs[j] & 0xF) | ((h >> j & 1) << 4)) + m;
    y[j + 16] = d * (float)((qs[j] >> 4) | ((h >> (j + 16) & 1) << 4)) + m;
  }
}

void deq_q8_0(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  for (int j = 0; j < 32; ++j) y[j] = (float)(int8_t)b[2 + j] * d;
}

// Q4_K and Q5_K share the layout d, dmin, scales[12], [qh[32]], qs[128]; qh == nullptr for Q4_K.
void deq_k45(const uint8_t* b, const uint8_t* qh, const uint8_t* qs, float* y) {
  const float d = load_f16(b), dmin = load_f16(b + 2);
  for (int c = 0; c < 4; ++c) {
    for (int half_ = 0; half_ < 2; ++half_) {
      const int s = 2 * c + half_;
      int sc, mn;
      kscale(b + 4, s, &sc, &mn);
      const float dl = d * (float)sc, ml = dmin * (float)mn;
      for (int l = 0; l < 32; ++l) {
        int q = half_ ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 0xF;
        if (qh && (qh[l] >> s & 1)) q += 16;
        y[64 * c + 32 * half_ + l] = dl * (float)q - ml;
      }
    }
  }
}

void deq_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = (const int8_t*)(b + 192);
  const float d = load_f16(b + 208);
  float ds[16];
  for (int i = 0; i < 16; ++i) ds[i] = d * (float)sc[i];
  for (int n = 0; n < 2; ++n) {
    const uint8_t* l8 = ql + 64 * n;
    const uint8_t* h8 = qh + 32 * n;
    const float* dsn = ds + 8 * n;
    float* yn = y + 128 * n;
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q0 = ((l8[l] & 0xF) | ((h8[l] >> 0 & 3) << 4)) - 32;
      const int q1 = ((l8[l + 32] & 0xF) | ((h8[l] >> 2 & 3) << 4)) - 32;
      const int q2 = ((l8[l] >> 4) | ((h8[l] >> 4 & 3) << 4)) - 32;
      const int q3 = ((l8[l + 32] >> 4) | ((h8[l] >> 6 & 3) << 4)) - 32;
      yn[l] = dsn[is + 0] * (float)q0;
      yn[l + 32] = dsn[is + 2] * (float)q1;
      yn[l + 64] = dsn[is + 4] * (float)q2;
      yn[l + 96] = dsn[is + 6] * (float)q3;
    }
  }
}

void deq_q8_k(const uint8_t* b, float* y) {
  float d;
  std::memcpy(&d, b, 4);
  for (int j = 0; j < 256; ++j) y[j] = (float)(int8_t)b[4 + j] * d;
}

// Dequantises the nb blocks starting at src into dst.
void dequant_blocks(GgmlType t, const uint8_t* src, float* dst, int64_t nb) {
  switch (t) {
    case GgmlType::F32:
      std::memcpy(dst, src, nb * 4);
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < nb; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = f16_to_f32(h);
      }
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < nb; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    case GgmlType::Q4_0:
      for (int64_t i = 0; i < nb; ++i) deq_q4_0(src + 18 * i, dst + 32 * i);
      return;
    case GgmlType::Q4_1:
      for (int64_t i = 0; i < nb; ++i) deq_q4_1(src + 20 * i, dst + 32 * i);
      return;
    case GgmlType::Q5_0:
      for (int64_t i = 0; i < nb; ++i) deq_q5_0(src + 22 * i, dst + 32 * i);
      return;
    case GgmlType::Q5_1:
      for (int64_t i = 0; i < nb; ++i) deq_q5_1(src + 24 * i, dst + 32 * i);
      return;
    case GgmlType::Q8_0:
      for (int64_t i = 0; i < nb; ++i) deq_q8_0(src + 34 * i, dst + 32 * i);
      return;
    case GgmlType::Q4_K:
      for (int64_t i = 0; i < nb; ++i) deq_k45(src + 144 * i, nullptr, src + 144 * i + 16, dst + 256 * i);
      return;
    case GgmlType::Q5_K:
      for (int64_t i = 0; i < nb; ++i) deq_k45(src + 176 * i, src + 176 * i + 16, src + 176 * i + 48, dst + 256 * i);
      return;
    case GgmlType::Q6_K:
      for (int64_t i = 0; i < nb; ++i) deq_q6_k(src + 210 * i, dst + 256 * i);
      return;
    case GgmlType::Q8_K:
      for (int64_t i = 0; i < nb; ++i) deq_q8_k(src + 292 * i, dst + 256 * i);
      return;
    default:
      return;  // callers validate the type first
  }
}

void dequantize(GgmlType t, const void* src, float* dst, int64_t n) {
  const TypeTraits& tt = traits(t);
  dequant_blocks(t, (const uint8_t*)src, dst, n / tt.block_elems);
}

void dequantize_packed(GgmlType t, const uint8_t* packed, float* y, int64_t n) {
  uint8_t row[22 * 32];  // rebuilt 1024 elements at a time
  for (int64_t i = 0; i < n; i += 1024) {
    const int64_t m = n - i < 1024 ? n - i : 1024, runs_bytes = i / 32 * q32_block_bytes(t);
    unpack_q32_row(t, packed + runs_bytes, m / 32, row);
    dequantize(t, row, y + i, m);
  }
}

ActKind act_kind(GgmlType) { return ActKind::kNone; }
void quantize_act(ActKind, const float*, void*, int64_t) {}

// Eight independent partial sums: no serial add chain, and the compiler can keep them in SSE registers.
float dot_f32_lanes(const float* a, const float* b, int64_t n) {
  float acc[8] = {};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) acc[k] += a[j + k] * b[j + k];
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; j < n; ++j) s += a[j] * b[j];
  return s;
}

// Dequantise 256 elements at a time into a stack buffer and accumulate in f32.
float dot(GgmlType t, const void* row, const float* x, const void*, int64_t n) {
  const TypeTraits& tt = traits(t);
  const uint8_t* src = (const uint8_t*)row;
  constexpr int64_t kChunk = 256;
  float buf[kChunk];
  float sum = 0.0f;
  for (int64_t i = 0; i < n; i += kChunk) {
    const int64_t m = n - i < kChunk ? n - i : kChunk;
    dequant_blocks(t, src + i / tt.block_elems * tt.block_bytes, buf, m / tt.block_elems);
    sum += dot_f32_lanes(buf, x + i, m);
  }
  return sum;
}

void dot_rows(GgmlType t, const uint8_t* w, int64_t w_stride, int64_t n_w, const float* x, const void*, int64_t, int nr,
              int64_t n, float* y, int64_t y_stride) {
  for (int64_t o = 0; o < n_w; ++o)
    for (int r = 0; r < nr; ++r) y[r * y_stride + o] = dot(t, w + o * w_stride, x + r * n, nullptr, n);
}

void dot_rows_packed(GgmlType t, const uint8_t*, const uint8_t* w, int64_t w_stride, int64_t n_w, const float* x,
                     const void* act, int64_t act_stride, int nr, int64_t n, float* y, int64_t y_stride) {
  dot_rows(t, w, w_stride, n_w, x, act, act_stride, nr, n, y, y_stride);
}

}  // namespace

const QuantOps kScalarQuantOps{"scalar",     dequantize, dequantize_packed, act_kind,
                               quantize_act, dot,        dot_rows,          dot_rows_packed};

namespace {

// The 32 unsigned quants (0..15 / 0..31, before the -8 / -16 offset) of a GGUF Q4_0/Q5_0 block, in element order.
void q32_quants(GgmlType t, const uint8_t* block, uint8_t u[32]) {
  const uint8_t* qs = block + q32_block_bytes(t) - 16;
  uint32_t qh = 0;
  if (t == GgmlType::Q5_0) std::memcpy(&qh, block + 2, 4);
  for (int j = 0; j < 16; ++j) {
    u[j] = (uint8_t)((qs[j] & 0xF) | (qh >> j & 1) << 4);
    u[j + 16] = (uint8_t)((qs[j] >> 4) | (qh >> (j + 16) & 1) << 4);
  }
}

}  // namespace

// Block b of a run of t blocks: lane b of vector m (4 bytes) holds quants 4m..4m+3, vectors 2p and 2p + 1 are the
// low and high nibbles of plane p, and Q5_0's plane 4 holds bit 4 of quant 4m + i as bit m of its byte i.
void pack_q32_row(GgmlType type, const uint8_t* src, int64_t nb, uint8_t* dst) {
  const int64_t bb = q32_block_bytes(type);
  for (int64_t i = 0; i < nb; ++i) {
    const int64_t j = i / 8, t = nb - 8 * j < 8 ? nb - 8 * j : 8;
    const int b = (int)(i % 8);
    uint8_t* run = dst + 8 * bb * j;
    uint8_t u[32];
    q32_quants(type, src + bb * i, u);
    std::memcpy(run + 2 * b, src + bb * i, 2);
    for (int p = 0; p < 4; ++p)
      for (int k = 0; k < 4; ++k)
        run[packed_q32_plane(t, p) + 4 * b + k] = (uint8_t)((u[8 * p + k] & 0xF) | (u[8 * p + 4 + k] & 0xF) << 4);
    if (type == GgmlType::Q5_0)
      for (int k = 0; k < 4; ++k) {
        int h = 0;
        for (int m = 0; m < 8; ++m) h |= (u[4 * m + k] >> 4) << m;
        run[packed_q32_plane(t, 4) + 4 * b + k] = (uint8_t)h;
      }
  }
}

void unpack_q32_row(GgmlType type, const uint8_t* src, int64_t nb, uint8_t* dst) {
  const int64_t bb = q32_block_bytes(type);
  for (int64_t i = 0; i < nb; ++i) {
    const int64_t j = i / 8, t = nb - 8 * j < 8 ? nb - 8 * j : 8;
    const int b = (int)(i % 8);
    const uint8_t* run = src + 8 * bb * j;
    uint8_t u[32];
    for (int p = 0; p < 4; ++p)
      for (int k = 0; k < 4; ++k) {
        const uint8_t v = run[packed_q32_plane(t, p) + 4 * b + k];
        u[8 * p + k] = v & 0xF;
        u[8 * p + 4 + k] = v >> 4;
      }
    uint8_t* block = dst + bb * i;
    std::memcpy(block, run + 2 * b, 2);
    uint32_t qh = 0;
    if (type == GgmlType::Q5_0)
      for (int k = 0; k < 4; ++k)
        for (int m = 0; m < 8; ++m) qh |= (uint32_t)(run[packed_q32_plane(t, 4) + 4 * b + k] >> m & 1) << (4 * m + k);
    if (type == GgmlType::Q5_0) std::memcpy(block + 2, &qh, 4);
    for (int k = 0; k < 16; ++k) block[bb - 16 + k] = (uint8_t)(u[k] | u[k + 16] << 4);
  }
}

}  // namespace shadowkv::simd
