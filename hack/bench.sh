#!/usr/bin/env bash
# `make bench`: the scale benchmark (test/bench) on a local control plane of its own
# (cluster "bench", removed afterwards). Prints a Markdown table judged against issue
# 14's goals and writes bench/results.json, bench/results.md and bench/endtoend.svg
# (the end-to-end runs over time), all git-ignored. About 25 minutes on 2 cores.
#
# Environment: BENCH_MANAGER_ARGS adds flags to the manager (e.g. "--kube-api-qps=400");
# BENCH_ROUNDS (default 3) repeats the end-to-end runs and the fan-out pairs;
# BENCH_ONLY=fanout,endtoend,latency runs some of the measures;
# BENCH_BASELINE_MANAGER=<binary> adds the operator's run with another build of the
# manager to every end-to-end round (an A/B of the manager).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
"$root/hack/kube-build.sh" >/dev/null
start=$SECONDS
# -v for the progress lines; the test's own framing (=== RUN, --- PASS) is dropped.
BENCH=1 go test -count=1 -timeout 60m -run '^TestBenchmark$' -v ./test/bench/ |
  grep --line-buffered -v -E '^(=== RUN|--- PASS|PASS$|ok )'
echo "bench: done in $((SECONDS - start))s"
