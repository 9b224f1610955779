// The server's request parsing and validation (server/api_request.h) and response shapes (server/api_response.h):
// what is accepted, the defaults, and that every malformed, mistyped, out-of-range or unsupported field is a 400
// naming the field. The HTTP side on the real model is tests/python/test_server.py.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "chat_vocab.h"
#include "kv/kv_policy.h"
#include "server/api_request.h"
#include "server/api_response.h"

namespace shadowkv::server {
namespace {

using nlohmann::json;

CompletionRequest completion(const std::string& body) { return parse_completion_request(body, Endpoint::Completions); }
CompletionRequest chat(const std::string& body) { return parse_completion_request(body, Endpoint::Chat); }

// The status and param of the ApiError a body raises (status 0 if it parses).
std::pair<int, std::string> failure(const std::string& body, Endpoint e = Endpoint::Completions) {
  try {
    parse_completion_request(body, e);
  } catch (const ApiError& err) {
    return {err.status, err.param};
  }
  return {0, ""};
}

TEST(ServerApi, CompletionDefaults) {
  const CompletionRequest r = completion(R"({"model": "x", "prompt": "Hello"})");
  EXPECT_EQ(r.prompt, "Hello");
  EXPECT_FALSE(r.prompt_is_ids);
  EXPECT_EQ(r.model, "x");
  EXPECT_EQ(r.max_tokens, -1);  // the endpoint's default, resolved with the prompt length
  EXPECT_FLOAT_EQ(r.temperature, 1.0f);
  EXPECT_FLOAT_EQ(r.top_p, 1.0f);
  EXPECT_EQ(r.top_k, 40);  // as `shadowkv run` (OpenAI has no top_k; 0 = no limit)
  EXPECT_FALSE(r.seed.has_value());
  EXPECT_FALSE(r.stream);
  EXPECT_TRUE(r.stop.empty());
  EXPECT_FALSE(r.kv.given);
}

TEST(ServerApi, CompletionFields) {
  const CompletionRequest r = completion(
      R"({"prompt": ["Hi"], "max_tokens": 5, "temperature": 0, "top_p": 0.5, "seed": -3, "stop": ["\n", ""],
          "stream": true, "stream_options": {"include_usage": true}, "n": 1, "logprobs": null, "echo": false,
          "presence_penalty": 0, "user": "ignored"})");
  EXPECT_EQ(r.prompt, "Hi");
  EXPECT_EQ(r.max_tokens, 5);
  EXPECT_FLOAT_EQ(r.temperature, 0.0f);
  EXPECT_FLOAT_EQ(r.top_p, 0.5f);
  EXPECT_EQ(*r.seed, (uint64_t)-3);
  EXPECT_EQ(r.stop, std::vector<std::string>{"\n"});  // "" stops nothing and is dropped
  EXPECT_TRUE(r.stream && r.include_usage);
  EXPECT_EQ(completion(R"({"prompt": "a", "stop": "END"})").stop, std::vector<std::string>{"END"});
}

TEST(ServerApi, PromptAsTokenIds) {
  const CompletionRequest a = completion(R"({"prompt": [2, 651, 6037]})");
  EXPECT_TRUE(a.prompt_is_ids);
  EXPECT_EQ(a.prompt_ids, (std::vector<int32_t>{2, 651, 6037}));
  EXPECT_EQ(completion(R"({"prompt": [[5, 6]]})").prompt_ids, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(failure(R"({"prompt": [1, -2]})").first, 400);
  EXPECT_EQ(failure(R"({"prompt": [1, 99999999999]})").first, 400);
  EXPECT_EQ(failure(R"({"prompt": [1, "a"]})").first, 400);
}

TEST(ServerApi, ChatMessages) {
  const CompletionRequest r = chat(R"({"messages": [
      {"role": "developer", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
      {"role": "assistant", "content": null},
      {"role": "user", "content": "Bye", "name": "bob"}], "max_completion_tokens": 7})");
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "Hi there");
  EXPECT_EQ(r.messages[2].content, "");
  EXPECT_EQ(r.messages[3].content, "Bye");
  EXPECT_EQ(r.max_tokens, 7);
}

