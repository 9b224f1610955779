// Low-rank factorisation of a sequence's pre-RoPE keys (ShadowKV step 1): K [T x width] ~= C . B, where the rows of
// B [rank x width] are the top right singular vectors of K (orthonormal) and C = K . B^T [T x rank] are the tokens'
// coordinates in that basis. C . B is exactly U_r . (S_r . V_r^T) of the truncated SVD (C = U_r S_r, B = V_r^T);
// keeping S inside C means new keys (generated tokens) are projected with C = K . B^T, no division by tiny
// singular values.
#pragma once
#include <cstdint>
#include <vector>

namespace shadowkv {

enum class KeyFactorMethod {
  kGramEig,  // eigenvectors of the Gram matrix K^T K (blocked dsyrk + dsyevd): T*width^2/2 flops, width^2 memory
  kSvd,      // LAPACKE_sgesdd on a copy of K (reference; costlier in time and memory)
};

struct KeyBasis {
  int width = 0;
  int rank = 0;
  std::vector<float> vt;     // [rank][width], orthonormal rows, by decreasing singular value
  std::vector<float> sigma;  // [rank] singular values of K
};

// Fits the rank-`rank` basis of K (row-major [n_rows][width]); 1 <= rank <= width. Rows of the basis beyond
// min(n_rows, width) (a rank-deficient K) are still orthonormal for kGramEig and zero for kSvd.
KeyBasis fit_key_basis(const float* k, int64_t n_rows, int width, int rank, KeyFactorMethod method);

// coef [n_rows][rank] = k [n_rows][width] . basis.vt^T
void project_keys(const KeyBasis& basis, const float* k, int64_t n_rows, float* coef);

// Moves each coefficient column's scale into the basis: coef[:, j] /= d_j and vt[j] *= d_j, d_j the column's RMS
// over the n_rows (columns of zeros are left alone), so coef . vt is unchanged while every column of coef has RMS 1
// (U instead of U.S). Before int8 storage with one scale per row this spends the row's 8 bits evenly on all rank
// directions instead of on the first singular direction alone; vt's rows are no longer unit length afterwards.
void balance_columns(float* coef, int64_t n_rows, KeyBasis* basis);

// Splits B by KV head: out [n_heads][rank][head_dim] with out[h][j][d] = vt[j][h*head_dim + d].
std::vector<float> split_basis_by_head(const KeyBasis& basis, int n_heads, int head_dim);

// Rebuilt key rows of one head: out[t][d] = sum_j coef[t][j] * svt_head[j][d]  (coef [n_tok][rank], svt_head
// [rank][head_dim]). One SGEMM: inside an OpenMP region set openblas_set_num_threads(1) first.
void rebuild_keys(const float* coef, int n_tok, const float* svt_head, int rank, int head_dim, float* out);

}  // namespace shadowkv
