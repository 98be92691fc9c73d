// CSV data loader: hand-computable standardisation, the bundled data sets (shapes and counts
// from data/mcmc/PROVENANCE.md, written by the R/scikit-learn conversion script), and one clear
// error per kind of malformed input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "sieve/core/error.h"
#include "sieve/mcmc/data.h"

using namespace sieve;
using namespace sieve::mcmc;

namespace {

// Runs parse_csv and returns the error message (empty when it succeeds).
std::string error_of(const std::string& text, const CsvOptions& o = {}) {
  try {
    parse_csv(text, o, "t.csv");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(McmcData, StandardisesAndAddsIntercept) {
  const auto d = parse_csv("a,y,b\n1,0,10\n2,1,10.5\n3,1,12.5\n");
  ASSERT_EQ(d.rows(), 3);
  ASSERT_EQ(d.cols(), 3);
  EXPECT_EQ(d.names, (std::vector<std::string>{"intercept", "a", "b"}));
  // a = 1,2,3: mean 2, sd 1 -> -1,0,1. b = 10,10.5,12.5: mean 11, sd sqrt(1.75).
  const double sb = std::sqrt(1.75);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(d.X(i, 0), 1.0);
  EXPECT_NEAR(d.X(0, 1), -1.0, 1e-15);
  EXPECT_NEAR(d.X(1, 1), 0.0, 1e-15);
  EXPECT_NEAR(d.X(2, 1), 1.0, 1e-15);
  EXPECT_NEAR(d.X(0, 2), -1.0 / sb, 1e-15);
  EXPECT_NEAR(d.X(2, 2), 1.5 / sb, 1e-15);
  EXPECT_EQ(d.y(0), 0.0);
  EXPECT_EQ(d.y(2), 1.0);
  EXPECT_NEAR(d.center(2), 11.0, 1e-15);
  EXPECT_NEAR(d.scale(2), sb, 1e-15);
  EXPECT_EQ(d.center(0), 0.0);
  EXPECT_EQ(d.scale(0), 1.0);
}

TEST(McmcData, OptionsKeepRawColumns) {
  CsvOptions o;
  o.add_intercept = false;
  o.standardize = false;
  o.binary_response = false;
  o.response = "target";
  const auto d = parse_csv("\xEF\xBB\xBF\"x1\",\"target\"\r\n+1.5,2.25\r\n\r\n-3e2,7\r\n", o);
  ASSERT_EQ(d.rows(), 2);
  ASSERT_EQ(d.cols(), 1);
  EXPECT_EQ(d.names, (std::vector<std::string>{"x1"}));
  EXPECT_EQ(d.X(0, 0), 1.5);
  EXPECT_EQ(d.X(1, 0), -300.0);
  EXPECT_EQ(d.y(1), 7.0);
}

TEST(McmcData, BundledDataSetsLoad) {
  struct Expect {
    const char* name;
    int rows, covariates, positives;
  };
  // From data/mcmc/PROVENANCE.md.
  const Expect sets[] = {{"pima", 532, 7, 177},        {"ripley", 250, 2, 125},
                         {"biopsy", 683, 9, 239},      {"sonar", 208, 60, 111},
                         {"ionosphere", 351, 33, 225}, {"breast_cancer", 569, 30, 212}};
  const auto names = bundled_dataset_names();
  EXPECT_GE(names.size(), 6u);
  for (const auto& e : sets) {
    SCOPED_TRACE(e.name);
    const auto d = load_csv(resolve_dataset(e.name));
    ASSERT_EQ(d.rows(), e.rows);
    ASSERT_EQ(d.cols(), e.covariates + 1);
    EXPECT_EQ(int(d.y.sum()), e.positives);
    for (Eigen::Index j = 1; j < d.cols(); ++j) {
      EXPECT_NEAR(d.X.col(j).mean(), 0.0, 1e-12);
      EXPECT_NEAR(d.X.col(j).squaredNorm() / double(d.rows() - 1), 1.0, 1e-12);
    }
  }
  // First Pima row is "0,5,86,68,28,30.2,0.364,24": un-standardising gives it back.
  const auto pima = load_csv(resolve_dataset("pima"));
  const double raw[] = {5, 86, 68, 28, 30.2, 0.364, 24};
  for (int j = 0; j < 7; ++j)
    EXPECT_NEAR(pima.X(0, j + 1) * pima.scale(j + 1) + pima.center(j + 1), raw[j], 1e-12);
  EXPECT_EQ(pima.names[1], "npreg");
}

TEST(McmcData, ResolveDataset) {
  EXPECT_TRUE(std::filesystem::exists(resolve_dataset("pima")));
  EXPECT_EQ(resolve_dataset("ripley"), resolve_dataset("ripley.csv"));
  try {
    resolve_dataset("no_such_set");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not found"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("pima"), std::string::npos);  // lists bundled names
  }
}

TEST(McmcData, ClearErrors) {
  auto has = [](const std::string& msg, const std::string& part) {
    return msg.find(part) != std::string::npos;
  };
  EXPECT_TRUE(has(error_of(""), "empty"));
  EXPECT_TRUE(has(error_of("\n \n"), "empty"));
  EXPECT_TRUE(has(error_of("y,a\n"), "no data rows"));
  EXPECT_TRUE(has(error_of("a,b\n1,2\n"), "no response column 'y'"));
  EXPECT_TRUE(has(error_of("y,a\n1,2\n0,abc\n"), "line 3, column 'a': 'abc' is not a number"));
  EXPECT_TRUE(has(error_of("y,a\n1,2\n0,1.5x\n"), "'1.5x' is not a number"));
  EXPECT_TRUE(has(error_of("y,a\n1,2\n0\n"), "line 3: 1 fields, expected 2"));
  EXPECT_TRUE(has(error_of("y,a\n1,2\n0,1,5\n"), "line 3: 3 fields, expected 2"));
  EXPECT_TRUE(has(error_of("y,a\n1,NaN\n0,1\n"), "line 2, column 'a': missing value"));
  EXPECT_TRUE(has(error_of("y,a\n1,NA\n0,1\n"), "missing value"));
  EXPECT_TRUE(has(error_of("y,a\n1,\n0,1\n"), "missing value"));
  EXPECT_TRUE(has(error_of("y,a\n1,inf\n0,1\n"), "non-finite"));
  EXPECT_TRUE(has(error_of("y,a\n1,1e999\n0,1\n"), "line 2, column 'a'"));
  EXPECT_TRUE(has(error_of("y,a\n2,1\n0,2\n"), "response 'y' must be 0 or 1"));
  EXPECT_TRUE(has(error_of("y,a,a\n1,1,2\n0,2,3\n"), "duplicate column name 'a'"));
  EXPECT_TRUE(has(error_of("y,a,b\n1,1,5\n0,2,5\n"), "column 'b' is constant"));
  EXPECT_TRUE(has(error_of("y,\"a\n1,1\n"), "unterminated quoted field"));
  EXPECT_TRUE(has(error_of("y,intercept\n1,1\n0,2\n"), "reserved"));
  // Blank lines do not shift the reported line numbers.
  EXPECT_TRUE(has(error_of("y,a\n\n1,2\n\n0,zz\n"), "line 5"));
  // The source name is in every message.
  EXPECT_TRUE(has(error_of("a\n1\n"), "t.csv"));

  const auto tmp = std::filesystem::temp_directory_path();
  EXPECT_THROW(load_csv((tmp / "sieve_no_such_file.csv").string()), Error);
  EXPECT_THROW(load_csv(tmp.string()), Error);  // a directory
}
