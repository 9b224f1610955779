// GGUF reader tests: a tiny writer crafts valid and corrupt files byte by byte; every corruption must give a
// shadowkv::Error naming the problem, never a crash. A final test reads the real model (SHADOWKV_MODEL).
#include "io/gguf.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "io/gguf_dump.h"
#include "util/error.h"

namespace shadowkv {
namespace {

namespace fs = std::filesystem;
constexpr uint64_t kAuto = std::numeric_limits<uint64_t>::max();

// Little-endian byte builder.
struct Bytes {
  std::vector<uint8_t> b;
  template <class T>
  Bytes& put(T v) {
    uint8_t tmp[sizeof(T)];
    std::memcpy(tmp, &v, sizeof(T));
    b.insert(b.end(), tmp, tmp + sizeof(T));
    return *this;
  }
  Bytes& str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
};

// One encoded KV: key, type id, payload.
std::vector<uint8_t> kv(const std::string& key, GgufValueType t, const Bytes& payload) {
  Bytes out;
  out.str(key).put<uint32_t>(static_cast<uint32_t>(t));
  out.b.insert(out.b.end(), payload.b.begin(), payload.b.end());
  return out.b;
}
template <class T>
std::vector<uint8_t> kv_num(const std::string& key, GgufValueType t, T v) {
  return kv(key, t, Bytes().put<T>(v));
}
std::vector<uint8_t> kv_str(const std::string& key, const std::string& v) {
  return kv(key, GgufValueType::STRING, Bytes().str(v));
}

struct TensorSpec {
  std::string name;
  std::vector<int64_t> ne;
  uint32_t type = 0;
  std::vector<uint8_t> data;  // written at data_start + offset
  uint64_t offset = kAuto;    // kAuto: next aligned position after the previous tensor
};

struct FileSpec {
  uint32_t magic = 0x46554747;
  uint32_t version = 3;
  uint64_t tensor_count = kAuto, kv_count = kAuto;  // kAuto: the real counts
  uint64_t alignment = 32;                          // padding used by the writer (add the key yourself)
  std::vector<std::vector<uint8_t>> kvs;
  std::vector<TensorSpec> tensors;
};

std::vector<uint8_t> build(FileSpec s) {
  Bytes out;
  out.put(s.magic).put(s.version);
  out.put<uint64_t>(s.tensor_count == kAuto ? s.tensors.size() : s.tensor_count);
  out.put<uint64_t>(s.kv_count == kAuto ? s.kvs.size() : s.kv_count);
  for (auto& k : s.kvs) out.b.insert(out.b.end(), k.begin(), k.end());
  uint64_t next = 0;
  for (auto& t : s.tensors) {
    if (t.offset == kAuto) {
      t.offset = next;
      next += (t.data.size() + s.alignment - 1) / s.alignment * s.alignment;
    }
    out.str(t.name).put<uint32_t>(t.ne.size());
    for (int64_t d : t.ne) out.put(d);
    out.put(t.type).put(t.offset);
  }
  const uint64_t start = (out.b.size() + s.alignment - 1) / s.alignment * s.alignment;
  out.b.resize(start);
  for (auto& t : s.tensors) {
    if (t.data.empty()) continue;
    if (out.b.size() < start + t.offset + t.data.size()) out.b.resize(start + t.offset + t.data.size());
    std::copy(t.data.begin(), t.data.end(), out.b.begin() + start + t.offset);
  }
  return out.b;
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + 7 * i);
  return v;
}

// A valid file with one key of every value type and three tensors.
FileSpec valid_spec() {
  FileSpec s;
  s.kvs.push_back(kv_str("general.architecture", "gemma3"));
  s.kvs.push_back(kv_num<uint32_t>("general.alignment", GgufValueType::U32, 32));
  s.kvs.push_back(kv_num<uint8_t>("t.u8", GgufValueType::U8, 200));
  s.kvs.push_back(kv_num<int8_t>("t.i8", GgufValueType::I8, -100));
  s.kvs.push_back(kv_num<uint16_t>("t.u16", GgufValueType::U16, 60000));
  s.kvs.push_back(kv_num<int16_t>("t.i16", GgufValueType::I16, -30000));
  s.kvs.push_back(kv_num<uint32_t>("t.u32", GgufValueType::U32, 4000000000u));
  s.kvs.push_back(kv_num<int32_t>("t.i32", GgufValueType::I32, -2000000000));
  s.kvs.push_back(kv_num<float>("t.f32", GgufValueType::F32, 1e-6f));
  s.kvs.push_back(kv_num<uint8_t>("t.bool", GgufValueType::BOOL, 1));
  s.kvs.push_back(kv_str("t.string", "h\xC3\xA9llo\nworld"));
  s.kvs.push_back(kv_num<uint64_t>("t.u64", GgufValueType::U64, 1ull << 40));
  s.kvs.push_back(kv_num<int64_t>("t.i64", GgufValueType::I64, -(1ll << 50)));
  s.kvs.push_back(kv_num<double>("t.f64", GgufValueType::F64, 3.25));
  Bytes strs;
  strs.put<uint32_t>(8).put<uint64_t>(3).str("<pad>").str("").str("<end_of_turn>");
  s.kvs.push_back(kv("t.arr_str", GgufValueType::ARRAY, strs));
  Bytes i32s;
  i32s.put<uint32_t>(5).put<uint64_t>(20);
  for (int i = 0; i < 20; ++i) i32s.put<int32_t>(i * i - 50);
  s.kvs.push_back(kv("t.arr_i32", GgufValueType::ARRAY, i32s));
  Bytes f32s;
  f32s.put<uint32_t>(6).put<uint64_t>(2).put<float>(0.5f).put<float>(-2.0f);
  s.kvs.push_back(kv("t.arr_f32", GgufValueType::ARRAY, f32s));
  Bytes bools;
  bools.put<uint32_t>(7).put<uint64_t>(2).put<uint8_t>(0).put<uint8_t>(1);
  s.kvs.push_back(kv("t.arr_bool", GgufValueType::ARRAY, bools));
  Bytes empty;
  empty.put<uint32_t>(12).put<uint64_t>(0);
  s.kvs.push_back(kv("t.arr_empty", GgufValueType::ARRAY, empty));

  s.tensors.push_back({"a.f32", {3, 2}, 0, pattern(3 * 2 * 4, 1)});        // 24 bytes
  s.tensors.push_back({"b.q8_0", {64, 1, 2}, 8, pattern(2 * 2 * 34, 2)});  // 4 blocks * 34 = 136 bytes
  s.tensors.push_back({"c.q2_k", {256}, 10, pattern(84, 3)});              // known but unsupported type
  return s;
}

class GgufTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // tmpfs when available: the truncation and mutation tests write thousands of small files.
    const fs::path base = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    dir_ = base / ("shadowkv_gguf_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::vector<uint8_t>& bytes, const std::string& name = "t.gguf") {
    std::string p = (dir_ / name).string();
    // Unlink first: rewriting a truncated file makes ext4 flush it on close, which is slow under I/O load.
    fs::remove(p);
    std::ofstream(p, std::ios::binary | std::ios::trunc)
        .write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return p;
  }

