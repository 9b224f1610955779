#include "eval/result_store.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace shadowkv::eval {

ResultStore::ResultStore(const std::string& path) : path_(path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return;
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    try {
      nlohmann::json j = nlohmann::json::parse(line);
      const std::string k = key(j.at("task"), j.at("length"), j.at("policy"), j.at("sample"));
      if (done_.insert(k).second) records_.push_back(std::move(j));
    } catch (const std::exception&) {
      ++bad_lines_;
    }
  }
  // Rewrite without the bad lines so later appends start on a clean line.
  if (bad_lines_ > 0 || (!text.empty() && text.back() != '\n')) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    for (const auto& r : records_) out << r.dump() << '\n';
    if (!out) throw Error("cannot rewrite " + path);
  }
}

std::string ResultStore::key(const std::string& task, int64_t length, const std::string& policy, int sample) {
  return task + "\t" + std::to_string(length) + "\t" + policy + "\t" + std::to_string(sample);
}

bool ResultStore::done(const std::string& task, int64_t length, const std::string& policy, int sample) const {
  return done_.count(key(task, length, policy, sample)) > 0;
}

void ResultStore::append(const nlohmann::json& r) {
  const std::string k = key(r.at("task"), r.at("length"), r.at("policy"), r.at("sample"));
  FILE* f = std::fopen(path_.c_str(), "ab");
  if (!f) throw Error("cannot append to " + path_);
  const std::string line = r.dump() + "\n";
  const bool ok = std::fwrite(line.data(), 1, line.size(), f) == line.size() && std::fflush(f) == 0;
  if (ok) fsync(fileno(f));
  std::fclose(f);
  if (!ok) throw Error("cannot write to " + path_);
  if (done_.insert(k).second) records_.push_back(r);
}

}  // namespace shadowkv::eval
