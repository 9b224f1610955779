#include "runtime/generator.h"

#include <algorithm>

#include "util/error.h"

namespace shadowkv {

std::vector<Generation> Generator::generate(const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o,
                                            const TextCallback& on_text) const {
  SchedulerOptions so;
  so.max_batch = std::max<int>(1, (int)prompts.size());
  so.prefill_chunk = o.prefill_chunk;
  Scheduler sched(model_, so);
  std::vector<SequenceRequest> reqs(prompts.size());
  for (size_t b = 0; b < prompts.size(); ++b) {
    SequenceRequest& r = reqs[b];
    if (prompts[b].empty()) throw Error("the prompt is empty");
    r.feed = prompts[b];
    r.kv = o.kv;
    r.ctx = o.n_ctx;
    r.n_predict = o.n_predict;
    r.sampling = o.sampling;
    r.sampling.seed += b;
    r.stop_at_eos = o.stop_at_eos;
    if (on_text) r.on_text = [&on_text, b](std::string_view t) { on_text((int)b, t); };
  }
  std::vector<Generation> out;
  for (SequenceResult& r : sched.run(std::move(reqs)))
    out.push_back({std::move(r.tokens), std::move(r.text), std::move(r.stop_reason), std::move(r.stats)});
  return out;
}

}  // namespace shadowkv
