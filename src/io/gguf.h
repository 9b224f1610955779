// GGUF reader: memory-maps a file, validates every count, offset and size against the file, and exposes
// metadata and tensors as plain views into the mapping. Any inconsistency throws shadowkv::Error naming it.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "ops/ggml_type.h"

namespace shadowkv {

enum class GgufValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};

// One metadata value. Arrays hold their element type and elements (no nested arrays).
struct GgufValue {
  GgufValueType type = GgufValueType::U8;
  GgufValueType elem_type = GgufValueType::U8;  // for ARRAY
  // Scalars widen to one of these; arrays of numbers/bools fill `nums`/`ints`, arrays of strings `strs`.
  std::variant<uint64_t, int64_t, double, bool, std::string> scalar;
  std::vector<std::string> strs;
  std::vector<int64_t> ints;
  std::vector<double> nums;
  bool is_array() const { return type == GgufValueType::ARRAY; }
  size_t array_size() const;
};

struct GgufTensor {
  std::string name;
  uint32_t type_id = 0;
  GgmlType type() const { return static_cast<GgmlType>(type_id); }
  std::vector<int64_t> ne;  // GGUF order: ne[0] is the contiguous dim
  uint64_t offset = 0;      // relative to the data section
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;
  int64_t n_elements() const;
  int64_t rows() const { return ne.size() > 1 ? n_elements() / ne[0] : 1; }
};

class GgufFile {
 public:
  // Opens and validates; throws shadowkv::Error("<path>: <problem>") on any problem.
  static std::unique_ptr<GgufFile> open(const std::string& path);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return size_; }

  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;
  // Typed getters: throw Error naming the key if missing (for the non-optional ones) or of the wrong kind.
  std::optional<std::string> get_string(const std::string& key) const;
  std::optional<int64_t> get_int(const std::string& key) const;   // any integer type (or bool)
  std::optional<double> get_float(const std::string& key) const;  // f32/f64 or any integer type
  std::optional<bool> get_bool(const std::string& key) const;
  std::string require_string(const std::string& key) const;
  int64_t require_int(const std::string& key) const;

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(const std::string& name) const;
  // Hands the whole pages of [p, p + n) (inside the mapping) back to the page cache: RSS drops, and a later read
  // faults them in again unchanged (the mapping is read-only).
  void release_pages(const void* p, uint64_t n) const;

 private:
  GgufFile() = default;
  std::string path_;
  int fd_ = -1;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> tensor_index_;
  friend class GgufParser;
};

// Human-readable dump (used by `shadowkv inspect`).
std::string format_value(const GgufValue& v, size_t max_array_items = 8);

}  // namespace shadowkv
