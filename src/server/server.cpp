// The HTTP server's life cycle, routes and the small endpoints (server/server.h); completions are in completion.cpp.
#include "server/server.h"

#include <httplib.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <ctime>

#include "kv/kv_policy.h"
#include "server/api_response.h"
#include "util/error.h"

namespace shadowkv::server {

namespace {

SchedulerOptions scheduler_options(const ServerOptions& o, Metrics& metrics) {
  SchedulerOptions so;
  so.max_batch = o.max_batch;
  so.track_live_kv = true;
  const bool log = o.log_steps;
  so.on_step = [&metrics, log](int n_seqs, int64_t feed, int decode, double seconds) {
    metrics.record_step(n_seqs, feed, decode, seconds);
    if (log)
      std::fprintf(stderr, "step: batch %d, prompt tokens %lld, decode tokens %d, %.1f ms\n", n_seqs, (long long)feed,
                   decode, seconds * 1e3);
  };
  return so;
}

// The endpoint label of /metrics: a known route, else "other" (so hostile paths cannot grow the series).
std::string endpoint_label(const std::string& path) {
  for (const char* p : {"/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics"})
    if (path == p) return p;
  return "other";
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump(error_body(e)), "application/json");
}

// A body for the errors httplib answers itself (unknown route, bad request line, body over the limit, ...).
ApiError library_error(const httplib::Request& req, int status, size_t max_body) {
  switch (status) {
    case 404:
      return ApiError(404, "no route " + req.method + " " + req.path, "", "not_found");
    case 413:
      return ApiError(413, "the request body is larger than " + std::to_string(max_body) + " bytes", "",
                      "payload_too_large");
    case 400:
      return ApiError(400, "malformed HTTP request", "", "bad_request");
    default:
      return ApiError(status, "the request failed with HTTP status " + std::to_string(status));
  }
}

// Runs a handler; an ApiError, Error or any other exception becomes an error response in OpenAI's shape.
template <class F>
void guarded(httplib::Response& res, F&& f) {
  try {
    f();
  } catch (const ApiError& e) {
    send_error(res, e);
  } catch (const Error& e) {
    send_error(res, ApiError(400, e.what()));
  } catch (const std::bad_alloc&) {
    send_error(res, ApiError(500, "out of memory"));
  } catch (const std::exception& e) {
    send_error(res, ApiError(500, std::string("internal error: ") + e.what()));
  }
}

}  // namespace

Server::Server(const Model& model, ServerOptions options)
    : model_(model),
      o_(std::move(options)),
      ctx_(o_.ctx > 0 ? o_.ctx : model.config().n_ctx_train),
      created_((int64_t)std::time(nullptr)),
      sched_(model, scheduler_options(o_, metrics_)),
      http_(std::make_unique<httplib::Server>()) {
  if (o_.ctx < 0 || ctx_ > model.config().n_ctx_train)
    throw Error("-c " + std::to_string(o_.ctx) + ": the context must be between 1 and the model's " +
                std::to_string(model.config().n_ctx_train) + " (0 = the model's)");
  if (o_.max_batch < 1) throw Error("--max-batch must be >= 1");
  if (o_.max_queue < 1) throw Error("--max-queue must be >= 1");
  if (o_.threads < 0) throw Error("-t must be >= 1 (0 = all cores)");
  validate_kv_options(o_.kv);
  // Every connection holds a thread while it is open (keep-alive included): room for a full batch and queue.
  const size_t pool = (size_t)std::min(1024, o_.max_batch + o_.max_queue + 16);
  http_->new_task_queue = [pool] { return new httplib::ThreadPool(pool); };
  http_->set_payload_max_length(o_.max_body_bytes);
  register_routes();
}

Server::~Server() {
  stop();
  if (loop_.joinable()) {
    sched_.stop_waiting();
    loop_.join();
  }
}

int Server::bind() {
  const int port =
      o_.port == 0 ? http_->bind_to_any_port(o_.host) : (http_->bind_to_port(o_.host, o_.port) ? o_.port : -1);
  if (port <= 0) throw Error("cannot listen on " + o_.host + ":" + std::to_string(o_.port));
  return port;
}

void Server::loop() {
  if (o_.threads > 0) omp_set_num_threads(o_.threads);  // the OpenMP team belongs to this thread
  while (sched_.wait_for_work()) {
    try {
      sched_.step();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "engine step failed: %s\n", e.what());
    }
  }
}

