// libFuzzer target: the GGUF reader on arbitrary bytes, then everything that reads a file after it opens: the
// `inspect` dump, the tokenizer built from the file's vocabulary (and one encode/decode with it), and the model
// config + weight views that model loading checks. Anything except shadowkv::Error (a one-line user error) is a bug:
// a crash, a sanitizer report, another exception type (std::out_of_range, std::bad_alloc, ...) or a hang.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "io/gguf.h"
#include "io/gguf_dump.h"
#include "model/model_config.h"
#include "model/model_weights.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"
#include "util/error.h"

using namespace shadowkv;

namespace {

// The reader only opens paths (it memory-maps the file), so each input goes into one in-memory file.
int memfd() {
  static const int fd = [] {
    const int f = memfd_create("fuzz_gguf", 0);
    if (f < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    return f;
  }();
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = memfd();
  if (ftruncate(fd, 0) != 0 || ftruncate(fd, static_cast<off_t>(size)) != 0) std::abort();
  if (size > 0 && pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) std::abort();
  const std::string path = "/proc/self/fd/" + std::to_string(fd);

  std::unique_ptr<GgufFile> file;
  try {
    file = GgufFile::open(path);
  } catch (const Error&) {
    return 0;
  }
  // What `inspect` prints, and every typed getter on every key.
  const std::string text = describe_gguf(*file);
  if (text.empty() || text.back() != '\n') std::abort();
  for (const auto& [key, value] : file->metadata()) {
    if (file->find(key) == nullptr) std::abort();
    try {
      (void)file->get_string(key);
    } catch (const Error&) {
    }
    try {
      (void)file->get_int(key);
    } catch (const Error&) {
    }
    try {
      (void)file->get_float(key);
    } catch (const Error&) {
    }
    try {
      (void)file->get_bool(key);
    } catch (const Error&) {
    }
  }
  for (const auto& t : file->tensors()) {
    if (file->find_tensor(t.name) == nullptr) std::abort();
    if (t.nbytes > 0 && (t.offset > file->file_size() || t.nbytes > file->file_size() - file->data_offset() ||
                         file->data_offset() + t.offset + t.nbytes > file->file_size()))
      std::abort();  // validated data must lie inside the file
    if (t.nbytes > 0) {
      // Touch the first and last byte: ASan/SIGBUS if the view points outside the mapping.
      volatile uint8_t a = t.data[0], b = t.data[t.nbytes - 1];
      (void)a;
      (void)b;
    }
  }
  // The tokenizer, as model loading builds it.
  try {
    auto tok = Tokenizer::from_gguf(*file);
    if (tok->n_vocab() > 0 && tok->n_vocab() < 100000) {
      const auto ids = tok->encode("Hello, world! <|im_start|> caf\xC3\xA9 \xFF", true, true);
      for (int32_t id : ids)
        if (id < 0 || id >= tok->n_vocab()) std::abort();
      (void)tok->decode(ids);
    }
  } catch (const Error&) {
  }
  // Config and weight views, as model loading checks them.
  try {
    const ModelConfig cfg = read_model_config(*file);
    (void)load_model_weights(*file, cfg);
  } catch (const Error&) {
  }
  return 0;
}
