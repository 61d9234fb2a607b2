// Package framework runs the whole product on a local control plane for the e2e suite
// (test/e2e) and the scale benchmark (test/bench): it finds the control-plane binaries
// built by hack/kube-build.sh, brings a named cluster up and down with hack/cluster.sh,
// builds and runs the manager and the sample plugin as processes of their own, drives
// kubectl, and makes sure that whatever it started is stopped again, also when the test
// process fails, panics, is interrupted or is killed.
package framework

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/costops/cost-analysis-operator/internal/testenv"
)

// ControlPlaneBinaries are the binaries hack/cluster.sh needs from hack/kube-build.sh.
var ControlPlaneBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet", "kube-proxy", "kwok", "kwokctl"}

// RepoRoot is the repository root: the first directory upwards from the working
// directory whose go.mod declares the operator's module.
func RepoRoot() (string, error) { return testenv.RepoRoot() }

// KubeBin is the directory hack/kube-build.sh builds the control plane into, and the
// binaries of ControlPlaneBinaries missing from it. It builds nothing.
func KubeBin(root string) (dir string, missing []string, err error) {
	out, err := exec.Command(filepath.Join(root, "hack", "kube-build.sh"), "--print").Output()
	if err != nil {
		return "", nil, fmt.Errorf("hack/kube-build.sh --print: %w", err)
	}
	dir = strings.TrimSpace(string(out))
	for _, b := range ControlPlaneBinaries {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	// CoreDNS's name carries its version and a hash of hack/tools/coredns.
	out, err = exec.Command(filepath.Join(root, "hack", "kube-build.sh"), "--print-coredns").Output()
	if err != nil {
		return "", nil, fmt.Errorf("hack/kube-build.sh --print-coredns: %w", err)
	}
	if fi, err := os.Stat(strings.TrimSpace(string(out))); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		missing = append(missing, filepath.Base(strings.TrimSpace(string(out))))
	}
	return dir, missing, nil
}

// Build builds the packages into root/bin (bin/manager from ".", bin/sample-plugin
// from "./cmd/sample-plugin", ...), concurrently, with the go command on PATH.
func Build(ctx context.Context, root string, targets map[string]string) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for out, pkg := range targets {
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(root, "bin", out), pkg)
			cmd.Dir = root
			if b, err := cmd.CombinedOutput(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("go build -o bin/%s %s: %w\n%s", out, pkg, err, b))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// NoteSources stats every file the product's binaries and the local control plane are
// made from (Go sources, go.mod, go.sum, the CRDs, the hack scripts and kwok stages).
// go test records the files a test looks at and reruns a cached test when one of them
// changed: without this, a change to the manager would leave a passing e2e result
// cached, since the binaries are built by a go command the test cache cannot see.
//
// go test records only what a test looks at while tests run (not in TestMain), so a
// suite calls it from a test.
func NoteSources(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			switch {
			case rel == ".":
				return nil
			case strings.HasPrefix(d.Name(), "."), rel == "bin", rel == "bench", rel == "test":
				return filepath.SkipDir
			}
			return nil
		}
		switch ext := filepath.Ext(path); {
		case ext == ".go", ext == ".yaml", ext == ".sh", d.Name() == "go.mod", d.Name() == "go.sum":
			_, err := os.Stat(path)
			return err
		}
		return nil
	})
}
