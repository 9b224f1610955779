#include "io/gguf_dump.h"

#include <charconv>
#include <cstdio>
#include <sstream>

namespace shadowkv {

const char* value_type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8:
      return "u8";
    case GgufValueType::I8:
      return "i8";
    case GgufValueType::U16:
      return "u16";
    case GgufValueType::I16:
      return "i16";
    case GgufValueType::U32:
      return "u32";
    case GgufValueType::I32:
      return "i32";
    case GgufValueType::F32:
      return "f32";
    case GgufValueType::BOOL:
      return "bool";
    case GgufValueType::STRING:
      return "string";
    case GgufValueType::ARRAY:
      return "array";
    case GgufValueType::U64:
      return "u64";
    case GgufValueType::I64:
      return "i64";
    case GgufValueType::F64:
      return "f64";
  }
  return "unknown";
}

namespace {

// Quoted, with control characters escaped so that every value stays on one line; strings longer than max_bytes are
// cut and their length noted.
std::string quote(const std::string& s, size_t max_bytes) {
  std::string out = "\"";
  const size_t n = std::min(s.size(), max_bytes);
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (c < 32 || c == 127) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += "\"";
  if (n < s.size()) out += "...(" + std::to_string(s.size()) + " bytes)";
  return out;
}

// Shortest text that reads back to the same value, in the value's own precision.
std::string format_float(double v, bool is_f32) {
  char buf[64];
  auto r =
      is_f32 ? std::to_chars(buf, buf + sizeof buf, static_cast<float>(v)) : std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string type_label(const GgufValue& v) {
  if (!v.is_array()) return value_type_name(v.type);
  return std::string("array[") + value_type_name(v.elem_type) + "]";
}

constexpr size_t kMaxStringBytes = 4096;  // enough for any chat template
constexpr size_t kMaxArrayStringBytes = 64;

}  // namespace

std::string format_value(const GgufValue& v, size_t max_array_items) {
  if (!v.is_array()) {
    return std::visit(
        [&](const auto& x) -> std::string {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::string>)
            return quote(x, kMaxStringBytes);
          else if constexpr (std::is_same_v<T, bool>)
            return x ? "true" : "false";
          else if constexpr (std::is_same_v<T, double>)
            return format_float(x, v.type == GgufValueType::F32);
          else
            return std::to_string(x);
        },
        v.scalar);
  }
  const size_t n = v.array_size();
  const size_t shown = std::min(n, max_array_items);
  std::string out = "[";
  for (size_t i = 0; i < shown; ++i) {
    if (i) out += ", ";
    if (v.elem_type == GgufValueType::STRING)
      out += quote(v.strs[i], kMaxArrayStringBytes);
    else if (v.elem_type == GgufValueType::F32 || v.elem_type == GgufValueType::F64)
      out += format_float(v.nums[i], v.elem_type == GgufValueType::F32);
    else if (v.elem_type == GgufValueType::BOOL)
      out += v.ints[i] ? "true" : "false";
    else if (v.elem_type == GgufValueType::U64)
      out += std::to_string(static_cast<uint64_t>(v.ints[i]));
    else
      out += std::to_string(v.ints[i]);
  }
  if (shown < n) out += shown ? ", ..." : "...";
  out += "]";
  if (shown < n) out += " (" + std::to_string(n) + " items)";
  return out;
}

std::string describe_gguf(const GgufFile& f) {
  std::ostringstream os;
  os << "file: " << f.path() << "\n";
  os << "size: " << f.file_size() << " bytes\n";
  os << "version: " << f.version() << "\n";
  os << "alignment: " << f.alignment() << "\n";
  os << "data offset: " << f.data_offset() << "\n";
  os << "metadata: " << f.metadata().size() << " keys\n";
  for (const auto& [key, v] : f.metadata())
    os << "  " << key << " (" << type_label(v) << ") = " << format_value(v) << "\n";

  os << "tensors: " << f.tensors().size() << "\n";
  size_t name_w = 4;
  for (const GgufTensor& t : f.tensors()) name_w = std::max(name_w, t.name.size());
  char line[512];
  std::snprintf(line, sizeof line, "  %-*s  %-6s  %-24s  %14s  %12s\n", static_cast<int>(name_w), "name", "type",
                "dims", "offset", "bytes");
  os << line;
  uint64_t total = 0;
  for (const GgufTensor& t : f.tensors()) {
    std::string dims = "[";
    for (size_t i = 0; i < t.ne.size(); ++i) dims += (i ? ", " : "") + std::to_string(t.ne[i]);
    dims += "]";
    os << "  " << t.name << std::string(name_w - t.name.size(), ' ');
    std::snprintf(line, sizeof line, "  %-6s  %-24s  %14llu  %12llu\n", type_name(t.type_id).c_str(), dims.c_str(),
                  static_cast<unsigned long long>(t.offset), static_cast<unsigned long long>(t.nbytes));
    os << line;
    total += t.nbytes;
  }
  os << "tensor data: " << total << " bytes\n";
  return os.str();
}

}  // namespace shadowkv
