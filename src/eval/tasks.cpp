#include "eval/tasks.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "eval/rng.h"
#include "eval/text_sources.h"
#include "runtime/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace shadowkv::eval {
namespace {

enum class Filler { Noise, Essay, Needles };
enum class Kind { Word, Number, Uuid };

struct NiahSpec {
  Filler filler;
  Kind key, value;
  int n_keys, n_values, n_queries;
};

// A prompt before chat wrapping: pre + context + post, then the answer prefix after the (optional) template.
struct Parts {
  std::string pre, context, post, answer_prefix;
  std::vector<size_t> needle_offsets;  // in context
};
using Builder = std::function<Parts(int64_t)>;

const std::vector<TaskInfo> kTasks = {
    {"niah_single_1", 128, Metric::MatchAll, true},
    {"niah_single_2", 128, Metric::MatchAll, true},
    {"niah_multikey_1", 128, Metric::MatchAll, true},
    {"niah_multivalue", 128, Metric::MatchAll, true},
    {"niah_multiquery", 128, Metric::MatchAll, true},
    {"niah_single_3", 128, Metric::MatchAll, true},
    {"niah_multikey_2", 128, Metric::MatchAll, true},
    {"niah_multikey_3", 128, Metric::MatchAll, true},
    {"vt", 30, Metric::MatchAll, false},
    {"cwe", 120, Metric::MatchAll, false},
    {"fwe", 50, Metric::MatchAll, false},
    {"austen_ppl", 0, Metric::Perplexity, false},
};

NiahSpec niah_spec(const std::string& t) {
  if (t == "niah_single_1") return {Filler::Noise, Kind::Word, Kind::Number, 1, 1, 1};
  if (t == "niah_single_2") return {Filler::Essay, Kind::Word, Kind::Number, 1, 1, 1};
  if (t == "niah_single_3") return {Filler::Essay, Kind::Word, Kind::Uuid, 1, 1, 1};
  if (t == "niah_multikey_1") return {Filler::Essay, Kind::Word, Kind::Number, 4, 1, 1};
  if (t == "niah_multikey_2") return {Filler::Needles, Kind::Word, Kind::Number, 1, 1, 1};
  if (t == "niah_multikey_3") return {Filler::Needles, Kind::Uuid, Kind::Uuid, 1, 1, 1};
  if (t == "niah_multivalue") return {Filler::Essay, Kind::Word, Kind::Number, 1, 4, 1};
  return {Filler::Essay, Kind::Word, Kind::Number, 4, 1, 4};  // niah_multiquery
}

std::string random_value(Kind k, Rng& r) {
  if (k == Kind::Number) return std::to_string(r.range(1000000, 9999999));
  if (k == Kind::Word) {
    const auto& w = word_list();
    return w[r.below(w.size())] + "-" + w[r.below(w.size())];
  }
  static const char* hex = "0123456789abcdef";
  std::string u;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) u.push_back('-');
    int d = (int)r.below(16);
    if (i == 12) d = 4;            // version 4
    if (i == 16) d = 8 + (d & 3);  // RFC 4122 variant
    u.push_back(hex[d]);
  }
  return u;
}

std::string plural_type(Kind k) { return k == Kind::Number ? "numbers" : k == Kind::Word ? "words" : "uuids"; }

std::string needle_sentence(Kind value_kind, const std::string& key, const std::string& value) {
  return "One of the special magic " + plural_type(value_kind) + " for " + key + " is: " + value + ".";
}

// Joins units with sep, inserting each needle before unit round(depth% * n) (several at one place keep their
// order); records each needle's byte offset.
std::string place(const std::vector<std::string>& units, const std::string& sep,
                  const std::vector<std::pair<std::string, double>>& needles, std::vector<size_t>* offsets) {
  // Boundary u sits at byte start[u]; a needle goes to the boundary nearest to depth% of the text (RULER
  // counts sentences instead, which drifts when sentence lengths vary).
  const size_t n = units.size();
  std::vector<double> start(n + 1, 0);
  for (size_t u = 0; u < n; ++u) start[u + 1] = start[u] + units[u].size() + sep.size();
  std::vector<std::vector<size_t>> at(n + 1);
  for (size_t i = 0; i < needles.size(); ++i) {
    const double target = std::clamp(needles[i].second, 0.0, 100.0) / 100.0 * start[n];
    size_t u = std::lower_bound(start.begin(), start.end(), target) - start.begin();
    if (u > n) u = n;
    if (u > 0 && target - start[u - 1] < start[u] - target) --u;
    at[u].push_back(i);
  }
  offsets->assign(needles.size(), 0);
  std::string out;
  bool first = true;
  auto add = [&](const std::string& s) {
    if (!first) out += sep;
    first = false;
    out += s;
  };
  for (size_t u = 0; u <= n; ++u) {
    for (size_t i : at[u]) {
      if (!first) out += sep;
      first = false;
      (*offsets)[i] = out.size();
      out += needles[i].first;
    }
    if (u < n) add(units[u]);
  }
  return out;
}

