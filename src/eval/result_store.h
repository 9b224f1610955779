// results.jsonl: one JSON object per finished (task, length, policy, sample) cell, appended and flushed as
// each finishes, so an interrupted run resumes by skipping the cells already in the file.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace shadowkv::eval {

class ResultStore {
 public:
  // Loads path if it exists; a line that does not parse (e.g. cut short by a crash) is dropped and counted.
  explicit ResultStore(const std::string& path);

  static std::string key(const std::string& task, int64_t length, const std::string& policy, int sample);
  bool done(const std::string& task, int64_t length, const std::string& policy, int sample) const;
  // Writes one line (the record must have task, length, policy and sample) and flushes it to disk.
  void append(const nlohmann::json& record);

  const std::vector<nlohmann::json>& records() const { return records_; }
  int bad_lines() const { return bad_lines_; }

 private:
  std::string path_;
  std::vector<nlohmann::json> records_;
  std::set<std::string> done_;
  int bad_lines_ = 0;
};

}  // namespace shadowkv::eval
