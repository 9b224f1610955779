// Vector kernels for attention and norms (f32 and f16 operands), dispatched at run time like quant.h.
#pragma once
#include <cstdint>

namespace shadowkv {

float dot_f32(const float* a, const float* b, int64_t n);
float dot_f16(const float* a, const uint16_t* b, int64_t n);         // b is IEEE half
void axpy_f32(float alpha, const float* x, float* y, int64_t n);     // y += alpha * x
void axpy_f16(float alpha, const uint16_t* x, float* y, int64_t n);  // y += alpha * half(x)
void scale_f32(float alpha, float* y, int64_t n);                    // y *= alpha
void f32_to_f16_row(const float* x, uint16_t* y, int64_t n);
void f16_to_f32_row(const uint16_t* x, float* y, int64_t n);
void i8_to_f32_row(const int8_t* x, float scale, float* y, int64_t n);  // y = scale * x
// Gated feed-forward activation: gate = act(gate) * up, act = GELU (tanh approximation) or SiLU.
void glu_f32(bool gelu, float* gate, const float* up, int64_t n);
// The first i in [from, n) with x[i] >= t, or n (NaN never qualifies).
int64_t next_at_least(const float* x, int64_t from, int64_t n, float t);
// Scores of n key rows laid out back to back (hd floats or halves each) for n_q query heads, each row read once
// for all heads: s[h * ld + j] = scale * q[h] . key[j], q being n_q vectors of hd floats.
void group_scores(const float* q, int n_q, int hd, float scale, const float* keys, int64_t n, float* s, int64_t ld);
void group_scores(const float* q, int n_q, int hd, float scale, const uint16_t* keys, int64_t n, float* s, int64_t ld);
// Weighted sum of gathered int8 rows for n_q heads, each row read once for all heads: acc[h * hd + d] +=
// sum_j p[h * ld + j] * vals[idx[j] * hd + d] for j < n (in blocks of 64 rows, in order; a row's scale goes into p).
void group_accumulate(const float* p, int64_t ld, int n_q, int hd, const int8_t* vals, const int64_t* idx, int64_t n,
                      float* acc);
// Key rows stored in panels of kPanelRows rows transposed ([hd][kPanelRows], f32 or halves): panel_scores gives
// s[h * ld + kPanelRows * p + c] = scale * q[h] . (row c of panel p) for p < n_panels and n_q query heads
// (ld >= kPanelRows * n_panels): one broadcast multiply-add per query element and panel row, no horizontal sums.
constexpr int kPanelRows = 16;
void panel_scores(const float* q, int n_q, int hd, float scale, const void* panels, bool f16, int64_t n_panels,
                  float* s, int64_t ld);
// Softmax numerators: x[i] = e^(x[i] - m) for i < n (masked -inf scores become 0); returns their sum.
float exp_shift_sum(float* x, int64_t n, float m);
// The largest of x[0..n), n >= 1.
float max_f32(const float* x, int64_t n);
// RoPE of n_rows rows (row_stride floats apart) at consecutive positions, in float: row r's angle for pair i is the
// first row's (c0[i], s0[i]: its cos and sin) advanced by r steps (step_c[r * half + i], step_s[...]: cos and sin
// of r * inv_freq[i]). Pairs are (i, i + half) if neox, else (2i, 2i + 1); dims past the pairs are untouched.
void rope_rows(float* x, int n_rows, int64_t row_stride, int half, bool neox, const float* c0, const float* s0,
               const float* step_c, const float* step_s);

// y = x / sqrt(mean(x^2) + eps) * w   (y may alias x; w may be null for no weight)
void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps);

}  // namespace shadowkv
