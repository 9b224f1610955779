// libFuzzer target: what the server does with a request body before the engine, on arbitrary bytes as the body of
// both /v1/completions and /v1/chat/completions: parse_completion_request (JSON, every field, the "kv" override),
// then prepare_request as Server::prepare calls it (chat rendering, token ids, context and max_tokens, the override
// applied to the server's KV options) with a small vocabulary in each chat format, each with its own context and
// server KV policy; then what Scheduler::submit and the engine loop do with an accepted "kv": make the cache (on a
// tiny geometry: one global and one sliding-window layer) and feed it the prompt and a few decode steps. No model,
// no HTTP server.
// Properties: parsing and preparing throw nothing but ApiError, with status 400, a message and a serialisable error
// body; accepted fields are within their documented ranges; a prepared prompt is non-empty, in the vocabulary and
// fits the context together with max_tokens; an accepted override makes a cache or is refused with shadowkv::Error
// (submit's 400), and the cache's attention output is finite.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "chat_vocab.h"
#include "kv/kv_cache.h"
#include "kv/kv_policy.h"
#include "server/api_request.h"
#include "server/api_response.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

using namespace shadowkv;
using namespace shadowkv::server;

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "fuzz_server_request: %s %s\n", what, detail.substr(0, 300).c_str());
  std::abort();
}

// A served "model": vocabulary of one chat format, context, and the server's KV options.
struct Served {
  std::unique_ptr<Tokenizer> tok;
  int64_t ctx;
  KvOptions kv;
};

std::vector<Served> make_served() {
  const std::string qwen_jinja = "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}";
  std::vector<Served> s;
  s.push_back({make_chat_vocab(0, true, ""), 64, KvOptions("full")});
  s.push_back({make_chat_vocab(1, true, ""), 4096,
               KvOptions("shadowkv").set("budget", "16").set("chunk", "4").set("local-chunks", "1")});
  s.push_back({make_chat_vocab(2, false, qwen_jinja), 512, KvOptions("snapkv").set("budget", "8")});
  s.push_back({make_chat_vocab(3, true, ""), 24, KvOptions("full").set("kv-f16", "true")});
  for (const Served& x : s) validate_kv_options(x.kv);
  return s;
}

void check_error(const ApiError& e) {
  if (e.status != 400) fail("status", std::to_string(e.status));
  if (std::string_view(e.what()).empty()) fail("empty error message");
  const std::string body = dump(error_body(e));
  if (!nlohmann::json::accept(body)) fail("error body is not JSON", body);
}

void check_fields(const CompletionRequest& r) {
  if (r.max_tokens != -1 && (r.max_tokens < 1 || r.max_tokens > kMaxTokensLimit)) fail("max_tokens");
  if (!(r.temperature >= 0 && r.temperature <= 2) || !(r.top_p >= 0 && r.top_p <= 1)) fail("temperature/top_p");
  if (r.top_k < 0 || r.top_k > (1 << 20)) fail("top_k");
  if ((int)r.stop.size() > kMaxStopStrings) fail("too many stop strings");
  for (const std::string& s : r.stop)
    if (s.empty() || s.size() > kMaxStopBytes) fail("stop string size");
  if (r.endpoint == Endpoint::Chat) {
    if (r.messages.empty()) fail("no messages");
    for (const ChatMessage& m : r.messages)
      if (m.role != "system" && m.role != "user" && m.role != "assistant") fail("role", m.role);
  } else {
    if (r.prompt_is_ids != !r.prompt_ids.empty()) fail("prompt ids flag");
    for (int32_t id : r.prompt_ids)
      if (id < 0) fail("negative token id");
  }
  if (!r.kv.given && (!r.kv.policy.empty() || !r.kv.settings.empty())) fail("kv without a kv field");
}

