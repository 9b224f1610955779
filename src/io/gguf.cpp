// GGUF reader. The whole file is mapped read-only; parsing walks it with a bounds-checked cursor so that a corrupt or
// hostile file can only ever produce a shadowkv::Error, never an out-of-range read or a huge allocation.
#include "io/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "io/gguf_dump.h"
#include "util/error.h"

static_assert(std::endian::native == std::endian::little, "GGUF reader assumes a little-endian host");

namespace shadowkv {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint32_t kMaxDims = 4;
constexpr uint64_t kDefaultAlignment = 32;

// Smallest encoding of one KV (key length + value type + 1-byte value) and of one tensor info (name length + n_dims +
// one dim + type + offset): a count larger than remaining_bytes / this cannot be genuine.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;

// Encoded size of a fixed-width value; 0 for STRING/ARRAY (variable) and for unknown ids.
uint64_t fixed_size(uint32_t t) {
  switch (static_cast<GgufValueType>(t)) {
    case GgufValueType::U8:
    case GgufValueType::I8:
    case GgufValueType::BOOL:
      return 1;
    case GgufValueType::U16:
    case GgufValueType::I16:
      return 2;
    case GgufValueType::U32:
    case GgufValueType::I32:
    case GgufValueType::F32:
      return 4;
    case GgufValueType::U64:
    case GgufValueType::I64:
    case GgufValueType::F64:
      return 8;
    default:
      return 0;
  }
}

// A key or tensor name as quoted in an error: control bytes escaped and length capped so the message stays one line.
std::string shown(const std::string& s) {
  constexpr size_t kMax = 120;
  std::string out;
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 32 || c == 127) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > kMax) out += "...";
  return out;
}

bool is_int_type(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8:
    case GgufValueType::I8:
    case GgufValueType::U16:
    case GgufValueType::I16:
    case GgufValueType::U32:
    case GgufValueType::I32:
    case GgufValueType::U64:
    case GgufValueType::I64:
    case GgufValueType::BOOL:
      return true;
    default:
      return false;
  }
}

}  // namespace

class GgufParser {
 public:
  GgufParser(GgufFile& f) : f_(f), p_(f.base_), size_(f.size_) {}

