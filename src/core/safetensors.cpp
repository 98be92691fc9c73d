// safetensors reading (mmap, read-only, fully validated) and atomic writing.
//
// Validation follows the format description at huggingface.co/docs/safetensors: the header is a
// JSON object; every tensor entry has a known dtype, a shape of non-negative integers and
// data_offsets [begin, end] relative to the data section, with end - begin = numel x itemsize.
// We reject overlapping byte ranges; unlike the reference reader we tolerate holes between
// tensors (they are harmless and some writers align tensors).
#include "sieve/core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

namespace sieve {

namespace {

// The reference implementation refuses headers above 100 MB; so do we (it also bounds the
// allocation a corrupt length field could cause).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Item size of every dtype name the format defines; 0 = unknown.
int64_t itemsize_of(const std::string& dtype) {
  static const std::pair<const char*, int64_t> kTable[] = {
      {"F64", 8},  {"F32", 4},  {"F16", 2},     {"BF16", 2},    {"I64", 8}, {"I32", 4},
      {"I16", 2},  {"I8", 1},   {"U64", 8},     {"U32", 4},     {"U16", 2}, {"U8", 1},
      {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  for (const auto& [name, size] : kTable)
    if (dtype == name) return size;
  return 0;
}

const char* safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kBF16: return "BF16";
    default: return "F16";
  }
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  SIEVE_CHECK(fd >= 0, "cannot open safetensors file '{}': {}", path, errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    SIEVE_FAIL("safetensors file '{}' is not a regular file", path);
  }
  size_ = size_t(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    SIEVE_FAIL("safetensors file '{}' is truncated: {} bytes, shorter than the 8-byte header length",
               path, size_);
  }
  map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    SIEVE_FAIL("cannot map safetensors file '{}': {}", path, std::strerror(map_errno));
  }
  try {
    const auto* bytes = static_cast<const unsigned char*>(map_);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];  // little endian
    SIEVE_CHECK(header_len <= kMaxHeaderBytes,
                "safetensors file '{}': header length {} exceeds the {} byte limit (corrupt file?)",
                path, header_len, kMaxHeaderBytes);
    SIEVE_CHECK(header_len <= size_ - 8,
                "safetensors file '{}' is truncated: header length {} but only {} bytes follow", path,
                header_len, size_ - 8);
    const char* hbegin = reinterpret_cast<const char*>(bytes + 8);
    const nlohmann::json header =
        nlohmann::json::parse(hbegin, hbegin + header_len, nullptr, /*allow_exceptions=*/false);
    SIEVE_CHECK(!header.is_discarded(), "safetensors file '{}': header is not valid JSON", path);
    SIEVE_CHECK(header.is_object(), "safetensors file '{}': header is not a JSON object", path);