void Server::run() {
  loop_ = std::thread(&Server::loop, this);
  listen_started_ = true;
  if (!stop_called_) http_->listen_after_bind();
  // Every handler has returned (their sequences ended or were cancelled): the loop can stop.
  sched_.stop_waiting();
  loop_.join();
}

void Server::stop() {
  if (stop_called_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (uint64_t id : inflight_) sched_.cancel(id);
  }
  // Give the handlers of cancelled requests a moment to send their last event ([DONE]) before the sockets close.
  for (int i = 0; i < 300; ++i) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (inflight_.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // listen_after_bind() may not have marked the server running yet; stop() before that would be lost.
  for (int i = 0; i < 200 && listen_started_ && !http_->is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  http_->stop();
}

uint64_t Server::submit(SequenceRequest r) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) throw ApiError(503, "the server is shutting down", "", "shutting_down");
  if (sched_.queued() + sched_.live() >= o_.max_batch + o_.max_queue)
    throw ApiError(503,
                   "the server is busy (" + std::to_string(o_.max_batch) + " sequences running, " +
                       std::to_string(o_.max_queue) + " waiting); try again later",
                   "", "queue_full", "server_error");
  uint64_t id = 0;
  try {
    id = sched_.submit(std::move(r));
  } catch (const Error& e) {  // the prompt and context are checked before: what is left is the KV cache's
    throw ApiError(400, e.what(), "kv", "invalid_kv_options");
  }
  inflight_.insert(id);
  return id;
}

void Server::forget(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  inflight_.erase(id);
}

EngineGauges Server::gauges() const { return {sched_.queued(), sched_.live(), o_.max_batch, sched_.live_kv()}; }

std::string Server::read_body(const httplib::Request& req, httplib::Response& res,
                              const httplib::ContentReader& reader) {
  if (req.is_multipart_form_data()) throw ApiError(400, "multipart bodies are not supported; send JSON");
  std::string body;
  bool too_big = false;
  const bool ok = reader([&](const char* data, size_t n) {
    if (body.size() + n > o_.max_body_bytes) return !(too_big = true);
    body.append(data, n);
    return true;
  });
  if (too_big || res.status == 413) {
    res.set_header("Connection", "close");  // the rest of the body is not read
    throw library_error(req, 413, o_.max_body_bytes);
  }
  if (!ok) throw ApiError(400, "could not read the request body");
  return body;
}

void Server::register_routes() {
  httplib::Server& s = *http_;
  s.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"ok\"}", "application/json");
  });
  s.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(dump(models_body(o_.model_name, created_)), "application/json");
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.render(gauges()), "text/plain; version=0.0.4");
  });
  for (Endpoint e : {Endpoint::Completions, Endpoint::Chat}) {
    const std::string path = e == Endpoint::Completions ? "/v1/completions" : "/v1/chat/completions";
    s.Post(path, [this, e](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
      guarded(res, [&] { handle_completion(req, res, reader, e); });
    });
  }
  // Known paths with the wrong method: 405 (the body, if any, is drained up to the limit); others: 404.
  auto refuse = [this](int status) {
    return [this, status](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
      guarded(res, [&] {
        read_body(req, res, reader);
        throw status == 405 ? ApiError(405, req.method + " is not allowed on " + req.path, "", "method_not_allowed")
                            : library_error(req, 404, o_.max_body_bytes);
      });
    };
  };
  auto refuse_get = [](const httplib::Request& req, httplib::Response& res) {
    send_error(res, ApiError(405, req.method + " is not allowed on " + req.path, "", "method_not_allowed"));
  };
  s.Get("/v1/completions", refuse_get).Get("/v1/chat/completions", refuse_get);
  const char* known = "/health|/metrics|/v1/models|/v1/completions|/v1/chat/completions";
  s.Post(known, refuse(405)).Put(known, refuse(405)).Patch(known, refuse(405)).Delete(known, refuse(405));
  s.Post(".*", refuse(404)).Put(".*", refuse(404)).Patch(".*", refuse(404)).Delete(".*", refuse(404));
  const httplib::Server::HandlerWithResponse on_error = [this](const httplib::Request& req, httplib::Response& res) {
    if (res.body.empty()) send_error(res, library_error(req, res.status, o_.max_body_bytes));
    return httplib::Server::HandlerResponse::Handled;
  };
  s.set_error_handler(on_error);
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    send_error(res, ApiError(500, "internal error"));
  });
  s.set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    metrics_.count_request(endpoint_label(req.path), res.status);
  });
}

}  // namespace shadowkv::server