TEST(ServerApi, MalformedBodiesAre400) {
  for (const char* body :
       {"", "{", "not json", "[]", "null", "\"x\"", "{\"prompt\": \"a\",}", "{\"prompt\": \"\xff\"}"})
    EXPECT_EQ(failure(body).first, 400) << body;
  // Deeply nested JSON neither crashes the parser nor the destructor.
  EXPECT_EQ(failure(std::string(100000, '[')).first, 400);
  EXPECT_EQ(failure("{\"prompt\": \"a\", \"x\": " + std::string(50000, '[') + std::string(50000, ']') + "}").first, 0);
}

TEST(ServerApi, MissingAndWrongTypedFieldsName400) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({})", "prompt"},
      {R"({"prompt": 5})", "prompt"},
      {R"({"prompt": ["a", "b"]})", "prompt"},
      {R"({"prompt": []})", "prompt"},
      {R"({"prompt": "a", "max_tokens": "5"})", "max_tokens"},
      {R"({"prompt": "a", "max_tokens": 5.5})", "max_tokens"},
      {R"({"prompt": "a", "max_tokens": 0})", "max_tokens"},
      {R"({"prompt": "a", "max_tokens": -1})", "max_tokens"},
      {R"({"prompt": "a", "max_tokens": 100000000000})", "max_tokens"},
      {R"({"prompt": "a", "max_tokens": 18446744073709551615})", "max_tokens"},
      {R"({"prompt": "a", "max_tokens": 1e300})", "max_tokens"},
      {R"({"prompt": "a", "temperature": -0.1})", "temperature"},
      {R"({"prompt": "a", "temperature": 3})", "temperature"},
      {R"({"prompt": "a", "temperature": "hot"})", "temperature"},
      {R"({"prompt": "a", "top_p": 1.5})", "top_p"},
      {R"({"prompt": "a", "top_k": -1})", "top_k"},
      {R"({"prompt": "a", "seed": 1.5})", "seed"},
      {R"({"prompt": "a", "stop": 3})", "stop"},
      {R"({"prompt": "a", "stop": ["a", "b", "c", "d", "e"]})", "stop"},
      {R"({"prompt": "a", "stream": "yes"})", "stream"},
      {R"({"prompt": "a", "n": 2})", "n"},
      {R"({"prompt": "a", "n": 0})", "n"},
      {R"({"prompt": "a", "echo": true})", "echo"},
      {R"({"prompt": "a", "logprobs": 5})", "logprobs"},
      {R"({"prompt": "a", "best_of": 3})", "best_of"},
      {R"({"prompt": "a", "suffix": "x"})", "suffix"},
      {R"({"prompt": "a", "presence_penalty": 1})", "presence_penalty"},
      {R"({"prompt": "a", "model": 7})", "model"},
      {R"({"prompt": "a", "response_format": {"type": 1}})", "response_format"},  // was a json type_error (fuzz)
      {R"({"prompt": "a", "kv": "shadowkv"})", "kv"},
      {R"({"prompt": "a", "kv": {"policy": 1}})", "kv.policy"},
      {R"({"prompt": "a", "kv": {"budget": [1]}})", "kv.budget"},
      // A client must not choose where the server writes files (the disk tier's directory).
      {R"({"prompt": "a", "kv": {"policy": "shadowkv", "value-store": "mmap:/etc"}})", "kv.value-store"},
      {R"({"prompt": "a", "kv": {"--value-store": "ram"}})", "kv.value-store"},
      // Nor the block size of the shared KV block pool (a pool per size, each keeping its memory).
      {R"({"prompt": "a", "kv": {"policy": "full", "paged": true, "block-tokens": 3}})", "kv.block-tokens"},
  };
  for (const auto& [body, param] : cases) {
    const auto [status, got] = failure(body);
    EXPECT_EQ(status, 400) << body;
    EXPECT_EQ(got, param) << body;
  }
  EXPECT_EQ(failure(R"({"prompt": "a", "stop": ")" + std::string(2000, 'x') + "\"}").second, "stop");
}