// The first w words of endlessly repeated noise lines.
std::vector<std::string> noise_units(int64_t w) {
  static const std::vector<std::string> words = [] {
    std::vector<std::string> v;
    std::string cur;
    for (const char* p = kNoiseLine;; ++p) {
      if (*p == ' ' || *p == 0) {
        v.push_back(cur);
        cur.clear();
        if (*p == 0) break;
      } else {
        cur.push_back(*p);
      }
    }
    return v;
  }();
  const int64_t per = (int64_t)words.size();
  std::vector<std::string> units((size_t)(w / per), kNoiseLine);
  if (w % per) {
    std::string part;
    for (int64_t i = 0; i < w % per; ++i) part += (i ? " " : "") + words[i];
    units.push_back(part);
  }
  return units;
}

// Sentences of the Austen corpus from sentence s0 on (wrapping), w words in all; the last one is cut short.
std::vector<std::string> essay_units(size_t s0, int64_t w) {
  const Corpus& c = austen_corpus();
  std::vector<std::string> units;
  for (size_t i = s0; w > 0; i = (i + 1) % c.sentences.size()) {
    const std::string& s = c.sentences[i];
    if (c.sentence_words[i] <= w) {
      units.push_back(s);
      w -= c.sentence_words[i];
      continue;
    }
    size_t pos = 0;
    for (int64_t k = 0; k < w; ++k) pos = s.find(' ', pos + 1);
    units.push_back(s.substr(0, pos));
    break;
  }
  return units;
}

std::string join_keys(const std::vector<std::string>& k) {
  if (k.size() == 1) return k[0];
  std::string s;
  for (size_t i = 0; i + 1 < k.size(); ++i) s += k[i] + ", ";
  return s + "and " + k.back();
}

std::vector<double> draw_depths(Rng& r, int n) {  // without replacement from 40 evenly spaced percents
  std::vector<double> grid(40);
  for (int i = 0; i < 40; ++i) grid[i] = 100.0 * i / 39.0;
  r.shuffle(grid);
  grid.resize(n);
  return grid;
}

Builder niah_builder(const std::string& task, Rng& r, double depth, std::vector<std::string>& answers,
                     double& first_depth) {
  const NiahSpec sp = niah_spec(task);
  std::vector<std::string> keys;
  while ((int)keys.size() < sp.n_keys) {
    std::string k = random_value(sp.key, r);
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  }
  std::vector<std::pair<std::string, double>> needles;  // queried needles first
  std::vector<double> depths = draw_depths(r, sp.n_keys * sp.n_values);
  if (depth >= 0) depths[0] = depth;
  first_depth = depths[0];
  size_t d = 0;
  for (int k = 0; k < sp.n_keys; ++k)
    for (int v = 0; v < sp.n_values; ++v) {
      const std::string value = random_value(sp.value, r);
      if (k < sp.n_queries) answers.push_back(value);
      needles.push_back({needle_sentence(sp.value, keys[k], value), depths[d++]});
    }
  const std::vector<std::string> queried(keys.begin(), keys.begin() + sp.n_queries);
  const std::string query = join_keys(queried);
  const bool single = sp.n_queries * sp.n_values == 1;
  std::string type = plural_type(sp.value);
  if (single) type.pop_back();
  Parts base;
  if (single) {
    base.pre = "A special magic " + type +
               " is hidden within the following text. Make sure to memorize it. I will "
               "quiz you about the " +
               type + " afterwards.\n";
    base.post = "\nWhat is the special magic " + type + " for " + query + " mentioned in the provided text?";
    base.answer_prefix = " The special magic " + type + " for " + query + " mentioned in the provided text is";
  } else {
    base.pre = "Some special magic " + type +
               " are hidden within the following text. Make sure to memorize it. I "
               "will quiz you about the " +
               type + " afterwards.\n";
    base.post = "\nWhat are all the special magic " + type + " for " + query + " mentioned in the provided text?";
    base.answer_prefix = " The special magic " + type + " for " + query + " mentioned in the provided text are";
  }
  const size_t s0 = sp.filler == Filler::Essay ? r.below(austen_corpus().sentences.size()) : 0;
  const uint64_t line_seed = r.next();
  return [=](int64_t w) {
    Parts p = base;
    std::vector<std::string> units;
    std::string sep = "\n";
    if (sp.filler == Filler::Noise) {
      units = noise_units(w);
    } else if (sp.filler == Filler::Essay) {
      units = essay_units(s0, w);
      sep = " ";
    } else {  // every filler line is a look-alike needle with its own key and value
      Rng lr(line_seed);
      for (int64_t i = 0; i < w; ++i) {
        std::string k = random_value(sp.key, lr);
        if (std::find(keys.begin(), keys.end(), k) != keys.end()) k += "x";
        units.push_back(needle_sentence(sp.value, k, random_value(sp.value, lr)));
      }
    }
    p.context = place(units, sep, needles, &p.needle_offsets);
    return p;
  };
}