void check_prepared(const PreparedRequest& p, const Served& s) {
  const int64_t n = (int64_t)p.ids.size();
  if (n == 0 || n >= s.ctx) fail("prompt length", std::to_string(n));
  if (p.max_tokens < 1 || n + p.max_tokens > s.ctx) fail("max_tokens past the context", std::to_string(p.max_tokens));
  for (int32_t id : p.ids)
    if (id < 0 || id >= s.tok->n_vocab()) fail("token id out of the vocabulary", std::to_string(id));
  validate_kv_options(p.kv);  // an accepted override is a valid one (Error: a crash)
  (void)resolved_settings(p.kv);
}

KvGeometry tiny_geometry(int64_t ctx) {
  LayerGeometry global;
  global.n_head = 2;
  global.n_kv_head = 1;
  global.head_dim = 8;
  global.scale = 1.0f / std::sqrt(8.0f);
  global.rope = RopeSpec::make(RopeSpec::Style::Neox, 8, 10000.0f);
  LayerGeometry sliding = global;
  sliding.window = 4;
  return {{global, sliding}, ctx, 16};
}

// Rows of pseudo-random values for n tokens from position pos0 (deterministic, distinct per layer and part).
std::vector<float> rows(int64_t pos0, int n, int width, int salt) {
  std::vector<float> x((size_t)n * width);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * (float)(pos0 * width + (int64_t)i) + 1.3f * salt);
  return x;
}

// One forward pass of n tokens at pos0 through every layer of the cache, as the model calls attend().
void attend_all(KvCache& cache, const KvGeometry& g, int64_t pos0, int n) {
  for (int l = 0; l < (int)g.layers.size(); ++l) {
    const LayerGeometry& lg = g.layers[l];
    const int qw = lg.n_head * lg.head_dim, kw = lg.n_kv_head * lg.head_dim;
    const std::vector<float> q = rows(pos0, n, qw, 4 * l), k_pre = rows(pos0, n, kw, 4 * l + 1),
                             v = rows(pos0, n, kw, 4 * l + 2);
    std::vector<float> k = k_pre, out((size_t)n * qw);
    for (int t = 0; t < n; ++t) apply_rope(lg.rope, &k[(size_t)t * kw], lg.n_kv_head, lg.head_dim, pos0 + t);
    cache.attend(l, pos0, n, q.data(), k_pre.data(), k.data(), v.data(), out.data());
    for (float o : out)
      if (!std::isfinite(o)) fail("attention output is not finite");
  }
}

// The accepted request's KV cache, as Scheduler::submit makes it, fed (at most 48 tokens of) the prompt in chunks
// and up to 3 decode steps.
void run_cache(const PreparedRequest& p, int64_t ctx) {
  const KvGeometry g = tiny_geometry(ctx);
  std::unique_ptr<KvCache> cache;
  try {
    cache = make_kv_cache(g, p.kv);
  } catch (const Error&) {
    return;  // the server answers 400
  }
  const int64_t n_feed = std::min<int64_t>((int64_t)p.ids.size(), 48), n_decode = std::min<int64_t>(p.max_tokens, 3);
  try {
    for (int64_t pos = 0; pos < n_feed; pos += g.max_batch_tokens)
      attend_all(*cache, g, pos, (int)std::min<int64_t>(g.max_batch_tokens, n_feed - pos));
    cache->end_prefill();
    for (int64_t t = 0; t < n_decode; ++t) attend_all(*cache, g, n_feed + t, 1);
  } catch (const Error&) {
    return;  // a generation error: the request ends with an error, the server keeps serving
  }
  if (cache->n_tokens() != n_feed + n_decode) fail("cache length", std::to_string(cache->n_tokens()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<Served> served = make_served();
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (const Endpoint endpoint : {Endpoint::Completions, Endpoint::Chat}) {
    CompletionRequest r;
    try {
      r = parse_completion_request(body, endpoint);
    } catch (const ApiError& e) {
      check_error(e);
      continue;
    }
    if (r.endpoint != endpoint) fail("endpoint");
    check_fields(r);
    for (const Served& s : served) {
      PreparedRequest p;
      try {
        p = prepare_request(r, *s.tok, s.ctx, s.kv);
      } catch (const ApiError& e) {
        check_error(e);
        continue;
      }
      check_prepared(p, s);
      run_cache(p, s.ctx);
    }
  }
  return 0;
}
