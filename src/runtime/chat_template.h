// Single-turn chat formatting for instruction-tuned models (detected by tokenizer.chat_template): Gemma turns,
// Llama 3 headers or ChatML, chosen by which marker tokens the vocabulary has. Encode the result with
// parse_special = true and add_bos = false (the template writes BOS itself where the model wants one).
#pragma once
#include <string>
#include <string_view>

namespace shadowkv {

class Tokenizer;

// Returns the formatted prompt, or the text unchanged if no known template fits the vocabulary. ChatML starts with
// the system turn the model's own template adds when the conversation has none (Qwen2.5: "You are Qwen, created by
// Alibaba Cloud. You are a helpful assistant."), and with no system turn if its template has no such default.
std::string apply_chat_template(const Tokenizer& tok, const std::string& user_text, bool* applied = nullptr);

// The literal default system message of a ChatML Jinja template ('<|im_start|>system\n...<|im_end|>' written as
// one string constant), or "" if it has none.
std::string chatml_default_system(std::string_view jinja);

}  // namespace shadowkv
