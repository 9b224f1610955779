// The shared KV block pools and block tables; see block_pool.h.
#include "kv/block_pool.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <string>

#include "util/error.h"

namespace shadowkv {

namespace {

constexpr int64_t kArenaBytes = 4 << 20;  // the pool grows by arenas of about this size (at least 4 blocks)

struct Pools {
  std::mutex mu;
  std::map<int64_t, std::unique_ptr<BlockPool>> by_size;
};

Pools& pools() {
  static Pools* p = new Pools;  // never destroyed: caches may outlive static destruction order
  return *p;
}

}  // namespace

BlockPool& BlockPool::of_size(int64_t block_bytes) {
  if (block_bytes <= 0) throw Error("block pool: block size must be positive");
  Pools& p = pools();
  std::lock_guard<std::mutex> lock(p.mu);
  std::unique_ptr<BlockPool>& pool = p.by_size[block_bytes];
  if (!pool) pool = std::make_unique<BlockPool>(block_bytes);
  return *pool;
}

BlockPoolStats BlockPool::all_stats() {
  Pools& p = pools();
  std::lock_guard<std::mutex> lock(p.mu);
  BlockPoolStats t;
  for (const auto& [bytes, pool] : p.by_size) {
    const BlockPoolStats s = pool->stats();
    t.blocks_total += s.blocks_total, t.blocks_used += s.blocks_used;
    t.bytes_total += s.bytes_total, t.bytes_used += s.bytes_used;
  }
  t.block_bytes = p.by_size.size() == 1 ? p.by_size.begin()->first : 0;
  return t;
}

void* BlockPool::take() {
  std::lock_guard<std::mutex> lock(mu_);
  if (free_.empty()) {
    const int64_t n = std::max<int64_t>(4, kArenaBytes / block_bytes_);
    arenas_.emplace_back(new uint8_t[(size_t)(n * block_bytes_)]);
    for (int64_t i = n - 1; i >= 0; --i) free_.push_back(arenas_.back().get() + i * block_bytes_);
    total_ += n;
  }
  void* b = free_.back();
  free_.pop_back();
  return b;
}

void BlockPool::give(void* block) {
  std::lock_guard<std::mutex> lock(mu_);
  free_.push_back(block);
}

BlockPoolStats BlockPool::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t used = total_ - (int64_t)free_.size();
  return {block_bytes_, total_, used, total_ * block_bytes_, used * block_bytes_};
}

BlockTable::BlockTable(int64_t row_bytes, int64_t block_rows)
    : pool_(&BlockPool::of_size(row_bytes * block_rows)), row_bytes_(row_bytes), block_rows_(block_rows) {
  if (row_bytes <= 0 || block_rows <= 0) throw Error("block table: row size and rows per block must be positive");
}

BlockTable::BlockTable(const BlockTable& o) : pool_(o.pool_), row_bytes_(o.row_bytes_), block_rows_(o.block_rows_) {
  blocks_.reserve(o.blocks_.size());
  for (const void* b : o.blocks_) {
    blocks_.push_back(pool_->take());
    std::memcpy(blocks_.back(), b, (size_t)(row_bytes_ * block_rows_));
  }
}

BlockTable& BlockTable::operator=(const BlockTable& o) {
  if (this != &o) *this = BlockTable(o);
  return *this;
}

BlockTable::BlockTable(BlockTable&& o) noexcept
    : pool_(o.pool_), row_bytes_(o.row_bytes_), block_rows_(o.block_rows_), blocks_(std::move(o.blocks_)) {
  o.blocks_.clear();
}

BlockTable& BlockTable::operator=(BlockTable&& o) noexcept {
  if (this != &o) {
    release();
    pool_ = o.pool_, row_bytes_ = o.row_bytes_, block_rows_ = o.block_rows_;
    blocks_ = std::move(o.blocks_);
    o.blocks_.clear();
  }
  return *this;
}

BlockTable::~BlockTable() { release(); }

void BlockTable::release() {
  for (void* b : blocks_) pool_->give(b);
  blocks_.clear();
}

void BlockTable::reserve(int64_t rows) {
  while (capacity_rows() < rows) blocks_.push_back(pool_->take());
}

}  // namespace shadowkv
