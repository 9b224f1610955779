#include "model/model_config.h"

#include <cmath>

#include "io/gguf.h"
#include "util/error.h"

namespace shadowkv {
namespace {

int positive(const GgufFile& f, const std::string& key, int64_t v) {
  if (v <= 0 || v > (1 << 24))
    throw Error(f.path() + ": metadata " + key + " = " + std::to_string(v) + " is out of range");
  return (int)v;
}

}  // namespace

ModelConfig read_model_config(const GgufFile& f) {
  ModelConfig c;
  c.arch_name = f.require_string("general.architecture");
  if (c.arch_name == "gemma3")
    c.arch = Arch::Gemma3;
  else if (c.arch_name == "llama")
    c.arch = Arch::Llama;
  else if (c.arch_name == "qwen2")
    c.arch = Arch::Qwen2;
  else
    throw Error(f.path() + ": unsupported architecture '" + c.arch_name + "' (supported: gemma3, llama, qwen2)");
  const std::string a = c.arch_name + ".";
  c.name = f.get_string("general.name").value_or(c.arch_name);
  auto req = [&](const std::string& k) { return positive(f, a + k, f.require_int(a + k)); };
  c.n_embd = req("embedding_length");
  c.n_layer = req("block_count");
  c.n_ff = req("feed_forward_length");
  c.n_head = req("attention.head_count");
  c.n_kv_head = positive(f, a + "attention.head_count_kv", f.get_int(a + "attention.head_count_kv").value_or(c.n_head));
  c.n_ctx_train = positive(f, a + "context_length", f.get_int(a + "context_length").value_or(4096));
  c.head_dim =
      positive(f, a + "attention.key_length", f.get_int(a + "attention.key_length").value_or(c.n_embd / c.n_head));
  const int64_t vdim = f.get_int(a + "attention.value_length").value_or(c.head_dim);
  if (vdim != c.head_dim) throw Error(f.path() + ": value_length != key_length is not supported");
  if (c.n_head % c.n_kv_head != 0)
    throw Error(f.path() + ": head_count " + std::to_string(c.n_head) + " is not a multiple of head_count_kv " +
                std::to_string(c.n_kv_head));
  c.n_rot = positive(f, a + "rope.dimension_count", f.get_int(a + "rope.dimension_count").value_or(c.head_dim));
  if (c.n_rot > c.head_dim || c.n_rot % 2 != 0 || c.head_dim > 1024)
    throw Error(f.path() + ": unsupported rope.dimension_count " + std::to_string(c.n_rot));
  c.rms_eps = (float)f.get_float(a + "attention.layer_norm_rms_epsilon").value_or(1e-5);
  c.rope_base = (float)f.get_float(a + "rope.freq_base").value_or(10000.0);
  const std::string scaling = f.get_string(a + "rope.scaling.type").value_or("none");
  if (scaling == "linear") {
    c.rope_linear_scale = (float)f.get_float(a + "rope.scaling.factor").value_or(1.0);
  } else if (scaling != "none") {
    throw Error(f.path() + ": unsupported rope scaling '" + scaling + "'");
  }
  if (auto old = f.get_float(a + "rope.scale_linear")) c.rope_linear_scale = (float)*old;
  if (!(c.rope_linear_scale > 0.0f)) throw Error(f.path() + ": bad rope scaling factor");
  c.attn_scale = 1.0f / std::sqrt((float)c.head_dim);
  c.layer_sliding.assign(c.n_layer, false);
  if (c.arch == Arch::Gemma3) {
    // Gemma 3: five sliding-window layers (RoPE base 10000) then one global layer, repeating.
    c.sliding_window =
        positive(f, a + "attention.sliding_window", f.get_int(a + "attention.sliding_window").value_or(512));
    for (int l = 0; l < c.n_layer; ++l) c.layer_sliding[l] = (l % 6) < 5;
    c.rope_base_local = 10000.0f;
  }
  c.has_qkv_bias = c.arch == Arch::Qwen2;
  c.instruction_tuned = f.find("tokenizer.chat_template") != nullptr;
  if (const GgufValue* toks = f.find("tokenizer.ggml.tokens")) c.n_vocab = (int)toks->array_size();
  return c;
}

KvGeometry ModelConfig::kv_geometry(int64_t max_ctx, int max_batch_tokens, const float* rope_freqs) const {
  KvGeometry g;
  g.max_ctx = max_ctx;
  g.max_batch_tokens = max_batch_tokens;
  const RopeSpec::Style style = arch == Arch::Llama ? RopeSpec::Style::Norm : RopeSpec::Style::Neox;
  const RopeSpec global = RopeSpec::make(style, n_rot, rope_base, rope_linear_scale, rope_freqs);
  const RopeSpec local = RopeSpec::make(style, n_rot, rope_base_local);
  for (int l = 0; l < n_layer; ++l) {
    LayerGeometry lg;
    lg.n_head = n_head;
    lg.n_kv_head = n_kv_head;
    lg.head_dim = head_dim;
    lg.window = layer_sliding[l] ? sliding_window : 0;
    lg.scale = attn_scale;
    lg.rope = layer_sliding[l] ? local : global;
    g.layers.push_back(lg);
  }
  return g;
}

}  // namespace shadowkv
