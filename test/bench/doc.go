// Package bench is the scale benchmark (`make bench`, hack/bench.sh): the manager on
// a local control plane of its own (cluster "bench"), measured in one run against a
// plain client (fan-out) and against the upstream batch/v1 Job controller on the same
// cluster (end to end, completion latency), with its cost (API writes per task, its
// own and the kube-controller-manager's, memory per live task, peak RSS, CPU per
// 1,000 tasks), judged against the goals of issue 14. It prints a Markdown table and
// writes bench/results.json, bench/results.md and bench/endtoend.svg (both end-to-end
// runs' task pods, running and finished, over time). It runs only with BENCH=1, so `go
// test ./...` skips it. BENCH_MANAGER_ARGS adds flags to the manager.
//
// The report (report.go) and the picture (picture.go) are pure functions of the
// figures, tested without a cluster.
package bench
