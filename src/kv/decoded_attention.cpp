// Decode-then-attend for compact KV rows: row blocks into attend_rows (one query), whole heads into attend_tile.
#include "kv/decoded_attention.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "ops/attention.h"

namespace shadowkv {
namespace {

// Rows decoded per step; a multiple of attention.cpp's 64-row softmax block, so a decoded step folds the rows in
// exactly the blocks attend_group would.
constexpr int64_t kRowBlock = 256;

void attend_step(const LayerGeometry& g, const RowDecoder& rows, int64_t pos, const float* q, float* out) {
  const int hd = g.head_dim, group = g.n_head / g.n_kv_head, n_kv = g.n_kv_head;
  const int64_t total = pos + 1;
  const int parts = attention_parts(total);  // by row count, not threads: the same result with any -t
  const int n_jobs = n_kv * parts;
  std::vector<float> acc((size_t)n_jobs * group * hd, 0.0f);
  std::vector<SoftmaxAcc> st((size_t)n_jobs * group);
  for (size_t i = 0; i < st.size(); ++i) st[i] = {-std::numeric_limits<float>::infinity(), 0.0f, &acc[i * hd]};
#pragma omp parallel for schedule(dynamic, 1) if (n_jobs > 1 && !omp_in_parallel())
  for (int job = 0; job < n_jobs; ++job) {
    const int h = job / parts, part = job % parts;
    // Part boundaries on block multiples: one part alone folds exactly attend_group's blocks.
    const int64_t n_blocks = (total + kRowBlock - 1) / kRowBlock;
    const int64_t lo = n_blocks * part / parts * kRowBlock,
                  hi = std::min(total, n_blocks * (part + 1) / parts * kRowBlock);
    std::vector<float> kb((size_t)kRowBlock * hd), vb((size_t)kRowBlock * hd);
    for (int64_t b0 = lo; b0 < hi; b0 += kRowBlock) {
      const int64_t nb = std::min(kRowBlock, hi - b0);
      rows.decode(h, b0, nb, kb.data(), vb.data());
      KeyValueRows set;
      set.keys = kb.data(), set.vals = vb.data(), set.n = nb;
      attend_rows(q + (int64_t)h * group * hd, group, hd, g.scale, set, pos, 0, &st[(size_t)job * group]);
    }
  }
  for (int h = 0; h < n_kv; ++h) {
    SoftmaxAcc* first = &st[(size_t)h * parts * group];
    for (int p = 1; p < parts; ++p)
      for (int i = 0; i < group; ++i) merge_acc(first[i], st[((size_t)h * parts + p) * group + i], hd);
    finish_acc(first, group, hd, out + (int64_t)h * group * hd, hd);
  }
}

void attend_chunk(const LayerGeometry& g, const RowDecoder& rows, int64_t pos0, int n, const float* q, float* out) {
  const int hd = g.head_dim, group = g.n_head / g.n_kv_head;
  const int64_t total = pos0 + n, qstride = (int64_t)g.n_head * hd;
  const int64_t n_blocks = (total + kRowBlock - 1) / kRowBlock;
  constexpr int kTile = 16;
  const int n_tiles = (n + kTile - 1) / kTile;
  std::vector<float> K((size_t)total * hd), V((size_t)total * hd);
  const int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(1);  // our OpenMP threads cover the cores; each tile's GEMMs run on one
  for (int h = 0; h < g.n_kv_head; ++h) {
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < n_blocks; ++b) {
      const int64_t b0 = b * kRowBlock;
      rows.decode(h, b0, std::min(kRowBlock, total - b0), &K[(size_t)b0 * hd], &V[(size_t)b0 * hd]);
    }
    KeyValueRows set;
    set.keys = K.data(), set.vals = V.data(), set.n = total;
#pragma omp parallel for schedule(dynamic, 1)
    for (int t = 0; t < n_tiles; ++t) {
      const int t0 = t * kTile, nt = std::min(kTile, n - t0);
      const int64_t off = t0 * qstride + (int64_t)h * group * hd;
      attend_tile(q + off, qstride, nt, group, hd, g.scale, &set, 1, pos0 + t0, 0, out + off, qstride);
    }
  }
  openblas_set_num_threads(blas_threads);
}

}  // namespace

void attend_decoded(const LayerGeometry& g, const RowDecoder& rows, int64_t pos0, int n, const float* q, float* out) {
  if (n == 1)
    attend_step(g, rows, pos0, q, out);
  else
    attend_chunk(g, rows, pos0, n, q, out);
}

}  // namespace shadowkv
