// Hands one sequence's text and its end from the engine loop (Scheduler's on_text / on_done, on the loop thread) to
// the HTTP thread that serves the request and waits on it.
#pragma once
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <string_view>

#include "runtime/scheduler.h"

namespace shadowkv::server {

class SequenceChannel {
 public:
  void push(std::string_view text) {
    std::lock_guard<std::mutex> lock(mu_);
    text_ += text;
    cv_.notify_all();
  }
  void finish(SequenceResult&& r) {
    std::lock_guard<std::mutex> lock(mu_);
    r.cache.reset();  // the KV cache is freed now, on the loop thread, not when the response is written
    result_ = std::move(r);
    done_ = true;
    cv_.notify_all();
  }
  // Waits up to `timeout` for new text or the end; moves the text that arrived into `text` and returns whether the
  // sequence has ended (then result() is final).
  bool next(std::string& text, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return done_ || !text_.empty(); });
    text = std::move(text_);
    text_.clear();
    return done_;
  }
  // Blocks until the sequence has ended.
  const SequenceResult& wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_; });
    return result_;
  }
  bool done() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }
  const SequenceResult& result() const { return result_; }  // only after next() or wait() saw the end

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::string text_;
  bool done_ = false;
  SequenceResult result_;
};

}  // namespace shadowkv::server
