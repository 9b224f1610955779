#include "ops/attention.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "ops/quant_dispatch.h"
#include "ops/vec.h"
#include "util/error.h"

namespace shadowkv {
namespace {

constexpr int kBlock = 64;  // rows scored before one rescale of the running state

// Rows [begin, end) of one set.
void attend_range(const float* q, int n_q, int hd, float scale, const KeyValueRows& kv, int64_t begin, int64_t end,
                  int64_t q_pos, int window, SoftmaxAcc* st) {
  if (kv.sink) window = 0;
  const simd::VecOps& ops = simd::vec_ops();
  const bool f16 = kv.dtype == KvDType::F16;
  const simd::RowType vtype = f16 ? simd::RowType::kF16 : simd::RowType::kF32;
  bool contiguous = true;
  for (int h = 1; h < n_q; ++h) contiguous = contiguous && st[h].acc == st[0].acc + (int64_t)h * hd;
  int64_t idx[kBlock];
  thread_local std::vector<float> s_buf;
  s_buf.resize((size_t)n_q * kBlock);
  float* s = s_buf.data();  // [n_q][kBlock] scores, then probabilities
  for (int64_t b0 = begin, b1; b0 < end; b0 = b1) {
    // A block of rows never crosses a pool block; gathered rows are indices from the base of keys / vals.
    const RowRun run = kv.index ? RowRun{kv.keys, kv.vals, end - b0} : row_run(kv, b0, hd);
    b1 = std::min({end, b0 + kBlock, b0 + run.n});
    int nv = 0;
    for (int64_t i = b0; i < b1; ++i) {
      if (kv.pos) {
        const int64_t p = kv.pos[i];
        if (p > q_pos || p < 0 || (window > 0 && q_pos - p >= window)) continue;
      }
      idx[nv++] = kv.index ? kv.index[i] : i - b0;
    }
    if (nv == 0) continue;
    simd::prefetch_rows(run.vals, hd * (f16 ? 2 : 4), idx, nv);  // in flight while the scores are computed
    ops.group_scores(q, n_q, hd, scale, run.keys, f16, idx, nv, s, kBlock);
    for (int h = 0; h < n_q; ++h) {
      float* sh = s + h * kBlock;
      const float bmax = ops.max_f32(sh, nv);
      SoftmaxAcc& a = st[h];
      if (bmax > a.m) {
        const float r = std::exp(a.m - bmax);  // exp(-inf) = 0 on the first block
        a.l *= r;
        scale_f32(r, a.acc, hd);
        a.m = bmax;
      }
      a.l += ops.exp_shift_sum(sh, nv, a.m);
    }
    // One pass over the value rows for all heads when their accumulators are one [n_q][hd] array (attend_group's).
    if (contiguous)
      ops.group_accumulate(s, kBlock, n_q, hd, run.vals, vtype, idx, nv, st[0].acc);
    else
      for (int h = 0; h < n_q; ++h)
        ops.group_accumulate(s + h * kBlock, kBlock, 1, hd, run.vals, vtype, idx, nv, st[h].acc);
  }
}

// Position of row i of kv: its recorded position, or pos0 + i for append-only rows (see attend_tile).
inline int64_t row_pos(const KeyValueRows& kv, int64_t i) { return kv.pos ? kv.pos[i] : kv.pos0 + i; }

inline bool visible(int64_t p, int64_t q_pos, int window) {
  return p >= 0 && p <= q_pos && (window == 0 || q_pos - p < window);
}

}  // namespace

RowRun row_run(const KeyValueRows& kv, int64_t i, int head_dim) {
  const int64_t elem = kv.dtype == KvDType::F16 ? 2 : 4;
  if (kv.block_rows <= 0) {
    const int64_t off = i * head_dim * elem;
    return {static_cast<const uint8_t*>(kv.keys) + off, static_cast<const uint8_t*>(kv.vals) + off, kv.n - i};
  }
  const int64_t r = kv.first + i, b = r / kv.block_rows, off = (r % kv.block_rows) * head_dim * elem;
  return {static_cast<const uint8_t*>(kv.key_blocks[b]) + off, static_cast<const uint8_t*>(kv.val_blocks[b]) + off,
          std::min(kv.n - i, kv.block_rows - r % kv.block_rows)};
}

KeyValueRows slice_rows(const KeyValueRows& kv, int64_t begin, int64_t end, int head_dim) {
  KeyValueRows s = kv;
  if (kv.block_rows > 0) {
    s.first += begin;
  } else if (kv.index) {
    s.index += begin;
  } else {
    const RowRun run = row_run(kv, begin, head_dim);
    s.keys = run.keys, s.vals = run.vals;
  }
  s.n = end - begin;
  if (s.pos) s.pos += begin;
  s.pos0 += begin;
  return s;
}

void attend_tile(const float* q, int64_t q_stride, int n_tok, int n_q, int head_dim, float scale,
                 const KeyValueRows* sets, int n_sets, int64_t q_pos0, int window, float* out, int64_t out_stride) {
  // Flash-attention on two small GEMMs per key block: S = Q K^T for all M = n_tok * n_q query vectors of the
  // tile, a masked online softmax over S, then Acc += P V. The caller sets OpenBLAS to one thread.
  constexpr int kKeyBlock = 128;
  const int hd = head_dim, M = n_tok * n_q;
  thread_local std::vector<float> Q, S, Kb, Vb, Acc, m, l;
  Q.resize((size_t)M * hd);
  S.resize((size_t)M * kKeyBlock);
  Acc.assign((size_t)M * hd, 0.0f);
  m.assign(M, -std::numeric_limits<float>::infinity());
  l.assign(M, 0.0f);
  for (int t = 0; t < n_tok; ++t) std::memcpy(&Q[(size_t)t * n_q * hd], q + t * q_stride, sizeof(float) * n_q * hd);
  const int64_t q_last = q_pos0 + n_tok - 1;
  for (int si = 0; si < n_sets; ++si) {
    const KeyValueRows& kv = sets[si];
    if (kv.index) throw Error("attention: gathered rows (KeyValueRows::index) are for decode kernels only");
    const int window_kv = kv.sink ? 0 : window;
    const int64_t n = kv.pos ? kv.n : std::clamp<int64_t>(q_last + 1 - kv.pos0, 0, kv.n);
    for (int64_t b0 = 0, B; b0 < n; b0 += B) {
      const RowRun run = row_run(kv, b0, hd);  // a key block never crosses a pool block
      B = std::min<int64_t>({kKeyBlock, n - b0, run.n});
      int64_t pos[kKeyBlock];
      bool any = false;
      for (int j = 0; j < B; ++j) {
        pos[j] = row_pos(kv, b0 + j);
        // Visible to some query of the tile: not after the last one, and inside the first one's window.
        any = any || (visible(pos[j], q_last, 0) && (window_kv == 0 || q_pos0 - pos[j] < window_kv));
      }
      if (!any) continue;
      const float *K, *V;
      if (kv.dtype == KvDType::F32) {
        K = static_cast<const float*>(run.keys);
        V = static_cast<const float*>(run.vals);
      } else {
        Kb.resize((size_t)kKeyBlock * hd);
        Vb.resize((size_t)kKeyBlock * hd);
        f16_to_f32_row(static_cast<const uint16_t*>(run.keys), Kb.data(), B * hd);
        f16_to_f32_row(static_cast<const uint16_t*>(run.vals), Vb.data(), B * hd);
        K = Kb.data();
        V = Vb.data();
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, B, hd, scale, Q.data(), hd, K, hd, 0.0f, S.data(), B);
      for (int r = 0; r < M; ++r) {
        const int64_t q_pos = q_pos0 + r / n_q;
        float* sr = &S[(size_t)r * B];
        float bmax = -std::numeric_limits<float>::infinity();
        for (int j = 0; j < B; ++j) {
          if (!visible(pos[j], q_pos, window_kv)) sr[j] = -std::numeric_limits<float>::infinity();
          bmax = std::max(bmax, sr[j]);
        }
        if (bmax == -std::numeric_limits<float>::infinity()) {  // nothing visible to this query in the block
          std::fill(sr, sr + B, 0.0f);
          continue;
        }
        if (bmax > m[r]) {
          const float rescale = std::exp(m[r] - bmax);  // exp(-inf) = 0 on the first visible block
          l[r] *= rescale;
          scale_f32(rescale, &Acc[(size_t)r * hd], hd);
          m[r] = bmax;
        }
        l[r] += exp_shift_sum(sr, B, m[r]);  // masked scores are -inf and become 0
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, hd, B, 1.0f, S.data(), B, V, hd, 1.0f, Acc.data(), hd);
    }
  }
  for (int r = 0; r < M; ++r) {
    float* o = out + (r / n_q) * out_stride + (int64_t)(r % n_q) * hd;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    for (int i = 0; i < hd; ++i) o[i] = Acc[(size_t)r * hd + i] * inv;
  }
}

void attend_rows(const float* q, int n_q, int head_dim, float scale, const KeyValueRows& kv, int64_t q_pos, int window,
                 SoftmaxAcc* state) {
  attend_range(q, n_q, head_dim, scale, kv, 0, kv.n, q_pos, window, state);
}

void merge_acc(SoftmaxAcc& a, const SoftmaxAcc& b, int head_dim) {
  if (b.l == 0.0f) return;
  if (a.l == 0.0f) {
    a.m = b.m;
    a.l = b.l;
    std::memcpy(a.acc, b.acc, sizeof(float) * head_dim);
    return;
  }
  const float m = std::max(a.m, b.m);
  const float ra = std::exp(a.m - m), rb = std::exp(b.m - m);
  for (int i = 0; i < head_dim; ++i) a.acc[i] = a.acc[i] * ra + b.acc[i] * rb;
  a.l = a.l * ra + b.l * rb;
  a.m = m;
}

void finish_acc(const SoftmaxAcc* state, int n_q, int head_dim, float* out, int64_t out_stride) {
  for (int h = 0; h < n_q; ++h) {
    float* o = out + h * out_stride;
    const float inv = state[h].l > 0.0f ? 1.0f / state[h].l : 0.0f;
    for (int i = 0; i < head_dim; ++i) o[i] = state[h].acc[i] * inv;
  }
}

int attention_parts(int64_t rows) {
  constexpr int64_t kSplitRows = 4096, kRowsPerPart = 2048;
  return rows < kSplitRows ? 1 : (int)std::min<int64_t>(32, (rows + kRowsPerPart - 1) / kRowsPerPart);
}

void attend_group(const float* q, int n_q, int head_dim, float scale, const KeyValueRows* sets, int n_sets,
                  int64_t q_pos, int window, float* out) {
  int64_t total = 0;
  for (int s = 0; s < n_sets; ++s) total += sets[s].n;
  // Long row sets are split into parts (by row count only, so any thread count gives the same result); the parts
  // run on threads unless already inside a parallel region.
  const int n_parts = attention_parts(total);
  std::vector<float> acc_buf((size_t)n_parts * n_q * head_dim, 0.0f);
  std::vector<SoftmaxAcc> st((size_t)n_parts * n_q);
  for (int p = 0; p < n_parts; ++p)
    for (int h = 0; h < n_q; ++h)
      st[(size_t)p * n_q + h] = {-std::numeric_limits<float>::infinity(), 0.0f,
                                 acc_buf.data() + ((size_t)p * n_q + h) * head_dim};

  auto run_part = [&](int p) {
    // Part bounds on kBlock multiples: a set's rows fall into the same blocks whether it is split or paged (in
    // blocks of a multiple of kBlock rows), so paging does not change a result.
    const auto bound = [&](int i) { return i == n_parts ? total : total * i / n_parts / kBlock * kBlock; };
    const int64_t lo = bound(p), hi = bound(p + 1);
    int64_t base = 0;
    for (int s = 0; s < n_sets; ++s) {
      const int64_t b = std::max(lo, base), e = std::min(hi, base + sets[s].n);
      if (b < e)
        attend_range(q, n_q, head_dim, scale, sets[s], b - base, e - base, q_pos, window, &st[(size_t)p * n_q]);
      base += sets[s].n;
    }
  };
  if (n_parts > 1) {
#pragma omp parallel for schedule(dynamic, 1) if (!omp_in_parallel())
    for (int p = 0; p < n_parts; ++p) run_part(p);
    for (int p = 1; p < n_parts; ++p)
      for (int h = 0; h < n_q; ++h) merge_acc(st[h], st[(size_t)p * n_q + h], head_dim);
  } else {
    run_part(0);
  }
  finish_acc(st.data(), n_q, head_dim, out, head_dim);
}

}  // namespace shadowkv
