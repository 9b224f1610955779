#include "runtime/scheduler.h"

#include <algorithm>
#include <atomic>

#include "util/clock.h"
#include "util/error.h"
#include "util/memory.h"

namespace shadowkv {

struct Scheduler::Seq {
  uint64_t id = 0;
  SequenceRequest req;
  std::unique_ptr<KvCache> cache;
  int64_t ctx = 0, start = 0;  // context limit; positions the cache held at submit
  int64_t fed = 0;             // feed tokens in the cache
  int32_t pending = -1;        // generated token to feed at the next step (-1: none)
  bool done = false;
  Sampler sampler;
  StreamDecoder decoder;
  size_t emitted = 0;  // bytes of result.text passed to on_text
  double submitted = 0;
  SequenceResult result;
  Seq(SequenceRequest r, const Tokenizer& tok) : req(std::move(r)), sampler(req.sampling), decoder(tok) {}
  bool feeding() const { return fed < (int64_t)req.feed.size(); }
};

Scheduler::Scheduler(const Model& model, SchedulerOptions o) : model_(model), o_(std::move(o)) {
  if (o_.max_batch < 1 || o_.prefill_chunk < 1 || o_.prefill_tokens_per_step < 1)
    throw Error("scheduler: batch, prefill chunk and tokens per step must be positive");
}

Scheduler::~Scheduler() = default;

int64_t full_equivalent_bytes(const Model& model, int64_t ctx, int64_t n_tokens, bool f16) {
  return full_kv_bytes(model.kv_geometry(ctx, 1), n_tokens, f16);
}

uint64_t Scheduler::submit(SequenceRequest r) {
  const int64_t ctx = r.ctx > 0 ? r.ctx : model_.config().n_ctx_train;
  if (ctx > model_.config().n_ctx_train)
    throw Error("a context of " + std::to_string(ctx) + " tokens is more than the model's " +
                std::to_string(model_.config().n_ctx_train));
  if (!r.forced.empty()) r.n_predict = (int)r.forced.size();
  if (r.feed.empty() && r.first_logits.empty()) throw Error("the prompt is empty");
  if (r.feed.empty() && (int64_t)r.first_logits.size() != model_.config().n_vocab)
    throw Error("scheduler: first_logits must hold one row of n_vocab logits");
  if (r.n_predict < 0) throw Error("the number of tokens to generate must be >= 0");
  if (r.prefill_chunk <= 0) r.prefill_chunk = o_.prefill_chunk;
  if (!r.cache) r.cache = make_kv_cache(model_.kv_geometry(ctx, r.prefill_chunk), r.kv);
  const int64_t held = r.cache->n_tokens();
  if (held + (int64_t)r.feed.size() > ctx)
    throw Error("the prompt has " + std::to_string(held + (int64_t)r.feed.size()) +
                " tokens, more than the context of " + std::to_string(ctx) + " (raise -c, up to the model's " +
                std::to_string(model_.config().n_ctx_train) + ")");
  auto s = std::make_unique<Seq>(std::move(r), model_.tokenizer());
  s->cache = std::move(s->req.cache);
  s->ctx = ctx;
  s->start = held;
  s->submitted = now_s();
  s->result.stats.prompt_tokens = (int64_t)s->req.feed.size();
  std::lock_guard<std::mutex> lock(mu_);
  s->id = s->result.id = next_id_++;
  const uint64_t id = s->id;
  queue_.push_back(std::move(s));
  cv_.notify_all();
  return id;
}

void Scheduler::cancel(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_.insert(id);
  cv_.notify_all();
}

int Scheduler::live() const { return n_live_.load(); }

int Scheduler::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return (int)queue_.size();
}

void Scheduler::admit() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = queue_.begin(); it != queue_.end();) {  // cancelled before admission: end at once
    if (cancelled_.erase((*it)->id)) {
      live_.push_back(std::move(*it));
      it = queue_.erase(it);
      finish(*live_.back(), "cancelled");
    } else {
      ++it;
    }
  }
  for (auto& s : live_)
    if (!s->done && cancelled_.erase(s->id)) finish(*s, "cancelled");
  cancelled_.clear();  // ids that were unknown or finished
  while (!queue_.empty() && (int)live_.size() < o_.max_batch) {
    std::unique_ptr<Seq> s = std::move(queue_.front());
    queue_.pop_front();
    s->result.stats.queue_seconds = now_s() - s->submitted;
    live_.push_back(std::move(s));
    Seq& n = *live_.back();
    if (!n.feeding()) {  // continuing a filled cache: choose the first token from the given logits
      if (n.req.on_logits) n.req.on_logits(n.start - 1, n.req.first_logits.data());
      if (n.req.n_predict == 0)
        finish(n, "prefill");
      else
        next_token(n, n.req.first_logits.data());
    }
  }
  n_live_ = (int)live_.size();
}

