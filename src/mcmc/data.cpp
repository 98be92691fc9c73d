// CSV data sets for the regression / classification models (see sieve/mcmc/data.h).
#include "sieve/mcmc/data.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "sieve/core/error.h"

namespace sieve::mcmc {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Splits one CSV record; fields may be double-quoted (with "" for a quote inside).
std::vector<std::string> split_record(std::string_view line, std::string_view source,
                                      std::size_t line_no) {
  std::vector<std::string> fields;
  std::size_t i = 0;
  while (true) {
    std::string field;
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i < line.size() && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        field += line[i++];
      }
      SIEVE_CHECK(closed, "{} line {}: unterminated quoted field", source, line_no);
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
      SIEVE_CHECK(i == line.size() || line[i] == ',',
                  "{} line {}: unexpected text after a quoted field", source, line_no);
    } else {
      const std::size_t end = std::min(line.find(',', i), line.size());
      field = std::string(trim(line.substr(i, end - i)));
      i = end;
    }
    fields.push_back(std::move(field));
    if (i >= line.size()) break;
    ++i;                     // the comma
    if (i == line.size()) {  // a trailing comma means one more (empty) field
      fields.emplace_back();
      break;
    }
  }
  return fields;
}

// Parses a finite double occupying the whole field.
double parse_number(const std::string& field, std::string_view source, std::size_t line_no,
                    const std::string& column) {
  std::string_view s = field;
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  const bool whole = ec == std::errc() && ptr == s.data() + s.size() && !s.empty();
  if (!whole) {
    const bool missing = field.empty() || field == "NA" || field == "NaN" || field == "nan" ||
                         field == "?" || field == "null";
    SIEVE_CHECK(!missing, "{} line {}, column '{}': missing value '{}'", source, line_no, column,
                field);
    SIEVE_FAIL("{} line {}, column '{}': '{}' is not a number", source, line_no, column, field);
  }
  SIEVE_CHECK(!std::isnan(v), "{} line {}, column '{}': missing value '{}'", source, line_no,
              column, field);
  SIEVE_CHECK(std::isfinite(v), "{} line {}, column '{}': non-finite value '{}'", source, line_no,
              column, field);
  return v;
}

}  // namespace

