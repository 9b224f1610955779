// Single-turn chat formatting for instruction-tuned models (detected by tokenizer.chat_template): Gemma turns,
// Llama 3 headers or ChatML, chosen by which marker tokens the vocabulary has. Encode the result with
// parse_special = true and add_bos = false (the template writes BOS itself where the model wants one).
#pragma once
#include <string>

namespace shadowkv {

class Tokenizer;

// Returns the formatted prompt, or the text unchanged if no known template fits the vocabulary.
std::string apply_chat_template(const Tokenizer& tok, const std::string& user_text, bool* applied = nullptr);

}  // namespace shadowkv
