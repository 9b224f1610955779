#include "model/model.h"

#include "util/error.h"

namespace shadowkv {

std::unique_ptr<Model> Model::load(const std::string& path) {
  auto m = std::unique_ptr<Model>(new Model());
  m->file_ = GgufFile::open(path);
  m->config_ = read_model_config(*m->file_);
  m->tokenizer_ = Tokenizer::from_gguf(*m->file_);
  if (m->config_.n_vocab == 0) m->config_.n_vocab = m->tokenizer_->n_vocab();
  m->weights_ = load_model_weights(*m->file_, m->config_);
  m->layer_geometry_ = m->kv_geometry(0, 0);
  return m;
}

KvGeometry Model::kv_geometry(int64_t max_ctx, int max_batch_tokens) const {
  return config_.kv_geometry(max_ctx, max_batch_tokens, weights_.rope_freqs);
}

}  // namespace shadowkv
