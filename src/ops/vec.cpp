// vec.h entry points (dispatched to the active SIMD backend) and the scalar reference kernels.
#include "ops/vec.h"

#include <algorithm>
#include <cmath>

#include "ops/f16.h"
#include "ops/quant_dispatch.h"

namespace shadowkv {
namespace simd {
namespace {

float dot_f32_s(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}
float dot_f16_s(const float* a, const uint16_t* b, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * f16_to_f32(b[i]);
  return s;
}
void axpy_f32_s(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}
void axpy_f16_s(float alpha, const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * f16_to_f32(x[i]);
}
void axpy_i8_s(float alpha, const int8_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * (float)x[i];
}
void scale_f32_s(float alpha, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] *= alpha;
}
void f32_to_f16_s(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_f16(x[i]);
}
void f16_to_f32_s(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f16_to_f32(x[i]);
}

void i8_to_f32_s(const int8_t* x, float scale, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = scale * (float)x[i];
}

float sum_sq_s(const float* x, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += (double)x[i] * x[i];
  return (float)s;
}

void glu_s(bool gelu, float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float u = gate[i];
    const float a = gelu ? 0.5f * u * (1.0f + std::tanh(0.7978845608028654f * (u + 0.044715f * u * u * u)))
                         : u / (1.0f + std::exp(-u));
    gate[i] = a * up[i];
  }
}

void group_scores_s(const float* q, int n_q, int hd, float scale, const void* keys, bool f16, const int64_t* idx,
                    int nv, float* s, int ld) {
  for (int h = 0; h < n_q; ++h)
    for (int j = 0; j < nv; ++j) {
      const float* qh = q + (int64_t)h * hd;
      s[h * ld + j] = scale * (f16 ? dot_f16_s(qh, (const uint16_t*)keys + idx[j] * hd, hd)
                                   : dot_f32_s(qh, (const float*)keys + idx[j] * hd, hd));
    }
}

void group_accumulate_s(const float* p, int ld, int n_q, int hd, const void* vals, simd::RowType type,
                        const int64_t* idx, int nv, float* acc) {
  for (int h = 0; h < n_q; ++h)
    for (int j = 0; j < nv; ++j) {
      float* a = acc + (int64_t)h * hd;
      const float w = p[h * ld + j];
      if (type == simd::RowType::kF16)
        axpy_f16_s(w, (const uint16_t*)vals + idx[j] * hd, a, hd);
      else if (type == simd::RowType::kI8)
        axpy_i8_s(w, (const int8_t*)vals + idx[j] * hd, a, hd);
      else
        axpy_f32_s(w, (const float*)vals + idx[j] * hd, a, hd);
    }
}

int64_t next_at_least_s(const float* x, int64_t from, int64_t n, float t) {
  for (int64_t i = from; i < n; ++i)
    if (x[i] >= t) return i;
  return n;
}

float exp_shift_sum_s(float* x, int64_t n, float m) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    sum += x[i];
  }
  return sum;
}

float max_f32_s(const float* x, int64_t n) {
  float m = x[0];
  for (int64_t i = 1; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

void panel_scores_s(const float* q, int n_q, int hd, float scale, const void* panels, bool f16, int64_t n_panels,
                    float* s, int64_t ld) {
  for (int64_t p = 0; p < n_panels; ++p)
    for (int h = 0; h < n_q; ++h)
      for (int c = 0; c < kPanelRows; ++c) {
        float acc = 0.0f;
        for (int d = 0; d < hd; ++d) {
          const int64_t at = (p * hd + d) * kPanelRows + c;
          acc +=
              q[(int64_t)h * hd + d] * (f16 ? f16_to_f32(((const uint16_t*)panels)[at]) : ((const float*)panels)[at]);
        }
        s[h * ld + p * kPanelRows + c] = scale * acc;
      }
}

void rope_rows_s(float* x, int n_rows, int64_t row_stride, int half, bool neox, const float* c0, const float* s0,
                 const float* step_c, const float* step_s) {
  for (int r = 0; r < n_rows; ++r) {
    float* v = x + r * row_stride;
    const float *sc = step_c + (int64_t)r * half, *ss = step_s + (int64_t)r * half;
    for (int i = 0; i < half; ++i) {
      const float c = c0[i] * sc[i] - s0[i] * ss[i], s = s0[i] * sc[i] + c0[i] * ss[i];
      float* pa = neox ? &v[i] : &v[2 * i];
      float* pb = neox ? &v[i + half] : &v[2 * i + 1];
      const float a = *pa, b = *pb;
      *pa = a * c - b * s;
      *pb = a * s + b * c;
    }
  }
}

}  // namespace

const VecOps kScalarVecOps{dot_f32_s,      dot_f16_s,          axpy_f32_s,      axpy_f16_s,      scale_f32_s,
                           f32_to_f16_s,   f16_to_f32_s,       i8_to_f32_s,     sum_sq_s,        glu_s,
                           group_scores_s, group_accumulate_s, next_at_least_s, exp_shift_sum_s, max_f32_s,
                           panel_scores_s, rope_rows_s};

}  // namespace simd

