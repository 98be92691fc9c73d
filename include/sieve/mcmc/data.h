// Loading regression / classification data sets from CSV for the built-in models.
//
// Convention (data/mcmc/*.csv, written by scripts/make_datasets.py): a header row, the response
// in column `y` (0/1 for classification), every other column a numeric covariate. By default an
// intercept column of ones is put first and each covariate is standardised to zero mean and unit
// sample variance (n - 1), as in Girolami & Calderhead (2011) and the GI-MCMC experiments.
// Shapes: X [n, p] with p = (intercept ? 1 : 0) + number of covariates; y [n].
// Every malformed input throws sieve::Error naming the file, line and column.
#pragma once

#include <Eigen/Dense>
#include <string>
#include <string_view>
#include <vector>

namespace sieve::mcmc {

struct CsvOptions {
  std::string response = "y";   ///< name of the response column
  bool add_intercept = true;    ///< put a column of ones first, named "intercept"
  bool standardize = true;      ///< centre and scale every covariate (not the intercept)
  bool binary_response = true;  ///< require y in {0, 1}
};

struct Dataset {
  Eigen::MatrixXd X;               ///< [n, p] design matrix
  Eigen::VectorXd y;               ///< [n] response
  std::vector<std::string> names;  ///< [p] column names of X ("intercept" first when added)
  /// [p] what was subtracted from and divided into each column of X (0 and 1 for the intercept
  /// and when standardize is off): raw = X * scale + center.
  Eigen::VectorXd center, scale;
  std::string source;  ///< file path or label the data came from
  Eigen::Index rows() const { return X.rows(); }
  Eigen::Index cols() const { return X.cols(); }
};

/// Reads a CSV file (comma-separated, optional double quotes around fields, LF or CRLF).
Dataset load_csv(const std::string& path, const CsvOptions& options = {});
/// Parses CSV text; `source` names it in error messages.
Dataset parse_csv(std::string_view text, const CsvOptions& options = {},
                  std::string_view source = "<csv>");

/// Names of the data sets bundled in data/mcmc (e.g. "pima", "ripley"), sorted.
std::vector<std::string> bundled_dataset_names();
/// Folder of the bundled data sets: $SIEVE_DATA_DIR when set, else data/mcmc of the source tree
/// this library was built from.
std::string bundled_data_dir();
/// Resolves a --data argument: an existing file path is returned as is; a bare bundled name such
/// as "pima" maps to <bundled_data_dir()>/pima.csv. Throws listing the bundled names otherwise.
std::string resolve_dataset(const std::string& name_or_path);

}  // namespace sieve::mcmc