  void parse() {
    parse_header();
    parse_metadata();
    parse_alignment();
    parse_tensor_infos();
    place_tensors();
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const { throw Error(f_.path_ + ": " + msg); }

  uint64_t remaining() const { return size_ - pos_; }

  // Ensures n more bytes exist at the cursor; ctx_ names what is being read.
  void need(uint64_t n) const {
    if (n > remaining())
      fail("truncated file: " + ctx_ + " needs " + std::to_string(n) + " bytes at offset " + std::to_string(pos_) +
           " but the file ends at " + std::to_string(size_));
  }

  template <class T>
  T read() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string() {
    const uint64_t n = read<uint64_t>();
    if (n > remaining())
      fail("string length " + std::to_string(n) + " in " + ctx_ + " runs past end of file (offset " +
           std::to_string(pos_) + ", file size " + std::to_string(size_) + ")");
    std::string s(reinterpret_cast<const char*>(p_ + pos_), n);
    pos_ += n;
    return s;
  }

  void parse_header() {
    ctx_ = "header";
    if (size_ < 4) fail("truncated file: too small for the GGUF magic (" + std::to_string(size_) + " bytes)");
    const uint32_t magic = read<uint32_t>();
    if (magic != kMagic) {
      char m[4];
      std::memcpy(m, &magic, 4);
      std::string shown;
      for (char c : m) shown += (c >= 32 && c < 127) ? c : '?';
      fail("bad magic '" + shown + "' (not a GGUF file)");
    }
    ctx_ = "version";
    const uint32_t version = read<uint32_t>();
    // A byte-swapped (big-endian) file shows its small version number in the high bytes.
    if (version != 0 && (version & 0xFFFF) == 0)
      fail("byte-swapped (big-endian) GGUF file is not supported (version field 0x" + hex(version) + ")");
    if (version == 1) fail("GGUF version 1 is not supported (it uses 32-bit counts); only versions 2 and 3 are");
    if (version < 2 || version > 3)
      fail("GGUF version " + std::to_string(version) + " is not supported (only 2 and 3)");
    f_.version_ = version;
    ctx_ = "tensor_count";
    tensor_count_ = read<uint64_t>();
    ctx_ = "kv_count";
    kv_count_ = read<uint64_t>();
    if (kv_count_ > remaining() / kMinKvBytes)
      fail("kv_count " + std::to_string(kv_count_) + " is impossible for a file of " + std::to_string(size_) +
           " bytes");
    // Tensor infos follow the metadata, so they can use at most what is left now.
    if (tensor_count_ > remaining() / kMinTensorInfoBytes)
      fail("tensor_count " + std::to_string(tensor_count_) + " is impossible for a file of " + std::to_string(size_) +
           " bytes");
  }

  static std::string hex(uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08x", v);
    return buf;
  }

  void parse_metadata() {
    f_.kv_.reserve(kv_count_);  // bounded by the file size check above
    for (uint64_t i = 0; i < kv_count_; ++i) {
      ctx_ = "metadata key #" + std::to_string(i);
      std::string key = read_string();
      ctx_ = "metadata key '" + shown(key) + "'";
      if (f_.kv_index_.count(key)) fail("duplicate metadata key '" + shown(key) + "'");
      const uint32_t type = read<uint32_t>();
      GgufValue v = read_value(type, key);
      f_.kv_index_.emplace(key, f_.kv_.size());
      f_.kv_.emplace_back(std::move(key), std::move(v));
    }
  }

  GgufValue read_value(uint32_t type, const std::string& key) {
    GgufValue v;
    if (type > static_cast<uint32_t>(GgufValueType::F64))
      fail("metadata key '" + shown(key) + "' has unknown value type " + std::to_string(type));
    v.type = static_cast<GgufValueType>(type);
    if (v.type != GgufValueType::ARRAY) {
      read_scalar(v.type, v.scalar);
      return v;
    }
    const uint32_t elem = read<uint32_t>();
    if (elem == static_cast<uint32_t>(GgufValueType::ARRAY))
      fail("metadata key '" + shown(key) + "' is a nested array (arrays of arrays are not allowed)");
    if (elem > static_cast<uint32_t>(GgufValueType::F64))
      fail("metadata key '" + shown(key) + "' has unknown array element type " + std::to_string(elem));
    v.elem_type = static_cast<GgufValueType>(elem);
    const uint64_t n = read<uint64_t>();
    // Every element takes at least its fixed size (strings: their 8-byte length), so check before reserving.
    const uint64_t min_elem = v.elem_type == GgufValueType::STRING ? 8 : fixed_size(elem);
    if (n > remaining() / min_elem)
      fail("array length " + std::to_string(n) + " of metadata key '" + shown(key) + "' runs past end of file");
    if (v.elem_type == GgufValueType::STRING) {
      v.strs.reserve(n);
      for (uint64_t i = 0; i < n; ++i) v.strs.push_back(read_string());
    } else if (v.elem_type == GgufValueType::F32 || v.elem_type == GgufValueType::F64) {
      v.nums.reserve(n);
      for (uint64_t i = 0; i < n; ++i)
        v.nums.push_back(v.elem_type == GgufValueType::F32 ? read<float>() : read<double>());
    } else {
      v.ints.reserve(n);
      std::variant<uint64_t, int64_t, double, bool, std::string> s;
      for (uint64_t i = 0; i < n; ++i) {
        read_scalar(v.elem_type, s);
        // u64 elements above INT64_MAX wrap; no real key stores such values in an array.
        if (auto* u = std::get_if<uint64_t>(&s))
          v.ints.push_back(static_cast<int64_t>(*u));
        else if (auto* b = std::get_if<bool>(&s))
          v.ints.push_back(*b ? 1 : 0);
        else
          v.ints.push_back(std::get<int64_t>(s));
      }
    }
    return v;
  }

  void read_scalar(GgufValueType t, std::variant<uint64_t, int64_t, double, bool, std::string>& out) {
    switch (t) {
      case GgufValueType::U8:
        out = uint64_t{read<uint8_t>()};
        break;
      case GgufValueType::I8:
        out = int64_t{read<int8_t>()};
        break;
      case GgufValueType::U16:
        out = uint64_t{read<uint16_t>()};
        break;
      case GgufValueType::I16:
        out = int64_t{read<int16_t>()};
        break;
      case GgufValueType::U32:
        out = uint64_t{read<uint32_t>()};
        break;
      case GgufValueType::I32:
        out = int64_t{read<int32_t>()};
        break;
      case GgufValueType::U64:
        out = uint64_t{read<uint64_t>()};
        break;
      case GgufValueType::I64:
        out = int64_t{read<int64_t>()};
        break;
      case GgufValueType::F32:
        out = double{read<float>()};
        break;
      case GgufValueType::F64:
        out = double{read<double>()};
        break;
      case GgufValueType::BOOL:
        out = read<uint8_t>() != 0;
        break;
      case GgufValueType::STRING:
        out = read_string();
        break;
      case GgufValueType::ARRAY:
        fail("internal: read_scalar on array");
    }
  }

  void parse_alignment() {
    const GgufValue* a = f_.find("general.alignment");
    if (!a) return;
    if (a->type != GgufValueType::U32)
      fail("general.alignment must be u32, got " + std::string(value_type_name(a->type)));
    const uint64_t al = std::get<uint64_t>(a->scalar);
    if (al == 0 || (al & (al - 1)) != 0) fail("general.alignment " + std::to_string(al) + " is not a power of two");
    f_.alignment_ = al;
  }

  void parse_tensor_infos() {
    if (tensor_count_ > remaining() / kMinTensorInfoBytes)
      fail("tensor_count " + std::to_string(tensor_count_) + " runs past end of file (offset " + std::to_string(pos_) +
           ", file size " + std::to_string(size_) + ")");
    f_.tensors_.reserve(tensor_count_);
    for (uint64_t i = 0; i < tensor_count_; ++i) {
      GgufTensor t;
      ctx_ = "tensor info #" + std::to_string(i);
      t.name = read_string();
      ctx_ = "tensor '" + shown(t.name) + "'";
      if (f_.tensor_index_.count(t.name)) fail("duplicate tensor name '" + shown(t.name) + "'");
      const uint32_t n_dims = read<uint32_t>();
      if (n_dims == 0 || n_dims > kMaxDims)
        fail("tensor '" + shown(t.name) + "' has n_dims " + std::to_string(n_dims) + " (must be 1.." +
             std::to_string(kMaxDims) + ")");
      int64_t n_elem = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        const int64_t ne = read<int64_t>();
        if (ne <= 0)
          fail("tensor '" + shown(t.name) + "' has invalid dimension ne[" + std::to_string(d) +
               "] = " + std::to_string(ne));
        if (__builtin_mul_overflow(n_elem, ne, &n_elem))
          fail("tensor '" + shown(t.name) + "' element count overflows int64 (dimension product too large)");
        t.ne.push_back(ne);
      }
      t.type_id = read<uint32_t>();
      const TypeTraits* tt = type_traits(t.type_id);
      if (!tt) fail("tensor '" + shown(t.name) + "' has unknown or retired type " + std::to_string(t.type_id));
      if (t.ne[0] % tt->block_elems != 0)
        fail("tensor '" + shown(t.name) + "' ne[0] = " + std::to_string(t.ne[0]) + " is not a multiple of the " +
             tt->name + " block size " + std::to_string(tt->block_elems));
      // Bytes = blocks per row * block bytes * number of rows; n_elem fitting int64 bounds the block count.
      const uint64_t blocks = static_cast<uint64_t>(n_elem / tt->block_elems);
      if (__builtin_mul_overflow(blocks, static_cast<uint64_t>(tt->block_bytes), &t.nbytes))
        fail("tensor '" + shown(t.name) + "' byte size overflows uint64");
      t.offset = read<uint64_t>();
      if (t.offset % f_.alignment_ != 0)
        fail("tensor '" + shown(t.name) + "' offset " + std::to_string(t.offset) + " is not aligned to " +
             std::to_string(f_.alignment_));
      f_.tensor_index_.emplace(t.name, f_.tensors_.size());
      f_.tensors_.push_back(std::move(t));
    }
  }

