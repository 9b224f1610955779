// Tests of the evaluation harness (src/eval): zlib inflate, Austen extraction, sentence splitting, scoring,
// task generation with the real tokenizer (SHADOWKV_MODEL, required), results.jsonl resume, policy parsing,
// the test-only truncating KV policy against an independent attention reference, SVG well-formedness, and
// fidelity metrics on the real model.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "eval/inference.h"
#include "eval/inflate.h"
#include "eval/kv_policies.h"
#include "eval/list_args.h"
#include "eval/report.h"
#include "eval/result_store.h"
#include "eval/scoring.h"
#include "eval/sentence_splitter.h"
#include "eval/svg.h"
#include "eval/tasks.h"
#include "eval/text_sources.h"
#include "eval/truncating_kv_cache.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "real_model.h"
#include "util/error.h"

namespace shadowkv::eval {
namespace {

KvOptions policy_named(const std::string& name) {
  KvOptions o;
  o.policy = name;
  return o;
}

namespace fs = std::filesystem;

// zlib.compress(b"stored block test", 0) and zlib.compress(<Austen sentence x3 + bytes 0..255>, 9) from Python.
const uint8_t kStored[] = {
    0x78, 0x01, 0x01, 0x11, 0x00, 0xee, 0xff, 0x73, 0x74, 0x6f, 0x72, 0x65, 0x64, 0x20,
    0x62, 0x6c, 0x6f, 0x63, 0x6b, 0x20, 0x74, 0x65, 0x73, 0x74, 0x3c, 0x2a, 0x06, 0x9d,
};
const uint8_t kFixed[] = {
    0x78, 0xda, 0xf3, 0x2c, 0x51, 0xc8, 0x2c, 0x56, 0x48, 0x54, 0x28, 0x29, 0x2a, 0x2d, 0xc9, 0x50, 0x28, 0xcd, 0xcb,
    0x2c, 0x4b, 0x2d, 0x2a, 0x4e, 0xcc, 0xc9, 0xa9, 0x54, 0x48, 0x4c, 0xce, 0xce, 0xcb, 0x2f, 0xcf, 0x49, 0x4d, 0x49,
    0x4f, 0x4d, 0xd1, 0x51, 0x28, 0xc9, 0x48, 0x2c, 0x01, 0x2a, 0x2b, 0xce, 0xcc, 0x4b, 0xcf, 0x49, 0x55, 0xc8, 0x4d,
    0xcc, 0x53, 0xc8, 0xcc, 0x53, 0x28, 0xc8, 0x2f, 0x2e, 0x4e, 0x2d, 0x2e, 0xce, 0xcc, 0xcf, 0x53, 0xc8, 0x4f, 0x03,
    0xca, 0xa6, 0xe7, 0xe7, 0xa7, 0x28, 0xa4, 0xe5, 0x17, 0x95, 0x94, 0xe6, 0xa5, 0xea, 0x28, 0xe4, 0x96, 0x16, 0x97,
    0x28, 0x24, 0xa5, 0x82, 0x14, 0x96, 0x27, 0xe6, 0x95, 0x40, 0x94, 0x94, 0x67, 0xa6, 0xa5, 0xea, 0x29, 0x78, 0x8e,
    0x20, 0x5b, 0x19, 0x18, 0x99, 0x98, 0x59, 0x58, 0xd9, 0xd8, 0x39, 0x38, 0xb9, 0xb8, 0x79, 0x78, 0xf9, 0xf8, 0x05,
    0x04, 0x85, 0x84, 0x45, 0x44, 0xc5, 0xc4, 0x25, 0x24, 0xa5, 0xa4, 0x65, 0x64, 0xe5, 0xe4, 0x15, 0x14, 0x95, 0x94,
    0x55, 0x54, 0xd5, 0xd4, 0x35, 0x34, 0xb5, 0xb4, 0x75, 0x74, 0xf5, 0xf4, 0x0d, 0x0c, 0x8d, 0x8c, 0x4d, 0x4c, 0xcd,
    0xcc, 0x2d, 0x2c, 0xad, 0xac, 0x6d, 0x6c, 0xed, 0xec, 0x1d, 0x1c, 0x9d, 0x9c, 0x5d, 0x5c, 0xdd, 0xdc, 0x3d, 0x3c,
    0xbd, 0xbc, 0x7d, 0x7c, 0xfd, 0xfc, 0x03, 0x02, 0x83, 0x82, 0x43, 0x42, 0xc3, 0xc2, 0x23, 0x22, 0xa3, 0xa2, 0x63,
    0x62, 0xe3, 0xe2, 0x13, 0x12, 0x93, 0x92, 0x53, 0x52, 0xd3, 0xd2, 0x33, 0x32, 0xb3, 0xb2, 0x73, 0x72, 0xf3, 0xf2,
    0x0b, 0x0a, 0x8b, 0x8a, 0x4b, 0x4a, 0xcb, 0xca, 0x2b, 0x2a, 0xab, 0xaa, 0x6b, 0x6a, 0xeb, 0xea, 0x1b, 0x1a, 0x9b,
    0x9a, 0x5b, 0x5a, 0xdb, 0xda, 0x3b, 0x3a, 0xbb, 0xba, 0x7b, 0x7a, 0xfb, 0xfa, 0x27, 0x4c, 0x9c, 0x34, 0x79, 0xca,
    0xd4, 0x69, 0xd3, 0x67, 0xcc, 0x9c, 0x35, 0x7b, 0xce, 0xdc, 0x79, 0xf3, 0x17, 0x2c, 0x5c, 0xb4, 0x78, 0xc9, 0xd2,
    0x65, 0xcb, 0x57, 0xac, 0x5c, 0xb5, 0x7a, 0xcd, 0xda, 0x75, 0xeb, 0x37, 0x6c, 0xdc, 0xb4, 0x79, 0xcb, 0xd6, 0x6d,
    0xdb, 0x77, 0xec, 0xdc, 0xb5, 0x7b, 0xcf, 0xde, 0x7d, 0xfb, 0x0f, 0x1c, 0x3c, 0x74, 0xf8, 0xc8, 0xd1, 0x63, 0xc7,
    0x4f, 0x9c, 0x3c, 0x75, 0xfa, 0xcc, 0xd9, 0x73, 0xe7, 0x2f, 0x5c, 0xbc, 0x74, 0xf9, 0xca, 0xd5, 0x6b, 0xd7, 0x6f,
    0xdc, 0xbc, 0x75, 0xfb, 0xce, 0xdd, 0x7b, 0xf7, 0x1f, 0x3c, 0x7c, 0xf4, 0xf8, 0xc9, 0xd3, 0x67, 0xcf, 0x5f, 0xbc,
    0x7c, 0xf5, 0xfa, 0xcd, 0xdb, 0x77, 0xef, 0x3f, 0x7c, 0xfc, 0xf4, 0xf9, 0xcb, 0xd7, 0x6f, 0xdf, 0x7f, 0xfc, 0xfc,
    0xf5, 0xfb, 0xcf, 0xdf, 0x7f, 0xff, 0x01, 0x53, 0x1c, 0xfd, 0xdb,
};

std::string fixed_text() {
  std::string s;
  for (int i = 0; i < 3; ++i)
    s += "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in "
         "want of a wife. ";
  for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  return s;
}

TEST(EvalInflate, StoredAndFixedBlocks) {
  size_t used = 0;
  EXPECT_EQ(zlib_inflate(kStored, sizeof kStored, &used), "stored block test");
  EXPECT_EQ(used, sizeof kStored);
  EXPECT_EQ(zlib_inflate(kFixed, sizeof kFixed, &used), fixed_text());
  EXPECT_EQ(used, sizeof kFixed);
}

TEST(EvalInflate, CorruptStreamsThrow) {
  std::vector<uint8_t> bad(kFixed, kFixed + sizeof kFixed);
  bad[bad.size() - 1] ^= 1;  // checksum
  EXPECT_THROW(zlib_inflate(bad.data(), bad.size()), Error);
  EXPECT_THROW(zlib_inflate(kFixed, sizeof kFixed / 2), Error);  // truncated
  const uint8_t not_zlib[] = {0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0};
  EXPECT_THROW(zlib_inflate(not_zlib, sizeof not_zlib), Error);
}

TEST(EvalText, AustenExtraction) {
  const auto books = read_austen_rdb(austen_rdb_path());
  ASSERT_EQ(books.size(), 6u);
  EXPECT_EQ(books[0].title, "EMMA");
  EXPECT_EQ(books[4].title, "PRIDE AND PREJUDICE");
  const std::string emma = book_prose(books[0]);
  EXPECT_EQ(emma.rfind("Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy", 0), 0u)
      << emma.substr(0, 120);
  EXPECT_EQ(emma.find('_'), std::string::npos);
  EXPECT_EQ(emma.find("CHAPTER"), std::string::npos);
  const std::string pp = book_prose(books[4]);
  EXPECT_NE(pp.find("It is a truth universally acknowledged, that a single man in possession of a good fortune, "
                    "must be in want of a wife."),
            std::string::npos);
  const Corpus& c = austen_corpus();
  // eval-tasks.md counts 717K words with the headings; Emma alone is about 157K.
  EXPECT_GT(c.total_words, 680000);
  EXPECT_LT(c.total_words, 730000);
  EXPECT_GT(c.sentences.size(), 20000u);
  for (size_t i = 0; i < c.sentences.size(); i += 997) EXPECT_FALSE(c.sentences[i].empty());
}

TEST(EvalText, WordList) {
  const auto& w = word_list();
  EXPECT_GT(w.size(), 30000u);
  for (size_t i = 0; i < w.size(); i += 1009)
    for (char ch : w[i]) EXPECT_TRUE(ch >= 'a' && ch <= 'z') << w[i];
}

TEST(EvalSentences, Splits) {
  const auto s = split_sentences(
      "Mr. Darcy came in. She smiled! Did he? \"Yes,\" said she. It cost 3.5 pounds. J. Smith left.  \"Go.\" "
      "Then e.g. this stays. End");
  const std::vector<std::string> want = {"Mr. Darcy came in.",
                                         "She smiled!",
                                         "Did he?",
                                         "\"Yes,\" said she.",
                                         "It cost 3.5 pounds.",
                                         "J. Smith left.",
                                         "\"Go.\"",
                                         "Then e.g. this stays.",
                                         "End"};
  EXPECT_EQ(s, want);
  EXPECT_TRUE(split_sentences("   ").empty());
  EXPECT_EQ(split_sentences("no capital. after it."), std::vector<std::string>{"no capital. after it."});
}

TEST(EvalScoring, MatchAllAndPart) {
  EXPECT_DOUBLE_EQ(string_match_all(" The passkey is 1234567.", {"1234567"}), 1.0);
  EXPECT_DOUBLE_EQ(string_match_all("", {"1234567"}), 0.0);  // empty output scores 0
  EXPECT_DOUBLE_EQ(string_match_all("   \n ", {"1234567"}), 0.0);
  EXPECT_DOUBLE_EQ(string_match_all("123456", {"1234567"}), 0.0);
  EXPECT_DOUBLE_EQ(string_match_all("values: 11, 22\n33", {"11", "22", "33", "44"}), 0.75);
  EXPECT_DOUBLE_EQ(string_match_all("QUIZZICAL-Dynamic", {"quizzical-dynamic"}), 1.0);  // case-insensitive
  EXPECT_DOUBLE_EQ(string_match_all("a\x01"
                                    "b",
                                    {"a\nb"}),
                   1.0);                                      // control characters become newlines
  EXPECT_DOUBLE_EQ(string_match_all("anything", {""}), 0.0);  // an empty reference never matches
  EXPECT_DOUBLE_EQ(string_match_part("the answer is Paris", {"London", "paris"}), 1.0);
  EXPECT_DOUBLE_EQ(string_match_part("Rome", {"London", "Paris"}), 0.0);
  EXPECT_DOUBLE_EQ(string_match_part("", {"London"}), 0.0);  // unlike ShadowKV's two-way match
}

TEST(EvalArgs, PoliciesAndLists) {
  auto ps = parse_policies("full, shadowkv ,shadowkv@small",
                           {"shadowkv:--budget 1024 --rank 96", "shadowkv@small:--budget=256 --kv-f16 --chunk 16"});
  ASSERT_EQ(ps.size(), 3u);
  EXPECT_EQ(ps[0].options.policy, "full");
  EXPECT_EQ(ps[1].options.text("budget"), "1024");
  EXPECT_EQ(ps[1].options.integer("rank"), 96);
  EXPECT_EQ(ps[2].label, "shadowkv@small");
  EXPECT_EQ(ps[2].options.policy, "shadowkv");
  EXPECT_EQ(ps[2].options.text("budget"), "256");
  EXPECT_TRUE(ps[2].options.flag("kv-f16"));
  EXPECT_EQ(ps[2].options.integer("chunk"), 16);
  EXPECT_FALSE(ps[0].options.flag("kv-f16"));  // the declared default
  EXPECT_THROW(parse_policies("nonesuch", {}), Error);
  EXPECT_THROW(parse_policies("full", {"full:--bogus 1"}), Error);
  EXPECT_THROW(parse_policies("full", {"other:--rank 1"}), Error);
  EXPECT_THROW(parse_policies("full", {"full:--rank x"}), Error);
  EXPECT_THROW(parse_policies("full,full", {}), Error);
  EXPECT_EQ(parse_int_list("4096, 8k,32K", "--lengths"), (std::vector<int64_t>{4096, 8192, 32768}));
  EXPECT_THROW(parse_int_list("40a", "--lengths"), Error);
  KvGeometry g;
  g.layers.resize(1);
  g.layers[0] = {2, 1, 8, 0, 1.0f, {}};
  g.max_ctx = 64;
  g.max_batch_tokens = 16;
  EXPECT_STREQ(make_eval_kv_cache(g, policy_named("truncate:4"))->policy(), "truncate");
  EXPECT_STREQ(make_eval_kv_cache(g, policy_named("full"))->policy(), "full");
  EXPECT_THROW(make_eval_kv_cache(g, policy_named("truncate:x")), Error);
  EXPECT_THROW(make_eval_kv_cache(g, policy_named("no-such-policy")), Error);
}

// Naive causal attention over the keys at positions (q_pos - keep, q_pos], for one query head.
void naive_attention(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v, int D,
                     int H, int64_t qp, int64_t keep, float scale, float* out, int h) {
  std::vector<double> s;
  double mx = -1e30;
  for (int64_t p = std::max<int64_t>(0, qp - keep + 1); p <= qp; ++p) {
    double d = 0;
    for (int i = 0; i < D; ++i) d += (double)q[(qp * H + h) * D + i] * k[p * D + i];
    s.push_back(d * scale);
    mx = std::max(mx, s.back());
  }
  double z = 0;
  for (double& x : s) z += (x = std::exp(x - mx));
  for (int i = 0; i < D; ++i) {
    double acc = 0;
    int64_t j = 0;
    for (int64_t p = std::max<int64_t>(0, qp - keep + 1); p <= qp; ++p, ++j) acc += s[j] / z * v[p * D + i];
    out[i] = (float)acc;
  }
}

TEST(EvalTruncatingCache, MatchesNaiveWindowedAttention) {
  const int H = 2, D = 8, T = 40;
  KvGeometry g;
  g.layers.resize(1);
  g.layers[0] = {H, 1, D, 0, 0.35f, {}};
  g.max_ctx = T;
  g.max_batch_tokens = 8;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  std::vector<float> q(T * H * D), k(T * D), v(T * D);
  for (float& x : q) x = nd(rng);
  for (float& x : k) x = nd(rng);
  for (float& x : v) x = nd(rng);
  for (int64_t keep : {1, 5, 13, 1000}) {
    TruncatingKvCache cache(g, keep);
    std::vector<float> out(T * H * D);
    // Prefill in chunks of 8, then single decode steps, as the model does.
    int64_t pos = 0;
    for (int n : {8, 8, 8, 1, 1, 1, 5, 8}) {
      cache.attend(0, pos, n, &q[pos * H * D], nullptr, &k[pos * D], &v[pos * D], &out[pos * H * D]);
      pos += n;
    }
    ASSERT_EQ(pos, T);
    EXPECT_EQ(cache.n_tokens(), T);
    for (int64_t p = 0; p < T; ++p)
      for (int h = 0; h < H; ++h) {
        float ref[D];
        naive_attention(q, k, v, D, H, p, keep, 0.35f, ref, h);
        for (int i = 0; i < D; ++i) ASSERT_NEAR(out[(p * H + h) * D + i], ref[i], 1e-4) << keep << " " << p;
      }
    auto copy = cache.clone();
    EXPECT_EQ(copy->n_tokens(), T);
    EXPECT_EQ(copy->memory().total(), cache.memory().total());
    if (keep < 8) {
      EXPECT_LT(cache.memory().total(), (int64_t)(T * D * 2 * 4));  // old rows were dropped
    }
  }
}

TEST(EvalResultStore, ResumeSkipsFinishedCellsAndDropsTornLines) {
  const fs::path dir = fs::temp_directory_path() / ("skv_eval_store_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "results.jsonl").string();
  {
    ResultStore s(path);
    EXPECT_FALSE(s.done("niah_single_1", 4096, "full", 0));
    s.append({{"task", "niah_single_1"}, {"length", 4096}, {"policy", "full"}, {"sample", 0}, {"score", 1.0}});
    s.append({{"task", "niah_single_1"}, {"length", 4096}, {"policy", "truncate:16"}, {"sample", 0}, {"score", 0.0}});
  }
  {  // a crash mid-write leaves half a line
    std::ofstream f(path, std::ios::app);
    f << "{\"task\": \"niah_single_1\", \"len";
  }
  ResultStore s(path);
  EXPECT_EQ(s.bad_lines(), 1);
  EXPECT_EQ(s.records().size(), 2u);
  EXPECT_TRUE(s.done("niah_single_1", 4096, "full", 0));
  EXPECT_TRUE(s.done("niah_single_1", 4096, "truncate:16", 0));
  EXPECT_FALSE(s.done("niah_single_1", 4096, "full", 1));
  EXPECT_FALSE(s.done("niah_single_1", 8192, "full", 0));
  s.append({{"task", "niah_single_1"}, {"length", 4096}, {"policy", "full"}, {"sample", 1}, {"score", 0.5}});
  ResultStore again(path);
  EXPECT_EQ(again.bad_lines(), 0);
  EXPECT_EQ(again.records().size(), 3u);
  EXPECT_TRUE(again.done("niah_single_1", 4096, "full", 1));
  fs::remove_all(dir);
}

// A small XML well-formedness check: balanced tags, quoted attributes, only known entities in text.
bool well_formed(const std::string& x, std::string* why) {
  std::vector<std::string> stack;
  size_t i = 0;
  if (x.rfind("<?xml", 0) == 0) i = x.find("?>") + 2;
  int roots = 0;
  while (i < x.size()) {
    if (x[i] == '<') {
      const size_t e = x.find('>', i);
      if (e == std::string::npos) return *why = "unclosed tag", false;
      std::string tag = x.substr(i + 1, e - i - 1);
      bool closing = tag[0] == '/', self = tag.back() == '/';
      if (closing) tag = tag.substr(1);
      if (self) tag.pop_back();
      const std::string name = tag.substr(0, tag.find_first_of(" \n"));
      const std::string attrs = tag.substr(name.size());
      if (std::count(attrs.begin(), attrs.end(), '"') % 2) return *why = "unbalanced quotes in <" + name, false;
      if (attrs.find('<') != std::string::npos) return *why = "'<' in attributes", false;
      if (closing) {
        if (stack.empty() || stack.back() != name) return *why = "mismatched </" + name + ">", false;
        stack.pop_back();
      } else if (!self) {
        if (stack.empty()) ++roots;
        stack.push_back(name);
      } else if (stack.empty()) {
        ++roots;
      }
      i = e + 1;
    } else {
      if (x[i] == '&') {
        const size_t semi = x.find(';', i);
        const std::string ent = x.substr(i, semi - i + 1);
        if (ent != "&amp;" && ent != "&lt;" && ent != "&gt;" && ent != "&quot;" && ent != "&apos;")
          return *why = "bad entity " + ent, false;
      }
      if (x[i] == '>') return *why = "bare '>' in text", false;
      ++i;
    }
  }
  if (!stack.empty()) return *why = "unclosed <" + stack.back() + ">", false;
  if (roots != 1) return *why = "expected one root element", false;
  return true;
}

TEST(EvalSvg, WellFormed) {
  std::string why;
  const std::string h = svg_heatmap("niah <&> \"test\"", "length", "depth", {"1024", "2048"}, {"0%", "50%", "100%"},
                                    {{100, 50}, {NAN, 0}, {75}}, 0, 100);
  EXPECT_TRUE(well_formed(h, &why)) << why;
  EXPECT_NE(h.find("niah &lt;&amp;&gt; &quot;test&quot;"), std::string::npos);
  EXPECT_EQ(h.rfind("<svg", 0), std::string::npos);  // starts with the XML declaration
  EXPECT_NE(h.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  const std::string l = svg_line_plot("decode <tok/s>", "length", "tok/s",
                                      {{"full b=1", {1024, 2048, 4096}, {30, 25, 20}}, {"a&b", {1024}, {NAN}}}, true);
  EXPECT_TRUE(well_formed(l, &why)) << why;
  EXPECT_NE(l.find("<polyline"), std::string::npos);
  EXPECT_FALSE(well_formed("<svg><g></svg>", &why));  // the checker itself can fail
}

// ---- Generators and fidelity on the real tokenizer / model ----

// Within 1% or 16 tokens; needle-filler tasks fill whole needle lines (up to ~60 tokens for uuid lines).
int64_t tolerance(const Sample& s) {
  const bool lines = s.task == "niah_multikey_2" || s.task == "niah_multikey_3";
  return std::max<int64_t>(lines ? 80 : 16, s.length / 100);
}

void check_sample(const Sample& s, const Tokenizer& tok) {
  const int64_t total = (int64_t)s.tokens.size() + s.max_new;
  EXPECT_LE(total, s.length) << s.task;
  EXPECT_GE(total, s.length - tolerance(s)) << s.task << " " << total << " of " << s.length;
  ASSERT_FALSE(s.answers.empty()) << s.task;
  const std::string ctx = s.text.substr(s.context_begin, s.context_end - s.context_begin);
  for (const std::string& a : s.answers) EXPECT_NE(ctx.find(a), std::string::npos) << s.task << ": " << a;
  // The tokens are the encoding of the text (re-encoding gives the same count).
  EXPECT_EQ(tok.encode(s.text, true).size(), s.tokens.size());
}

TEST(EvalTasks, CoreTasksFitLengthAndContainAnswers) {
  const Tokenizer& tok = testmodel::gemma().tokenizer();
  TaskEnv env{&tok, false, 0};
  for (const char* t : {"niah_single_1", "niah_single_2", "niah_multikey_1", "niah_multivalue", "niah_multiquery",
                        "niah_single_3", "niah_multikey_2", "niah_multikey_3", "vt", "cwe", "fwe"}) {
    for (int64_t L : {1024, 2048}) {
      SCOPED_TRACE(std::string(t) + " " + std::to_string(L));
      const Sample s = make_sample(t, L, 42, 0, -1, env);
      check_sample(s, tok);
      if (std::string(t).rfind("niah", 0) == 0) {
        EXPECT_NE(s.text.find("mentioned in the provided text"), std::string::npos);
        EXPECT_EQ(s.text.substr(s.needle_offsets[0], 25), "One of the special magic ");
      }
    }
  }
  // Deterministic in the seed and index.
  const Sample a = make_sample("niah_single_2", 1024, 42, 1, -1, env),
               b = make_sample("niah_single_2", 1024, 42, 1, -1, env);
  const Sample c = make_sample("niah_single_2", 1024, 42, 2, -1, env),
               d = make_sample("niah_single_2", 1024, 43, 1, -1, env);
  EXPECT_EQ(a.text, b.text);
  EXPECT_NE(a.text, c.text);
  EXPECT_NE(a.text, d.text);
  // Counts: the multi-value/query tasks ask for 4 values, cwe 10 words, fwe 3, vt 5 variables.
  EXPECT_EQ(make_sample("niah_multivalue", 1024, 1, 0, -1, env).answers.size(), 4u);
  EXPECT_EQ(make_sample("cwe", 1024, 1, 0, -1, env).answers.size(), 10u);
  EXPECT_EQ(make_sample("fwe", 1024, 1, 0, -1, env).answers.size(), 3u);
  EXPECT_EQ(make_sample("vt", 1024, 1, 0, -1, env).answers.size(), 5u);
  EXPECT_THROW(make_sample("no_such_task", 1024, 1, 0, -1, env), Error);
  EXPECT_THROW(make_sample("niah_single_2", 100, 1, 0, -1, env), Error);  // too short for template + budget
}

TEST(EvalTasks, NeedleAtRequestedDepth) {
  const Tokenizer& tok = testmodel::gemma().tokenizer();
  TaskEnv env{&tok, false, 0};
  for (const char* t : {"niah_single_1", "niah_single_2"})
    for (double depth : {0.0, 25.0, 50.0, 100.0}) {
      SCOPED_TRACE(std::string(t) + " depth " + std::to_string(depth));
      const Sample s = make_sample(t, 4096, 42, 0, depth, env);
      check_sample(s, tok);
      EXPECT_DOUBLE_EQ(s.depth, depth);
      const double at = (double)(s.needle_offsets[0] - s.context_begin) / (s.context_end - s.context_begin);
      EXPECT_NEAR(at * 100, depth, 3.0);
      EXPECT_NE(s.text.find("One of the special magic numbers for", s.needle_offsets[0]), std::string::npos);
      const size_t nl = s.text.find('.', s.needle_offsets[0] + 40);
      EXPECT_NE(s.text.substr(s.needle_offsets[0], nl - s.needle_offsets[0]).find(s.answers[0]), std::string::npos);
    }
  // Perplexity documents are exactly the asked length.
  EXPECT_EQ(make_sample("austen_ppl", 777, 5, 0, -1, env).tokens.size(), 777u);
}

TEST(EvalFidelity, FullAgreesWithItselfAndTruncationDiverges) {
  const Model& m = testmodel::gemma();
  TaskEnv env{&m.tokenizer(), false, 0};
  const Sample s = make_sample("austen_ppl", 96, 3, 0, -1, env);
  KvOptions full;
  Prefilled a = prefill(m, s.tokens, full, 128, 32);
  const GreedyOutput ref = greedy_decode(m, a.cache, a.logits, 4, 4);
  ASSERT_EQ(ref.log_probs.size(), ref.path.size());
  Prefilled b = prefill(m, s.tokens, full, 128, 32);  // same policy and chunking: identical numerics
  const Fidelity same = teacher_forced(m, b.cache, b.logits, ref);
  EXPECT_EQ(same.steps, (int)ref.path.size());
  EXPECT_LT(same.kl_mean, 1e-6);
  EXPECT_DOUBLE_EQ(same.top1, 1.0);
  KvOptions trunc;
  trunc.policy = "truncate:4";
  Prefilled c = prefill(m, s.tokens, trunc, 128, 32);
  const Fidelity diff = teacher_forced(m, c.cache, c.logits, ref);
  EXPECT_GT(diff.kl_mean, 0.05);
  // The log-softmax rows are normalised.
  double z = 0;
  for (float x : ref.log_probs[0]) z += std::exp((double)x);
  EXPECT_NEAR(z, 1.0, 1e-3);
}

}  // namespace
}  // namespace shadowkv::eval

namespace shadowkv::eval {
namespace {

TEST(EvalFidelity, TailFidelityKlQuantilesAndAgreement) {
  TailFidelity f;
  const std::vector<float> p = {std::log(0.5f), std::log(0.25f), std::log(0.25f)};
  const std::vector<float> q = {std::log(0.25f), std::log(0.5f), std::log(0.25f)};
  for (int i = 0; i < 3; ++i) f.add(p, p);  // identical rows: KL 0, argmax agrees
  f.add(p, q);                              // KL = 0.5 ln2 + 0.25 ln(0.5) = 0.25 ln 2; argmax differs
  ASSERT_EQ(f.kl.size(), 4u);
  EXPECT_NEAR(f.kl[3], 0.25 * std::log(2.0), 1e-6);
  EXPECT_NEAR(f.quantile(0.5), 0.0, 1e-9);
  EXPECT_NEAR(f.quantile(1.0), 0.25 * std::log(2.0), 1e-6);
  EXPECT_NEAR(f.mean(), 0.0625 * std::log(2.0), 1e-6);
  EXPECT_DOUBLE_EQ(f.top1(), 0.75);
}

// Perplexity cells get no task mean and no row in the scored tasks' memory table, but their own section with
// perplexity against the reference and the per-row KL; scored cells keep both.
TEST(EvalReport, PerplexityCellsStayOutOfMeansAndMemoryTable) {
  auto rec = [](const std::string& task, const std::string& metric, double score) {
    return nlohmann::json{{"task", task},        {"length", 512},      {"policy", "full"},     {"sample", 0},
                          {"metric", metric},    {"score", score},     {"prefill_tok_s", 100}, {"kv_bytes", 10},
                          {"kv_full_bytes", 10}, {"fidelity", nullptr}};
  };
  const std::vector<std::string> order = {"niah_single_1", "austen_ppl"};
  const fs::path dir = fs::temp_directory_path() / "skv_report_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string both =
      write_summaries(dir.string(),
                      summarize({rec("niah_single_1", "string_match_all", 1.0), rec("austen_ppl", "perplexity", 20.5)},
                                order, {"full"}),
                      {"full"}, "full");
  EXPECT_NE(both.find("| austen_ppl | 512 | 20.500 (n=1) |"), std::string::npos) << both;
  EXPECT_NE(both.find("| **mean of tasks** | 512 | 100.0 |"), std::string::npos) << both;
  EXPECT_NE(both.find("| niah_single_1 | 512 | full | 100.0 |"), std::string::npos) << both;
  const std::string memory_table = both.substr(both.find("## Memory and speed"));
  EXPECT_EQ(memory_table.find("| austen_ppl |"), std::string::npos) << both;
  auto variant = rec("austen_ppl", "perplexity", 21.525);
  variant["policy"] = "shadowkv";
  variant["kv_hot_bytes"] = 5;
  variant["fidelity"] = {{"steps", 512}, {"kl_mean", 0.02}, {"kl_median", 0.0125}, {"kl_p95", 0.08}, {"top1", 0.97}};
  const std::string ppl_only = write_summaries(
      dir.string(), summarize({rec("austen_ppl", "perplexity", 20.5), variant}, order, {"full", "shadowkv"}),
      {"full", "shadowkv"}, "full");
  EXPECT_EQ(ppl_only.find("mean of tasks"), std::string::npos) << ppl_only;
  EXPECT_EQ(ppl_only.find("Memory and speed"), std::string::npos) << ppl_only;
  EXPECT_NE(ppl_only.find("| austen_ppl | 512 | shadowkv | 21.525 | +5.00% | 0.0125 | 0.0800 | 97.0 | 5 | 0.500 |"),
            std::string::npos)
      << ppl_only;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace shadowkv::eval
