// Parsing and validation of completion and chat-completion request bodies (server/api_request.h).
#include "server/api_request.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "kv/kv_policy.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace shadowkv::server {

using nlohmann::json;

ApiError::ApiError(int status, const std::string& message, std::string param, std::string code, std::string type)
    : std::runtime_error(message),
      status(status),
      param(std::move(param)),
      code(std::move(code)),
      type(std::move(type)) {
  if (this->type.empty()) this->type = status >= 500 ? "server_error" : "invalid_request_error";
}

namespace {

ApiError bad(const std::string& param, const std::string& message, const std::string& code = "") {
  return ApiError(400, message, param, code);
}

// The field, or null if it is absent or JSON null (OpenAI treats both as "not given").
const json* field(const json& j, const char* name) {
  const auto it = j.find(name);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

double number(const json& j, const char* name, double lo, double hi, double def) {
  const json* v = field(j, name);
  if (!v) return def;
  if (!v->is_number()) throw bad(name, std::string("'") + name + "' must be a number");
  const double x = v->get<double>();
  if (!(x >= lo && x <= hi))
    throw bad(name, std::string("'") + name + "' must be between " + json(lo).dump() + " and " + json(hi).dump());
  return x;
}

// An integer field within [lo, hi]; def if absent.
int64_t integer(const json& j, const char* name, int64_t lo, int64_t hi, int64_t def) {
  const json* v = field(j, name);
  if (!v) return def;
  if (!v->is_number_integer()) throw bad(name, std::string("'") + name + "' must be an integer");
  const bool too_big = v->is_number_unsigned() && v->get<uint64_t>() > (uint64_t)hi;
  const int64_t x = too_big ? hi : v->get<int64_t>();
  if (too_big || x < lo || x > hi)
    throw bad(name, std::string("'") + name + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                        ", got " + v->dump());
  return x;
}

bool boolean(const json& j, const char* name, bool def) {
  const json* v = field(j, name);
  if (!v) return def;
  if (!v->is_boolean()) throw bad(name, std::string("'") + name + "' must be a boolean");
  return v->get<bool>();
}

std::vector<std::string> stop_strings(const json& j) {
  const json* v = field(j, "stop");
  std::vector<std::string> out;
  if (!v) return out;
  if (v->is_string()) {
    out.push_back(v->get<std::string>());
  } else if (v->is_array() && v->size() <= kMaxStopStrings) {
    for (const json& s : *v) {
      if (!s.is_string()) throw bad("stop", "'stop' must be a string or an array of strings");
      out.push_back(s.get<std::string>());
    }
  } else {
    throw bad("stop", "'stop' must be a string or an array of at most " + std::to_string(kMaxStopStrings) + " strings");
  }
  for (const std::string& s : out)
    if (s.size() > kMaxStopBytes)
      throw bad("stop", "a stop string may have at most " + std::to_string(kMaxStopBytes) + " bytes");
  out.erase(std::remove(out.begin(), out.end(), std::string()), out.end());  // "" stops nothing
  return out;
}

// Fields of features this server does not implement: an error when set to anything but their neutral value.
void reject_unsupported(const json& j) {
  auto unsupported = [](const char* name) {
    return bad(name, std::string("'") + name + "' is not supported by this server", "unsupported_parameter");
  };
  if (integer(j, "n", 1, 128, 1) != 1) throw bad("n", "only n = 1 is supported", "unsupported_parameter");
  if (boolean(j, "echo", false)) throw unsupported("echo");
  if (const json* v = field(j, "logprobs"); v && !(v->is_boolean() && !v->get<bool>()) && *v != json(0))
    throw unsupported("logprobs");
  if (field(j, "top_logprobs")) throw unsupported("top_logprobs");
  if (integer(j, "best_of", 1, 128, 1) != 1) throw unsupported("best_of");
  if (const json* v = field(j, "suffix"); v && !(v->is_string() && v->get<std::string>().empty()))
    throw unsupported("suffix");
  for (const char* name : {"tools", "functions", "logit_bias"})
    if (const json* v = field(j, name); v && !v->empty()) throw unsupported(name);
  for (const char* name : {"presence_penalty", "frequency_penalty"})
    if (number(j, name, -2, 2, 0) != 0) throw unsupported(name);
  if (const json* v = field(j, "response_format"); v && !(v->is_object() && v->value("type", json()) == "text"))
    throw unsupported("response_format");
}

void parse_prompt(const json& j, CompletionRequest& r) {
  const json* v = field(j, "prompt");
  if (!v) throw bad("prompt", "'prompt' is required");
  auto ids = [&](const json& a) {
    for (const json& t : a) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX)
        throw bad("prompt", "token ids in 'prompt' must be non-negative integers");
      r.prompt_ids.push_back(t.get<int32_t>());
    }
    r.prompt_is_ids = true;
  };
  if (v->is_string()) {
    r.prompt = v->get<std::string>();
  } else if (v->is_array() && v->size() == 1 && (*v)[0].is_string()) {
    r.prompt = (*v)[0].get<std::string>();
  } else if (v->is_array() && v->size() == 1 && (*v)[0].is_array()) {
    ids((*v)[0]);
  } else if (v->is_array() && !v->empty() && (*v)[0].is_number()) {
    ids(*v);
  } else if (v->is_array() && v->size() > 1) {
    throw bad("prompt", "only one prompt per request is supported");
  } else {
    throw bad("prompt", "'prompt' must be a string, an array of one string or an array of token ids");
  }
}

