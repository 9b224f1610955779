// Public quant.h entry points and the run-time SIMD backend choice.
#include "ops/quant.h"

#include <cpuid.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ops/gemm_i8.h"
#include "ops/quant_dispatch.h"
#include "util/error.h"

namespace shadowkv {
namespace simd {
namespace {

// F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports has no "f16c" feature name.
bool cpu_has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
}

Backend best_supported(Backend want) {
  for (int b = (int)want; b > 0; --b)
    if (supported((Backend)b)) return (Backend)b;
  return Backend::kScalar;
}

Backend default_backend() {
  Backend want = Backend::kAvx512;
  if (const char* env = std::getenv("SHADOWKV_SIMD"); env && *env) {
    if (!std::strcmp(env, "scalar"))
      want = Backend::kScalar;
    else if (!std::strcmp(env, "avx2"))
      want = Backend::kAvx2;
    else if (!std::strcmp(env, "avx512"))
      want = Backend::kAvx512;
    // Unknown values keep the automatic choice rather than failing deep inside a kernel call.
  }
  return best_supported(want);
}

std::atomic<int> g_forced{-1};

}  // namespace

bool supported(Backend b) {
  switch (b) {
    case Backend::kScalar:
      return true;
    case Backend::kAvx2: {
      static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
      return ok;
    }
    case Backend::kAvx512: {  // the quant kernels' int8 dots in VNNI; vector ops stay AVX2
      static const bool ok = supported(Backend::kAvx2) && __builtin_cpu_supports("avx512f") &&
                             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
      return ok;
    }
  }
  return false;
}

Backend active() {
  const int f = g_forced.load(std::memory_order_relaxed);
  if (f >= 0) return (Backend)f;
  static const Backend chosen = default_backend();
  return chosen;
}

const char* backend_name(Backend b) {
  switch (b) {
    case Backend::kScalar:
      return "scalar";
    case Backend::kAvx2:
      return "avx2";
    case Backend::kAvx512:
      return "avx512";
  }
  return "?";
}

const QuantOps& quant_ops() {
  switch (active()) {
    case Backend::kScalar:
      return kScalarQuantOps;
    case Backend::kAvx2:
      return kAvx2QuantOps;
    case Backend::kAvx512:
      return kAvx512QuantOps;
  }
  return kScalarQuantOps;
}

const GemmI8Ops* gemm_i8_ops() {
  switch (active()) {
    case Backend::kAvx2:
      return &kAvx2GemmI8Ops;
    case Backend::kAvx512:
      return &kAvx512GemmI8Ops;
    default:
      return nullptr;
  }
}

const VecOps& avx512_vec_ops() {
  static const VecOps table = [] {
    VecOps v = kAvx2VecOps;
    v.group_scores = kAvx512VecKernels.group_scores;
    v.group_accumulate = kAvx512VecKernels.group_accumulate;
    v.panel_scores = kAvx512VecKernels.panel_scores;
    return v;
  }();
  return table;
}

const VecOps& vec_ops() {
  switch (active()) {
    case Backend::kScalar:
      return kScalarVecOps;
    case Backend::kAvx2:
      return kAvx2VecOps;
    case Backend::kAvx512:
      return avx512_vec_ops();
  }
  return kScalarVecOps;
}

void set_backend(Backend b) {
  if (!supported(b)) throw Error(std::string("SIMD backend not supported on this CPU: ") + backend_name(b));
  g_forced.store((int)b);
}
void reset_backend() { g_forced.store(-1); }

}  // namespace simd

namespace {

const TypeTraits& checked_traits(GgmlType type, int64_t n) {
  const TypeTraits* tt = type_traits(static_cast<uint32_t>(type));
  if (!tt || !tt->supported) throw Error("unsupported tensor type " + type_name(static_cast<uint32_t>(type)));
  if (n < 0 || n % tt->block_elems != 0)
    throw Error("row length " + std::to_string(n) + " is not a multiple of the " + tt->name + " block size");
  return *tt;
}

}  // namespace

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
  checked_traits(type, n);
  simd::quant_ops().dequantize(type, src, dst, n);
}

float dot_row(GgmlType type, const void* row, const float* x, int64_t n) {
  checked_traits(type, n);
  const simd::QuantOps& ops = simd::quant_ops();
  const simd::ActKind kind = ops.act_kind(type);
  if (kind == simd::ActKind::kNone) return ops.dot(type, row, x, nullptr, n);
  thread_local std::vector<uint8_t> act;
  act.resize(simd::act_bytes(kind, n));
  ops.quantize_act(kind, x, act.data(), n);
  return ops.dot(type, row, x, act.data(), n);
}

const char* simd_backend() { return simd::backend_name(simd::active()); }

}  // namespace shadowkv