void Scheduler::plan_step(std::vector<ForwardItem>& items, std::vector<Seq*>& owners, int64_t& feed_tokens) {
  for (auto& s : live_)
    if (!s->done && s->pending >= 0) {
      items.push_back({s->cache.get(), &s->pending, 1, s->cache->n_tokens(), false});
      owners.push_back(s.get());
    }
  // Prompt chunks are always whole (prefill_chunk tokens or the rest of the feed), as a sequence alone would get
  // them; the per-step budget only limits how many sequences feed in one step (at least one does).
  for (auto& s : live_) {
    if (s->done || !s->feeding()) continue;
    const int n = (int)std::min<int64_t>(s->req.prefill_chunk, (int64_t)s->req.feed.size() - s->fed);
    if (feed_tokens > 0 && feed_tokens + n > o_.prefill_tokens_per_step) break;
    const bool all = s->req.observe_from >= 0 && s->fed + n > s->req.observe_from;
    items.push_back({s->cache.get(), s->req.feed.data() + s->fed, n, s->start + s->fed, all});
    owners.push_back(s.get());
    feed_tokens += n;
  }
}

bool Scheduler::step() {
  admit();
  std::vector<ForwardItem> items;
  std::vector<Seq*> owners;
  int64_t feed_tokens = 0;
  plan_step(items, owners, feed_tokens);
  if (items.empty()) {
    retire();
    std::lock_guard<std::mutex> lock(mu_);
    return !queue_.empty();
  }
  const double t0 = now_s();
  try {
    model_.forward(items, logits_);
  } catch (const std::exception& e) {
    for (Seq* s : owners) {
      s->result.error = e.what();
      finish(*s, "error");
    }
    retire();
    return true;
  }
  const double dt = now_s() - t0;
  const size_t V = (size_t)model_.config().n_vocab;
  size_t row = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    after_forward(*owners[i], items[i], &logits_[row * V], dt);
    row += items[i].all_logits ? items[i].n : 1;
  }
  if (o_.on_step) {
    int decodes = 0;
    for (size_t i = 0; i < items.size(); ++i) decodes += items[i].tokens == &owners[i]->pending;
    o_.on_step((int)items.size(), feed_tokens, decodes, dt);
  }
  retire();
  return true;
}

void Scheduler::after_forward(Seq& s, const ForwardItem& item, const float* rows, double dt) {
  const size_t V = (size_t)model_.config().n_vocab;
  if (item.tokens != &s.pending) {  // a feed chunk
    s.result.stats.prefill_seconds += dt;
    const int64_t first = s.fed;
    s.fed += item.n;
    const float* last = rows + (item.all_logits ? (size_t)(item.n - 1) * V : 0);
    if (s.req.on_logits && item.all_logits)
      for (int t = 0; t < item.n; ++t)
        if (first + t >= s.req.observe_from) s.req.on_logits(s.start + first + t, rows + (size_t)t * V);
    if (s.feeding()) return;
    if (s.req.on_logits && !item.all_logits) s.req.on_logits(s.start + s.fed - 1, last);
    if (s.req.end_prefill) {
      const double t0 = now_s();
      s.cache->end_prefill();
      return_free_heap();
      s.result.stats.prefill_seconds += now_s() - t0;
    }
    if (s.req.n_predict == 0)
      finish(s, "prefill");
    else
      next_token(s, last);
    return;
  }
  s.result.stats.decode_seconds += dt;
  s.result.stats.decode_steps += 1;
  s.pending = -1;
  if (s.req.on_logits) s.req.on_logits(s.cache->n_tokens() - 1, rows);
  next_token(s, rows);
}

void Scheduler::next_token(Seq& s, const float* logits) {
  const size_t k = s.result.tokens.size();
  const int32_t t = !s.req.forced.empty() ? s.req.forced[k] : s.sampler.sample(logits, model_.config().n_vocab);
  if (s.req.stop_at_eos && model_.tokenizer().is_stop(t)) return finish(s, "eos");
  emit_token(s, t);
  if (s.done) return;
  if ((int)s.result.tokens.size() >= s.req.n_predict) return finish(s, "length");
  if (s.cache->n_tokens() + 1 >= s.ctx) return finish(s, "context");
  s.pending = t;
}

