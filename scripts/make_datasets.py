#!/usr/bin/env python3
"""Builds the bundled binary-classification data sets under data/mcmc/ (run by developers, not CI).

Every set comes from a source the project may redistribute: R data sets packaged by Debian
(MASS, mlbench; GPL) and scikit-learn's bundled copy of the Wisconsin diagnostic breast cancer
data (BSD-3-Clause). The output convention is the one `sieve::mcmc::load_csv` reads: a header
row, the 0/1 response in column `y` (first), raw (unstandardised) covariates in the other
columns. Standardisation and the intercept are added by the loader, not here.

Install steps (Debian 12, as root), then run from the repository root:

    apt-get install -y --no-install-recommends r-base-core r-cran-mass r-cran-mlbench
    python3 -m pip install scikit-learn numpy
    python3 scripts/make_datasets.py            # writes data/mcmc/*.csv and data/mcmc/PROVENANCE.md

The script is deterministic: rerunning it on the same package versions reproduces the files
byte for byte (PROVENANCE.md records the versions it saw and a SHA-256 of each CSV).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import pathlib
import subprocess
import sys

# name -> (R expression yielding a data.frame with response column `y` first, description).
# Each expression drops rows with missing values and recodes the response to 0/1.
R_SETS = {
    "pima": (
        "MASS",
        "{d <- rbind(MASS::Pima.tr, MASS::Pima.te); "
        "data.frame(y = as.integer(d$type == 'Yes'), d[, setdiff(names(d), 'type')])}",
        "Pima Indians diabetes, MASS::Pima.tr + MASS::Pima.te (the 532-row version of "
        "Girolami & Calderhead 2011); y = 1 if type == 'Yes' (diabetic).",
    ),
    "ripley": (
        "MASS",
        "{d <- MASS::synth.tr; data.frame(y = as.integer(d$yc), xs = d$xs, ys = d$ys)}",
        "Ripley's synthetic two-class data, MASS::synth.tr; y = yc.",
    ),
    "biopsy": (
        "MASS",
        "{d <- na.omit(MASS::biopsy); "
        "data.frame(y = as.integer(d$class == 'malignant'), d[, paste0('V', 1:9)])}",
        "Wisconsin breast cancer (original, cytology scores), MASS::biopsy; the 16 rows with a "
        "missing V6 (bare nuclei) are dropped and the ID column removed; y = 1 if malignant.",
    ),
    "sonar": (
        "mlbench",
        "{e <- new.env(); data(Sonar, package = 'mlbench', envir = e); d <- e$Sonar; "
        "data.frame(y = as.integer(d$Class == 'M'), d[, paste0('V', 1:60)])}",
        "Sonar, mines vs rocks, mlbench::Sonar; y = 1 if Class == 'M' (metal cylinder).",
    ),
    "ionosphere": (
        "mlbench",
        "{e <- new.env(); data(Ionosphere, package = 'mlbench', envir = e); d <- e$Ionosphere; "
        "v1 <- as.integer(as.character(d$V1)); "
        "data.frame(y = as.integer(d$Class == 'good'), V1 = v1, d[, paste0('V', 3:34)])}",
        "Johns Hopkins ionosphere radar returns, mlbench::Ionosphere; V2 (constant 0) is "
        "dropped, the 0/1 factor V1 becomes numeric; y = 1 if Class == 'good'.",
    ),
}

R_LICENCE = {"MASS": "GPL-2 or GPL-3", "mlbench": "GPL-2"}
DEBIAN_PACKAGE = {"MASS": "r-cran-mass", "mlbench": "r-cran-mlbench"}


def run_r(expr: str) -> str:
    """Evaluates `expr` in Rscript and returns the data frame as CSV text (R prints doubles with
    15 significant digits, enough for these data, which are given with at most 8)."""
    code = (
        "d <- " + expr + "; "
        "stopifnot(all(d$y %in% c(0L, 1L)), !anyNA(d)); "
        "write.csv(d, stdout(), row.names = FALSE, quote = FALSE)"
    )
    return subprocess.run(["Rscript", "--vanilla", "-e", code], check=True, capture_output=True,
                          text=True).stdout


def dpkg_version(pkg: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                         text=True)
    return out.stdout.strip() if out.returncode == 0 else "not installed"


def r_version(pkg: str) -> str:
    return subprocess.run(["Rscript", "--vanilla", "-e", f"cat(packageDescription('{pkg}')$Version)"],
                          check=True, capture_output=True, text=True).stdout.strip()


def normalise(text: str) -> list[list[str]]:
    """Parses CSV text, strips blanks, checks shape and the 0/1 response, returns rows."""
    rows = [[c.strip() for c in r] for r in csv.reader(io.StringIO(text)) if r]
    header = rows[0]
    assert header[0] == "y", header
    for r in rows[1:]:
        assert len(r) == len(header), r
        assert r[0] in ("0", "1"), r
        for c in r[1:]:
            float(c)  # every covariate must parse
    return rows


def breast_cancer_rows() -> tuple[list[list[str]], str]:
    import numpy as np
    import sklearn
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    # sklearn codes 0 = malignant, 1 = benign; recode so that y = 1 is malignant, as for biopsy.
    y = (d.target == 0).astype(int)
    names = [n.replace(" ", "_") for n in d.feature_names]
    rows = [["y"] + names]
    for yi, xi in zip(y, d.data):
        rows.append([str(int(yi))] + [np.format_float_positional(v, trim="-") for v in xi])
    return rows, sklearn.__version__


def write_csv(path: pathlib.Path, rows: list[list[str]]) -> str:
    text = "".join(",".join(r) + "\n" for r in rows)
    path.write_text(text)
    return hashlib.sha256(text.encode()).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="data/mcmc", help="output folder (default data/mcmc)")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    table = []
    for name, (pkg, expr, desc) in R_SETS.items():
        rows = normalise(run_r(expr))
        digest = write_csv(out / f"{name}.csv", rows)
        n, p = len(rows) - 1, len(rows[0]) - 1
        pos = sum(r[0] == "1" for r in rows[1:])
        src = (f"R package {pkg} {r_version(pkg)} (Debian {DEBIAN_PACKAGE[pkg]} "
               f"{dpkg_version(DEBIAN_PACKAGE[pkg])})")
        table.append((name, n, p, pos, src, R_LICENCE[pkg], desc, digest))
        print(f"{name}: {n} rows, {p} covariates, {pos} positives", file=sys.stderr)

    rows, skver = breast_cancer_rows()
    digest = write_csv(out / "breast_cancer.csv", rows)
    n, p = len(rows) - 1, len(rows[0]) - 1
    pos = sum(r[0] == "1" for r in rows[1:])
    table.append(("breast_cancer", n, p, pos, f"scikit-learn {skver} (PyPI), "
                  "sklearn.datasets.load_breast_cancer (bundled file breast_cancer.csv)",
                  "BSD-3-Clause (scikit-learn); data originally UCI, CC BY 4.0",
                  "Wisconsin diagnostic breast cancer (30 real-valued nucleus features); "
                  "y = 1 if malignant (sklearn's target 0), spaces in names become '_'.", digest))
    print(f"breast_cancer: {n} rows, {p} covariates, {pos} positives", file=sys.stderr)

    lines = [
        "# Bundled binary-classification data sets (provenance)",
        "",
        "Generated by `python3 scripts/make_datasets.py` (install steps at the top of that script).",
        "Do not edit the CSVs by hand. Convention: header row, response `y` (0/1) first, raw",
        "covariates after it; `sieve::mcmc::load_csv` adds the intercept and standardises the",
        "covariates (zero mean, unit sample variance) by default. Rows with missing values were",
        "dropped where noted; no other transformation was applied.",
        "",
        "| file | rows | covariates | y = 1 | source | licence |",
        "|---|---|---|---|---|---|",
    ]
    for name, n, p, pos, src, lic, _, _ in table:
        lines.append(f"| `{name}.csv` | {n} | {p} | {pos} | {src} | {lic} |")
    lines += ["", "## Transformations", ""]
    for name, *_, desc, _ in table:
        lines.append(f"- `{name}.csv`: {desc}")
    lines += ["", "## SHA-256", ""]
    for name, *_, digest in table:
        lines.append(f"- `{name}.csv`: `{digest}`")
    lines += [
        "",
        "The GPL-licensed sets (MASS, mlbench) are redistributed under the terms of their licences;",
        "their original sources are cited in the R packages' documentation (`?Pima.tr`, `?synth.tr`,",
        "`?biopsy` in MASS; `?Sonar`, `?Ionosphere` in mlbench).",
        "",
    ]
    (out / "PROVENANCE.md").write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
