// ChatML's default system turn comes from the model's own Jinja template (Qwen2.5: "You are Qwen, ..."); a template
// without a literal default gives none. The real Qwen2.5-Coder rendering is checked in tests/python/test_qwen_model.py.
#include "runtime/chat_template.h"

#include <gtest/gtest.h>

namespace shadowkv {
namespace {

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