  // Opening must throw Error whose message starts with the path and contains `word`.
  void expect_error(const std::vector<uint8_t>& bytes, const std::string& word) {
    std::string p = write(bytes);
    try {
      GgufFile::open(p);
      ADD_FAILURE() << "expected an Error containing '" << word << "'";
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_EQ(msg.rfind(p + ": ", 0), 0u) << msg;
      EXPECT_NE(msg.find(word), std::string::npos) << "message lacks '" << word << "': " << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }

  fs::path dir_;
};

TEST_F(GgufTest, ReadsEveryValueTypeAndTensors) {
  FileSpec spec = valid_spec();
  std::vector<uint8_t> bytes = build(spec);
  auto f = GgufFile::open(write(bytes));
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->file_size(), bytes.size());
  ASSERT_EQ(f->metadata().size(), spec.kvs.size());
  EXPECT_EQ(f->metadata()[0].first, "general.architecture");  // file order kept

  EXPECT_EQ(f->require_string("general.architecture"), "gemma3");
  EXPECT_EQ(f->get_int("t.u8"), 200);
  EXPECT_EQ(f->get_int("t.i8"), -100);
  EXPECT_EQ(f->get_int("t.u16"), 60000);
  EXPECT_EQ(f->get_int("t.i16"), -30000);
  EXPECT_EQ(f->get_int("t.u32"), 4000000000ll);
  EXPECT_EQ(f->get_int("t.i32"), -2000000000);
  EXPECT_EQ(f->get_int("t.u64"), 1ll << 40);
  EXPECT_EQ(f->require_int("t.i64"), -(1ll << 50));
  EXPECT_EQ(f->get_float("t.f32"), static_cast<double>(1e-6f));
  EXPECT_EQ(f->get_float("t.f64"), 3.25);
  EXPECT_EQ(f->get_float("t.i32"), -2e9);  // ints convert
  EXPECT_EQ(f->get_bool("t.bool"), true);
  EXPECT_EQ(f->get_string("t.string"), "h\xC3\xA9llo\nworld");
  EXPECT_EQ(f->find("t.u8")->type, GgufValueType::U8);
  EXPECT_EQ(f->find("t.f64")->type, GgufValueType::F64);

