// AVX2 + FMA + F16C vector kernels (compiled with -mavx2 -mfma -mf16c; only called after a CPU check).
#include <immintrin.h>

#include <algorithm>

#include "ops/f16.h"
#include "ops/quant_dispatch.h"
#include "ops/vec.h"

namespace shadowkv::simd {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline __m256 load_h8(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }

float dot_f32(const float* a, const float* b, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  float s = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

float dot_f16(const float* a, const uint16_t* b, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), load_h8(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), load_h8(b + i + 8), s1);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), load_h8(b + i), s0);
  float s = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += a[i] * f16_to_f32(b[i]);
  return s;
}

void axpy_f32(float alpha, const float* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += alpha * x[i];
}

void axpy_f16(float alpha, const uint16_t* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, load_h8(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += alpha * f16_to_f32(x[i]);
}

void scale_f32(float alpha, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(va, _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] *= alpha;
}

// F16C rounds to nearest even like f32_to_f16, so both paths give identical bits (NaN payloads aside).
void f32_to_f16(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128((__m128i*)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) y[i] = shadowkv::f32_to_f16(x[i]);
}

void f16_to_f32(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load_h8(x + i));
  for (; i < n; ++i) y[i] = shadowkv::f16_to_f32(x[i]);
}

void i8_to_f32(const int8_t* x, float scale, float* y, int64_t n) {
  const __m256 s = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(x + i)));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(s, _mm256_cvtepi32_ps(v)));
  }
  for (; i < n; ++i) y[i] = scale * (float)x[i];
}

float sum_sq(const float* x, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
    s0 = _mm256_fmadd_ps(a, a, s0);
    s1 = _mm256_fmadd_ps(b, b, s1);
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 a = _mm256_loadu_ps(x + i);
    s0 = _mm256_fmadd_ps(a, a, s0);
  }
  float s = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += x[i] * x[i];
  return s;
}

// e^x for x in [-87, 87] (clamped outside): x = n ln2 + r with |r| <= ln2/2 (ln2 split in two for precision),
// e^r by its degree-6 Taylor polynomial (relative error < 2e-7), times 2^n built in the exponent bits.
inline __m256 exp_ps(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(87.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 720);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// e^(x - m) over x, with arguments below -87 (where e^t < 1.7e-38; masked -inf scores) set to 0.
float exp_shift_sum(float* x, int64_t n, float m) {
  const __m256 mv = _mm256_set1_ps(m), lo = _mm256_set1_ps(-87.0f);
  __m256 s = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 t = _mm256_sub_ps(_mm256_loadu_ps(x + i), mv);
    const __m256 e = _mm256_and_ps(exp_ps(t), _mm256_cmp_ps(t, lo, _CMP_GE_OQ));
    _mm256_storeu_ps(x + i, e);
    s = _mm256_add_ps(s, e);
  }
  float sum = hsum(s);
  if (i < n) sum += kScalarVecOps.exp_shift_sum(x + i, n - i, m);
  return sum;
}

// GELU(u) = 0.5 u (1 + tanh(z)) = u / (1 + e^(-2z)), z = sqrt(2/pi) (u + 0.044715 u^3); SiLU(u) = u / (1 + e^-u).
void glu(bool gelu, float* gate, const float* up, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 u = _mm256_loadu_ps(gate + i);
    __m256 t;  // the exponent: -2z or -u
    if (gelu) {
      const __m256 u3 = _mm256_mul_ps(_mm256_mul_ps(u, u), u);
      t = _mm256_mul_ps(_mm256_fmadd_ps(u3, _mm256_set1_ps(0.044715f), u), _mm256_set1_ps(-1.5957691216057308f));
    } else {
      t = _mm256_sub_ps(_mm256_setzero_ps(), u);
    }
    const __m256 a = _mm256_div_ps(u, _mm256_add_ps(one, exp_ps(t)));
    _mm256_storeu_ps(gate + i, _mm256_mul_ps(a, _mm256_loadu_ps(up + i)));
  }
  if (i < n) kScalarVecOps.glu(gelu, gate + i, up + i, n - i);
}

inline __m256 load8(const void* rows, bool f16, int64_t off) {
  return f16 ? load_h8((const uint16_t*)rows + off) : _mm256_loadu_ps((const float*)rows + off);
}
inline __m256 load8(const void* rows, RowType type, int64_t off) {
  if (type == RowType::kI8)
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)((const int8_t*)rows + off))));
  return load8(rows, type == RowType::kF16, off);
}