std::string random_upper(Rng& r, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(char('A' + r.below(26)));
  return s;
}

Builder vt_builder(Rng& r, std::vector<std::string>& answers) {
  auto chain = [&r](std::vector<std::string>& vars, std::string& value) {
    value = std::to_string(r.range(10000, 99999));
    std::vector<std::string> lines;
    while (vars.size() < 5) {
      std::string v = random_upper(r, 5);
      if (std::find(vars.begin(), vars.end(), v) == vars.end()) vars.push_back(v);
    }
    lines.push_back("VAR " + vars[0] + " = " + value);
    for (int i = 1; i < 5; ++i) lines.push_back("VAR " + vars[i] + " = VAR " + vars[i - 1]);
    return lines;
  };
  auto with_depths = [&r](const std::vector<std::string>& lines) {
    std::vector<double> d;
    for (size_t i = 0; i < lines.size(); ++i) d.push_back((double)r.below(10001) / 100.0);
    std::sort(d.begin(), d.end());  // keep the chain in assignment order
    std::vector<std::pair<std::string, double>> n;
    for (size_t i = 0; i < lines.size(); ++i) n.push_back({lines[i], d[i]});
    return n;
  };
  const std::string head = "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n";
  auto question = [](const std::string& v) {
    return "\nQuestion: Find all variables that are assigned the value " + v + " in the text above.";
  };
  auto prefix = [](const std::string& v) {
    return " Answer: According to the chain(s) of variable assignment in the text above, 5 variables are assigned "
           "the value " +
           v + ", they are: ";
  };
  // A short solved example first, built the same way.
  std::vector<std::string> ex_vars;
  std::string ex_value;
  const auto ex_needles = with_depths(chain(ex_vars, ex_value));
  std::vector<size_t> ignored;
  std::string example =
      head + place(noise_units(19 * 12), "\n", ex_needles, &ignored) + question(ex_value) + prefix(ex_value);
  for (size_t i = 0; i < ex_vars.size(); ++i) example += (i ? " " : "") + ex_vars[i];
  std::vector<std::string> vars;
  std::string value;
  const auto needles = with_depths(chain(vars, value));
  answers = vars;
  return [=](int64_t w) {
    Parts p;
    p.pre = example + "\n\n" + head;
    p.context = place(noise_units(w), "\n", needles, &p.needle_offsets);
    p.post = question(value);
    p.answer_prefix = prefix(value);
    return p;
  };
}

// Distinct random entries of the word list (a prefix of a seeded permutation).
std::vector<std::string> distinct_words(Rng& r, size_t n) {
  const auto& w = word_list();
  if (n > w.size()) throw Error("the word list is too small for this length");
  std::vector<uint32_t> idx(w.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = (uint32_t)i;
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) {
    std::swap(idx[i], idx[i + r.below(idx.size() - i)]);
    out.push_back(w[idx[i]]);
  }
  return out;
}

std::string numbered(const std::vector<std::string>& words) {
  std::string s;
  for (size_t i = 0; i < words.size(); ++i) s += (i ? " " : "") + std::to_string(i + 1) + ". " + words[i];
  return s;
}

