// libFuzzer target: chat-template rendering (src/runtime/chat_template.h) on arbitrary input: the single-turn
// apply_chat_template and the multi-turn render_chat on an arbitrary message list, with the format picked from the
// marker tokens in the vocabulary and ChatML's default system turn from the model's Jinja template.
// Input: byte 0 picks the vocabulary (kind % 4: Gemma turns, Llama 3 headers, ChatML, none; 0x10: a BOS token); the
// rest is split at NULs into the Jinja template, the user text, then one part per message of a conversation (its
// first byte % 4 picks the role: system, user, assistant, or the part itself as the role; the rest is the content).
// Without message parts the conversation is the one user turn.
// Properties, single turn: the user text appears verbatim; a recognised format wraps it in its markers and ends
// with the assistant/model header; ChatML's default system message is a literal substring of the template with no
// quote, brace, '+' or backslash. Conversations: render_chat throws shadowkv::Error exactly for an unknown role,
// no format, or (Gemma) turns that do not alternate user/assistant after an optional system message; otherwise the
// contents (trimmed for Gemma and Llama 3) appear in order, ChatML adds the default system turn only when the
// conversation has none, the prompt ends with the assistant header, and one user turn renders as
// apply_chat_template does. Every rendered prompt encodes (parse_special) to in-range ids, each turn's opening
// marker a single token.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "chat_vocab.h"
#include "runtime/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

using namespace shadowkv;

