// Package bench is the scale benchmark (`make bench`, hack/bench.sh): the manager on
// a local control plane of its own (cluster "bench"), measured in one run against a
// plain client (fan-out) and against the upstream batch/v1 Job controller on the same
// cluster (end to end, completion latency), with its cost (API writes per task,
// memory per live task, peak RSS, CPU per 1,000 tasks). It prints a Markdown table and
// writes bench/results.json and bench/results.md. It runs only with BENCH=1, so `go
// test ./...` skips it. BENCH_MANAGER_ARGS adds flags to the manager.
package bench
