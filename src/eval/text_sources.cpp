#include "eval/text_sources.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "eval/inflate.h"
#include "eval/sentence_splitter.h"
#include "util/error.h"

namespace shadowkv::eval {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Big-endian reader over one decompressed R serialisation.
struct XdrReader {
  const std::string& s;
  size_t pos = 0;
  const std::string& where;
  int32_t i32() {
    if (pos + 4 > s.size()) throw Error(where + ": truncated R serialisation");
    const auto* p = reinterpret_cast<const unsigned char*>(s.data() + pos);
    pos += 4;
    return static_cast<int32_t>((uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]);
  }
  std::string bytes(size_t n) {
    if (pos + n > s.size()) throw Error(where + ": truncated R serialisation");
    std::string r = s.substr(pos, n);
    pos += n;
    return r;
  }
};

std::string latin1_to_utf8(const std::string& in) {
  std::string out;
  for (unsigned char c : in) {
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

std::vector<std::string> parse_character_vector(const std::string& raw, const std::string& where) {
  if (raw.size() < 2 || raw[0] != 'X' || raw[1] != '\n') throw Error(where + ": not an XDR R serialisation");
  XdrReader r{raw, 2, where};
  const int32_t version = r.i32();
  r.i32();  // writer's R version
  r.i32();  // oldest reader version
  if (version == 3)
    r.bytes(r.i32());  // native encoding name
  else if (version != 2)
    throw Error(where + ": unsupported R serialisation version " + std::to_string(version));
  const int32_t flags = r.i32();
  if ((flags & 0xFF) != 16)
    throw Error(where + ": expected a character vector (STRSXP), got type " + std::to_string(flags & 0xFF));
  int64_t n = r.i32();
  if (n == -1) n = (int64_t(r.i32()) << 32) | uint32_t(r.i32());  // long vector
  if (n < 0) throw Error(where + ": bad vector length");
  std::vector<std::string> out;
  out.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t f = r.i32();
    if ((f & 0xFF) != 9) throw Error(where + ": expected CHARSXP elements");
    const int32_t len = r.i32();
    if (len < 0) {  // NA_character_
      out.emplace_back();
      continue;
    }
    std::string s = r.bytes(len);
    const int levels = f >> 12;
    if (levels & 4) s = latin1_to_utf8(s);  // LATIN1_MASK; UTF-8 and ASCII need nothing
    out.push_back(std::move(s));
  }
  return out;
}

bool is_heading(const std::string& para) {
  bool has_alpha = false;
  for (unsigned char c : para) {
    if (std::islower(c)) return false;
    has_alpha |= std::isalpha(c) != 0;
  }
  return has_alpha;  // all-capitals lines: titles, "VOLUME I", "CHAPTER IV"
}

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

}  // namespace

std::vector<Book> read_austen_rdb(const std::string& path) {
  const std::string data = slurp(path);
  std::vector<Book> books;
  size_t off = 0;
  while (off + 4 <= data.size()) {
    const std::string where = path + " (record at byte " + std::to_string(off) + ")";
    const auto* p = reinterpret_cast<const uint8_t*>(data.data() + off);
    const uint32_t expect = (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
    size_t used = 0;
    const std::string raw = zlib_inflate(p + 4, data.size() - off - 4, &used);
    if (raw.size() != expect) throw Error(where + ": decompressed size does not match its header");
    Book b;
    b.lines = parse_character_vector(raw, where);
    for (const std::string& l : b.lines)
      if (!l.empty()) {
        b.title = l;
        break;
      }
    books.push_back(std::move(b));
    off += 4 + used;
  }
  if (books.empty()) throw Error(path + ": no records");
  return books;
}

std::string austen_rdb_path() {
  std::string path = "/usr/lib/R/site-library/janeaustenr/data/Rdata.rdb";
  if (const char* e = std::getenv("SHADOWKV_AUSTEN_RDB")) path = e;
  if (!std::filesystem::exists(path))
    throw Error("Jane Austen text not found at " + path +
                " (apt-get install r-cran-janeaustenr, or set "
                "SHADOWKV_AUSTEN_RDB)");
  return path;
}

std::string book_prose(const Book& book) {
  std::string out, para;
  auto flush = [&] {
    if (!para.empty() && !is_heading(para) && !starts_with(para, "By Jane Austen") && !starts_with(para, "Chapter ")) {
      if (!out.empty()) out.push_back(' ');
      out += para;
    }
    para.clear();
  };
  for (const std::string& line : book.lines) {
    std::string l;
    for (char c : line)
      if (c != '_') l.push_back(c == '\t' ? ' ' : c);
    size_t b = l.find_first_not_of(' '), e = l.find_last_not_of(' ');
    if (b == std::string::npos) {
      flush();
      continue;
    }
    if (!para.empty()) para.push_back(' ');
    para += l.substr(b, e - b + 1);
  }
  flush();
  return out;
}

std::vector<std::string> read_word_list(const std::string& path) {
  std::istringstream in(slurp(path));
  std::vector<std::string> words;
  for (std::string w; std::getline(in, w);) {
    if (w.size() < 3 || w.size() > 12) continue;
    if (std::all_of(w.begin(), w.end(), [](char c) { return c >= 'a' && c <= 'z'; })) words.push_back(w);
  }
  std::sort(words.begin(), words.end());
  words.erase(std::unique(words.begin(), words.end()), words.end());
  if (words.size() < 1000) throw Error(path + ": too few usable words (" + std::to_string(words.size()) + ")");
  return words;
}

std::string word_list_path() {
  std::string path = "/usr/share/dict/words";
  if (const char* e = std::getenv("SHADOWKV_WORDS")) path = e;
  if (!std::filesystem::exists(path))
    throw Error("word list not found at " + path + " (apt-get install wamerican, or set SHADOWKV_WORDS)");
  return path;
}

const Corpus& austen_corpus() {
  static std::unique_ptr<Corpus> corpus;
  if (!corpus) {
    auto c = std::make_unique<Corpus>();
    for (const Book& b : read_austen_rdb(austen_rdb_path())) {
      for (std::string& s : split_sentences(book_prose(b))) {
        int words = 0;
        bool in_word = false;
        for (char ch : s) {
          const bool sp = ch == ' ';
          if (!sp && !in_word) ++words;
          in_word = !sp;
        }
        c->sentence_words.push_back(words);
        c->total_words += words;
        c->sentences.push_back(std::move(s));
      }
    }
    if (c->total_words < 100000) throw Error("the Austen corpus is unexpectedly small");
    corpus = std::move(c);
  }
  return *corpus;
}

const std::vector<std::string>& word_list() {
  static std::unique_ptr<std::vector<std::string>> words;
  if (!words) words = std::make_unique<std::vector<std::string>>(read_word_list(word_list_path()));
  return *words;
}

}  // namespace shadowkv::eval
