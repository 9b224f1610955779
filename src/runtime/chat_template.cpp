// Renders one user turn in the model's chat format (Gemma, Llama 3, ChatML with the template's default system turn).
#include "runtime/chat_template.h"

#include "tokenizer/tokenizer.h"

namespace shadowkv {

std::string chatml_default_system(std::string_view jinja) {
  static constexpr std::string_view kStart = "<|im_start|>system", kEnd = "<|im_end|>";
  for (size_t at = jinja.find(kStart); at != std::string_view::npos; at = jinja.find(kStart, at + 1)) {
    size_t p = at + kStart.size();
    if (jinja.substr(p, 2) == "\\n")  // a Jinja string escape
      p += 2;
    else if (jinja.substr(p, 1) == "\n")
      p += 1;
    else
      continue;
    const size_t end = jinja.find(kEnd, p);
    if (end == std::string_view::npos) break;
    const std::string_view body = jinja.substr(p, end - p);
    // Only a literal inside one string constant counts (not `' + messages[0]['content'] + '`).
    if (body.empty() || body.find_first_of("'\"{}+\\") != std::string_view::npos) continue;
    return std::string(body);
  }
  return "";
}

std::string apply_chat_template(const Tokenizer& tok, const std::string& user, bool* applied) {
  if (applied) *applied = true;
  const std::string bos = tok.bos() >= 0 ? tok.token_text(tok.bos()) : "";
  if (tok.find_token("<start_of_turn>") >= 0)
    return bos + "<start_of_turn>user\n" + user + "<end_of_turn>\n<start_of_turn>model\n";
  if (tok.find_token("<|start_header_id|>") >= 0)
    return bos + "<|start_header_id|>user<|end_header_id|>\n\n" + user +
           "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
  if (tok.find_token("<|im_start|>") >= 0) {
    const std::string system = chatml_default_system(tok.chat_template());
    return (system.empty() ? "" : "<|im_start|>system\n" + system + "<|im_end|>\n") + "<|im_start|>user\n" + user +
           "<|im_end|>\n<|im_start|>assistant\n";
  }
  if (applied) *applied = false;
  return user;
}

}  // namespace shadowkv