namespace {

// Bytes at the end of text that could still grow into one of the stop strings.
size_t stop_holdback(const std::string& text, const std::vector<std::string>& stop) {
  size_t hold = 0;
  for (const std::string& st : stop)
    for (size_t n = st.empty() ? 0 : std::min(st.size() - 1, text.size()); n > hold; --n)
      if (text.compare(text.size() - n, n, st, 0, n) == 0) {
        hold = n;
        break;
      }
  return hold;
}

// Earliest occurrence of a stop string in text at or after `from`, or npos.
size_t find_stop(const std::string& text, const std::vector<std::string>& stop, size_t from) {
  size_t at = std::string::npos;
  for (const std::string& st : stop)
    if (!st.empty()) at = std::min(at, text.find(st, from));
  return at;
}

}  // namespace

void Scheduler::emit_token(Seq& s, int32_t t) {
  SequenceResult& r = s.result;
  if (r.tokens.empty()) r.stats.first_token_seconds = now_s() - s.submitted;
  r.tokens.push_back(t);
  r.text += s.decoder.push(t);
  size_t longest = 0;
  for (const std::string& st : s.req.stop) longest = std::max(longest, st.size());
  const size_t cut = find_stop(r.text, s.req.stop, s.emitted >= longest ? s.emitted - longest : 0);
  if (cut != std::string::npos) {
    r.text.resize(std::max(cut, s.emitted));
    return finish(s, "stop");
  }
  const size_t safe = r.text.size() - stop_holdback(r.text, s.req.stop);
  if (safe > s.emitted && s.req.on_text) s.req.on_text(std::string_view(r.text).substr(s.emitted, safe - s.emitted));
  s.emitted = std::max(s.emitted, safe);
}

void Scheduler::finish(Seq& s, const std::string& reason) {
  if (s.done) return;
  s.done = true;
  SequenceResult& r = s.result;
  r.stop_reason = reason;
  if (reason != "stop") {
    r.text += s.decoder.flush();
    const size_t cut = find_stop(r.text, s.req.stop, s.emitted);
    if (cut != std::string::npos) r.text.resize(cut);
  }
  if (r.text.size() > s.emitted && s.req.on_text) s.req.on_text(std::string_view(r.text).substr(s.emitted));
  s.emitted = r.text.size();
  r.stats.generated_tokens = (int64_t)r.tokens.size();
  r.stats.kv = s.cache->memory();
  r.stats.counters = s.cache->counters();
  r.stats.kv_full_bytes =
      r.error.empty() ? full_equivalent_bytes(model_, s.ctx, s.cache->n_tokens(), full_equivalent_f16(s.req.kv)) : 0;
  r.cache = std::move(s.cache);
}

void Scheduler::retire() {
  std::vector<std::unique_ptr<Seq>> finished;
  for (auto& s : live_)
    if (s->done) finished.push_back(std::move(s));
  live_.erase(std::remove(live_.begin(), live_.end(), nullptr), live_.end());
  n_live_ = (int)live_.size();
  if (o_.track_live_kv) update_live_kv();
  for (auto& s : finished)
    if (s->req.on_done) s->req.on_done(std::move(s->result));
}

void Scheduler::update_live_kv() {
  LiveKvStats t;
  for (const auto& s : live_) {
    if (!s->cache) continue;
    const KvMemory m = s->cache->memory();
    t.sequences += 1;
    t.hot_bytes += m.hot;
    t.cold_bytes += m.cold;
    for (const auto& [name, value] : s->cache->counters()) t.counters[name] += value;
  }
  std::lock_guard<std::mutex> lock(kv_mu_);
  live_kv_ = std::move(t);
}

LiveKvStats Scheduler::live_kv() const {
  std::lock_guard<std::mutex> lock(kv_mu_);
  return live_kv_;
}

void Scheduler::run_until_idle() {
  while (step()) {
  }
}

std::vector<SequenceResult> Scheduler::run(std::vector<SequenceRequest> requests) {
  std::vector<SequenceResult> out(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    requests[i].on_done = [&out, i](SequenceResult&& r) { out[i] = std::move(r); };
    submit(std::move(requests[i]));
  }
  run_until_idle();
  for (const SequenceResult& r : out)
    if (!r.error.empty()) throw Error(r.error);
  return out;
}

SequenceResult run_one(const Model& model, SequenceRequest request, SchedulerOptions options) {
  Scheduler sched(model, std::move(options));
  std::vector<SequenceRequest> v;
  v.push_back(std::move(request));
  return std::move(sched.run(std::move(v))[0]);
}

bool Scheduler::wait_for_work() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return stop_ || !queue_.empty() || !cancelled_.empty() || n_live_ > 0; });
  return !stop_;
}

void Scheduler::stop_waiting() {
  std::lock_guard<std::mutex> lock(mu_);
  stop_ = true;
  cv_.notify_all();
}

}  // namespace shadowkv
