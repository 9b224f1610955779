// POST /v1/completions and /v1/chat/completions: a request becomes one scheduler sequence; the handler thread waits
// for its end (or streams its text as server-sent events) and a client gone mid-stream cancels it.
#include <httplib.h>

#include <chrono>
#include <ctime>
#include <memory>
#include <random>

#include "server/api_response.h"
#include "server/sequence_channel.h"
#include "server/server.h"

namespace shadowkv::server {

namespace {

// With no text for this long, a stream gets an SSE comment: keeps proxies awake and finds clients that left.
constexpr std::chrono::milliseconds kHeartbeat{1000};

uint64_t random_u64() {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard<std::mutex> lock(mu);
  return rng();
}

std::string response_id(Endpoint e) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)random_u64());
  return (e == Endpoint::Chat ? "chatcmpl-" : "cmpl-") + std::string(buf);
}

struct StreamState {
  std::shared_ptr<SequenceChannel> ch;
  uint64_t id = 0;
  ResponseMeta meta;
  int64_t prompt_tokens = 0;
  bool include_usage = false;
  bool opened = false;  // chat: the {"role": "assistant"} chunk is out
};

// What ends a finished sequence's stream: an error event, or the finish_reason chunk (and usage), then [DONE].
std::string stream_tail(const StreamState& st) {
  const SequenceResult& r = st.ch->result();
  std::string tail;
  if (!r.error.empty())
    tail = sse(error_body(ApiError(500, "generation failed: " + r.error)));
  else if (r.stop_reason == "cancelled")
    tail = sse(error_body(ApiError(503, "the request was cancelled: the server is shutting down")));
  else
    tail = sse(chunk_body(st.meta, "", finish_reason(r.stop_reason)));
  if (st.include_usage && r.error.empty())
    tail += sse(usage_chunk(st.meta, st.prompt_tokens, (int64_t)r.tokens.size()));
  return tail + "data: [DONE]\n\n";
}

// One call of the chunked content provider: waits for text (or a heartbeat), writes it; false once the client is
// gone (a failed write), which ends the response and, through the releaser, cancels the sequence.
bool stream_step(StreamState& st, httplib::DataSink& sink) {
  auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
  if (!st.opened && st.meta.endpoint == Endpoint::Chat) {
    st.opened = true;
    if (!write(sse(chunk_body(st.meta, "", "", /*role_only=*/true)))) return false;
  }
  std::string text;
  const bool done = st.ch->next(text, kHeartbeat);
  if (!text.empty() && !write(sse(chunk_body(st.meta, text)))) return false;
  if (!done) return !text.empty() || write(": keep-alive\n\n");
  if (!write(stream_tail(st))) return false;
  sink.done();
  return true;
}

}  // namespace

SequenceRequest Server::prepare(const CompletionRequest& cr, int64_t* prompt_tokens) const {
  PreparedRequest p = prepare_request(cr, model_.tokenizer(), ctx_, o_.kv);
  *prompt_tokens = (int64_t)p.ids.size();
  SequenceRequest r;
  r.feed = std::move(p.ids);
  r.kv = std::move(p.kv);
  r.ctx = ctx_;
  r.n_predict = (int)p.max_tokens;
  // top_p 0 keeps only the most likely token: greedy (the sampler itself wants top_p > 0).
  r.sampling = {cr.top_p > 0 ? cr.temperature : 0.0f, cr.top_k, cr.top_p > 0 ? cr.top_p : 1.0f,
                cr.seed ? *cr.seed : random_u64()};
  r.stop = cr.stop;
  return r;
}

void Server::handle_completion(const httplib::Request& req, httplib::Response& res,
                               const httplib::ContentReader& reader, Endpoint endpoint) {
  const CompletionRequest cr = parse_completion_request(read_body(req, res, reader), endpoint);
  int64_t prompt_tokens = 0;
  SequenceRequest sr = prepare(cr, &prompt_tokens);
  auto ch = std::make_shared<SequenceChannel>();
  if (cr.stream) sr.on_text = [ch](std::string_view t) { ch->push(t); };
  sr.on_done = [this, ch](SequenceResult&& r) {
    metrics_.count_sequence(r.stats.prompt_tokens, (int64_t)r.tokens.size(), r.stats.counters);
    ch->finish(std::move(r));
  };
  const ResponseMeta meta{endpoint, response_id(endpoint), (int64_t)std::time(nullptr), o_.model_name};
  const uint64_t id = submit(std::move(sr));
  if (!cr.stream) {
    const SequenceResult& r = ch->wait();
    forget(id);
    if (!r.error.empty()) throw ApiError(500, "generation failed: " + r.error);
    if (r.stop_reason == "cancelled") throw ApiError(503, "the request was cancelled: the server is shutting down");
    res.set_content(
        dump(completion_body(meta, r.text, finish_reason(r.stop_reason), prompt_tokens, (int64_t)r.tokens.size())),
        "application/json");
    return;
  }
  auto st = std::make_shared<StreamState>();
  *st = {ch, id, meta, prompt_tokens, cr.include_usage};
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [st](size_t, httplib::DataSink& sink) {
        try {  // nothing may escape into httplib's worker thread
          return stream_step(*st, sink);
        } catch (const std::exception&) {
          return false;
        }
      },
      [this, st](bool) noexcept {
        try {
          if (!st->ch->done()) sched_.cancel(st->id);  // the client left: free the sequence at the next step
        } catch (const std::exception&) {
        }
        forget(st->id);
      });
}

}  // namespace shadowkv::server
