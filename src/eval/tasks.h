// RULER-style synthetic long-context tasks, generated offline at run time from a seed and fitted to a target
// length with the evaluated model's own tokenizer (see docs/eval-tasks.md in shared/ for the upstream facts).
// Length convention (RULER's): prompt tokens + the task's output budget <= the target length, as close as
// the filler's granularity allows (a word for noise/essay filler, a line or list entry otherwise).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace shadowkv {
class Tokenizer;
}

namespace shadowkv::eval {

enum class Metric { MatchAll, MatchPart, Perplexity };
const char* metric_name(Metric m);

struct TaskInfo {
  std::string name;
  int output_budget = 0;  // RULER's max new tokens for the task (0 for perplexity)
  Metric metric = Metric::MatchAll;
  bool has_depth = false;  // the sample's needle depth is meaningful (heatmaps)
};

// Every task the generator knows, core suite first.
const std::vector<TaskInfo>& all_tasks();
// Throws Error naming the known tasks if name is unknown.
const TaskInfo& task_info(const std::string& name);

struct TaskEnv {
  const Tokenizer* tok = nullptr;
  bool chat = false;  // wrap in the model's chat template (instruction-tuned models)
  int max_new = 0;    // > 0: overrides the task's output budget (fitting and decoding)
};

struct Sample {
  std::string task;
  int64_t length = 0;  // target context length
  int index = 0;
  std::string text;  // exactly what was encoded: (chat-wrapped) template + answer prefix
  std::vector<int32_t> tokens;
  std::vector<std::string> answers;
  int max_new = 0;  // decode budget
  Metric metric = Metric::MatchAll;
  double depth = -1;                          // percent depth of the (queried) needle, -1 if none
  size_t context_begin = 0, context_end = 0;  // byte range of the haystack in text
  std::vector<size_t> needle_offsets;         // byte offsets of the needle sentences in text (queried first)
};

// Builds sample `index` of task at `length` tokens. depth >= 0 places the (queried) needle at that percent of
// the haystack; depth < 0 draws depths as RULER does. Deterministic in (seed, task, length, index, depth).
Sample make_sample(const std::string& task, int64_t length, uint64_t seed, int index, double depth, const TaskEnv& env);

}  // namespace shadowkv::eval
