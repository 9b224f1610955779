// Offline text for the task generators: Jane Austen's six novels (read from the Debian package
// r-cran-janeaustenr's R data file), a word list (wamerican's /usr/share/dict/words) and RULER's noise line.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace shadowkv::eval {

struct Book {
  std::string title;               // first line of the text, e.g. "EMMA"
  std::vector<std::string> lines;  // one element per line of the printed book, as packaged
};

// Parses the janeaustenr Rdata.rdb: a sequence of records, each a 4-byte big-endian length and a zlib stream
// holding an R XDR serialisation ("X\n", version 2 or 3) of one character vector. Throws Error when malformed.
std::vector<Book> read_austen_rdb(const std::string& path);

// Where the .rdb is: $SHADOWKV_AUSTEN_RDB or the Debian path; throws Error with an install hint if missing.
std::string austen_rdb_path();

// The book as running prose: paragraphs (blank-line separated) joined by single spaces, with title, volume and
// chapter headings dropped and the _italic_ underscores removed.
std::string book_prose(const Book& book);

// Lower-case ASCII words of 3..12 letters from a dictionary file (one word per line), sorted and unique.
std::vector<std::string> read_word_list(const std::string& path);
std::string word_list_path();  // $SHADOWKV_WORDS or /usr/share/dict/words; throws Error if missing

// RULER's noise filler line.
inline constexpr const char* kNoiseLine =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

// The prose corpus cut into sentences once, for haystacks: all six books in package order.
struct Corpus {
  std::vector<std::string> sentences;
  std::vector<int> sentence_words;  // words per sentence
  int64_t total_words = 0;
};

// Loads (once per process, thread-unsafe) the Austen corpus and the word list from their default paths.
const Corpus& austen_corpus();
const std::vector<std::string>& word_list();

}  // namespace shadowkv::eval
