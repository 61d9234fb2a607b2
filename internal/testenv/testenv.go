// Package testenv starts a real kube-apiserver and etcd (envtest) with the operator's
// CRDs installed, for the test suites. The binaries are the ones hack/kube-build.sh
// builds from source; KUBEBUILDER_ASSETS points at them (make test sets it), and when
// it is unset the cached build under bin/k8s is used.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/costops/cost-analysis-operator/internal/scheme"
)

// Env is a running control plane.
type Env struct {
	env    *envtest.Environment
	Config *rest.Config
	Client client.Client
	// Root is the repository root.
	Root string
	// kcm is the kube-controller-manager StartControllerManager started.
	kcm     *exec.Cmd
	kcmDone chan struct{}
	dir     string
}

// Start starts etcd and kube-apiserver and installs the CRDs from config/crd/bases.
func Start() (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		out, err := exec.Command(filepath.Join(root, "hack", "kube-build.sh"), "--print").Output()
		if err != nil {
			return nil, fmt.Errorf("KUBEBUILDER_ASSETS is unset and hack/kube-build.sh --print failed: %w", err)
		}
		dir := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err != nil {
			return nil, fmt.Errorf("no kube-apiserver in %s: run `make kube-bins` (or `make test`) first", dir)
		}
		_ = os.Setenv("KUBEBUILDER_ASSETS", dir)
	}
	e := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme.Scheme,
	}
	cfg, err := e.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	cfg.QPS, cfg.Burst = 500, 1000
	c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		_ = e.Stop()
		return nil, err
	}
	return &Env{env: e, Config: cfg, Client: c, Root: root}, nil
}

// Stop stops the control plane.
func (e *Env) Stop() error {
	if e.kcm != nil && e.kcm.Process != nil {
		_ = e.kcm.Process.Kill()
		<-e.kcmDone
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
	return e.env.Stop()
}

// StartControllerManager runs the real kube-controller-manager against the control
// plane, with the controllers a suite names (for example job and garbagecollector):
// the upstream batch Job controller then runs the operator's batch Jobs as it would
// in a cluster. No kubelet runs, so the pods it creates stay unscheduled: a test
// plays their containers by writing their status. Its log goes to
// kube-controller-manager.log in dir, which the caller may keep.
func (e *Env) StartControllerManager(controllers []string, logDir string) error {
	user, err := e.env.AddUser(envtest.User{Name: "kube-controller-manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding the controller manager's user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return err
	}
	if e.dir, err = os.MkdirTemp("", "testenv-kcm-"); err != nil {
		return err
	}
	path := filepath.Join(e.dir, "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		return err
	}
	if logDir == "" {
		logDir = e.dir
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(logDir, "kube-controller-manager.log"))
	if err != nil {
		return err
	}
	e.kcm = exec.Command(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kube-controller-manager"),
		"--kubeconfig="+path,
		"--controllers="+strings.Join(controllers, ","),
		"--leader-elect=false",
		"--use-service-account-credentials=false",
		"--secure-port=0",
		"--kube-api-qps=200", "--kube-api-burst=400",
		"--concurrent-job-syncs=10",
	)
	e.kcm.Stdout, e.kcm.Stderr = logFile, logFile
	if err := e.kcm.Start(); err != nil {
		return fmt.Errorf("starting kube-controller-manager: %w", err)
	}
	e.kcmDone = make(chan struct{})
	go func() { _ = e.kcm.Wait(); _ = logFile.Close(); close(e.kcmDone) }()
	return nil
}

// RepoRoot finds the directory holding the module's go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.HasPrefix(string(b), "module github.com/costops/cost-analysis-operator\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("repository root not found")
		}
		dir = parent
	}
}
