// Paged KV allocation (PagedAttention's block allocator): fixed-size blocks of KV rows from one process-wide pool
// per block size, shared by every sequence's cache (so all sequences of a batch draw on one free list), and a
// block table holding one KV head's keys or values as a list of such blocks.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace shadowkv {

struct BlockPoolStats {
  int64_t block_bytes = 0;
  int64_t blocks_total = 0;  // blocks allocated from the system (the pool never shrinks; free blocks are reused)
  int64_t blocks_used = 0;   // held by live block tables
  int64_t bytes_total = 0, bytes_used = 0;
  int64_t blocks_free() const { return blocks_total - blocks_used; }
};

class BlockPool {
 public:
  // The pool of blocks of `block_bytes` bytes (created on first use; lives as long as the process).
  static BlockPool& of_size(int64_t block_bytes);
  // Every pool's figures, summed (block_bytes is 0 unless there is exactly one pool).
  static BlockPoolStats all_stats();

  explicit BlockPool(int64_t block_bytes) : block_bytes_(block_bytes) {}
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  void* take();            // a free block, growing the pool by an arena when there is none; thread-safe
  void give(void* block);  // returns a block taken from this pool; thread-safe
  BlockPoolStats stats() const;

 private:
  const int64_t block_bytes_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<uint8_t[]>> arenas_;
  std::vector<void*> free_;
  int64_t total_ = 0;
};

// Rows of `row_bytes` bytes in blocks of `block_rows` rows from the shared pool: row i lives in block
// i / block_rows. Copying takes new blocks and copies the rows; destruction gives the blocks back.
class BlockTable {
 public:
  BlockTable() = default;
  BlockTable(int64_t row_bytes, int64_t block_rows);
  BlockTable(const BlockTable& o);
  BlockTable& operator=(const BlockTable& o);
  BlockTable(BlockTable&& o) noexcept;
  BlockTable& operator=(BlockTable&& o) noexcept;
  ~BlockTable();

  void reserve(int64_t rows);  // takes blocks until `rows` rows fit
  uint8_t* row(int64_t i) { return static_cast<uint8_t*>(blocks_[i / block_rows_]) + (i % block_rows_) * row_bytes_; }
  const uint8_t* row(int64_t i) const {
    return static_cast<const uint8_t*>(blocks_[i / block_rows_]) + (i % block_rows_) * row_bytes_;
  }
  const void* const* blocks() const { return blocks_.data(); }
  int64_t n_blocks() const { return (int64_t)blocks_.size(); }
  int64_t capacity_rows() const { return n_blocks() * block_rows_; }
  int64_t bytes() const { return n_blocks() * block_rows_ * row_bytes_; }  // bytes of the blocks held

 private:
  void release();
  BlockPool* pool_ = nullptr;
  int64_t row_bytes_ = 0, block_rows_ = 0;
  std::vector<void*> blocks_;
};

}  // namespace shadowkv