Builder cwe_builder(Rng& r, int64_t length, std::vector<std::string>& answers) {
  const int fc = length >= 4096 ? 30 : 6, fu = length >= 4096 ? 3 : 1;
  const std::string head =
      "Below is a numbered list of words. In these words, some appear more often than others. "
      "Memorize the ones that appear most often.\n";
  const std::string question = "\nQuestion: What are the 10 most common words in the above list?";
  const std::string prefix = " Answer: The top 10 words that appear most often in the list are:";
  const size_t max_uncommon = std::min<size_t>(word_list().size() - 40, (size_t)length);
  std::vector<std::string> words = distinct_words(r, 40 + max_uncommon);
  // Example: 10 common words x3 and 20 others x1.
  std::vector<std::string> ex;
  for (int i = 0; i < 10; ++i) ex.insert(ex.end(), 3, words[i]);
  for (int i = 10; i < 30; ++i) ex.push_back(words[i]);
  r.shuffle(ex);
  const std::vector<std::string> ex_ans(words.begin(), words.begin() + 10);
  const std::string example = head + numbered(ex) + question + prefix + " " + numbered(ex_ans);
  answers.assign(words.begin() + 30, words.begin() + 40);
  const uint64_t shuffle_seed = r.next();
  return [=](int64_t w) {
    if ((size_t)w > max_uncommon) w = (int64_t)max_uncommon;
    std::vector<std::string> list;
    for (int i = 30; i < 40; ++i) list.insert(list.end(), fc, words[i]);
    for (int64_t i = 0; i < w; ++i) list.insert(list.end(), fu, words[40 + i]);
    Rng sr(shuffle_seed);
    sr.shuffle(list);
    Parts p;
    p.pre = example + "\n\n" + head;
    p.context = numbered(list);
    p.post = question;
    p.answer_prefix = prefix;
    return p;
  };
}

Builder fwe_builder(Rng& r, int64_t length, std::vector<std::string>& answers) {
  const int vocab = (int)std::max<int64_t>(20, length / 50);
  std::vector<std::string> words;
  while ((int)words.size() < vocab) {
    std::string s;
    for (int i = 0; i < 6; ++i) s.push_back(char('a' + r.below(26)));
    if (std::find(words.begin(), words.end(), s) == words.end()) words.push_back(s);
  }
  words[0] = "....";  // the most frequent "word" is noise
  answers.assign(words.begin() + 1, words.begin() + 4);
  const double zeta2 = M_PI * M_PI / 6.0;
  const uint64_t shuffle_seed = r.next();
  return [=](int64_t n) {
    std::vector<std::string> text;
    for (int k = 0; k < vocab; ++k) {
      const int64_t c = (int64_t)std::floor(n / (zeta2 * (k + 1.0) * (k + 1.0)));
      text.insert(text.end(), (size_t)std::max<int64_t>(c, k < 5 ? 1 : 0), words[k]);
    }
    Rng sr(shuffle_seed);
    sr.shuffle(text);
    Parts p;
    p.pre =
        "Read the following coded text and track the frequency of each coded word. Find the three most "
        "frequently appeared coded words. ";
    for (size_t i = 0; i < text.size(); ++i) p.context += (i ? " " : "") + text[i];
    p.post =
        "\nQuestion: Do not provide any explanation. Please ignore the dots '....'. What are the three most "
        "frequently appeared words in the above coded text?";
    p.answer_prefix = " Answer: According to the coded text above, the three most frequently appeared words are:";
    return p;
  };
}

void render(const Parts& p, const TaskEnv& env, Sample& s) {
  const std::string user = p.pre + p.context + p.post;
  size_t user_at = 0;
  if (env.chat) {
    const std::string wrapped = apply_chat_template(*env.tok, user);
    user_at = wrapped.find(user);
    s.text = wrapped + p.answer_prefix;
    s.tokens = env.tok->encode(s.text, /*add_bos=*/false, /*parse_special=*/true);
  } else {
    s.text = user + p.answer_prefix;
    s.tokens = env.tok->encode(s.text, /*add_bos=*/true);
  }
  s.context_begin = user_at + p.pre.size();
  s.context_end = s.context_begin + p.context.size();
  s.needle_offsets.clear();
  for (size_t o : p.needle_offsets) s.needle_offsets.push_back(s.context_begin + o);
}

