#include "runtime/generator.h"

#include <algorithm>
#include <chrono>

#include "util/error.h"

namespace shadowkv {
namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

int64_t Generator::context_limit(const GenerateOptions& o) const {
  return o.n_ctx > 0 ? o.n_ctx : model_.config().n_ctx_train;
}

std::unique_ptr<KvCache> Generator::prefill(const std::vector<int32_t>& prompt, const GenerateOptions& o,
                                            std::vector<float>& last_logits) const {
  const int64_t ctx = context_limit(o);
  if (prompt.empty()) throw Error("the prompt is empty");
  if ((int64_t)prompt.size() > ctx)
    throw Error("the prompt has " + std::to_string(prompt.size()) + " tokens, more than the context of " +
                std::to_string(ctx) + " (raise -c, up to the model's " + std::to_string(model_.config().n_ctx_train) +
                ")");
  auto cache = make_kv_cache(model_.kv_geometry(ctx, o.prefill_chunk), o.kv);
  prefill_cache(model_, *cache, prompt, o.prefill_chunk, last_logits);
  return cache;
}

void prefill_cache(const Model& model, KvCache& cache, const std::vector<int32_t>& prompt, int chunk,
                   std::vector<float>& last_logits, bool end) {
  if (chunk <= 0) throw Error("prefill chunk must be positive");
  for (size_t i = 0; i < prompt.size(); i += chunk) {
    const int n = (int)std::min<size_t>(chunk, prompt.size() - i);
    model.forward({ForwardItem{&cache, prompt.data() + i, n, (int64_t)i, false}}, last_logits);
  }
  if (end) cache.end_prefill();
}

std::vector<Generation> Generator::generate(const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o,
                                            const TextCallback& on_text) const {
  const Tokenizer& tok = model_.tokenizer();
  const int n_vocab = model_.config().n_vocab;
  const int64_t ctx = context_limit(o);
  const int B = (int)prompts.size();
  std::vector<Generation> out(B);
  std::vector<std::unique_ptr<KvCache>> caches(B);
  std::vector<Sampler> samplers;
  std::vector<StreamDecoder> decoders;
  std::vector<int32_t> next(B);
  std::vector<bool> live(B, true);

  // Prefill each prompt on its own (prompts differ in length), sampling its first generated token.
  std::vector<float> logits;
  for (int b = 0; b < B; ++b) {
    SamplerParams sp = o.sampling;
    sp.seed += b;
    samplers.emplace_back(sp);
    decoders.emplace_back(tok);
    const double t0 = now_s();
    caches[b] = prefill(prompts[b], o, logits);
    out[b].stats.prefill_seconds = now_s() - t0;
    out[b].stats.prompt_tokens = (int64_t)prompts[b].size();
    next[b] = samplers[b].sample(logits.data(), n_vocab);
  }

  // Decode: every live sequence contributes its pending token to one shared forward pass per step.
  std::vector<ForwardItem> items;
  std::vector<int> item_seq;
  for (int step = 0;; ++step) {
    items.clear();
    item_seq.clear();
    for (int b = 0; b < B; ++b) {
      if (!live[b]) continue;
      const int32_t t = next[b];
      if (o.stop_at_eos && tok.is_stop(t)) {
        live[b] = false;
        out[b].stop_reason = "eos";
        continue;
      }
      out[b].tokens.push_back(t);
      const std::string piece = decoders[b].push(t);
      out[b].text += piece;
      if (on_text && !piece.empty()) on_text(b, piece);
      if ((int)out[b].tokens.size() >= o.n_predict) {
        live[b] = false;
        out[b].stop_reason = "length";
        continue;
      }
      if (caches[b]->n_tokens() + 1 >= ctx) {
        live[b] = false;
        out[b].stop_reason = "context";
        continue;
      }
      items.push_back(ForwardItem{caches[b].get(), &out[b].tokens.back(), 1, caches[b]->n_tokens(), false});
      item_seq.push_back(b);
    }
    if (items.empty()) break;
    const double t0 = now_s();
    model_.forward(items, logits);
    const double dt = now_s() - t0;
    for (size_t i = 0; i < items.size(); ++i) {
      const int b = item_seq[i];
      next[b] = samplers[b].sample(&logits[i * (size_t)n_vocab], n_vocab);
      out[b].stats.decode_seconds += dt;
      out[b].stats.decode_steps += 1;
    }
  }

  for (int b = 0; b < B; ++b) {
    const std::string rest = decoders[b].flush();
    out[b].text += rest;
    if (on_text && !rest.empty()) on_text(b, rest);
    GenerationStats& s = out[b].stats;
    s.generated_tokens = (int64_t)out[b].tokens.size();
    s.kv = caches[b]->memory();
    s.kv_full_bytes = full_kv_bytes(model_.kv_geometry(ctx, o.prefill_chunk), caches[b]->n_tokens(), o.kv.flag_if_declared("kv-f16"));
    s.counters = caches[b]->counters();
  }
  return out;
}

}  // namespace shadowkv