    const unsigned char* data = bytes + 8 + header_len;
    const uint64_t data_size = size_ - 8 - header_len;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (const auto& [name, e] : header.items()) {
      if (name == "__metadata__") {
        SIEVE_CHECK(e.is_object(), "safetensors file '{}': __metadata__ is not an object", path);
        for (const auto& [k, v] : e.items()) {
          SIEVE_CHECK(v.is_string(), "safetensors file '{}': __metadata__ value of '{}' is not a string",
                      path, k);
          metadata_[k] = v.get<std::string>();
        }
        continue;
      }
      SIEVE_CHECK(e.is_object(), "safetensors file '{}': entry '{}' is not an object", path, name);
      const auto dt = e.find("dtype");
      const auto sh = e.find("shape");
      const auto off = e.find("data_offsets");
      SIEVE_CHECK(dt != e.end() && dt->is_string(), "safetensors file '{}': tensor '{}' has no dtype string",
                  path, name);
      SIEVE_CHECK(sh != e.end() && sh->is_array(), "safetensors file '{}': tensor '{}' has no shape array",
                  path, name);
      SIEVE_CHECK(off != e.end() && off->is_array() && off->size() == 2,
                  "safetensors file '{}': tensor '{}' needs data_offsets [begin, end]", path, name);
      SafetensorsEntry entry;
      entry.name = name;
      entry.dtype = dt->get<std::string>();
      const int64_t itemsize = itemsize_of(entry.dtype);
      SIEVE_CHECK(itemsize > 0, "safetensors file '{}': tensor '{}' has unknown dtype '{}'", path, name,
                  entry.dtype);
      uint64_t numel = 1;
      bool overflow = false, has_zero = false;
      for (const auto& d : *sh) {
        SIEVE_CHECK(d.is_number_unsigned(),
                    "safetensors file '{}': tensor '{}' shape has a non-integer or negative entry {}",
                    path, name, d.dump());
        const uint64_t dim = d.get<uint64_t>();
        SIEVE_CHECK(dim <= uint64_t(std::numeric_limits<int64_t>::max()),
                    "safetensors file '{}': tensor '{}' shape {} is out of range", path, name, sh->dump());
        has_zero |= dim == 0;
        overflow |= __builtin_mul_overflow(numel, dim, &numel);
        entry.shape.push_back(int64_t(dim));
      }
      if (has_zero) numel = 0;
      SIEVE_CHECK(!overflow || has_zero, "safetensors file '{}': tensor '{}' shape {} is larger than the file",
                  path, name, sh->dump());
      SIEVE_CHECK((*off)[0].is_number_unsigned() && (*off)[1].is_number_unsigned(),
                  "safetensors file '{}': tensor '{}' data_offsets {} are not non-negative integers",
                  path, name, off->dump());
      const uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
      SIEVE_CHECK(begin <= end && end <= data_size,
                  "safetensors file '{}': tensor '{}' data_offsets [{}, {}] lie outside the data "
                  "section of {} bytes (truncated file?)",
                  path, name, begin, end, data_size);
      SIEVE_CHECK(numel <= data_size / uint64_t(itemsize) && end - begin == numel * uint64_t(itemsize),
                  "safetensors file '{}': tensor '{}' has {} bytes but shape {} x {} needs {}", path,
                  name, end - begin, sh->dump(), entry.dtype, numel * uint64_t(itemsize));
      entry.data = data + begin;
      entry.nbytes = int64_t(end - begin);
      if (end > begin) ranges.emplace_back(begin, end);
      entries_.emplace(name, std::move(entry));
    }
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 1; i < ranges.size(); ++i)
      SIEVE_CHECK(ranges[i].first >= ranges[i - 1].second,
                  "safetensors file '{}': tensor byte ranges [{}, {}) and [{}, {}) overlap", path,
                  ranges[i - 1].first, ranges[i - 1].second, ranges[i].first, ranges[i].second);
  } catch (...) {
    ::munmap(map_, size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
}

const SafetensorsEntry& SafetensorsFile::at(const std::string& name) const {
  const auto it = entries_.find(name);
  if (it == entries_.end()) {
    std::string known;
    for (const auto& [k, e] : entries_) known += (known.empty() ? "" : ", ") + k;
    SIEVE_FAIL("safetensors file '{}' has no tensor '{}' (it has: {})", path_, name,
               known.empty() ? "none" : known);
  }
  return it->second;
}

TensorView SafetensorsFile::view(const std::string& name) const {
  const SafetensorsEntry& e = at(name);
  DType t;
  if (e.dtype == "F32") t = DType::kF32;
  else if (e.dtype == "BF16") t = DType::kBF16;
  else if (e.dtype == "F16") t = DType::kF16;
  else SIEVE_FAIL("safetensors file '{}': tensor '{}' has dtype {}, expected F32, BF16 or F16", path_,
                  name, e.dtype);
  SIEVE_CHECK(!e.shape.empty() && e.shape.size() <= size_t(kMaxDims),
              "safetensors file '{}': tensor '{}' has rank {}, expected 1 to {}", path_, name,
              e.shape.size(), kMaxDims);
  SIEVE_CHECK(reinterpret_cast<uintptr_t>(e.data) % uintptr_t(dtype_size(t)) == 0,
              "safetensors file '{}': tensor '{}' data is not aligned to its {}-byte element size",
              path_, name, dtype_size(t));
  TensorView v;
  v.data = const_cast<void*>(e.data);  // the mapping is PROT_READ: writing through it faults
  v.dtype = t;
  v.ndim = int(e.shape.size());
  int64_t stride = 1;
  for (int d = v.ndim - 1; d >= 0; --d) {
    v.shape[d] = e.shape[d];
    v.strides[d] = stride;
    stride *= e.shape[d];
  }
  return v;
}

namespace {

// Appends the elements of `t` in row-major order as raw bytes (no conversion).
void append_contiguous(const TensorView& t, std::string& out) {
  const int64_t isz = dtype_size(t.dtype);
  if (t.numel() == 0) return;
  if (t.is_contiguous()) {
    out.append(static_cast<const char*>(t.data), size_t(t.numel() * isz));
    return;
  }
  std::array<int64_t, kMaxDims> s{1, 1, 1, 1}, st{0, 0, 0, 0};
  for (int i = 0; i < t.ndim; ++i) {
    s[kMaxDims - t.ndim + i] = t.shape[i];
    st[kMaxDims - t.ndim + i] = t.strides[i];
  }
  const auto* base = static_cast<const char*>(t.data);
  for (int64_t a = 0; a < s[0]; ++a)
    for (int64_t b = 0; b < s[1]; ++b)
      for (int64_t c = 0; c < s[2]; ++c) {
        const char* row = base + (a * st[0] + b * st[1] + c * st[2]) * isz;
        if (st[3] == 1) {
          out.append(row, size_t(s[3] * isz));
        } else {
          for (int64_t d = 0; d < s[3]; ++d) out.append(row + d * st[3] * isz, size_t(isz));
        }
      }
}

void write_all(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    SIEVE_CHECK(w > 0, "cannot write safetensors file '{}': {}", path, errno_text());
    p += w;
    n -= size_t(w);
  }
}

}  // namespace