TEST(ServerApi, ChatMessagesAreChecked) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({})", "messages"},
      {R"({"messages": []})", "messages"},
      {R"({"messages": "hi"})", "messages"},
      {R"({"messages": [5]})", "messages[0]"},
      {R"({"messages": [{"content": "hi"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "tool", "content": "hi"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": "a"}], "tools": [{"type": "function"}]})", "tools"},
  };
  for (const auto& [body, param] : cases) {
    const auto [status, got] = failure(body, Endpoint::Chat);
    EXPECT_EQ(status, 400) << body;
    EXPECT_EQ(got, param) << body;
  }
}

TEST(ServerApi, KvOverride) {
  const CompletionRequest r =
      completion(R"({"prompt": "a", "kv": {"policy": "shadowkv", "budget": 1024, "--rank": "64", "kv-f16": true}})");
  ASSERT_TRUE(r.kv.given);
  EXPECT_EQ(r.kv.policy, "shadowkv");
  EXPECT_EQ(r.kv.settings.at("budget"), "1024");
  EXPECT_EQ(r.kv.settings.at("rank"), "64");
  EXPECT_EQ(r.kv.settings.at("kv-f16"), "true");

  KvOptions server("full");
  server.set("kv-f16", "true");
  EXPECT_EQ(apply_kv_override(server, {}).settings.at("kv-f16"), "true");  // no override: the server's options
  const KvOptions kv = apply_kv_override(server, r.kv);
  EXPECT_EQ(kv.policy, "shadowkv");
  EXPECT_EQ(kv.settings.at("budget"), "1024");
  // The same policy keeps the server's settings; a setting the policy lacks, a bad value or an unknown policy: 400
  // with the registry's message.
  EXPECT_EQ(apply_kv_override(server, completion(R"({"prompt": "a", "kv": {}})").kv).settings.at("kv-f16"), "true");
  for (const char* kv : {R"({"policy": "nope"})", R"({"policy": "shadowkv", "budget": [1]})",
                         R"({"policy": "shadowkv", "no-such-setting": 1})", R"({"policy": "shadowkv", "rank": "x"})"}) {
    try {
      const CompletionRequest bad = completion(std::string(R"({"prompt": "a", "kv": )") + kv + "}");
      apply_kv_override(server, bad.kv);
      ADD_FAILURE() << kv;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400) << kv;
      EXPECT_FALSE(std::string(e.what()).empty());
    }
  }
  try {
    apply_kv_override(server, completion(R"({"prompt": "a", "kv": {"policy": "nope"}})").kv);
  } catch (const ApiError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown KV policy 'nope'"), std::string::npos) << e.what();
    EXPECT_EQ(e.param, "kv.policy");
  }
}