// A message's content: a string, an array of {"type": "text", "text": ...} parts, or null.
std::string message_content(const json& c, size_t i) {
  const std::string where = "messages[" + std::to_string(i) + "].content";
  if (c.is_null()) return "";
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) throw bad(where, "'" + where + "' must be a string or an array of text parts");
  std::string text;
  for (const json& part : c) {
    if (!part.is_object() || part.value("type", json()) != "text" || !part.contains("text") ||
        !part["text"].is_string())
      throw bad(where, "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported");
    text += part["text"].get<std::string>();
  }
  return text;
}

void parse_messages(const json& j, CompletionRequest& r) {
  const json* v = field(j, "messages");
  if (!v) throw bad("messages", "'messages' is required");
  if (!v->is_array() || v->empty()) throw bad("messages", "'messages' must be a non-empty array");
  for (size_t i = 0; i < v->size(); ++i) {
    const json& m = (*v)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw bad(where, "'" + where + "' must be an object");
    const json* role = field(m, "role");
    if (!role || !role->is_string()) throw bad(where + ".role", "'" + where + ".role' must be a string");
    std::string name = role->get<std::string>();
    if (name == "developer") name = "system";  // OpenAI's newer name for the system role
    if (name != "system" && name != "user" && name != "assistant")
      throw bad(where + ".role", "role '" + name + "' is not supported (system, user or assistant)");
    if (field(m, "tool_calls")) throw bad(where + ".tool_calls", "tool calls are not supported");
    r.messages.push_back({name, message_content(m.value("content", json()), i)});
  }
}

KvOverride parse_kv(const json& j) {
  KvOverride o;
  const json* v = field(j, "kv");
  if (!v) return o;
  if (!v->is_object()) throw bad("kv", "'kv' must be an object {\"policy\": NAME, SETTING: VALUE, ...}");
  o.given = true;
  for (const auto& [key, value] : v->items()) {
    if (key == "policy") {
      if (!value.is_string()) throw bad("kv.policy", "'kv.policy' must be a string");
      o.policy = value.get<std::string>();
      continue;
    }
    const std::string name = key.rfind("--", 0) == 0 ? key.substr(2) : key;
    // A client must not choose where the server creates files.
    if (name == "value-store")
      throw bad("kv." + name,
                "'" + name + "' is a server setting (it names a directory) and cannot be set per request");
    // Nor the size of the shared pool's blocks (each size is a pool that keeps its memory for reuse).
    if (name == "block-tokens")
      throw bad("kv." + name,
                "'" + name + "' is a server setting (the shared block pool's) and cannot be set per request");
    if (value.is_string())
      o.settings[name] = value.get<std::string>();
    else if (value.is_boolean())
      o.settings[name] = value.get<bool>() ? "true" : "false";
    else if (value.is_number())
      o.settings[name] = value.dump();
    else
      throw bad("kv." + key, "'kv." + key + "' must be a string, a number or a boolean");
  }
  return o;
}