  // The data section starts at the end of the tensor infos rounded up to the alignment; every tensor must lie inside
  // the file. Overlapping tensors are tolerated (nothing here writes through them).
  void place_tensors() {
    const uint64_t al = f_.alignment_;
    uint64_t start = pos_ + (al - pos_ % al) % al;  // pos_ <= size_ so this cannot overflow
    f_.data_offset_ = start;
    for (GgufTensor& t : f_.tensors_) {
      uint64_t begin, end;
      if (__builtin_add_overflow(start, t.offset, &begin) || __builtin_add_overflow(begin, t.nbytes, &end) ||
          end > size_)
        fail("tensor '" + shown(t.name) + "' data (offset " + std::to_string(t.offset) + ", " +
             std::to_string(t.nbytes) + " bytes from data section at " + std::to_string(start) +
             ") runs past end of file (size " + std::to_string(size_) + ")");
      t.data = p_ + begin;
    }
  }

  GgufFile& f_;
  const uint8_t* p_;
  uint64_t size_;
  uint64_t pos_ = 0;
  uint64_t tensor_count_ = 0, kv_count_ = 0;
  std::string ctx_;
};

// ---------------------------------------------------------------------------------------------------------------

size_t GgufValue::array_size() const {
  if (!is_array()) return 0;
  if (elem_type == GgufValueType::STRING) return strs.size();
  if (elem_type == GgufValueType::F32 || elem_type == GgufValueType::F64) return nums.size();
  return ints.size();
}

