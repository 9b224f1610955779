// Response bodies in OpenAI's shapes (server/api_response.h).
#include "server/api_response.h"

namespace shadowkv::server {

using nlohmann::json;

std::string finish_reason(const std::string& stop_reason) {
  return stop_reason == "length" || stop_reason == "context" ? "length" : "stop";
}

json error_body(const ApiError& e) {
  return {{"error",
           {{"message", e.what()},
            {"type", e.type},
            {"param", e.param.empty() ? json() : json(e.param)},
            {"code", e.code.empty() ? json() : json(e.code)}}}};
}

json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

namespace {

json envelope(const ResponseMeta& m, bool chunk) {
  const bool chat = m.endpoint == Endpoint::Chat;
  return {{"id", m.id},
          {"object", chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion"},
          {"created", m.created},
          {"model", m.model}};
}

}  // namespace

json completion_body(const ResponseMeta& m, const std::string& text, const std::string& finish, int64_t prompt_tokens,
                     int64_t completion_tokens) {
  json j = envelope(m, false);
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish}};
  if (m.endpoint == Endpoint::Chat)
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  else
    choice["text"] = text;
  j["choices"] = json::array({choice});
  j["usage"] = usage_json(prompt_tokens, completion_tokens);
  return j;
}

json chunk_body(const ResponseMeta& m, const std::string& text, const std::string& finish, bool role_only) {
  json j = envelope(m, true);
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish.empty() ? json() : json(finish)}};
  if (m.endpoint == Endpoint::Chat) {
    json delta = json::object();
    if (role_only)
      delta = {{"role", "assistant"}, {"content", ""}};
    else if (finish.empty())
      delta = {{"content", text}};
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  j["choices"] = json::array({choice});
  return j;
}

json usage_chunk(const ResponseMeta& m, int64_t prompt_tokens, int64_t completion_tokens) {
  json j = envelope(m, true);
  j["choices"] = json::array();
  j["usage"] = usage_json(prompt_tokens, completion_tokens);
  return j;
}

json models_body(const std::string& model, int64_t created) {
  return {
      {"object", "list"},
      {"data", json::array({{{"id", model}, {"object", "model"}, {"created", created}, {"owned_by", "shadowkv"}}})}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

}  // namespace shadowkv::server