float dot_f32(const float* a, const float* b, int64_t n) { return simd::vec_ops().dot_f32(a, b, n); }
float dot_f16(const float* a, const uint16_t* b, int64_t n) { return simd::vec_ops().dot_f16(a, b, n); }
void axpy_f32(float alpha, const float* x, float* y, int64_t n) { simd::vec_ops().axpy_f32(alpha, x, y, n); }
void axpy_f16(float alpha, const uint16_t* x, float* y, int64_t n) { simd::vec_ops().axpy_f16(alpha, x, y, n); }
void scale_f32(float alpha, float* y, int64_t n) { simd::vec_ops().scale_f32(alpha, y, n); }
void f32_to_f16_row(const float* x, uint16_t* y, int64_t n) { simd::vec_ops().f32_to_f16(x, y, n); }
void f16_to_f32_row(const uint16_t* x, float* y, int64_t n) { simd::vec_ops().f16_to_f32(x, y, n); }
void i8_to_f32_row(const int8_t* x, float scale, float* y, int64_t n) { simd::vec_ops().i8_to_f32(x, scale, y, n); }
void glu_f32(bool gelu, float* gate, const float* up, int64_t n) { simd::vec_ops().glu(gelu, gate, up, n); }
float exp_shift_sum(float* x, int64_t n, float m) { return simd::vec_ops().exp_shift_sum(x, n, m); }
float max_f32(const float* x, int64_t n) { return simd::vec_ops().max_f32(x, n); }
void panel_scores(const float* q, int n_q, int hd, float scale, const void* panels, bool f16, int64_t n_panels,
                  float* s, int64_t ld) {
  simd::vec_ops().panel_scores(q, n_q, hd, scale, panels, f16, n_panels, s, ld);
}
void rope_rows(float* x, int n_rows, int64_t row_stride, int half, bool neox, const float* c0, const float* s0,
               const float* step_c, const float* step_s) {
  simd::vec_ops().rope_rows(x, n_rows, row_stride, half, neox, c0, s0, step_c, step_s);
}

namespace {
void group_scores_rows(const float* q, int n_q, int hd, float scale, const void* keys, bool f16, int64_t n, float* s,
                       int64_t ld) {
  constexpr int kRows = 64;  // rows per call of the backend kernel, which takes row indices
  int64_t idx[kRows];
  for (int j = 0; j < kRows; ++j) idx[j] = j;
  const int64_t row_bytes = (int64_t)hd * (f16 ? 2 : 4);
  for (int64_t j0 = 0; j0 < n; j0 += kRows)
    simd::vec_ops().group_scores(q, n_q, hd, scale, (const uint8_t*)keys + j0 * row_bytes, f16, idx,
                                 (int)std::min<int64_t>(kRows, n - j0), s + j0, (int)ld);
}
}  // namespace

void group_scores(const float* q, int n_q, int hd, float scale, const float* keys, int64_t n, float* s, int64_t ld) {
  group_scores_rows(q, n_q, hd, scale, keys, false, n, s, ld);
}
void group_scores(const float* q, int n_q, int hd, float scale, const uint16_t* keys, int64_t n, float* s, int64_t ld) {
  group_scores_rows(q, n_q, hd, scale, keys, true, n, s, ld);
}
void group_accumulate(const float* p, int64_t ld, int n_q, int hd, const int8_t* vals, const int64_t* idx, int64_t n,
                      float* acc) {
  constexpr int64_t kRows = 64;  // rows per kernel call: its column strips re-read them from L1, not from memory
  for (int64_t j0 = 0; j0 < n; j0 += kRows)
    simd::vec_ops().group_accumulate(p + j0, (int)ld, n_q, hd, vals, simd::RowType::kI8, idx + j0,
                                     (int)std::min(kRows, n - j0), acc);
}
int64_t next_at_least(const float* x, int64_t from, int64_t n, float t) {
  return simd::vec_ops().next_at_least(x, from, n, t);
}

void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps) {
  const simd::VecOps& ops = simd::vec_ops();
  const float inv = 1.0f / std::sqrt(ops.sum_sq(x, n) / (float)n + eps);
  if (w) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * inv * w[i];
  } else {
    if (y != x)
      for (int64_t i = 0; i < n; ++i) y[i] = x[i];
    ops.scale_f32(inv, y, n);
  }
}

}  // namespace shadowkv