namespace {

[[noreturn]] void fail(const char* what, const std::string& s) {
  std::fprintf(stderr, "fuzz_chat_template: %s: \"%s\"\n", what, s.substr(0, 200).c_str());
  std::abort();
}

std::vector<std::string> split_at_nul(const std::string& s) {
  std::vector<std::string> parts;
  size_t at = 0;
  for (size_t nul = s.find('\0'); nul != std::string::npos; at = nul + 1, nul = s.find('\0', at))
    parts.push_back(s.substr(at, nul - at));
  parts.push_back(s.substr(at));
  return parts;
}

// The oracle's own Jinja `trim`.
std::string trimmed(const std::string& s) {
  const char* space = " \t\n\r\f\v";
  const size_t a = s.find_first_not_of(space);
  return a == std::string::npos ? "" : s.substr(a, s.find_last_not_of(space) - a + 1);
}

bool ends_with(const std::string& s, const std::string& end) {
  return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
}

// The prompt encodes to in-range ids with at least `turns` opening markers as single tokens (user text may add more).
void check_encoding(const Tokenizer& tok, int kind, const std::string& prompt, size_t turns) {
  const std::vector<int32_t> ids = tok.encode(prompt, /*add_bos=*/false, /*parse_special=*/true);
  for (int32_t id : ids)
    if (id < 0 || id >= tok.n_vocab()) fail("id out of range", prompt);
  if (kind == 3) return;
  const int32_t open = tok.find_token(kChatMarkers[kind][0]);
  size_t n_open = 0;
  for (int32_t id : ids) n_open += id == open;
  if (n_open < turns) fail("opening marker not encoded as its token", prompt);
}

void check_single_turn(const Tokenizer& tok, int kind, bool with_bos, const std::string& user,
                       const std::string& system) {
  bool applied = false;
  const std::string prompt = apply_chat_template(tok, user, &applied);
  if (applied != (kind < 3)) fail("format detection", prompt);
  if (prompt.find(user) == std::string::npos) fail("user text missing", prompt);
  if (kind == 3) {
    if (prompt != user) fail("no template must return the text unchanged", prompt);
  } else {
    if (!ends_with(prompt, kChatEnds[kind])) fail("prompt does not end with the assistant header", prompt);
    if (with_bos && kind < 2 && prompt.rfind(tok.token_text(tok.bos()), 0) != 0) fail("BOS missing", prompt);
    if (kind == 2 && !system.empty() && prompt.rfind("<|im_start|>system\n" + system + "<|im_end|>\n", 0) != 0)
      fail("ChatML system turn missing", prompt);
  }
  check_encoding(tok, kind, prompt, kind < 3 ? 2 : 0);
}

std::vector<ChatMessage> conversation(const std::vector<std::string>& parts, const std::string& user) {
  if (parts.size() <= 2) return {{"user", user}};
  static const char* const kRoles[3] = {"system", "user", "assistant"};
  std::vector<ChatMessage> messages;
  for (size_t i = 2; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    const int sel = p.empty() ? 1 : static_cast<unsigned char>(p[0]) % 4;
    const std::string content = p.empty() ? "" : p.substr(1);
    messages.push_back({sel < 3 ? kRoles[sel] : content, content});
  }
  return messages;
}

// Whether render_chat must refuse the conversation (it is never empty here).
bool must_refuse(int kind, const std::vector<ChatMessage>& messages) {
  if (kind == 3) return true;
  for (const ChatMessage& m : messages)
    if (m.role != "system" && m.role != "user" && m.role != "assistant") return true;
  if (kind != 0) return false;
  const size_t first = messages[0].role == "system" ? 1 : 0;
  if (first == messages.size()) return true;
  for (size_t i = first; i < messages.size(); ++i)
    if ((messages[i].role == "user") != ((i - first) % 2 == 0)) return true;
  return false;
}

void check_conversation(const Tokenizer& tok, int kind, bool with_bos, const std::vector<ChatMessage>& messages,
                        const std::string& system) {
  std::string prompt;
  try {
    prompt = render_chat(tok, messages);
  } catch (const Error& e) {
    if (!must_refuse(kind, messages)) fail("conversation refused", e.what());
    return;
  }
  if (must_refuse(kind, messages)) fail("conversation not refused", prompt);
  if (!ends_with(prompt, kChatEnds[kind])) fail("conversation does not end with the assistant header", prompt);
  if (with_bos && kind < 2 && prompt.rfind(tok.token_text(tok.bos()), 0) != 0) fail("conversation BOS missing", prompt);
  if (kind == 2) {  // the default system turn only without a system message, then the first message's turn
    const bool default_system = messages[0].role != "system" && !system.empty();
    const std::string start = (default_system ? "<|im_start|>system\n" + system + "<|im_end|>\n" : "") +
                              "<|im_start|>" + messages[0].role + "\n";
    if (prompt.rfind(start, 0) != 0) fail("ChatML default system turn", prompt);
  }
  size_t at = 0;
  for (const ChatMessage& m : messages) {
    const std::string content = kind == 2 ? m.content : trimmed(m.content);
    at = prompt.find(content, at);
    if (at == std::string::npos) fail("content missing or out of order", content);
    at += content.size();
  }
  if (messages.size() == 1 && messages[0].role == "user" && trimmed(messages[0].content) == messages[0].content &&
      prompt != apply_chat_template(tok, messages[0].content))
    fail("one user turn renders unlike apply_chat_template", prompt);
  const size_t gemma_folded = kind == 0 && messages[0].role == "system";
  check_encoding(tok, kind, prompt, messages.size() - gemma_folded + 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int kind = data[0] % 4;
  const bool with_bos = data[0] & 0x10;
  const std::vector<std::string> parts = split_at_nul(std::string(reinterpret_cast<const char*>(data + 1), size - 1));
  const std::string& jinja = parts[0];
  const std::string user = parts.size() > 1 ? parts[1] : "";

  // The default-system extraction on its own.
  const std::string system = chatml_default_system(jinja);
  if (!system.empty()) {
    if (jinja.find(system) == std::string::npos) fail("default system not in the template", system);
    if (system.find_first_of("'\"{}+\\") != std::string::npos) fail("default system is not a literal", system);
  }
  const auto tok = make_chat_vocab(kind, with_bos, jinja);
  check_single_turn(*tok, kind, with_bos, user, system);
  check_conversation(*tok, kind, with_bos, conversation(parts, user), system);
  return 0;
}
