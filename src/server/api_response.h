// JSON the server sends, in OpenAI's shapes: errors, text_completion / chat.completion objects, their streamed
// chunks (server-sent events) and the model list.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "server/api_request.h"

namespace shadowkv::server {

// What every object of one response repeats.
struct ResponseMeta {
  Endpoint endpoint = Endpoint::Completions;
  std::string id;  // "cmpl-..." or "chatcmpl-..."
  int64_t created = 0;
  std::string model;
};

// OpenAI's finish_reason for a scheduler stop reason: "stop" (eos, stop string), "length" (max_tokens, context).
std::string finish_reason(const std::string& stop_reason);

nlohmann::json error_body(const ApiError& e);
nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens);
// The non-streamed response.
nlohmann::json completion_body(const ResponseMeta& m, const std::string& text, const std::string& finish,
                               int64_t prompt_tokens, int64_t completion_tokens);
// One streamed chunk: a piece of text (chat: a delta; role_only: the opening {"role": "assistant"} delta), or the
// last one with finish_reason set and no text.
nlohmann::json chunk_body(const ResponseMeta& m, const std::string& text, const std::string& finish = "",
                          bool role_only = false);
// The extra chunk of stream_options.include_usage: no choices, the usage.
nlohmann::json usage_chunk(const ResponseMeta& m, int64_t prompt_tokens, int64_t completion_tokens);
nlohmann::json models_body(const std::string& model, int64_t created);

// Serialised JSON (invalid UTF-8 replaced by U+FFFD instead of throwing).
std::string dump(const nlohmann::json& j);
// A server-sent event "data: <json>\n\n".
std::string sse(const nlohmann::json& j);

}  // namespace shadowkv::server
