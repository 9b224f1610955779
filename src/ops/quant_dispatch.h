// Private to src/ops: the per-backend kernel tables behind quant.h, matmul.h and vec.h, and the run-time choice
// between them. Tests include it to run every backend the CPU supports.
#pragma once
#include <cstdint>

#include "ops/ggml_type.h"

namespace shadowkv::simd {

enum class Backend { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// Element type of gathered value rows (group_accumulate): f32, IEEE half, or int8 (the row's scale folded into the
// caller's weights).
enum class RowType : uint8_t { kF32, kF16, kI8 };
constexpr int row_type_bytes(RowType t) { return t == RowType::kF32 ? 4 : t == RowType::kF16 ? 2 : 1; }

// How dot kernels want the float vector x prepared. Integer kernels quantise x once per matvec (llama.cpp style)
// and then take int8 x int8/x4 dot products.
enum class ActKind { kNone, kQ8x32, kQ8x256, kQ8x32x8, kQ8x32x8i };
constexpr int kActKinds = 5;

// x quantised in blocks of 32: x[i] ~= d * qs[i]; s = d * sum(qs) (for types with an additive min).
struct ActQ8x32 {
  float d;
  float s;
  int8_t qs[32];
};
// x quantised as kQ8x32 (the same numbers), its blocks grouped by eight with the eight scales together, so a kernel
// scales eight blocks with one vector multiply; the blocks of the last group past the end of x are zero. offset =
// 128 * sum(qs) per block: what a +128 on every weight quant adds to a block's dot (the VNNI kernels' u8 x s8 form).
struct ActQ8x32x8 {
  float d[8];
  int32_t offset[8];
  int8_t qs[8 * 32];
};
// kQ8x32x8i: the same numbers in ActQ8x32x8 with each group's quants interleaved by fours, as pack_q32_runs
// interleaves the weights': quants 4m..4m+3 of block b at qs[32 m + 4 b].
// x quantised in blocks of 256 (Q8_K-like): bsums[k] = sum of qs[16k..16k+15].
struct ActQ8x256 {
  float d;
  int16_t bsums[16];
  int8_t qs[256];
};

inline int64_t act_bytes(ActKind k, int64_t n) {
  switch (k) {
    case ActKind::kQ8x32:
      return n / 32 * (int64_t)sizeof(ActQ8x32);
    case ActKind::kQ8x256:
      return n / 256 * (int64_t)sizeof(ActQ8x256);
    case ActKind::kQ8x32x8:
    case ActKind::kQ8x32x8i:
      return (n / 32 + 7) / 8 * (int64_t)sizeof(ActQ8x32x8);
    default:
      return 0;
  }
}

struct QuantOps {
  const char* name;
  void (*dequantize)(GgmlType t, const void* src, float* dst, int64_t n);
  // One Q4_0/Q5_0 row of n elements in pack_q32_runs' layout, as dequantize gives its GGUF row.
  void (*dequantize_packed)(GgmlType t, const uint8_t* packed, float* dst, int64_t n);
  ActKind (*act_kind)(GgmlType t);
  void (*quantize_act)(ActKind k, const float* x, void* act, int64_t n);
  // act holds x prepared as act_kind(t) says (unused for kNone).
  float (*dot)(GgmlType t, const void* row, const float* x, const void* act, int64_t n);
  // y[r * y_stride + o] = dot of weight row o (at w + o * w_stride, o < n_w) with activation row r (x + r * n,
  // prepared at act + r * act_stride; r < nr <= kMaxDotRows). Each weight row is unpacked once per pass of
  // rows (all nr rows, or as many as the backend's registers hold), and each result is bit-identical to what dot()
  // gives for that pair alone.
  void (*dot_rows)(GgmlType t, const uint8_t* w, int64_t w_stride, int64_t n_w, const float* x, const void* act,
                   int64_t act_stride, int nr, int64_t n, float* y, int64_t y_stride);
  // dot_rows, with weight rows [0, n_w) given twice: at w (GGUF layout) and at packed, in the decode layout of the
  // type (pack_weights): Q8_0 for the rows of whole groups of four (pack_rows4's layout, the group of row 4g at
  // packed + 4g * row_bytes), Q4_0/Q5_0 for every row (pack_q32_runs', row o at packed + o * row_bytes).
  // Bit-identical to dot_rows; a backend may read either copy (reading only the packed one lets the GGUF copy's
  // pages go).
  void (*dot_rows_packed)(GgmlType t, const uint8_t* packed, const uint8_t* w, int64_t w_stride, int64_t n_w,
                          const float* x, const void* act, int64_t act_stride, int nr, int64_t n, float* y,
                          int64_t y_stride);
};

// pack_rows4's layout of a group of four Q8_0 rows (nb blocks each, 136 nb bytes), by runs of up to eight blocks:
// run j (blocks 8j .. 8j + t - 1, t = min(8, nb - 8j)) starts at byte kPackedRunBytes * j and holds first row k's t
// f16 scales at 2 t k, then row k's quants at 8 t + 32 t k, interleaved by fours: quants 4m..4m+3 of the run's
// block b at 4 t m + 4 b (m < 8), so a vector of the row's 4 t bytes at 4 t m holds four quants of every block.
constexpr int64_t kPackedBlockBytes = 4 * 34, kPackedRunBytes = 8 * kPackedBlockBytes;
inline int64_t packed_q8_0_scale(int64_t nb, int64_t i, int k) {
  const int64_t j = i / 8, t = nb - 8 * j < 8 ? nb - 8 * j : 8;
  return kPackedRunBytes * j + 2 * t * k + 2 * (i % 8);
}
// Where quants 4m..4m+3 of block i of row k are.
inline int64_t packed_q8_0_quad(int64_t nb, int64_t i, int k, int m) {
  const int64_t j = i / 8, t = nb - 8 * j < 8 ? nb - 8 * j : 8;
  return kPackedRunBytes * j + 8 * t + 32 * t * k + 4 * t * m + 4 * (i % 8);
}

// pack_q32_runs' layout of one Q4_0 or Q5_0 row (nb blocks, as many bytes as its GGUF form: bb = 18 or 22 per
// block), by runs of up to eight blocks: run j (t = min(8, nb - 8j) blocks) starts at byte 8 bb j and holds the t
// f16 scales (block b's at 2 b), then the 32 t unsigned quants (0..15 for Q4_0, 0..31 for Q5_0: the stored value,
// before the -8 / -16 offset) as eight vectors of 4 t bytes, where lane b of vector m holds quants 4m..4m+3 of
// block b. Vectors 2p and 2p + 1 share the low and high nibbles of plane p (4 t bytes at 2 t + 4 t p); Q5_0 then
// has one plane of 4 t bytes at 18 t whose bit m of byte 4 b + i is bit 4 of quant 4 m + i of block b.
constexpr int64_t q32_block_bytes(GgmlType t) { return t == GgmlType::Q4_0 ? 18 : 22; }
inline int64_t packed_q32_plane(int64_t t, int p) { return 2 * t + 4 * t * p; }  // p < 4: nibbles, p = 4: bit 4
// One row of nb blocks from the GGUF layout into pack_q32_runs' and back (plain C++, quant_scalar.cpp).
void pack_q32_row(GgmlType t, const uint8_t* gguf, int64_t nb, uint8_t* packed);
void unpack_q32_row(GgmlType t, const uint8_t* packed, int64_t nb, uint8_t* gguf);

// Activation rows one dot_rows call takes (a decode batch of up to eight sequences in one call; a backend may
// split them into passes over each weight row, see quant_x86.h kPassRows).
constexpr int kMaxDotRows = 8;

// Asks for every cache line of rows idx[0..n) of base (row_bytes each) to be brought towards the core: attention's
// key and value rows come from DRAM a few per 4 KiB page, and the hardware prefetcher stops at each page's end.
inline void prefetch_rows(const void* base, int64_t row_bytes, const int64_t* idx, int n) {
  for (int j = 0; j < n; ++j) {
    const char* row = static_cast<const char*>(base) + idx[j] * row_bytes;
    for (int64_t b = 0; b < row_bytes; b += 64) __builtin_prefetch(row + b, 0, 3);
  }
}

// group_scores kernels score key rows in pairs and ask for the pair this many rows ahead meanwhile.
constexpr int kAheadKeyRows = 4;

struct VecOps {
  float (*dot_f32)(const float* a, const float* b, int64_t n);
  float (*dot_f16)(const float* a, const uint16_t* b, int64_t n);
  void (*axpy_f32)(float alpha, const float* x, float* y, int64_t n);
  void (*axpy_f16)(float alpha, const uint16_t* x, float* y, int64_t n);
  void (*scale_f32)(float alpha, float* y, int64_t n);
  void (*f32_to_f16)(const float* x, uint16_t* y, int64_t n);
  void (*f16_to_f32)(const uint16_t* x, float* y, int64_t n);
  // y[i] = scale * x[i] (int8 rows with one scale, e.g. ShadowKV's q8 factor rows); one rounding, so exact alike.
  void (*i8_to_f32)(const int8_t* x, float scale, float* y, int64_t n);
  float (*sum_sq)(const float* x, int64_t n);
  // gate[i] = act(gate[i]) * up[i], act = GELU (tanh form) if gelu else SiLU.
  void (*glu)(bool gelu, float* gate, const float* up, int64_t n);
  // Attention over a block of key/value rows for a group of n_q query heads (rows at base + idx[j] * hd; keys f32 or
  // f16, values of any RowType): s[h * ld + j] = scale * q[h] . key[j], and acc[h] += sum_j p[h * ld + j] * value[j]
  // (acc [n_q][hd]).
  // Each key and value row is read once for all the group's heads.
  void (*group_scores)(const float* q, int n_q, int hd, float scale, const void* keys, bool f16, const int64_t* idx,
                       int nv, float* s, int ld);
  void (*group_accumulate)(const float* p, int ld, int n_q, int hd, const void* vals, RowType type, const int64_t* idx,
                           int nv, float* acc);
  // The first i in [from, n) with x[i] >= t, or n.
  int64_t (*next_at_least)(const float* x, int64_t from, int64_t n, float t);
  // x[i] = e^(x[i] - m) (arguments below -87, -inf included, may give 0); returns the sum of the x[i].
  float (*exp_shift_sum)(float* x, int64_t n, float m);
  // max(x[0..n)), n >= 1 (-inf scores count; no NaN expected).
  float (*max_f32)(const float* x, int64_t n);
  // Scores against transposed panels of key rows (vec.h panel_scores).
  void (*panel_scores)(const float* q, int n_q, int hd, float scale, const void* panels, bool f16, int64_t n_panels,
                       float* s, int64_t ld);
  // RoPE of n_rows rows at consecutive positions (vec.h rope_rows).
  void (*rope_rows)(float* x, int n_rows, int64_t row_stride, int half, bool neox, const float* c0, const float* s0,
                    const float* step_c, const float* step_s);
};

// matmul: from this many activation rows on, a GEMM (SGEMM on dequantised weight tiles, or the int8 GEMM) takes over
// from the per-row int8 dot products (the crossover against SGEMM measured on Zen 2: ~7 rows for Q5_0, ~14 for
// Q8_0/Q4_K; not measured again for the int8 GEMM).
constexpr int64_t kGemmMinRows = 12;

// Tables per backend (defined in quant_scalar.cpp / quant_avx2.cpp / quant_avx512.cpp / vec.cpp / vec_avx2.cpp).
// Each is constant-initialised data (function addresses): no code compiled with a backend's flags runs before the
// CPU check, not even a static initialiser (tests/python/test_simd_isolation.py checks the binaries for it).
extern const QuantOps kScalarQuantOps, kAvx2QuantOps, kAvx512QuantOps;
extern const VecOps kScalarVecOps, kAvx2VecOps;

// vec_avx512.cpp's own kernels; the rest of the AVX-512 vector table is the AVX2 one.
struct Avx512VecKernels {
  decltype(VecOps::group_scores) group_scores;
  decltype(VecOps::group_accumulate) group_accumulate;
  decltype(VecOps::panel_scores) panel_scores;
};
extern const Avx512VecKernels kAvx512VecKernels;
// The AVX-512 vector table, assembled at first use in quant.cpp (plain x86-64 code).
const VecOps& avx512_vec_ops();

// True when this build has kernels for b and the CPU can run them.
bool supported(Backend b);
// The active backend: chosen once from the CPU, overridable by SHADOWKV_SIMD=scalar|avx2|avx512 (an unsupported
// request falls back to the best supported one below it).
Backend active();
const char* backend_name(Backend b);
const QuantOps& quant_ops();
// The active backend's int8 GEMM for prefill (gemm_i8.h), or null when it has none (prefill then dequantises weight
// tiles for an SGEMM).
struct GemmI8Ops;
const GemmI8Ops* gemm_i8_ops();
const VecOps& vec_ops();

// Test hook: force a backend (must be supported) until reset_backend() restores the default choice.
void set_backend(Backend b);
void reset_backend();

}  // namespace shadowkv::simd
