#include "kv/shadowkv/low_rank_keys.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "util/error.h"

namespace shadowkv {

namespace {

KeyBasis fit_gram(const float* k, int64_t n_rows, int width, int rank) {
  // G = K^T K accumulated in double over blocks of rows (f32 would lose the directions whose sigma is below
  // ~sqrt(eps_f32) * sigma_max, since G holds sigma^2), then eigen-solved: the top eigenvectors of G are the top
  // right singular vectors of K and its eigenvalues are sigma^2.
  constexpr int64_t kRows = 512;
  std::vector<double> gd((size_t)width * width, 0.0), block((size_t)kRows * width), eig(width);
  for (int64_t r0 = 0; r0 < n_rows; r0 += kRows) {
    const int64_t nr = std::min(kRows, n_rows - r0);
    std::copy_n(k + r0 * width, nr * width, block.data());
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, width, (int)nr, 1.0, block.data(), width, 1.0, gd.data(), width);
  }
  const lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', width, gd.data(), width, eig.data());
  if (info != 0)
    throw Error("shadowkv: eigendecomposition of the key Gram matrix failed (dsyevd info " + std::to_string(info) +
                ")");
  KeyBasis b;
  b.width = width;
  b.rank = rank;
  b.vt.resize((size_t)rank * width);
  b.sigma.resize(rank);
  for (int j = 0; j < rank; ++j) {  // eigenvalues ascend: column width-1-j is the j-th largest
    const int col = width - 1 - j;
    b.sigma[j] = (float)std::sqrt(std::max(eig[col], 0.0));
    for (int i = 0; i < width; ++i) b.vt[(size_t)j * width + i] = (float)gd[(size_t)i * width + col];
  }
  return b;
}

KeyBasis fit_svd(const float* k, int64_t n_rows, int width, int rank) {
  const int m = (int)n_rows, mn = std::min(m, width);
  std::vector<float> a(k, k + (size_t)n_rows * width), s(mn), u((size_t)m * mn), vt((size_t)mn * width);
  const lapack_int info =
      LAPACKE_sgesdd(LAPACK_ROW_MAJOR, 'S', m, width, a.data(), width, s.data(), u.data(), mn, vt.data(), width);
  if (info != 0) throw Error("shadowkv: SVD of the keys failed (sgesdd info " + std::to_string(info) + ")");
  KeyBasis b;
  b.width = width;
  b.rank = rank;
  b.vt.assign((size_t)rank * width, 0.0f);
  b.sigma.assign(rank, 0.0f);
  for (int j = 0; j < std::min(rank, mn); ++j) {
    b.sigma[j] = s[j];
    std::copy(&vt[(size_t)j * width], &vt[(size_t)(j + 1) * width], &b.vt[(size_t)j * width]);
  }
  return b;
}

}  // namespace

KeyBasis fit_key_basis(const float* k, int64_t n_rows, int width, int rank, KeyFactorMethod method) {
  if (width < 1 || rank < 1 || rank > width)
    throw Error("shadowkv: rank " + std::to_string(rank) + " must be in [1, " + std::to_string(width) + "]");
  if (n_rows < 1) throw Error("shadowkv: cannot factor an empty key matrix");
  return method == KeyFactorMethod::kGramEig ? fit_gram(k, n_rows, width, rank) : fit_svd(k, n_rows, width, rank);
}

void project_keys(const KeyBasis& basis, const float* k, int64_t n_rows, float* coef) {
  if (n_rows == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n_rows, basis.rank, basis.width, 1.0f, k, basis.width,
              basis.vt.data(), basis.width, 0.0f, coef, basis.rank);
}

void balance_columns(float* coef, int64_t n_rows, KeyBasis* basis) {
  const int rank = basis->rank, width = basis->width;
  std::vector<double> sq(rank, 0.0);
  for (int64_t r = 0; r < n_rows; ++r)
    for (int j = 0; j < rank; ++j) sq[j] += (double)coef[r * rank + j] * coef[r * rank + j];
  for (int j = 0; j < rank; ++j) {
    const float d = n_rows > 0 ? (float)std::sqrt(sq[j] / (double)n_rows) : 0.0f;
    if (!(d > 0.0f)) continue;
    const float inv = 1.0f / d;
    for (int64_t r = 0; r < n_rows; ++r) coef[r * rank + j] *= inv;
    for (int c = 0; c < width; ++c) basis->vt[(size_t)j * width + c] *= d;
  }
}

std::vector<float> split_basis_by_head(const KeyBasis& basis, int n_heads, int head_dim) {
  std::vector<float> out((size_t)n_heads * basis.rank * head_dim);
  for (int h = 0; h < n_heads; ++h)
    for (int j = 0; j < basis.rank; ++j)
      std::copy_n(&basis.vt[(size_t)j * basis.width + (size_t)h * head_dim], head_dim,
                  &out[((size_t)h * basis.rank + j) * head_dim]);
  return out;
}

void rebuild_keys(const float* coef, int n_tok, const float* svt_head, int rank, int head_dim, float* out) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n_tok, head_dim, rank, 1.0f, coef, rank, svt_head, head_dim,
              0.0f, out, head_dim);
}

}  // namespace shadowkv
