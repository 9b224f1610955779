// ChatML's default system turn comes from the model's own Jinja template (Qwen2.5: "You are Qwen, ..."); a template
// without a literal default gives none. The real Qwen2.5-Coder rendering is checked in tests/python/test_qwen_model.py.
// Whole conversations (render_chat) against the text the models' own Jinja templates produce for them.
#include "runtime/chat_template.h"

#include <gtest/gtest.h>

#include "chat_vocab.h"
#include "util/error.h"

namespace shadowkv {
namespace {

// A vocabulary with one format's marker tokens (0 Gemma, 1 Llama 3, 2 ChatML, 3 none), BOS for Gemma and Llama 3.
std::unique_ptr<Tokenizer> vocab(int kind, const std::string& jinja = "") {
  return make_chat_vocab(kind, kind < 2, jinja);
}

const std::vector<ChatMessage> kConversation = {
    {"system", "Be brief."}, {"user", " Hi there \n"}, {"assistant", "Hello!"}, {"user", "What is 2+2?"}};

TEST(RenderChat, GemmaFoldsTheSystemMessageIntoTheFirstUserTurn) {
  // Gemma 3's template: system + "\n\n" before the first user text; contents trimmed; assistant = "model".
  EXPECT_EQ(render_chat(*vocab(0), kConversation),
            "<bos><start_of_turn>user\nBe brief.\n\nHi there<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
            "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(render_chat(*vocab(0), {{"user", "Hi"}}),
            "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
}

TEST(RenderChat, GemmaRolesMustAlternate) {
  EXPECT_THROW(render_chat(*vocab(0), {{"assistant", "a"}, {"user", "b"}}), Error);
  EXPECT_THROW(render_chat(*vocab(0), {{"user", "a"}, {"user", "b"}}), Error);
  EXPECT_THROW(render_chat(*vocab(0), {{"system", "only a system message"}}), Error);
  EXPECT_NO_THROW(render_chat(*vocab(0), {{"system", "s"}, {"user", "a"}, {"assistant", "b"}}));
}

TEST(RenderChat, ChatMLAddsTheTemplatesDefaultSystemTurnOnlyWithoutOne) {
  const std::string jinja = "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}";
  const auto tok = vocab(2, jinja);
  EXPECT_EQ(render_chat(*tok, {{"user", " Hi "}, {"assistant", "Hello"}, {"user", "Bye"}}),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n Hi <|im_end|>\n"
            "<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render_chat(*tok, {{"system", "Be brief."}, {"user", "Hi"}}),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  // One user message renders as the single-turn function does.
  EXPECT_EQ(render_chat(*tok, {{"user", "Hi"}}), apply_chat_template(*tok, "Hi"));
  EXPECT_EQ(render_chat(*vocab(2), {{"user", "Hi"}}), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(RenderChat, Llama3HeadersPerMessage) {
  EXPECT_EQ(render_chat(*vocab(1), {{"system", "S "}, {"user", "Hi"}}),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user"
            "<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(RenderChat, RejectsWhatNoTemplateRenders) {
  EXPECT_THROW(render_chat(*vocab(2), {}), Error);
  EXPECT_THROW(render_chat(*vocab(2), {{"tool", "x"}}), Error);
  EXPECT_THROW(render_chat(*vocab(3), {{"user", "x"}}), Error);
}

TEST(RenderChat, SingleTurnFunctionUnchanged) {
  EXPECT_EQ(apply_chat_template(*vocab(0), " Hi "),
            "<bos><start_of_turn>user\n Hi <end_of_turn>\n<start_of_turn>model\n");
  bool applied = true;
  EXPECT_EQ(apply_chat_template(*vocab(3), "x", &applied), "x");
  EXPECT_FALSE(applied);
}

TEST(ChatTemplate, Qwen25DefaultSystemFromTheTemplate) {
  // Excerpt of Qwen2.5's template (as stored in the GGUF: Jinja string escapes, not newlines).
  const char* jinja =
      "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n"
      "{%- else %}\n    {%- if messages[0]['role'] == 'system' %}\n"
      "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n"
      "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
      "assistant.<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n";
  EXPECT_EQ(chatml_default_system(jinja), "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
}

TEST(ChatTemplate, Qwen2DefaultSystem) {
  const char* jinja =
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
      "'<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + "
      "message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";
  EXPECT_EQ(chatml_default_system(jinja), "You are a helpful assistant.");
}

TEST(ChatTemplate, NoLiteralDefaultMeansNoSystemTurn) {
  EXPECT_EQ(chatml_default_system(""), "");
  EXPECT_EQ(chatml_default_system("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                                  "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"),
            "");
  EXPECT_EQ(chatml_default_system("{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"), "");
}

}  // namespace
}  // namespace shadowkv