Dataset parse_csv(std::string_view text, const CsvOptions& options, std::string_view source) {
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // BOM

  // Records with their 1-based line numbers; blank lines are skipped.
  std::vector<std::pair<std::size_t, std::string_view>> lines;
  std::size_t line_no = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    ++line_no;
    if (!trim(line).empty()) lines.emplace_back(line_no, line);
    pos = end + 1;
  }
  SIEVE_CHECK(!lines.empty(), "{} is empty (expected a header row and data rows)", source);

  const auto header = split_record(lines[0].second, source, lines[0].first);
  std::set<std::string> seen;
  for (const auto& h : header) {
    SIEVE_CHECK(!h.empty(), "{} line {}: empty column name in the header", source, lines[0].first);
    SIEVE_CHECK(seen.insert(h).second, "{} line {}: duplicate column name '{}'", source,
                lines[0].first, h);
  }
  const auto it = std::find(header.begin(), header.end(), options.response);
  if (it == header.end()) {
    std::string cols;
    for (const auto& h : header) cols += (cols.empty() ? "" : ", ") + h;
    SIEVE_FAIL("{} has no response column '{}' (columns: {})", source, options.response, cols);
  }
  const auto y_col = std::size_t(it - header.begin());
  SIEVE_CHECK(lines.size() > 1, "{} has a header but no data rows", source);
  SIEVE_CHECK(!(options.add_intercept && seen.count("intercept")),
              "{}: column name 'intercept' is reserved for the added intercept column", source);

  const std::size_t n = lines.size() - 1, ncov = header.size() - 1;
  const std::size_t p = ncov + (options.add_intercept ? 1 : 0);
  SIEVE_CHECK(p > 0, "{} has no covariate columns and no intercept", source);

  Dataset d;
  d.source = std::string(source);
  d.X.resize(Eigen::Index(n), Eigen::Index(p));
  d.y.resize(Eigen::Index(n));
  if (options.add_intercept) d.names.push_back("intercept");
  for (std::size_t j = 0; j < header.size(); ++j)
    if (j != y_col) d.names.push_back(header[j]);

  const std::size_t off = options.add_intercept ? 1 : 0;
  for (std::size_t r = 0; r < n; ++r) {
    const auto [ln, line] = lines[r + 1];
    const auto fields = split_record(line, source, ln);
    SIEVE_CHECK(fields.size() == header.size(),
                "{} line {}: {} fields, expected {} (as in the header)", source, ln, fields.size(),
                header.size());
    const auto row = Eigen::Index(r);
    if (options.add_intercept) d.X(row, 0) = 1.0;
    std::size_t k = off;
    for (std::size_t j = 0; j < fields.size(); ++j) {
      const double v = parse_number(fields[j], source, ln, header[j]);
      if (j == y_col) {
        SIEVE_CHECK(!options.binary_response || v == 0.0 || v == 1.0,
                    "{} line {}: response '{}' must be 0 or 1, got '{}'", source, ln,
                    options.response, fields[j]);
        d.y(row) = v;
      } else {
        d.X(row, Eigen::Index(k++)) = v;
      }
    }
  }

  d.center = Eigen::VectorXd::Zero(Eigen::Index(p));
  d.scale = Eigen::VectorXd::Ones(Eigen::Index(p));
  if (options.standardize) {
    SIEVE_CHECK(n >= 2 || ncov == 0, "{}: standardising needs at least 2 rows, got {}", source, n);
    for (std::size_t j = off; j < p; ++j) {
      auto col = d.X.col(Eigen::Index(j));
      const double mean = col.mean();
      const double sd = std::sqrt((col.array() - mean).square().sum() / double(n - 1));
      SIEVE_CHECK(sd > 0,
                  "{}: column '{}' is constant and cannot be standardised (drop it, or "
                  "turn standardisation off)",
                  source, d.names[j]);
      col = (col.array() - mean) / sd;
      d.center(Eigen::Index(j)) = mean;
      d.scale(Eigen::Index(j)) = sd;
    }
  }
  return d;
}

Dataset load_csv(const std::string& path, const CsvOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  SIEVE_CHECK(fs::exists(path, ec), "data file '{}' does not exist", path);
  SIEVE_CHECK(!fs::is_directory(path, ec), "data file '{}' is a directory", path);
  std::ifstream f(path, std::ios::binary);
  SIEVE_CHECK(f.good(), "cannot open data file '{}'", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  SIEVE_CHECK(!f.bad(), "cannot read data file '{}'", path);
  return parse_csv(ss.str(), options, path);
}

std::string bundled_data_dir() {
  if (const char* env = std::getenv("SIEVE_DATA_DIR"); env && *env) return env;
  // Absolute <source root>/data/mcmc, set by src/mcmc/CMakeLists.txt. Not derived from __FILE__:
  // ccache's CCACHE_BASEDIR turns source paths relative, which made __FILE__ "../src/..." and the
  // lookup depend on the working directory.
  return SIEVE_BUNDLED_DATA_DIR;
}

std::vector<std::string> bundled_dataset_names() {
  namespace fs = std::filesystem;
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(bundled_data_dir(), ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".csv") names.push_back(it->path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string resolve_dataset(const std::string& name_or_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(name_or_path, ec)) return name_or_path;
  const bool bare = name_or_path.find('/') == std::string::npos && !name_or_path.empty();
  if (bare) {
    fs::path p = fs::path(bundled_data_dir()) / name_or_path;
    if (p.extension() != ".csv") p += ".csv";
    if (fs::exists(p, ec)) return p.string();
  }
  std::string list;
  for (const auto& n : bundled_dataset_names()) list += (list.empty() ? "" : ", ") + n;
  SIEVE_FAIL("data file '{}' not found (bundled data sets: {})", name_or_path,
             list.empty() ? "none found in " + bundled_data_dir() : list);
}

}  // namespace sieve::mcmc