// The largest filler size w in [0, w_max] whose prompt fits in `limit` tokens: interpolation search
// alternating with bisection (each probe tokenises the whole prompt, so probes are few).
void fit(const Builder& build, int64_t limit, int64_t w_max, const TaskEnv& env, Sample& s) {
  render(build(0), env, s);
  const int64_t c0 = (int64_t)s.tokens.size();
  if (c0 > limit)
    throw Error("length " + std::to_string(s.length) + " is too short for task " + s.task + " (the prompt alone has " +
                std::to_string(c0) + " tokens plus an output budget of " + std::to_string(s.max_new) + ")");
  int64_t lo = 0, c_lo = c0, hi = -1, c_hi = 0;
  double rate = 1.3;  // tokens per unit, refined by each probe
  for (int iter = 0; iter < 60; ++iter) {
    int64_t w;
    if (hi < 0) {
      if (lo >= w_max) break;
      if (iter == 0)
        w = std::min<int64_t>(w_max, 64);  // a small first probe calibrates tokens per unit
      else
        w = std::min<int64_t>(w_max, lo + std::max<int64_t>(1, (int64_t)((limit - c_lo) / rate * 1.02) + 1));
    } else {
      if (hi - lo <= 1) break;
      w = iter % 2 ? lo + (int64_t)((double)(limit - c_lo) * (hi - lo) / std::max<int64_t>(1, c_hi - c_lo))
                   : (lo + hi) / 2;
      w = std::clamp(w, lo + 1, hi - 1);
    }
    render(build(w), env, s);
    const int64_t c = (int64_t)s.tokens.size();
    if (c <= limit) {
      lo = w;
      c_lo = c;
    } else {
      hi = w;
      c_hi = c;
    }
    if (w > 0 && c > c0) rate = std::max(0.05, (double)(c - c0) / w);
  }
  render(build(lo), env, s);
}

}  // namespace

const char* metric_name(Metric m) {
  return m == Metric::MatchAll ? "string_match_all" : m == Metric::MatchPart ? "string_match_part" : "perplexity";
}

const std::vector<TaskInfo>& all_tasks() { return kTasks; }

const TaskInfo& task_info(const std::string& name) {
  for (const TaskInfo& t : kTasks)
    if (t.name == name) return t;
  std::string known;
  for (const TaskInfo& t : kTasks) known += (known.empty() ? "" : ", ") + t.name;
  throw Error("unknown task '" + name + "' (known: " + known + ")");
}

Sample make_sample(const std::string& task, int64_t length, uint64_t seed, int index, double depth,
                   const TaskEnv& env) {
  const TaskInfo& info = task_info(task);
  if (!env.tok) throw Error("make_sample: no tokenizer");
  if (length < 16) throw Error("length must be at least 16 tokens");
  Sample s;
  s.task = task;
  s.length = length;
  s.index = index;
  s.metric = info.metric;
  s.max_new = info.output_budget > 0 && env.max_new > 0 ? env.max_new : info.output_budget;
  uint64_t sd = mix_seed(mix_seed(mix_seed(seed, hash_string(task)), (uint64_t)length), (uint64_t)index);
  if (depth >= 0) sd = mix_seed(sd, (uint64_t)std::llround(depth * 1000));
  Rng r(sd);

  if (info.metric == Metric::Perplexity) {  // a stretch of Austen, exactly `length` tokens, no template
    const Corpus& c = austen_corpus();
    const size_t s0 = r.below(c.sentences.size());
    for (int64_t w = length;; w *= 2) {
      std::string text;
      for (const std::string& u : essay_units(s0, w)) text += (text.empty() ? "" : " ") + u;
      s.tokens = env.tok->encode(text, /*add_bos=*/true);
      if ((int64_t)s.tokens.size() >= length) {
        s.tokens.resize(length);
        s.text = text;
        break;
      }
      if (w > c.total_words) throw Error("the Austen corpus is too short for length " + std::to_string(length));
    }
    s.context_end = s.text.size();
    return s;
  }

  Builder b;
  int64_t w_max = std::numeric_limits<int32_t>::max();
  if (task == "vt")
    b = vt_builder(r, s.answers);
  else if (task == "cwe")
    b = cwe_builder(r, length, s.answers), w_max = std::min<int64_t>(length, word_list().size() - 40);
  else if (task == "fwe")
    b = fwe_builder(r, length, s.answers);
  else
    b = niah_builder(task, r, depth, s.answers, s.depth);
  if (task.rfind("niah_", 0) == 0 && niah_spec(task).filler == Filler::Essay) w_max = austen_corpus().total_words;
  fit(b, length - s.max_new, w_max, env, s);
  return s;
}

}  // namespace shadowkv::eval
