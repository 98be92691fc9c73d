#!/usr/bin/env python3
"""Perplexity of a model with dense prefill attention and with every registered selector, at
several context lengths, through `sieve perplexity --json`; prints a Markdown table and writes the
raw reports as JSON.

  python3 bench/engine/perplexity_table.py --sieve build/tools/sieve \
      --model ../shared/data/codelm-b --file /usr/lib/python3.11/_pydecimal.py \
      --context 8192:4 --context 15360:2 --json out.json

--context LENGTH:WINDOWS scores WINDOWS windows of LENGTH tokens (the same tokens for every
method). Selectors run with their default settings unless --set METHOD:key=value is given.
"""
import argparse
import json
import subprocess
import time

METHODS = ["dense", "streaming", "sample", "rr", "unisparse", "xattn", "vslash", "flexprefill"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sieve", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--context", action="append", required=True, help="LENGTH:WINDOWS")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--set", action="append", default=[], help="METHOD:key=value")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json")
    a = ap.parse_args()

    reports = []
    for spec in a.context:
        length, windows = (int(v) for v in spec.split(":"))
        for method in a.methods.split(","):
            cmd = [a.sieve, "perplexity", "--model", a.model, "--file", a.file, "--context",
                   str(length), "--windows", str(windows), "--attention", method, "--json"]
            if a.threads:
                cmd += ["--threads", str(a.threads)]
            for s in a.set:
                m, kv = s.split(":", 1)
                if m == method:
                    cmd += ["--set", kv]
            t0 = time.time()
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                print(f"{method} @ {length}: FAILED: {p.stderr.strip()}", flush=True)
                reports.append({"attention": method, "context": length, "error": p.stderr.strip()})
                continue
            r = json.loads(p.stdout)
            r["wall_s"] = time.time() - t0
            reports.append(r)
            print(f"{method} @ {length}: ppl {r['perplexity']:.4f}, block density "
                  f"{r['block_density']:.3f}, token density {r['token_density']:.3f}, "
                  f"{r['seconds']:.1f} s", flush=True)
            if a.json:
                with open(a.json, "w") as f:
                    json.dump(reports, f, indent=1)

    print()
    print("| context | method | perplexity | vs dense | block density | token density | time (s) | attention (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for spec in a.context:
        length = int(spec.split(":")[0])
        rows = [r for r in reports if r["context"] == length]
        dense = next((r for r in rows if r.get("attention") == "dense" and "error" not in r), None)
        for r in rows:
            if "error" in r:
                print(f"| {length} | {r['attention']} | failed | | | | | |")
                continue
            rel = f"{r['perplexity'] / dense['perplexity'] - 1:+.2%}" if dense else ""
            print(f"| {length} | {r['attention']} | {r['perplexity']:.4f} | {rel} | "
                  f"{r['block_density']:.3f} | {r['token_density']:.3f} | {r['seconds']:.1f} | "
                  f"{r['attention_s']:.1f} |")


if __name__ == "__main__":
    main()
