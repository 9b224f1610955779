// `shadowkv serve`: an OpenAI-compatible HTTP server (cpp-httplib) in front of the engine loop. One loop thread
// steps the Scheduler while there is work; HTTP handler threads parse requests, submit sequences and wait on their
// own SequenceChannel (or stream from it), so requests arriving at any time join the running batch.
// Endpoints: POST /v1/completions, POST /v1/chat/completions (streamed as server-sent events with "stream": true),
// GET /v1/models, GET /health, GET /metrics (Prometheus text).
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "kv/kv_cache.h"
#include "model/model.h"
#include "runtime/scheduler.h"
#include "server/api_request.h"
#include "server/metrics.h"

namespace httplib {
class Server;
struct Request;
struct Response;
class ContentReader;
}  // namespace httplib

namespace shadowkv::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;         // 0: any free port (bind() returns it)
  std::string model_name;  // reported as "model" and by /v1/models
  KvOptions kv;            // default KV policy; a request may override it ("kv": {...})
  int64_t ctx = 0;         // context per sequence (0 = the model's training context)
  int max_batch = 8;       // most live sequences
  int max_queue = 64;      // most requests waiting for a batch slot; more get 503
  int threads = 0;         // OpenMP threads of the engine loop (0 = all cores)
  bool log_steps = false;  // one stderr line per engine step with its batch size
  size_t max_body_bytes = 1 << 20;
};

class Server {
 public:
  // Throws Error for options that cannot work (context over the model's, non-positive batch or queue).
  Server(const Model& model, ServerOptions options);
  ~Server();

  // Binds the listening socket and returns its port; Error if it cannot.
  int bind();
  // Serves until stop(): starts the engine loop, accepts connections, and returns once every handler has finished.
  void run();
  // Thread-safe and idempotent: cancels the sequences in flight, stops accepting and lets run() return.
  void stop();

 private:
  void register_routes();
  void loop();
  void handle_completion(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader,
                         Endpoint endpoint);
  SequenceRequest prepare(const CompletionRequest& cr, int64_t* prompt_tokens) const;
  uint64_t submit(SequenceRequest r);
  void forget(uint64_t id);
  std::string read_body(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader);
  EngineGauges gauges() const;

  const Model& model_;
  ServerOptions o_;
  int64_t ctx_ = 0;
  int64_t created_ = 0;  // unix time of start, for /v1/models
  Metrics metrics_;
  Scheduler sched_;
  std::unique_ptr<httplib::Server> http_;
  std::thread loop_;
  std::mutex mu_;  // guards inflight_ and stopping_
  std::set<uint64_t> inflight_;
  bool stopping_ = false;
  std::atomic<bool> listen_started_{false}, stop_called_{false};
};

}  // namespace shadowkv::server