  const GgufValue* a = f->find("t.arr_str");
  ASSERT_TRUE(a && a->is_array());
  EXPECT_EQ(a->elem_type, GgufValueType::STRING);
  EXPECT_EQ(a->strs, (std::vector<std::string>{"<pad>", "", "<end_of_turn>"}));
  EXPECT_EQ(a->array_size(), 3u);
  a = f->find("t.arr_i32");
  ASSERT_EQ(a->ints.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(a->ints[i], i * i - 50);
  EXPECT_EQ(f->find("t.arr_f32")->nums, (std::vector<double>{0.5, -2.0}));
  EXPECT_EQ(f->find("t.arr_bool")->ints, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(f->find("t.arr_empty")->array_size(), 0u);
  EXPECT_EQ(f->find("t.arr_empty")->elem_type, GgufValueType::F64);

  // Missing and wrong-kind keys.
  EXPECT_FALSE(f->get_int("nope").has_value());
  EXPECT_FALSE(f->find("nope"));
  try {
    f->require_int("no.such.key");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no.such.key"), std::string::npos);
  }
  EXPECT_THROW(f->require_string("no.such.key"), Error);
  EXPECT_THROW(f->get_int("t.string"), Error);
  EXPECT_THROW(f->get_int("t.f32"), Error);
  EXPECT_THROW(f->get_string("t.u8"), Error);
  EXPECT_THROW(f->get_float("t.arr_f32"), Error);
  EXPECT_THROW(f->get_bool("t.u8"), Error);

  // Tensors: data pointer = mapping + data_start + offset, bytes match the written data.
  ASSERT_EQ(f->tensors().size(), 3u);
  const uint64_t header_end_aligned = f->data_offset();
  EXPECT_EQ(header_end_aligned % 32, 0u);
  for (size_t i = 0; i < spec.tensors.size(); ++i) {
    const TensorSpec& want = spec.tensors[i];
    const GgufTensor* t = f->find_tensor(want.name);
    ASSERT_TRUE(t) << want.name;
    EXPECT_EQ(t, &f->tensors()[i]);
    EXPECT_EQ(t->ne, want.ne);
    EXPECT_EQ(t->type_id, want.type);
    EXPECT_EQ(t->nbytes, want.data.size()) << want.name;
    ASSERT_TRUE(t->data);
    EXPECT_EQ(0, std::memcmp(t->data, want.data.data(), want.data.size())) << want.name;
    // Compare against the file bytes at the documented position.
    const uint64_t pos = f->data_offset() + t->offset;
    EXPECT_EQ(0, std::memcmp(t->data, bytes.data() + pos, t->nbytes));
  }
  EXPECT_EQ(f->tensors()[1].offset, 32u);
  EXPECT_EQ(f->tensors()[1].n_elements(), 128);
  EXPECT_EQ(f->tensors()[1].rows(), 2);
  EXPECT_EQ(f->tensors()[2].type(), GgmlType::Q2_K);
  EXPECT_FALSE(f->find_tensor("missing"));
}

TEST_F(GgufTest, DefaultAlignmentAndVersion2AndOtherAlignment) {
  FileSpec s;
  s.version = 2;
  s.tensors.push_back({"x", {4}, 0, pattern(16, 9)});
  auto f = GgufFile::open(write(build(s)));
  EXPECT_EQ(f->version(), 2u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->data_offset() % 32, 0u);

  s.version = 3;
  s.alignment = 64;
  s.kvs.push_back(kv_num<uint32_t>("general.alignment", GgufValueType::U32, 64));
  s.tensors.push_back({"y", {2}, 1, pattern(4, 3)});
  auto g = GgufFile::open(write(build(s), "g.gguf"));
  EXPECT_EQ(g->alignment(), 64u);
  EXPECT_EQ(g->data_offset() % 64, 0u);
  EXPECT_EQ(g->find_tensor("y")->offset, 64u);
  EXPECT_EQ(0, std::memcmp(g->find_tensor("y")->data, pattern(4, 3).data(), 4));
}

TEST_F(GgufTest, DescribeListsKeysAndTensors) {
  auto f = GgufFile::open(write(build(valid_spec())));
  std::string d = describe_gguf(*f);
  for (const char* want :
       {"version: 3", "alignment: 32", "t.u16 (u16) = 60000", "t.f32 (f32) = 1e-06",
        "t.string (string) = \"h\xC3\xA9llo\\nworld\"", "t.arr_str (array[string])", "\"<end_of_turn>\"", "(20 items)",
        "t.bool (bool) = true", "Q8_0", "Q2_K", "[64, 1, 2]", "136"})
    EXPECT_NE(d.find(want), std::string::npos) << "missing '" << want << "' in:\n" << d;
}

TEST_F(GgufTest, EveryTruncationThrows) {
  std::vector<uint8_t> full = build(valid_spec());
  ASSERT_NO_THROW(GgufFile::open(write(full)));
  for (size_t n = 0; n < full.size(); ++n) {
    std::vector<uint8_t> prefix(full.begin(), full.begin() + n);
    std::string p = write(prefix);
    try {
      GgufFile::open(p);
      ADD_FAILURE() << "prefix of " << n << " bytes opened";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind(p + ": ", 0), 0u) << e.what();
    }
  }
}

// Random byte overwrites (fixed seed) must either load or throw Error; run under valgrind/ASan to catch bad reads.
TEST_F(GgufTest, RandomCorruptionOpensOrThrows) {
  const std::vector<uint8_t> full = build(valid_spec());
  std::mt19937 rng(1234);
  int opened = 0, rejected = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    std::vector<uint8_t> b = full;
    const int edits = 1 + iter % 4;
    for (int e = 0; e < edits; ++e) {
      // Bias edits towards the header and metadata, where the counts and lengths live.
      const size_t pos = rng() % (iter % 2 ? b.size() : 200);
      b[pos] = (rng() % 3 == 0) ? 0xFF : static_cast<uint8_t>(rng());
    }
    try {
      auto f = GgufFile::open(write(b));
      for (const GgufTensor& t : f->tensors()) ASSERT_LE(f->data_offset() + t.offset + t.nbytes, f->file_size());
      describe_gguf(*f);
      ++opened;
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 700) << opened;  // the mutations must actually hit checks
  EXPECT_GT(opened, 50) << rejected;   // and many (e.g. tensor data bytes) are harmless
  std::printf("random corruption: %d opened, %d rejected\n", opened, rejected);
}

TEST_F(GgufTest, BadMagic) {
  FileSpec s = valid_spec();
  s.magic = 0x4C4D5447;  // "GTML"
  expect_error(build(s), "magic");
}

TEST_F(GgufTest, UnsupportedVersions) {
  FileSpec s = valid_spec();
  s.version = 1;
  expect_error(build(s), "version 1");
  s.version = 4;
  expect_error(build(s), "version 4");
  s.version = 0x03000000;  // v3 written big-endian
  expect_error(build(s), "byte-swapped");
}

TEST_F(GgufTest, TensorDataPastEof) {
  std::vector<uint8_t> b = build(valid_spec());
  b.pop_back();
  expect_error(b, "c.q2_k");
  expect_error(b, "past end of file");
  FileSpec s = valid_spec();
  s.tensors[0].offset = 1ull << 40;  // aligned but far away
  s.tensors[0].data.clear();
  expect_error(build(s), "past end of file");
  s.tensors[0].offset = 0xFFFFFFFFFFFFFFE0ull;  // start + offset overflows uint64
  expect_error(build(s), "past end of file");
}

TEST_F(GgufTest, BadDims) {
  FileSpec s = valid_spec();
  s.tensors[0].ne = {3, -2};
  expect_error(build(s), "dimension");
  s.tensors[0].ne = {0, 2};
  expect_error(build(s), "a.f32");
  s.tensors[0].ne = {1ll << 32, 1ll << 32};  // 2^64 elements
  expect_error(build(s), "overflow");
  s.tensors[0].ne = {1ll << 60, 1};  // fits int64 and its byte count fits, but past EOF
  expect_error(build(s), "past end of file");
  s.tensors[0].ne = {std::numeric_limits<int64_t>::max(), 1, 1, 1};  // bytes = elems * 4 overflows
  expect_error(build(s), "overflow");
  s.tensors[0].ne = {1, 1, 1, 1, 1};
  expect_error(build(s), "n_dims 5");
  s.tensors[0].ne = {};
  expect_error(build(s), "n_dims 0");
  s = valid_spec();
  s.tensors[1].ne = {48, 2};  // Q8_0 block is 32
  expect_error(build(s), "multiple");
}

TEST_F(GgufTest, HugeCounts) {
  FileSpec s = valid_spec();
  s.kv_count = 1ull << 62;
  expect_error(build(s), "kv_count");
  s = valid_spec();
  s.tensor_count = 1ull << 62;
  expect_error(build(s), "tensor_count");
  s.tensor_count = (1ull << 63) + 5;  // negative as i64
  expect_error(build(s), "tensor_count");
  // A huge string length, in a key and in a tensor name.
  s = valid_spec();
  s.kvs.insert(s.kvs.begin(), kv("k", GgufValueType::STRING, Bytes().put<uint64_t>(1ull << 62)));
  expect_error(build(s), "string length");
  s = valid_spec();
  s.kvs[0] = Bytes().put<uint64_t>(~0ull).b;  // the key itself
  expect_error(build(s), "string length");
  // A huge array length.
  s = valid_spec();
  s.kvs.push_back(kv("big", GgufValueType::ARRAY, Bytes().put<uint32_t>(11).put<uint64_t>(1ull << 61)));
  expect_error(build(s), "array length");
  s = valid_spec();
  s.kvs.push_back(kv("bigs", GgufValueType::ARRAY, Bytes().put<uint32_t>(8).put<uint64_t>(~0ull)));
  expect_error(build(s), "bigs");
}

// Exact boundaries: the file ends one byte short of its last string (no tensors, no padding after it), then exactly
// at its end.
TEST_F(GgufTest, StringEndsExactlyAtEof) {
  for (int missing : {1, 0}) {
    Bytes b;
    b.put<uint32_t>(0x46554747).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(1);
    b.str("k").put<uint32_t>(8).put<uint64_t>(5 + missing);
    b.b.insert(b.b.end(), {'h', 'e', 'l', 'l', 'o'});
    if (missing) {
      expect_error(b.b, "string length 6");
    } else {
      auto f = GgufFile::open(write(b.b));
      EXPECT_EQ(f->get_string("k"), "hello");
      EXPECT_TRUE(f->tensors().empty());
    }
  }
}

TEST_F(GgufTest, BadTypeIds) {
  FileSpec s = valid_spec();
  s.tensors[0].type = 99;
  expect_error(build(s), "type 99");
  expect_error(build(s), "a.f32");
  s.tensors[0].type = 4;  // retired Q4_2
  expect_error(build(s), "type 4");
  s = valid_spec();
  s.kvs.push_back(kv("weird", static_cast<GgufValueType>(13), Bytes().put<uint32_t>(0)));
  expect_error(build(s), "value type 13");
  s = valid_spec();
  s.kvs.push_back(kv("weird_arr", GgufValueType::ARRAY, Bytes().put<uint32_t>(77).put<uint64_t>(0)));
  expect_error(build(s), "weird_arr");
}

TEST_F(GgufTest, MisalignedOffset) {
  FileSpec s = valid_spec();
  s.tensors[1].offset = 33;
  expect_error(build(s), "not aligned");
}

TEST_F(GgufTest, BadAlignment) {
  FileSpec s = valid_spec();
  s.kvs[1] = kv_num<uint32_t>("general.alignment", GgufValueType::U32, 3);
  expect_error(build(s), "power of two");
  s.kvs[1] = kv_num<uint32_t>("general.alignment", GgufValueType::U32, 0);
  expect_error(build(s), "power of two");
  s.kvs[1] = kv_num<uint64_t>("general.alignment", GgufValueType::U64, 32);
  expect_error(build(s), "general.alignment");
}

TEST_F(GgufTest, Duplicates) {
  FileSpec s = valid_spec();
  s.kvs.push_back(kv_num<uint8_t>("t.u8", GgufValueType::U8, 1));
  expect_error(build(s), "duplicate metadata key 't.u8'");
  s = valid_spec();
  s.tensors[2].name = "a.f32";
  expect_error(build(s), "duplicate tensor name 'a.f32'");
  // Names are escaped in messages so that a hostile name cannot break the one-line rule (checked in expect_error).
  s = valid_spec();
  s.kvs.push_back(kv_str("evil\nkey", "a"));
  s.kvs.push_back(kv_str("evil\nkey", "b"));
  expect_error(build(s), "duplicate metadata key 'evil\\x0akey'");
}

TEST_F(GgufTest, NestedArray) {
  FileSpec s = valid_spec();
  Bytes nested;
  nested.put<uint32_t>(9).put<uint64_t>(1).put<uint32_t>(5).put<uint64_t>(1).put<int32_t>(7);
  s.kvs.push_back(kv("t.nested", GgufValueType::ARRAY, nested));
  expect_error(build(s), "nested");
}

TEST_F(GgufTest, MissingFileAndEmptyFile) {
  EXPECT_THROW(GgufFile::open((dir_ / "does_not_exist.gguf").string()), Error);
  expect_error({}, "empty");
  EXPECT_THROW(GgufFile::open(dir_.string()), Error);  // a directory
}

// The real default model; the expected values were read with gguf-py.
TEST(GgufRealModel, Gemma3_270m) {
  const char* path = std::getenv("SHADOWKV_MODEL");
  ASSERT_TRUE(path && *path) << "SHADOWKV_MODEL must point to the Gemma 3 270M GGUF";
  std::unique_ptr<GgufFile> f;
  ASSERT_NO_THROW(f = GgufFile::open(path)) << path;
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->tensors().size(), 236u);
  EXPECT_EQ(f->require_string("general.architecture"), "gemma3");
  EXPECT_EQ(f->require_int("gemma3.block_count"), 18);

