# End to end on the local control plane: the e2e suite, the demo and the scale benchmark.
# Included by the Makefile (-include hack/mk/*.mk).

##@ End to end (local control plane)

.PHONY: test-e2e
test-e2e: kube-bins ## Run the e2e suite alone: its own local control plane (cluster "e2e"), the manager and the sample plugin as processes, driven with kubectl.
	go test $(GOTEST_FLAGS) -count=1 -timeout 15m -v ./test/e2e/

.PHONY: demo
demo: kube-bins ## Bring up the local control plane, the sample plugin and the manager, run the sample Job to SUCCESS, and leave it all running.
	hack/demo.sh

.PHONY: bench
bench: kube-bins ## Benchmark on a local control plane of its own, about 25 min (fan-out, end to end vs an Indexed Job and the floor, completion latency, cost); writes bench/results.json.
	hack/bench.sh
