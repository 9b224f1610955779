// OpenAI-style request bodies of /v1/completions and /v1/chat/completions, parsed and checked into a
// CompletionRequest; anything malformed, of the wrong type, out of range or unsupported is an ApiError (400)
// naming the field. Then prepare_request checks it against the served model's tokenizer and context (no model or
// server needed: fuzz/fuzz_server_request.cpp calls both with small vocabularies).
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "kv/kv_cache.h"
#include "runtime/chat_template.h"

namespace shadowkv::server {

// An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}} with an HTTP status.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message, std::string param = "", std::string code = "",
           std::string type = "");
  int status;
  std::string param, code, type;  // empty param/code: null in the JSON; type defaults from the status
};

enum class Endpoint { Completions, Chat };

// The extension field "kv": {"policy": NAME, SETTING: VALUE, ...}; values may be strings, numbers or booleans.
struct KvOverride {
  bool given = false;
  std::string policy;  // "" = the server's policy
  std::map<std::string, std::string> settings;
};

inline constexpr int kMaxStopStrings = 4;
inline constexpr size_t kMaxStopBytes = 1024;
inline constexpr int64_t kMaxTokensLimit = 1 << 20;  // larger max_tokens are absurd for any context

struct CompletionRequest {
  Endpoint endpoint = Endpoint::Completions;
  std::string prompt;                 // completions: text, encoded with BOS as `run --raw`
  std::vector<int32_t> prompt_ids;    // completions: token ids given instead of text (fed as they are)
  bool prompt_is_ids = false;         //
  std::vector<ChatMessage> messages;  // chat
  std::string model;                  // as given (one model is served; any name is accepted)
  int64_t max_tokens = -1;            // -1: the endpoint's default
  float temperature = 1.0f, top_p = 1.0f;
  int top_k = 40;  // extension (as `shadowkv run` and llama.cpp's server); 0 = no limit
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  bool stream = false, include_usage = false;
  KvOverride kv;
};

// Parses a request body; throws ApiError (400) for invalid JSON, missing or wrong-typed fields, values out of
// range, n != 1 and features this server does not implement (echo, logprobs, best_of > 1, suffix, tools,
// penalties).
CompletionRequest parse_completion_request(std::string_view body, Endpoint endpoint);

// The server's KV options with a request's override applied (a different policy starts from its own defaults,
// the same policy from the server's settings); ApiError (400) with the policy registry's message.
KvOptions apply_kv_override(const KvOptions& server, const KvOverride& override_);

// A request checked against the served model: what Server::prepare turns into a scheduler sequence.
struct PreparedRequest {
  std::vector<int32_t> ids;  // the prompt's tokens (chat: the rendered conversation)
  int64_t max_tokens = 0;    // tokens to generate, the endpoint's default resolved
  KvOptions kv;              // the server's KV options with the request's override applied
};

// Tokenizes the prompt (chat: rendered in the model's format) and checks it against a context of ctx tokens;
// ApiError (400) for a conversation the format cannot render, a token id outside the vocabulary, an empty prompt,
// a prompt that leaves no room to generate, max_tokens beyond the context, or a bad "kv" override.
PreparedRequest prepare_request(const CompletionRequest& cr, const Tokenizer& tok, int64_t ctx,
                                const KvOptions& server_kv);

}  // namespace shadowkv::server