// NH (<= 4) heads x 2 key rows at a time, their partial dot products in registers while the rows stream past (NH a
// template parameter so the accumulators stay in registers); the 2 NH sums are then reduced together by one tree
// of horizontal adds (a separate reduction per sum cost as much as the dot itself at head_dim 64).
template <int NH>
void scores_heads(const float* q, int hd, float scale, const void* keys, bool f16, const int64_t* idx, int nv, float* s,
                  int ld) {
  const __m256 sv = _mm256_set1_ps(scale);
  for (int j = 0; j < nv; j += 2) {
    const int nr = std::min(2, nv - j);
    const int64_t off0 = idx[j] * hd, off1 = idx[j + nr - 1] * hd;  // nr == 1: row j twice, second result dropped
    if (j + kAheadKeyRows + 1 < nv) prefetch_rows(keys, (int64_t)hd * (f16 ? 2 : 4), idx + j + kAheadKeyRows, 2);
    __m256 a0[4], a1[4];
    for (int h = 0; h < 4; ++h) a0[h] = a1[h] = _mm256_setzero_ps();
    for (int c = 0; c < hd; c += 8) {
      const __m256 k0 = load8(keys, f16, off0 + c), k1 = load8(keys, f16, off1 + c);
      for (int h = 0; h < NH; ++h) {
        const __m256 qv = _mm256_loadu_ps(q + (int64_t)h * hd + c);
        a0[h] = _mm256_fmadd_ps(qv, k0, a0[h]);
        a1[h] = _mm256_fmadd_ps(qv, k1, a1[h]);
      }
    }
    // Lane h: head h . row j; lane 4 + h: head h . row j + 1.
    const __m256 r0 = _mm256_hadd_ps(_mm256_hadd_ps(a0[0], a0[1]), _mm256_hadd_ps(a0[2], a0[3]));
    const __m256 r1 = _mm256_hadd_ps(_mm256_hadd_ps(a1[0], a1[1]), _mm256_hadd_ps(a1[2], a1[3]));
    const __m256 sum = _mm256_add_ps(_mm256_permute2f128_ps(r0, r1, 0x20), _mm256_permute2f128_ps(r0, r1, 0x31));
    alignas(32) float out[8];
    _mm256_store_ps(out, _mm256_mul_ps(sv, sum));
    for (int h = 0; h < NH; ++h) {
      s[h * ld + j] = out[h];
      if (nr == 2) s[h * ld + j + 1] = out[4 + h];
    }
  }
}

void group_scores(const float* q, int n_q, int hd, float scale, const void* keys, bool f16, const int64_t* idx, int nv,
                  float* s, int ld) {
  if (hd % 8 != 0) return kScalarVecOps.group_scores(q, n_q, hd, scale, keys, f16, idx, nv, s, ld);
  for (int h0 = 0; h0 < n_q; h0 += 4) {
    const float* qh = q + (int64_t)h0 * hd;
    float* sh = s + h0 * ld;
    switch (std::min(4, n_q - h0)) {
      case 1:
        scores_heads<1>(qh, hd, scale, keys, f16, idx, nv, sh, ld);
        break;
      case 2:
        scores_heads<2>(qh, hd, scale, keys, f16, idx, nv, sh, ld);
        break;
      case 3:
        scores_heads<3>(qh, hd, scale, keys, f16, idx, nv, sh, ld);
        break;
      default:
        scores_heads<4>(qh, hd, scale, keys, f16, idx, nv, sh, ld);
        break;
    }
  }
}

