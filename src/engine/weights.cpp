#include "sieve/engine/weights.h"

#include "sieve/core/error.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <sys/stat.h>

namespace sieve::engine {

namespace {

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

WeightStore::WeightStore(const std::string& dir) {
  const std::string single = dir + "/model.safetensors";
  const std::string index = dir + "/model.safetensors.index.json";
  if (file_exists(index)) {
    std::ifstream in(index, std::ios::binary);
    SIEVE_CHECK(in.good(), "cannot open '{}'", index);
    std::stringstream ss;
    ss << in.rdbuf();
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(ss.str());
    } catch (const nlohmann::json::exception& e) {
      SIEVE_FAIL("{}: invalid JSON ({})", index, e.what());
    }
    SIEVE_CHECK(j.is_object() && j.contains("weight_map") && j.at("weight_map").is_object(),
                "{}: missing the 'weight_map' object", index);
    std::map<std::string, const SafetensorsFile*> by_file;
    for (const auto& [name, file] : j.at("weight_map").items()) {
      SIEVE_CHECK(file.is_string(), "{}: weight_map['{}'] must be a file name", index, name);
      const std::string shard = file.get<std::string>();
      SIEVE_CHECK(shard.find('/') == std::string::npos && shard != ".." && !shard.empty(),
                  "{}: shard name '{}' must be a plain file name", index, shard);
      auto it = by_file.find(shard);
      if (it == by_file.end()) {
        const std::string path = dir + "/" + shard;
        SIEVE_CHECK(file_exists(path), "{}: shard '{}' listed in the index is missing", index,
                    path);
        files_.push_back(std::make_unique<SafetensorsFile>(path));
        it = by_file.emplace(shard, files_.back().get()).first;
      }
      SIEVE_CHECK(it->second->contains(name), "{}: tensor '{}' is listed for '{}' but not in it",
                  index, name, it->second->path());
      where_[name] = it->second;
    }
    SIEVE_CHECK(!files_.empty(), "{}: the weight_map is empty", index);
    return;
  }
  SIEVE_CHECK(file_exists(single),
              "no weights in '{}': expected model.safetensors or model.safetensors.index.json",
              dir);
  files_.push_back(std::make_unique<SafetensorsFile>(single));
  for (const auto& [name, entry] : files_.back()->entries()) where_[name] = files_.back().get();
}

TensorView WeightStore::get(const std::string& name, std::initializer_list<int64_t> shape) const {
  auto it = where_.find(name);
  SIEVE_CHECK(it != where_.end(), "missing tensor '{}' in the model weights ({})", name,
              files_.empty() ? std::string("no files") : files_.front()->path());
  const SafetensorsEntry& e = it->second->at(name);
  const std::vector<int64_t> want(shape);
  SIEVE_CHECK(e.shape == want, "tensor '{}' in '{}' has shape {}, expected {}", name,
              it->second->path(), shape_str(e.shape), shape_str(want));
  SIEVE_CHECK(e.dtype == "F32" || e.dtype == "BF16" || e.dtype == "F16",
              "tensor '{}' in '{}' has dtype {}; the engine reads F32, BF16 or F16", name,
              it->second->path(), e.dtype);
  return it->second->view(name);
}

std::vector<std::string> WeightStore::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& [name, file] : where_) out.push_back(name);
  return out;
}

std::vector<std::string> WeightStore::files() const {
  std::vector<std::string> out;
  for (const auto& f : files_) out.push_back(f->path());
  return out;
}

void WeightStore::prefault() const {
  std::vector<const SafetensorsEntry*> all;
  for (const auto& f : files_) {
    for (const auto& [name, e] : f->entries()) all.push_back(&e);
  }
  unsigned sink = 0;
#pragma omp parallel for schedule(dynamic) reduction(+ : sink)
  for (size_t i = 0; i < all.size(); ++i) {
    const auto* p = static_cast<const volatile unsigned char*>(all[i]->data);
    for (int64_t off = 0; off < all[i]->nbytes; off += 4096) sink += p[off];
  }
  (void)sink;
}

int64_t WeightStore::total_bytes() const {
  int64_t total = 0;
  for (const auto& f : files_) {
    for (const auto& [name, e] : f->entries()) total += e.nbytes;
  }
  return total;
}

}  // namespace sieve::engine