int64_t GgufTensor::n_elements() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;  // validated against overflow at load
  return n;
}

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());  // destructor releases fd/mapping if parsing throws
  f->path_ = path;
  f->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f->fd_ < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (fstat(f->fd_, &st) != 0) throw Error(path + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw Error(path + ": not a regular file");
  if (st.st_size == 0) throw Error(path + ": truncated file: file is empty");
  f->size_ = static_cast<uint64_t>(st.st_size);
  void* m = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, f->fd_, 0);
  if (m == MAP_FAILED) throw Error(path + ": cannot mmap: " + std::strerror(errno));
  f->base_ = static_cast<const uint8_t*>(m);
  // The mapping keeps the file alive; the descriptor is no longer needed.
  ::close(f->fd_);
  f->fd_ = -1;
  GgufParser(*f).parse();
  return f;
}

void GgufFile::release_pages(const void* p, uint64_t n) const {
  const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), lo = (uintptr_t)base_, hi = lo + size_;
  const uintptr_t b = std::max(lo, ((uintptr_t)p + page - 1) / page * page);
  const uintptr_t e = std::min(hi, ((uintptr_t)p + n) / page * page);
  if (e > b) madvise((void*)b, e - b, MADV_DONTNEED);  // advice only: a failure changes nothing
}

GgufFile::~GgufFile() {
  if (base_) munmap(const_cast<uint8_t*>(base_), size_);
  if (fd_ >= 0) ::close(fd_);
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {
[[noreturn]] void wrong_kind(const GgufFile& f, const std::string& key, const GgufValue& v, const char* want) {
  std::string got = value_type_name(v.type);
  if (v.is_array()) got += std::string("[") + value_type_name(v.elem_type) + "]";
  throw Error(f.path() + ": metadata key '" + shown(key) + "' has type " + got + ", expected " + want);
}
}  // namespace

std::optional<std::string> GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::STRING) wrong_kind(*this, key, *v, "string");
  return std::get<std::string>(v->scalar);
}

std::optional<int64_t> GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!is_int_type(v->type)) wrong_kind(*this, key, *v, "an integer");
  if (auto* b = std::get_if<bool>(&v->scalar)) return *b ? 1 : 0;
  if (auto* i = std::get_if<int64_t>(&v->scalar)) return *i;
  const uint64_t u = std::get<uint64_t>(v->scalar);
  if (u > static_cast<uint64_t>(INT64_MAX))
    throw Error(path_ + ": metadata key '" + shown(key) + "' value " + std::to_string(u) + " does not fit int64");
  return static_cast<int64_t>(u);
}

std::optional<double> GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (auto* d = std::get_if<double>(&v->scalar); d && !v->is_array()) return *d;
  if (!is_int_type(v->type) || v->type == GgufValueType::BOOL) wrong_kind(*this, key, *v, "a number");
  if (auto* i = std::get_if<int64_t>(&v->scalar)) return static_cast<double>(*i);
  return static_cast<double>(std::get<uint64_t>(v->scalar));
}

std::optional<bool> GgufFile::get_bool(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::BOOL) wrong_kind(*this, key, *v, "bool");
  return std::get<bool>(v->scalar);
}

std::string GgufFile::require_string(const std::string& key) const {
  auto s = get_string(key);
  if (!s) throw Error(path_ + ": missing required metadata key '" + shown(key) + "'");
  return *s;
}

int64_t GgufFile::require_int(const std::string& key) const {
  auto i = get_int(key);
  if (!i) throw Error(path_ + ": missing required metadata key '" + shown(key) + "'");
  return *i;
}

}  // namespace shadowkv