void save_safetensors(const std::string& path, const std::map<std::string, TensorView>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Larger elements first so that every tensor stays aligned to its element size in the file.
  std::vector<std::pair<std::string, TensorView>> order(tensors.begin(), tensors.end());
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return dtype_size(a.second.dtype) > dtype_size(b.second.dtype);
  });
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : order) {
    SIEVE_CHECK(name != "__metadata__", "'__metadata__' is reserved and cannot name a tensor");
    SIEVE_CHECK(t.ndim >= 1 && t.ndim <= kMaxDims, "tensor '{}' has rank {}, expected 1 to {}", name,
                t.ndim, kMaxDims);
    SIEVE_CHECK(t.data != nullptr || t.numel() == 0, "tensor '{}' has no data", name);
    const uint64_t nbytes = uint64_t(t.numel() * dtype_size(t.dtype));
    header[name] = {{"dtype", safetensors_dtype_name(t.dtype)},
                    {"shape", std::vector<int64_t>(t.shape.begin(), t.shape.begin() + t.ndim)},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string blob = header.dump();
  blob.append((8 - blob.size() % 8) % 8, ' ');  // data section starts 8-byte aligned
  const uint64_t header_len = blob.size();
  std::string file;
  file.reserve(size_t(8 + header_len + offset));
  for (int i = 0; i < 8; ++i) file.push_back(char((header_len >> (8 * i)) & 0xff));
  file += blob;
  for (const auto& [name, t] : order) append_contiguous(t, file);

  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  SIEVE_CHECK(fd >= 0, "cannot create '{}': {}", tmp, errno_text());
  try {
    write_all(fd, file.data(), file.size(), tmp);
    SIEVE_CHECK(::fsync(fd) == 0, "cannot sync '{}': {}", tmp, errno_text());
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  const bool closed = ::close(fd) == 0;
  if (!closed || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = errno_text();
    ::unlink(tmp.c_str());
    SIEVE_FAIL("cannot write safetensors file '{}': {}", path, why);
  }
  // Make the rename durable: sync the directory entry (best effort).
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace sieve