// NH heads x 16 columns of the output in registers while a group of up to 8 value rows passes, strip by strip: the
// group's rows (contiguous when its rows are) stay in L1 across the strips, so memory is read row after row. Eight
// rows, not four, halve the accumulators' loads and stores (SparseAttention on one thread: 225 -> 182 us at Gemma's
// shape, 122 -> 106 us at Qwen's); each output column still adds the rows in order, so the result is unchanged.
template <int NH>
void accumulate_heads(const float* p, int ld, int hd, const void* vals, RowType type, const int64_t* idx, int nv,
                      float* acc) {
  constexpr int kRows = 8;
  for (int j0 = 0; j0 < nv; j0 += kRows) {
    const int nr = std::min(kRows, nv - j0);
    for (int c = 0; c < hd; c += 16) {
      __m256 a0[NH], a1[NH];
      for (int h = 0; h < NH; ++h) {
        a0[h] = _mm256_loadu_ps(acc + (int64_t)h * hd + c);
        a1[h] = _mm256_loadu_ps(acc + (int64_t)h * hd + c + 8);
      }
      for (int j = j0; j < j0 + nr; ++j) {
        const int64_t off = idx[j] * hd + c;
        const __m256 v0 = load8(vals, type, off), v1 = load8(vals, type, off + 8);
        for (int h = 0; h < NH; ++h) {
          const __m256 w = _mm256_broadcast_ss(p + h * ld + j);
          a0[h] = _mm256_fmadd_ps(w, v0, a0[h]);
          a1[h] = _mm256_fmadd_ps(w, v1, a1[h]);
        }
      }
      for (int h = 0; h < NH; ++h) {
        _mm256_storeu_ps(acc + (int64_t)h * hd + c, a0[h]);
        _mm256_storeu_ps(acc + (int64_t)h * hd + c + 8, a1[h]);
      }
    }
  }
}

void group_accumulate(const float* p, int ld, int n_q, int hd, const void* vals, RowType type, const int64_t* idx,
                      int nv, float* acc) {
  if (hd % 16 != 0) return kScalarVecOps.group_accumulate(p, ld, n_q, hd, vals, type, idx, nv, acc);
  for (int h0 = 0; h0 < n_q; h0 += 4) {
    const float* ph = p + h0 * ld;
    float* ah = acc + (int64_t)h0 * hd;
    switch (std::min(4, n_q - h0)) {
      case 1:
        accumulate_heads<1>(ph, ld, hd, vals, type, idx, nv, ah);
        break;
      case 2:
        accumulate_heads<2>(ph, ld, hd, vals, type, idx, nv, ah);
        break;
      case 3:
        accumulate_heads<3>(ph, ld, hd, vals, type, idx, nv, ah);
        break;
      default:
        accumulate_heads<4>(ph, ld, hd, vals, type, idx, nv, ah);
        break;
    }
  }
}

float max_f32(const float* x, int64_t n) {
  if (n < 8) return kScalarVecOps.max_f32(x, n);
  __m256 m = _mm256_loadu_ps(x);
  int64_t i = 8;
  for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
  if (i < n) m = _mm256_max_ps(m, _mm256_loadu_ps(x + n - 8));  // the last 8, overlapping
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

int64_t next_at_least(const float* x, int64_t from, int64_t n, float t) {
  const __m256 tv = _mm256_set1_ps(t);
  int64_t i = from;
  for (; i + 8 <= n; i += 8) {
    const int m = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), tv, _CMP_GE_OQ));
    if (m) return i + __builtin_ctz((unsigned)m);
  }
  for (; i < n; ++i)
    if (x[i] >= t) return i;
  return n;
}

// NH (<= 4) query heads against one panel: two registers of 8 columns per head, one broadcast per query element.
template <int NH>
void panel_heads(const float* q, int hd, float scale, const void* panel, bool f16, float* s, int64_t ld) {
  __m256 a0[NH], a1[NH];
  for (int h = 0; h < NH; ++h) a0[h] = a1[h] = _mm256_setzero_ps();
  for (int d = 0; d < hd; ++d) {
    const __m256 p0 = load8(panel, f16, (int64_t)d * kPanelRows), p1 = load8(panel, f16, (int64_t)d * kPanelRows + 8);
    for (int h = 0; h < NH; ++h) {
      const __m256 qv = _mm256_broadcast_ss(q + (int64_t)h * hd + d);
      a0[h] = _mm256_fmadd_ps(qv, p0, a0[h]);
      a1[h] = _mm256_fmadd_ps(qv, p1, a1[h]);
    }
  }
  const __m256 sv = _mm256_set1_ps(scale);
  for (int h = 0; h < NH; ++h) {
    _mm256_storeu_ps(s + h * ld, _mm256_mul_ps(sv, a0[h]));
    _mm256_storeu_ps(s + h * ld + 8, _mm256_mul_ps(sv, a1[h]));
  }
}

