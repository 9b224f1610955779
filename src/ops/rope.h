// Rotary position embeddings. NORM style rotates pairs (x[2i], x[2i+1]) (llama in GGUF); NEOX style rotates
// (x[i], x[i + n_rot/2]) (qwen2, gemma3). Dims at or beyond n_rot pass through.
#pragma once
#include <cstdint>
#include <vector>

namespace shadowkv {

struct RopeSpec {
  enum class Style { Norm, Neox };
  Style style = Style::Neox;
  int n_rot = 0;                // rotated dims (even)
  std::vector<float> inv_freq;  // n_rot/2 angular frequencies, scaling already folded in

  // base^(-2i/n_rot) / (freq_factors[i] if given) * (1/linear_scale)
  static RopeSpec make(Style style, int n_rot, float base, float linear_scale = 1.0f,
                       const float* freq_factors = nullptr);
};

// Rotates n_heads vectors of head_dim floats laid out back to back, all at position pos.
void apply_rope(const RopeSpec& rope, float* x, int n_heads, int head_dim, int64_t pos);

}  // namespace shadowkv