// The checks against the served model (prepare_request, as Server::prepare calls it), with a small Gemma-format
// vocabulary (BOS, turn markers, single letters, byte fallback) whose token counts are easy to state.
TEST(ServerApi, PrepareChecksThePromptAgainstTheModel) {
  const auto tok = make_chat_vocab(0, true, "");
  const KvOptions server("full");
  auto prepare = [&](const std::string& body, Endpoint e, int64_t ctx) {
    return prepare_request(parse_completion_request(body, e), *tok, ctx, server);
  };
  auto refusal = [&](const std::string& body, Endpoint e, int64_t ctx, const Tokenizer* t = nullptr) {
    try {
      prepare_request(parse_completion_request(body, e), t ? *t : *tok, ctx, server);
    } catch (const ApiError& err) {
      EXPECT_EQ(err.status, 400) << body;
      return err.param + "/" + err.code;
    }
    return std::string("accepted");
  };
  PreparedRequest p = prepare(R"({"prompt": "aa"})", Endpoint::Completions, 64);
  EXPECT_EQ(p.ids, tok->encode("aa", /*add_bos=*/true));  // as `run --raw`
  ASSERT_EQ(p.ids.size(), 2u);
  EXPECT_EQ(p.max_tokens, 16);  // OpenAI's default, within the context
  EXPECT_EQ(prepare(R"({"prompt": "aa"})", Endpoint::Completions, 10).max_tokens, 8);
  EXPECT_EQ(prepare(R"({"prompt": [[3, 4]], "max_tokens": 8})", Endpoint::Completions, 10).ids,
            (std::vector<int32_t>{3, 4}));  // ids as given
  const std::string body = R"({"messages": [{"role": "user", "content": "a"}]})";
  p = prepare(body, Endpoint::Chat, 64);
  EXPECT_EQ(p.ids, tok->encode(render_chat(*tok, {{"user", "a"}}), false, true));
  EXPECT_EQ(p.max_tokens, 64 - (int64_t)p.ids.size());  // chat's default: the rest of the context
  EXPECT_EQ(p.kv.policy, "full");

  EXPECT_EQ(refusal(R"({"prompt": "aa"})", Endpoint::Completions, 2), "prompt/context_length_exceeded");
  EXPECT_EQ(refusal(R"({"prompt": "aa", "max_tokens": 9})", Endpoint::Completions, 10),
            "max_tokens/context_length_exceeded");
  EXPECT_EQ(refusal(body, Endpoint::Chat, (int64_t)p.ids.size()), "messages/context_length_exceeded");
  EXPECT_EQ(refusal(R"({"prompt": [1, 100000]})", Endpoint::Completions, 64), "prompt/");
  EXPECT_EQ(refusal(R"({"messages": [{"role": "assistant", "content": "a"}]})", Endpoint::Chat, 64), "messages/");
  EXPECT_EQ(refusal(body, Endpoint::Chat, 64, make_chat_vocab(3, true, "").get()), "messages/");  // no chat format
  EXPECT_EQ(refusal(R"({"prompt": ""})", Endpoint::Completions, 64, make_chat_vocab(2, false, "").get()), "prompt/");
  EXPECT_EQ(refusal(R"({"prompt": "a", "kv": {"policy": "nope"}})", Endpoint::Completions, 64),
            "kv.policy/invalid_kv_options");
  EXPECT_EQ(prepare(R"({"prompt": "a", "kv": {"policy": "quest", "page": 4}})", Endpoint::Completions, 64).kv.policy,
            "quest");
}

TEST(ServerApi, ErrorShape) {
  const json j = error_body(ApiError(400, "bad max_tokens", "max_tokens"));
  EXPECT_EQ(j["error"]["message"], "bad max_tokens");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "max_tokens");
  EXPECT_TRUE(j["error"]["code"].is_null());
  const json k = error_body(ApiError(503, "busy", "", "queue_full"));
  EXPECT_EQ(k["error"]["type"], "server_error");
  EXPECT_TRUE(k["error"]["param"].is_null());
  EXPECT_EQ(k["error"]["code"], "queue_full");
}

TEST(ServerApi, ResponseShapes) {
  const ResponseMeta c{Endpoint::Completions, "cmpl-1", 100, "m"};
  const json body = completion_body(c, "text", finish_reason("eos"), 3, 4);
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["choices"][0]["text"], "text");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(body["usage"], json({{"prompt_tokens", 3}, {"completion_tokens", 4}, {"total_tokens", 7}}));
  EXPECT_EQ(finish_reason("length"), "length");
  EXPECT_EQ(finish_reason("context"), "length");
  EXPECT_EQ(finish_reason("stop"), "stop");

  const ResponseMeta m{Endpoint::Chat, "chatcmpl-1", 100, "m"};
  EXPECT_EQ(completion_body(m, "hi", "stop", 1, 1)["choices"][0]["message"],
            json({{"role", "assistant"}, {"content", "hi"}}));
  EXPECT_EQ(chunk_body(m, "", "", true)["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(chunk_body(m, "x")["choices"][0]["delta"], json({{"content", "x"}}));
  EXPECT_TRUE(chunk_body(m, "x")["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(chunk_body(m, "", "length")["choices"][0]["delta"], json::object());
  EXPECT_EQ(chunk_body(m, "x")["object"], "chat.completion.chunk");
  EXPECT_TRUE(usage_chunk(m, 1, 2)["choices"].empty());
  EXPECT_EQ(sse(json({{"a", 1}})), "data: {\"a\":1}\n\n");
  EXPECT_EQ(dump(json("\xff")), "\"\xEF\xBF\xBD\"");  // invalid UTF-8 replaced, not thrown
}

}  // namespace
}  // namespace shadowkv::server
