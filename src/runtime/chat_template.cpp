// Renders one user turn or a whole conversation in the model's chat format (Gemma, Llama 3, ChatML with the
// template's default system turn).
#include "runtime/chat_template.h"

#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace shadowkv {
namespace {

// Jinja's `trim`: leading and trailing whitespace removed.
std::string trim(const std::string& s) {
  static constexpr const char* kSpace = " \t\n\r\f\v";
  const size_t a = s.find_first_not_of(kSpace);
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(kSpace) - a + 1);
}

// Gemma 3's template: the system message becomes a prefix of the first user turn; the rest alternate user/model.
std::string render_gemma(const std::string& bos, const std::vector<ChatMessage>& messages) {
  size_t first = 0;
  std::string prefix;
  if (messages[0].role == "system") {
    prefix = messages[0].content + "\n\n";
    first = 1;
  }
  if (first == messages.size()) throw Error("the conversation has no user message after the system message");
  std::string out = bos;
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if ((m.role == "user") != ((i - first) % 2 == 0))
      throw Error("conversation roles must alternate user/assistant/user/... (message " + std::to_string(i) + " is '" +
                  m.role + "')");
    const std::string role = m.role == "assistant" ? "model" : m.role;
    out += "<start_of_turn>" + role + "\n" + (i == first ? prefix : "") + trim(m.content) + "<end_of_turn>\n";
  }
  return out + "<start_of_turn>model\n";
}

}  // namespace

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

std::string render_chat(const Tokenizer& tok, const std::vector<ChatMessage>& messages) {
  if (messages.empty()) throw Error("the conversation is empty");
  for (size_t i = 0; i < messages.size(); ++i)
    if (messages[i].role != "system" && messages[i].role != "user" && messages[i].role != "assistant")
      throw Error("message " + std::to_string(i) + " has role '" + messages[i].role +
                  "' (expected system, user or assistant)");
  const std::string bos = tok.bos() >= 0 ? tok.token_text(tok.bos()) : "";
  if (tok.find_token("<start_of_turn>") >= 0) return render_gemma(bos, messages);
  std::string out;
  if (tok.find_token("<|start_header_id|>") >= 0) {
    out = bos;
    for (const ChatMessage& m : messages)
      out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
    return out + "<|start_header_id|>assistant<|end_header_id|>\n\n";
  }
  if (tok.find_token("<|im_start|>") >= 0) {
    const std::string system = chatml_default_system(tok.chat_template());
    if (messages[0].role != "system" && !system.empty()) out = "<|im_start|>system\n" + system + "<|im_end|>\n";
    for (const ChatMessage& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    return out + "<|im_start|>assistant\n";
  }
  throw Error("the model's vocabulary has no known chat format (Gemma, Llama 3 or ChatML)");
}

}  // namespace shadowkv
