// libFuzzer target: encode/decode of arbitrary bytes with the SentencePiece-style tokenizer (a small vocabulary
// built here, Gemma and Llama-2 style: byte fallback, space prefix, control and user-defined tokens) and the
// byte-level BPE tokenizers
// (llama3 and qwen2 pre-tokenizers: the test GGUFs scripts/gen-tokenizer-fixtures --ggufs-only writes; directory
// from $FUZZ_FIXTURE_GGUFS, default the build's fixture-ggufs). The first input byte picks the tokenizer and flags.
// Properties, as tests/tokenizer_test.cpp states them:
// - every id is in range and has a piece;
// - without parse_special, decode(encode(x)) == x for any bytes (BPE: byte alphabet; SPM: byte fallback), except
//   SPM text containing U+2581 itself, which decodes to a space (SentencePiece's escape; same as sentencepiece);
// - StreamDecoder releases exactly the token pieces for valid UTF-8 input (decode() minus its SPM prefix strip).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"
#include "util/error.h"

using namespace shadowkv;

namespace {

// space_prefix: Llama-2 style (a space is prefixed to the text and to every fragment after a special token, as
// llama.cpp does; decode drops only the first one, so such a vocabulary gets no user-defined tokens here).
// Without it: Gemma style, with user-defined tokens.
std::unique_ptr<Tokenizer> make_spm(bool space_prefix) {
  TokenizerVocab v;
  v.model = "llama";
  v.add_space_prefix = space_prefix;
  v.add_bos = true;
  auto add = [&](const std::string& text, float score, TokenType type) {
    v.tokens.push_back(text);
    v.scores.push_back(score);
    v.types.push_back(type);
    return static_cast<int32_t>(v.tokens.size() - 1);
  };
  v.unk = add("<unk>", 0, TokenType::Unknown);
  v.bos = add("<bos>", 0, TokenType::Control);
  v.eos = add("<eos>", 0, TokenType::Control);
  add("<start_of_turn>", 0, TokenType::Control);
  add("<end_of_turn>", 0, TokenType::Control);
  if (!space_prefix) {
    add("<mask>", 0, TokenType::UserDefined);
    add("\n\n", -1, TokenType::UserDefined);
  }
  const char* pieces[] = {"\xE2\x96\x81",
                          "\xE2\x96\x81\xE2\x96\x81",
                          "a",
                          "b",
                          "c",
                          "e",
                          "h",
                          "i",
                          "l",
                          "o",
                          "t",
                          "\xE2\x96\x81t",
                          "\xE2\x96\x81th",
                          "\xE2\x96\x81the",
                          "he",
                          "ll",
                          "llo",
                          "\xE2\x96\x81hello",
                          "\xE2\x96\x81"
                          "a",
                          "ab",
                          "bc",
                          "abc",
                          "\xC3\xA9",
                          "caf",
                          "caf\xC3\xA9",
                          "\xE6\x97\xA5",
                          "\xE6\x97\xA5\xE6\x9C\xAC",
                          "12",
                          "123",
                          "x y",
                          "<",
                          ">",
                          "\xE2\x96\x81<"};
  float score = -1;
  for (const char* p : pieces) add(p, score -= 0.5f, TokenType::Normal);
  add("<unused0>", 0, TokenType::Unused);
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    add(buf, 0, TokenType::Byte);
  }
  return make_tokenizer(v);
}

std::unique_ptr<Tokenizer> load_bpe(const std::string& kind, std::vector<std::unique_ptr<GgufFile>>& files) {
  const char* env = std::getenv("FUZZ_FIXTURE_GGUFS");
  const std::string dir = env && *env ? env : SHADOWKV_FIXTURE_GGUFS;
  try {
    files.push_back(GgufFile::open(dir + "/bpe_" + kind + ".gguf"));
    return Tokenizer::from_gguf(*files.back());
  } catch (const Error& e) {
    std::fprintf(stderr, "fuzz_tokenizer: %s (write them with scripts/gen-tokenizer-fixtures --ggufs-only %s)\n",
                 e.what(), dir.c_str());
    std::exit(1);
  }
}

struct Tokenizers {
  std::vector<std::unique_ptr<GgufFile>> files;
  std::unique_ptr<Tokenizer> spm_gemma, spm_llama2, llama3, qwen2;
  Tokenizers()
      : spm_gemma(make_spm(false)),
        spm_llama2(make_spm(true)),
        llama3(load_bpe("llama3", files)),
        qwen2(load_bpe("qwen2", files)) {}
};

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n;
  }
  return true;
}

[[noreturn]] void fail(const char* what, const Tokenizer& tok, const std::string& text, const std::string& got) {
  std::fprintf(stderr, "fuzz_tokenizer: %s (n_vocab %d)\n  text (%zu bytes):", what, tok.n_vocab(), text.size());
  for (unsigned char c : text) std::fprintf(stderr, " %02x", c);
  std::fprintf(stderr, "\n  got  (%zu bytes):", got.size());
  for (unsigned char c : got) std::fprintf(stderr, " %02x", c);
  std::fprintf(stderr, "\n");
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Tokenizers toks;
  if (size == 0) return 0;
  const uint8_t sel = data[0];
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  const Tokenizer* const all[4] = {toks.spm_gemma.get(), toks.spm_llama2.get(), toks.llama3.get(), toks.qwen2.get()};
  const Tokenizer& tok = *all[sel % 4];
  const bool is_spm = sel % 4 < 2;
  const bool add_bos = sel & 0x10;
  const bool parse_special = sel & 0x20;

  const std::vector<int32_t> ids = tok.encode(text, add_bos, parse_special);
  for (int32_t id : ids)
    if (id < 0 || id >= tok.n_vocab()) fail("id out of range", tok, text, std::to_string(id));
  const std::string back = tok.decode(ids);
  const bool escaped_space = is_spm && text.find("\xE2\x96\x81") != std::string::npos;
  if (!parse_special && !escaped_space && back != text) fail("decode(encode(x)) != x", tok, text, back);

  if (valid_utf8(text)) {
    // The stream continues a text, so it keeps the space decode() drops after an SPM space prefix.
    StreamDecoder sd(tok);
    std::string streamed, pieces;
    for (int32_t id : ids) {
      streamed += sd.push(id);
      pieces += tok.token_to_piece(id);
    }
    streamed += sd.flush();
    if (streamed != pieces) fail("StreamDecoder != token pieces", tok, text, streamed);
  } else {
    StreamDecoder sd(tok);
    for (int32_t id : ids) (void)sd.push(id);
    (void)sd.flush();
  }
  return 0;
}
