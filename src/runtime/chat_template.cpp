#include "runtime/chat_template.h"

#include "tokenizer/tokenizer.h"

namespace shadowkv {

std::string apply_chat_template(const Tokenizer& tok, const std::string& user, bool* applied) {
  if (applied) *applied = true;
  const std::string bos = tok.bos() >= 0 ? tok.token_text(tok.bos()) : "";
  if (tok.find_token("<start_of_turn>") >= 0)
    return bos + "<start_of_turn>user\n" + user + "<end_of_turn>\n<start_of_turn>model\n";
  if (tok.find_token("<|start_header_id|>") >= 0)
    return bos + "<|start_header_id|>user<|end_header_id|>\n\n" + user +
           "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
  if (tok.find_token("<|im_start|>") >= 0)
    return "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n" + user +
           "<|im_end|>\n<|im_start|>assistant\n";
  if (applied) *applied = false;
  return user;
}

}  // namespace shadowkv
