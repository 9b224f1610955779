#include "model/model_weights.h"

#include <cstring>

#include "io/gguf.h"
#include "util/error.h"

namespace shadowkv {
namespace {

class TensorFinder {
 public:
  explicit TensorFinder(const GgufFile& f) : f_(f) {}

  const GgufTensor* find(const std::string& name) const { return f_.find_tensor(name); }

  const GgufTensor& require(const std::string& name) const {
    const GgufTensor* t = f_.find_tensor(name);
    if (!t) throw Error(f_.path() + ": missing tensor '" + name + "'");
    const TypeTraits* tt = type_traits(t->type_id);
    if (!tt || !tt->supported)
      throw Error(f_.path() + ": tensor '" + name + "' has unsupported type " + type_name(t->type_id));
    return *t;
  }

  QMatrix matrix(const std::string& name, int64_t n_in, int64_t n_out) const {
    const GgufTensor& t = require(name);
    if (t.ne.size() != 2 || t.ne[0] != n_in || t.ne[1] != n_out)
      throw Error(f_.path() + ": tensor '" + name + "' has shape " + shape(t) + ", expected [" + std::to_string(n_in) +
                  ", " + std::to_string(n_out) + "]");
    QMatrix m;
    m.type = t.type();
    m.data = t.data;
    m.n_in = n_in;
    m.n_out = n_out;
    m.row_stride = row_bytes(m.type, n_in);
    return m;
  }

  const float* vec(const std::string& name, int64_t n, bool optional = false) const {
    if (optional && !find(name)) return nullptr;
    const GgufTensor& t = require(name);
    if (t.type() != GgmlType::F32 || t.n_elements() != n)
      throw Error(f_.path() + ": tensor '" + name + "' must be F32 with " + std::to_string(n) + " elements, got " +
                  type_name(t.type_id) + " " + shape(t));
    return reinterpret_cast<const float*>(t.data);
  }

 private:
  static std::string shape(const GgufTensor& t) {
    std::string s = "[";
    for (size_t i = 0; i < t.ne.size(); ++i) s += (i ? ", " : "") + std::to_string(t.ne[i]);
    return s + "]";
  }
  const GgufFile& f_;
};

// Heads of this size stream from DRAM at every decode step, where the packed layout pays (Gemma 3 270M's tied
// 262K x 640 head: 178 MB, 5.9 -> 4.9 ms on two threads); smaller Q8_0 matrices use the four-row kernel on the GGUF
// layout instead (quant_avx2.cpp). Q4_0/Q5_0 matrices are always packed (pack_q32_runs: the same size as the GGUF
// rows, and the only layout their fast dot kernel reads).
constexpr int64_t kPackMinBytes = 64 << 20;

bool packs(const QMatrix& m) {
  return packed_bytes(m) > 0 && (m.type != GgmlType::Q8_0 || m.row_stride * m.n_out >= kPackMinBytes);
}

int64_t arena_bytes(const QMatrix& m) {
  const int64_t b = packs(m) ? packed_bytes(m) : m.row_stride * m.n_out;
  return (b + 63) / 64 * 64;
}

// Every matrix decode streams (the layers' and the LM head) moves into one block of huge-page memory (on 4 KiB file
// pages, Gemma's 512-token batch-1 decode ran ~15% slower, Qwen's ~19%): packed (m.packed) where its type has a decode
// layout, else copied (m.data). The arena is not zeroed first (HugePageAllocator): its pages become resident as they
// are written, while the GGUF pages go, so loading never holds both copies. The GGUF copy's pages go back to the page
// cache; only the GEMM of prefill (a packed Q8_0 head), the scalar backend and token embedding lookups (tied heads: a
// few rows per token) fault them back in.
void place_in_arena(const GgufFile& file, const std::vector<QMatrix*>& ms, ModelWeights& w) {
  int64_t total = 0;
  for (const QMatrix* m : ms) total += arena_bytes(*m);
  w.arena.resize(total);
  uint8_t* at = w.arena.data();
  for (QMatrix* m : ms) {
    const int64_t bytes = m->row_stride * m->n_out;
    const uint8_t* gguf = m->data;
    if (packs(*m)) {
      pack_weights_into(*m, at);
      m->packed = at;
    } else {
      std::memcpy(at, gguf, bytes);
      m->data = at;
    }
    file.release_pages(gguf, bytes);
    at += arena_bytes(*m);
  }
}

}  // namespace

ModelWeights load_model_weights(const GgufFile& file, const ModelConfig& c) {
  TensorFinder tf(file);
  ModelWeights w;
  const int64_t q_width = (int64_t)c.n_head * c.head_dim, kv_width = (int64_t)c.n_kv_head * c.head_dim;
  w.token_embd = tf.matrix("token_embd.weight", c.n_embd, c.n_vocab);
  w.output = tf.find("output.weight") ? tf.matrix("output.weight", c.n_embd, c.n_vocab) : w.token_embd;
  w.output_norm = tf.vec("output_norm.weight", c.n_embd);
  if (c.arch == Arch::Llama) w.rope_freqs = tf.vec("rope_freqs.weight", c.n_rot / 2, /*optional=*/true);
  const bool gemma = c.arch == Arch::Gemma3;
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LayerWeights L;
    L.attn_norm = tf.vec(p + "attn_norm.weight", c.n_embd);
    L.wq = tf.matrix(p + "attn_q.weight", c.n_embd, q_width);
    L.wk = tf.matrix(p + "attn_k.weight", c.n_embd, kv_width);
    L.wv = tf.matrix(p + "attn_v.weight", c.n_embd, kv_width);
    L.wo = tf.matrix(p + "attn_output.weight", q_width, c.n_embd);
    const bool need_bias = c.has_qkv_bias;
    L.bq = tf.vec(p + "attn_q.bias", q_width, !need_bias);
    L.bk = tf.vec(p + "attn_k.bias", kv_width, !need_bias);
    L.bv = tf.vec(p + "attn_v.bias", kv_width, !need_bias);
    if (gemma) {
      L.q_norm = tf.vec(p + "attn_q_norm.weight", c.head_dim);
      L.k_norm = tf.vec(p + "attn_k_norm.weight", c.head_dim);
      L.post_attn_norm = tf.vec(p + "post_attention_norm.weight", c.n_embd);
      L.post_ffw_norm = tf.vec(p + "post_ffw_norm.weight", c.n_embd);
    }
    L.ffn_norm = tf.vec(p + "ffn_norm.weight", c.n_embd);
    L.gate = tf.matrix(p + "ffn_gate.weight", c.n_embd, c.n_ff);
    L.up = tf.matrix(p + "ffn_up.weight", c.n_embd, c.n_ff);
    L.down = tf.matrix(p + "ffn_down.weight", c.n_ff, c.n_embd);
    w.layers.push_back(L);
  }
  std::vector<QMatrix*> streamed{&w.output};
  for (LayerWeights& L : w.layers)
    for (QMatrix* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down}) streamed.push_back(m);
  place_in_arena(file, streamed, w);
  return w;
}

}  // namespace shadowkv