  const GgufTensor* emb = f->find_tensor("token_embd.weight");
  ASSERT_TRUE(emb);
  EXPECT_EQ(emb->type(), GgmlType::Q8_0);
  EXPECT_EQ(emb->ne, (std::vector<int64_t>{640, 262144}));
  EXPECT_EQ(emb->nbytes, 640ull / 32 * 34 * 262144);

  const GgufValue* toks = f->find("tokenizer.ggml.tokens");
  ASSERT_TRUE(toks && toks->is_array());
  EXPECT_EQ(toks->elem_type, GgufValueType::STRING);
  ASSERT_EQ(toks->strs.size(), 262144u);
  EXPECT_EQ(toks->strs[106], "<end_of_turn>");

  // Sizes from dims + type must fit the gaps between consecutive offsets (the writer pads each to the alignment).
  std::vector<const GgufTensor*> by_off;
  for (const GgufTensor& t : f->tensors()) by_off.push_back(&t);
  std::sort(by_off.begin(), by_off.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  EXPECT_EQ(by_off[0]->offset, 0u);
  for (size_t i = 0; i + 1 < by_off.size(); ++i) {
    const uint64_t gap = by_off[i + 1]->offset - by_off[i]->offset;
    const uint64_t padded = (by_off[i]->nbytes + f->alignment() - 1) / f->alignment() * f->alignment();
    EXPECT_EQ(gap, padded) << by_off[i]->name;
    EXPECT_EQ(by_off[i]->nbytes,
              static_cast<uint64_t>(row_bytes(by_off[i]->type(), by_off[i]->ne[0]) * by_off[i]->rows()))
        << by_off[i]->name;
  }
  const GgufTensor* last = by_off.back();
  EXPECT_LE(f->data_offset() + last->offset + last->nbytes, f->file_size());
  EXPECT_GT(f->data_offset() + last->offset + last->nbytes + f->alignment(), f->file_size());
}

}  // namespace
}  // namespace shadowkv
