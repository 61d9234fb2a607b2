package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cpuMeter reads the CPU time of the local control plane's processes (kwokctl's pid
// files: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
// kwok-controller) and of the manager, so that a run's cost to each is known.
type cpuMeter struct {
	b *bench
}

// now is each process's user + system CPU seconds so far, by component.
func (m cpuMeter) now() map[string]float64 {
	out := map[string]float64{}
	dir := filepath.Join(m.b.env.Root, ".cluster", "kwok", "clusters", m.b.env.Cluster.Name, "pids")
	files, _ := filepath.Glob(filepath.Join(dir, "*.pid"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil {
			continue
		}
		if s, err := procCPUSeconds(pid); err == nil {
			out[strings.TrimSuffix(filepath.Base(f), ".pid")] = s
		}
	}
	if s, err := procCPUSeconds(m.b.env.Manager.Pid()); err == nil {
		out["manager"] = s
	}
	if s, err := procCPUSeconds(os.Getpid()); err == nil {
		out["benchmark"] = s
	}
	return out
}

// since is the CPU seconds each component used since before, over wall seconds.
func (m cpuMeter) since(before map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m.now() {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// apiserverProfile saves a CPU profile of the kube-apiserver over the next d, in the
// background (its /debug/pprof, through kubectl's credentials).
func (b *bench) apiserverProfile(name string, d time.Duration) {
	path := filepath.Join(b.dir, name)
	go func() {
		out, _, err := b.env.Kubectl.Run(b.ctx, "", "get", "--raw", fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds())),
			"--request-timeout="+(d+30*time.Second).String())
		if err == nil {
			err = os.WriteFile(path, []byte(out), 0o644)
		}
		if err != nil {
			b.logf("profiling the API server: %v", err)
		}
	}()
}
