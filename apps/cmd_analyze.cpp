// `shadowkv analyze-keys`: prefill a text and report the singular-value spectrum of each global layer's pre-RoPE
// and post-RoPE keys (how much rank ShadowKV's low-rank key factorisation needs on this model).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "kv/shadowkv/key_spectrum.h"
#include "model/model.h"
#include "runtime/scheduler.h"
#include "util/error.h"

namespace shadowkv::cli {

void register_analyze(CLI::App& app);  // declared here until commands.h lists it

namespace {

// Behaves exactly like the wrapped cache and keeps a copy of every key the global layers (window 0) receive.
class KeyRecorder : public KvCache {
 public:
  KeyRecorder(const KvGeometry& geometry, std::unique_ptr<KvCache> inner) : geom_(geometry), inner_(std::move(inner)) {
    pre_.resize(geom_.layers.size());
    post_.resize(geom_.layers.size());
  }

  void attend(int layer, int64_t pos0, int n, const float* q, const float* k_pre, const float* k, const float* v,
              float* out) override {
    const LayerGeometry& lg = geom_.layers.at(layer);
    if (lg.window == 0) {
      const size_t w = (size_t)lg.n_kv_head * lg.head_dim;
      pre_[layer].insert(pre_[layer].end(), k_pre, k_pre + n * w);
      post_[layer].insert(post_[layer].end(), k, k + n * w);
    }
    inner_->attend(layer, pos0, n, q, k_pre, k, v, out);
  }
  void end_prefill() override { inner_->end_prefill(); }
  int64_t n_tokens() const override { return inner_->n_tokens(); }
  KvMemory memory() const override { return inner_->memory(); }
  std::unique_ptr<KvCache> clone() const override { throw Error("KeyRecorder cannot be cloned"); }
  const char* policy() const override { return "key-recorder"; }

  const std::vector<float>& pre_rope(int layer) const { return pre_[layer]; }
  const std::vector<float>& post_rope(int layer) const { return post_[layer]; }

 private:
  KvGeometry geom_;
  std::unique_ptr<KvCache> inner_;
  std::vector<std::vector<float>> pre_, post_;  // per layer, [tokens][n_kv*head_dim]
};

constexpr double kFractions[] = {0.90, 0.95, 0.99, 0.999};
constexpr int kRanks[] = {8, 16, 24, 32, 40, 48, 64, 96, 128, 160, 192, 256};

nlohmann::json spectrum_json(const KeySpectrum& s) {
  nlohmann::json rank_for = nlohmann::json::object(), energy = nlohmann::json::object();
  for (double f : kFractions) rank_for[std::to_string(f).substr(0, 5)] = s.rank_for_energy(f);
  for (int r : kRanks)
    if (r <= (int)s.sigma.size()) energy[std::to_string(r)] = s.energy_at(r);
  return {{"rank_for_energy", rank_for}, {"energy_at_rank", energy}, {"sigma", s.sigma}};
}

void print_spectrum(const char* name, const KeySpectrum& s) {
  std::printf("  %-9s rank for 90%% %3d | 95%% %3d | 99%% %3d | 99.9%% %3d energy;", name, s.rank_for_energy(0.90),
              s.rank_for_energy(0.95), s.rank_for_energy(0.99), s.rank_for_energy(0.999));
  const size_t n = s.sigma.size();
  std::printf(" sigma[0] %.4g, sigma[15] %.4g, sigma[39] %.4g, sigma[%zu] %.4g\n", s.sigma[0],
              s.sigma[std::min<size_t>(15, n - 1)], s.sigma[std::min<size_t>(39, n - 1)], n - 1, s.sigma[n - 1]);
  std::printf("  %-9s energy at rank:", "");
  for (int r : kRanks)
    if (r <= (int)n) std::printf(" %d:%.4f", r, s.energy_at(r));
  std::printf("\n");
}

struct AnalyzeArgs {
  std::string model, file, out;
  int64_t ctx = 4096;
  int chunk = 256, threads = 0;
};

void analyze(const AnalyzeArgs& a) {
  set_threads(a.threads);
  if (a.ctx < 0) throw Error("-c must be >= 0 (0 = the whole file)");
  if (a.chunk <= 0) throw Error("--batch-tokens must be positive");
  auto model = Model::load(resolve_model(a.model));
  std::vector<int32_t> ids = model->tokenizer().encode(read_file(a.file), /*add_bos=*/true);
  if (a.ctx > 0 && (int64_t)ids.size() > a.ctx) ids.resize(a.ctx);
  if (a.ctx > 0 && (int64_t)ids.size() < a.ctx)
    std::fprintf(stderr, "note: %s has only %zu tokens; analysing all of them\n", a.file.c_str(), ids.size());
  const KvGeometry geom = model->kv_geometry((int64_t)ids.size() + 1, a.chunk);
  auto recorder = std::make_unique<KeyRecorder>(geom, make_kv_cache(geom, KvOptions("full")));
  const KeyRecorder& rec = *recorder;
  SequenceRequest req;
  req.cache = std::move(recorder);
  req.feed = ids;
  req.ctx = (int64_t)ids.size() + 1;
  req.prefill_chunk = a.chunk;
  const SequenceResult fed = run_one(*model, std::move(req));  // holds the recorder

  nlohmann::json layers = nlohmann::json::array();
  std::printf("%s: %zu tokens; global layers (window 0), key matrix [tokens x n_kv*head_dim]\n", a.file.c_str(),
              ids.size());
  for (int l = 0; l < (int)geom.layers.size(); ++l) {
    const LayerGeometry& lg = geom.layers[l];
    if (lg.window != 0) continue;
    const int width = lg.n_kv_head * lg.head_dim;
    const KeySpectrum pre = key_spectrum(rec.pre_rope(l).data(), (int64_t)ids.size(), width);
    const KeySpectrum post = key_spectrum(rec.post_rope(l).data(), (int64_t)ids.size(), width);
    std::printf("layer %d (width %d):\n", l, width);
    print_spectrum("pre-RoPE", pre);
    print_spectrum("post-RoPE", post);
    layers.push_back({{"layer", l},
                      {"width", width},
                      {"n_kv_head", lg.n_kv_head},
                      {"head_dim", lg.head_dim},
                      {"pre_rope", spectrum_json(pre)},
                      {"post_rope", spectrum_json(post)}});
  }
  if (layers.empty()) std::printf("(the model has no global attention layers)\n");
  if (!a.out.empty()) {
    std::ofstream out(a.out);
    if (!out) throw Error("cannot write " + a.out);
    out << nlohmann::json{{"model", resolve_model(a.model)},
                          {"file", a.file},
                          {"tokens", ids.size()},
                          {"layers", layers}}
               .dump(1)
        << "\n";
    if (!out) throw Error("write failed: " + a.out);
  }
}

}  // namespace

void register_analyze(CLI::App& app) {
  auto a = std::make_shared<AnalyzeArgs>();
  CLI::App* cmd =
      app.add_subcommand("analyze-keys", "singular-value spectrum of the global layers' pre-/post-RoPE keys");
  add_model_option(cmd, a->model);
  cmd->add_option("-f,--file", a->file, "text to prefill")->required();
  cmd->add_option("-c,--ctx", a->ctx, "tokens of the file to prefill (0 = all)")->capture_default_str();
  cmd->add_option("--out", a->out, "write the spectra as JSON");
  cmd->add_option("--batch-tokens", a->chunk, "tokens per forward pass")->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "threads (0 = all cores)");
  cmd->callback([a] { analyze(*a); });
}

}  // namespace shadowkv::cli