// The prompt's tokens: the conversation rendered in the model's format, the ids as given, or the text with BOS (as
// `shadowkv run --raw`).
std::vector<int32_t> prompt_tokens(const CompletionRequest& cr, const Tokenizer& tok) {
  if (cr.endpoint == Endpoint::Chat) {
    std::string text;
    try {
      text = render_chat(tok, cr.messages);
    } catch (const Error& e) {
      throw ApiError(400, e.what(), "messages");
    }
    return tok.encode(text, /*add_bos=*/false, /*parse_special=*/true);
  }
  if (!cr.prompt_is_ids) return tok.encode(cr.prompt, /*add_bos=*/true);
  for (int32_t t : cr.prompt_ids)
    if (t >= tok.n_vocab())
      throw ApiError(
          400,
          "token id " + std::to_string(t) + " is out of range (vocabulary of " + std::to_string(tok.n_vocab()) + ")",
          "prompt");
  return cr.prompt_ids;
}

}  // namespace

CompletionRequest parse_completion_request(std::string_view body, Endpoint endpoint) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    throw ApiError(400, std::string("the body is not valid JSON: ") + e.what(), "", "invalid_json");
  }
  if (!j.is_object()) throw ApiError(400, "the body must be a JSON object", "", "invalid_json");
  CompletionRequest r;
  r.endpoint = endpoint;
  if (const json* m = field(j, "model")) {
    if (!m->is_string()) throw bad("model", "'model' must be a string");
    r.model = m->get<std::string>();
  }
  if (endpoint == Endpoint::Chat)
    parse_messages(j, r);
  else
    parse_prompt(j, r);
  reject_unsupported(j);
  const bool has_mct = endpoint == Endpoint::Chat && field(j, "max_completion_tokens");
  r.max_tokens = integer(j, has_mct ? "max_completion_tokens" : "max_tokens", 1, kMaxTokensLimit, -1);
  r.temperature = (float)number(j, "temperature", 0, 2, 1);
  r.top_p = (float)number(j, "top_p", 0, 1, 1);
  r.top_k = (int)integer(j, "top_k", 0, 1 << 20, 40);
  if (const json* s = field(j, "seed")) {
    if (!s->is_number_integer()) throw bad("seed", "'seed' must be an integer");
    r.seed = s->is_number_unsigned() ? s->get<uint64_t>() : (uint64_t)s->get<int64_t>();
  }
  r.stop = stop_strings(j);
  r.stream = boolean(j, "stream", false);
  if (const json* so = field(j, "stream_options")) {
    if (!so->is_object()) throw bad("stream_options", "'stream_options' must be an object");
    r.include_usage = boolean(*so, "include_usage", false);
  }
  r.kv = parse_kv(j);
  return r;
}

KvOptions apply_kv_override(const KvOptions& server, const KvOverride& o) {
  if (!o.given) return server;
  KvOptions kv = server;
  if (!o.policy.empty() && o.policy != server.policy) kv = KvOptions(o.policy);
  for (const auto& [name, value] : o.settings) kv.settings[name] = value;
  try {
    kv_policy(kv.policy);
  } catch (const Error& e) {
    throw ApiError(400, e.what(), "kv.policy", "invalid_kv_options");
  }
  try {
    validate_kv_options(kv);
  } catch (const Error& e) {
    throw ApiError(400, e.what(), "kv", "invalid_kv_options");
  }
  return kv;
}

PreparedRequest prepare_request(const CompletionRequest& cr, const Tokenizer& tok, int64_t ctx,
                                const KvOptions& server_kv) {
  PreparedRequest p;
  p.ids = prompt_tokens(cr, tok);
  const char* param = cr.endpoint == Endpoint::Chat ? "messages" : "prompt";
  if (p.ids.empty()) throw ApiError(400, "the prompt is empty", param);
  const int64_t n = (int64_t)p.ids.size();
  if (n >= ctx)
    throw ApiError(400,
                   "the prompt has " + std::to_string(n) + " tokens; the context is " + std::to_string(ctx) +
                       " tokens, which must hold the prompt and at least one generated token",
                   param, "context_length_exceeded");
  p.max_tokens = cr.max_tokens;
  if (p.max_tokens < 0)
    p.max_tokens = cr.endpoint == Endpoint::Chat ? ctx - n : std::min<int64_t>(16, ctx - n);  // OpenAI's default: 16
  else if (n + p.max_tokens > ctx)
    throw ApiError(400,
                   "the context is " + std::to_string(ctx) + " tokens, but " + std::to_string(n + p.max_tokens) +
                       " were requested (" + std::to_string(n) + " in the prompt, " + std::to_string(p.max_tokens) +
                       " in max_tokens)",
                   "max_tokens", "context_length_exceeded");
  p.kv = apply_kv_override(server_kv, cr.kv);
  return p;
}

}  // namespace shadowkv::server