void panel_scores(const float* q, int n_q, int hd, float scale, const void* panels, bool f16, int64_t n_panels,
                  float* s, int64_t ld) {
  static_assert(kPanelRows == 16, "two 8-float registers per panel row");
  const int64_t panel_bytes = (int64_t)hd * kPanelRows * (f16 ? 2 : 4);
  for (int64_t p = 0; p < n_panels; ++p) {
    const void* panel = (const uint8_t*)panels + p * panel_bytes;
    for (int h0 = 0; h0 < n_q; h0 += 4) {
      const float* qh = q + (int64_t)h0 * hd;
      float* sh = s + h0 * ld + p * kPanelRows;
      switch (std::min(4, n_q - h0)) {
        case 1:
          panel_heads<1>(qh, hd, scale, panel, f16, sh, ld);
          break;
        case 2:
          panel_heads<2>(qh, hd, scale, panel, f16, sh, ld);
          break;
        case 3:
          panel_heads<3>(qh, hd, scale, panel, f16, sh, ld);
          break;
        default:
          panel_heads<4>(qh, hd, scale, panel, f16, sh, ld);
          break;
      }
    }
  }
}

// Row r's cos and sin of 8 pairs from the first row's and r steps' (angle addition).
inline void rope_angles8(const float* c0, const float* s0, const float* sc, const float* ss, __m256* c, __m256* s) {
  const __m256 a = _mm256_loadu_ps(c0), b = _mm256_loadu_ps(s0), C = _mm256_loadu_ps(sc), S = _mm256_loadu_ps(ss);
  *c = _mm256_fmsub_ps(a, C, _mm256_mul_ps(b, S));
  *s = _mm256_fmadd_ps(b, C, _mm256_mul_ps(a, S));
}

void rope_rows(float* x, int n_rows, int64_t row_stride, int half, bool neox, const float* c0, const float* s0,
               const float* step_c, const float* step_s) {
  for (int r = 0; r < n_rows; ++r) {
    float* v = x + r * row_stride;
    const float *sc = step_c + (int64_t)r * half, *ss = step_s + (int64_t)r * half;
    int i = 0;
    __m256 c, s;
    if (neox) {
      for (; i + 8 <= half; i += 8) {
        rope_angles8(c0 + i, s0 + i, sc + i, ss + i, &c, &s);
        const __m256 a = _mm256_loadu_ps(v + i), b = _mm256_loadu_ps(v + i + half);
        _mm256_storeu_ps(v + i, _mm256_fmsub_ps(a, c, _mm256_mul_ps(b, s)));
        _mm256_storeu_ps(v + i + half, _mm256_fmadd_ps(a, s, _mm256_mul_ps(b, c)));
      }
    } else {
      for (; i + 8 <= half; i += 8) {  // pairs interleaved: 16 floats, two registers of 4 pairs each
        rope_angles8(c0 + i, s0 + i, sc + i, ss + i, &c, &s);
        const __m256 clo = _mm256_unpacklo_ps(c, c), chi = _mm256_unpackhi_ps(c, c);  // c0 c0 c1 c1 | c4 c4 c5 c5
        const __m256 slo = _mm256_unpacklo_ps(s, s), shi = _mm256_unpackhi_ps(s, s);
        const __m256 c01 = _mm256_permute2f128_ps(clo, chi, 0x20), c23 = _mm256_permute2f128_ps(clo, chi, 0x31);
        const __m256 s01 = _mm256_permute2f128_ps(slo, shi, 0x20), s23 = _mm256_permute2f128_ps(slo, shi, 0x31);
        for (int h = 0; h < 2; ++h) {
          float* p = v + 2 * i + 8 * h;
          const __m256 xv = _mm256_loadu_ps(p), sw = _mm256_permute_ps(xv, 0xB1);  // (a, b) -> (b, a)
          // even lanes a*c - b*s, odd lanes b*c + a*s
          _mm256_storeu_ps(p, _mm256_addsub_ps(_mm256_mul_ps(xv, h ? c23 : c01), _mm256_mul_ps(sw, h ? s23 : s01)));
        }
      }
    }
    for (; i < half; ++i) {
      const float cc = c0[i] * sc[i] - s0[i] * ss[i], sn = s0[i] * sc[i] + c0[i] * ss[i];
      float* pa = neox ? &v[i] : &v[2 * i];
      float* pb = neox ? &v[i + half] : &v[2 * i + 1];
      const float a = *pa, b = *pb;
      *pa = a * cc - b * sn;
      *pb = a * sn + b * cc;
    }
  }
}

}  // namespace

const VecOps kAvx2VecOps{dot_f32,       dot_f16,       axpy_f32, axpy_f16,     scale_f32,    f32_to_f16,
                         f16_to_f32,    i8_to_f32,     sum_sq,   glu,          group_scores, group_accumulate,
                         next_at_least, exp_shift_sum, max_f32,  panel_scores, rope_rows};

}  // namespace shadowkv::simd
