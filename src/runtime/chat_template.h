// Chat formatting for instruction-tuned models (detected by tokenizer.chat_template): Gemma turns, Llama 3 headers
// or ChatML, chosen by which marker tokens the vocabulary has; one user turn (apply_chat_template) or a whole
// conversation (render_chat). Encode the result with parse_special = true and add_bos = false (the template writes
// BOS itself where the model wants one).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace shadowkv {

class Tokenizer;

// Returns the formatted prompt, or the text unchanged if no known template fits the vocabulary. ChatML starts with
// the system turn the model's own template adds when the conversation has none (Qwen2.5: "You are Qwen, created by
// Alibaba Cloud. You are a helpful assistant."), and with no system turn if its template has no such default.
std::string apply_chat_template(const Tokenizer& tok, const std::string& user_text, bool* applied = nullptr);

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

// A conversation in the model's format, ending with the assistant turn opened (the model's own template with
// add_generation_prompt):
//  - Gemma: BOS, then user/model turns with their content trimmed; a leading system message is folded into the
//    first user turn ("SYSTEM\n\nUSER", as Gemma 3's template does); the turns after it must alternate
//    user/assistant, starting with user.
//  - Llama 3: BOS, then one header block per message (content trimmed).
//  - ChatML: one turn per message, after the template's default system turn when the first message is not a system
//    message (Qwen2.5: "You are Qwen, ...").
// Throws Error for an empty conversation, an unknown role, a broken Gemma alternation, or a vocabulary with none
// of these formats.
std::string render_chat(const Tokenizer& tok, const std::vector<ChatMessage>& messages);

// The literal default system message of a ChatML Jinja template ('<|im_start|>system\n...<|im_end|>' written as
// one string constant), or "" if it has none.
std::string chatml_default_system(std::string_view jinja);

}  // namespace shadowkv
