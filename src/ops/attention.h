// Exact softmax attention kernels shared by all KV policies. A "group" is the query heads that read one KV head
// (GQA); keys and values of that head are rows of head_dim elements, f32 or f16.
#pragma once
#include <cstdint>

namespace shadowkv {

enum class KvDType { F32, F16 };

struct KeyValueRows {
  const void* keys = nullptr;  // [n][head_dim]
  const void* vals = nullptr;  // [n][head_dim]
  KvDType dtype = KvDType::F32;
  int64_t n = 0;
  // Optional per-row positions for masking (ring buffers); null means every row is visible to attend_rows and
  // attend_group, and row i is at position pos0 + i for attend_tile's causal mask.
  const int64_t* pos = nullptr;
  int64_t pos0 = 0;
  // Sink rows ignore the window: visible to every query at or after their position (e.g. the first tokens of a
  // windowed cache that stay attended forever).
  bool sink = false;
  // Paged rows (a block table, kv/block_pool.h): when block_rows > 0, row i is row (first + i) % block_rows of
  // block (first + i) / block_rows of key_blocks / val_blocks, and keys / vals are unused.
  const void* const* key_blocks = nullptr;
  const void* const* val_blocks = nullptr;
  int64_t block_rows = 0;
  int64_t first = 0;
  // Gathered rows (decode only: attend_rows, attend_group): when index is set, row i is row index[i] of keys /
  // vals (a hot buffer's selected slots among others).
  const int64_t* index = nullptr;
};

// A contiguous run of rows of a set: row i's key and value and how many rows from i are stored after them (to the
// end of i's block for paged rows, else to the end of the set).
struct RowRun {
  const void* keys;
  const void* vals;
  int64_t n;
};
RowRun row_run(const KeyValueRows& kv, int64_t i, int head_dim);

// Rows [begin, end) of kv as a set of their own (positions follow: pos + begin, pos0 + begin).
KeyValueRows slice_rows(const KeyValueRows& kv, int64_t begin, int64_t end, int head_dim);

// Running softmax state of one query head: max score m, normaliser l, unnormalised output acc[head_dim].
struct SoftmaxAcc {
  float m;
  float l;
  float* acc;
};

// Folds the visible rows of kv into the running state of n_q query heads (q: [n_q][head_dim]).
// A row with pos p is visible to q_pos iff p <= q_pos and (window == 0 or kv.sink or q_pos - p < window).
void attend_rows(const float* q, int n_q, int head_dim, float scale, const KeyValueRows& kv, int64_t q_pos, int window,
                 SoftmaxAcc* state);

// Parts a decode row set of `rows` keys is split into (each folded on its own, then merged in order): a function of
// the row count only, never of the thread count, so results are the same with any -t.
int attention_parts(int64_t rows);

// Merges state b into a (split-K reduction).
void merge_acc(SoftmaxAcc& a, const SoftmaxAcc& b, int head_dim);

// out[h] = acc/l for each of n_q heads (zeros if nothing was visible).
void finish_acc(const SoftmaxAcc* state, int n_q, int head_dim, float* out, int64_t out_stride);

// Convenience: attention of n_q heads over several row sets (e.g. local + outliers + selected), splitting the
// keys over OpenMP threads when there are many. out rows are head_dim apart.
void attend_group(const float* q, int n_q, int head_dim, float scale, const KeyValueRows* sets, int n_sets,
                  int64_t q_pos, int window, float* out);

// Prefill form of attend_group: n_tok consecutive query tokens at positions q_pos0.. (query token t's n_q heads at
// q + t*q_stride, its output at out + t*out_stride, heads head_dim apart). Rows without pos are at position
// pos0 + index (append-only stores), so each query sees the causal prefix. Each key block is read once for
// the whole tile (two small GEMMs per block); results equal attend_group's up to float rounding. Calls OpenBLAS:
// inside an OpenMP region set openblas_set_num_threads(1) first.
void attend_tile(const float* q, int64_t q_stride, int n_tok, int n_q, int head_dim, float scale,
                 const KeyValueRows* sets, int n_sets, int64_t q_pos0, int window, float* out, int64_t out_stride);

}  // namespace shadowkv
