// Text rendering of a GGUF file for `shadowkv inspect`: header, every metadata key with its type and value (long
// arrays abbreviated), then the tensor table.
#pragma once
#include <string>

#include "io/gguf.h"

namespace shadowkv {

// "u32", "string", ... ; "unknown" for ids outside the enum.
const char* value_type_name(GgufValueType t);

// The full `inspect` text, ending in a newline.
std::string describe_gguf(const GgufFile& f);

}  // namespace shadowkv
