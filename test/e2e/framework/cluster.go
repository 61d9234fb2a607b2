package framework

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// DefaultClusterName is hack/cluster.sh's own default (make cluster-up, make demo).
const DefaultClusterName = "cost-analysis"

// Cluster is a local control plane of hack/cluster.sh, selected by its name.
type Cluster struct {
	Root string
	Name string
	// Log receives hack/cluster.sh's output; nil discards it.
	Log io.Writer
	// RealNode is hack/cluster.sh's CLUSTER_REAL_NODE: "auto" (or empty) starts the
	// real node when the machine can run it, "1" requires it, "0" leaves it out.
	RealNode string
}

// RealNodeName is the name of the cluster's real node (hack/node.sh).
func (c *Cluster) RealNodeName() string { return c.Name + "-real-node" }

// ContainerdSocket is the socket of the real node's containerd (hack/node.sh).
func (c *Cluster) ContainerdSocket() string {
	return filepath.Join(c.Root, ".cluster", "node-"+c.Name, "containerd.sock")
}

// HostAddress is the address at which the real node's pods reach this host, and
// false when the cluster has no real node.
func (c *Cluster) HostAddress(ctx context.Context) (string, bool) {
	out, err := c.node(ctx, "host-address")
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(out), true
}

// Leftovers lists what the real node left on the machine (mounts, processes, cgroups,
// its bridge, CNI's cache, its directory): nothing once Down has run.
// The cluster's PostgreSQL (its directory, holding its data and postmaster.pid)
// counts too.
func (c *Cluster) Leftovers(ctx context.Context) ([]string, error) {
	var left []string
	if pg := filepath.Join(c.Root, ".cluster", "postgres-"+c.Name); dirExists(pg) {
		left = append(left, "the store's directory "+pg+" (hack/postgres.sh down removes it)")
	}
	out, err := c.node(ctx, "check-clean")
	var exit *exec.ExitError
	switch {
	case err == nil:
		return left, nil
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		return append(left, strings.Split(strings.TrimSpace(out), "\n")...), nil
	default:
		return nil, fmt.Errorf("hack/node.sh check-clean: %w\n%s", err, out)
	}
}

func dirExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

func (c *Cluster) node(ctx context.Context, verb string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.Root, "hack", "node.sh"), verb)
	cmd.Dir = c.Root
	cmd.Env = append(os.Environ(), "CLUSTER_NAME="+c.Name)
	out, err := cmd.Output()
	return string(out), err
}

// StoreDSN is the DSN of the cluster's PostgreSQL (hack/postgres.sh), reachable
// from this host and, when the cluster has its real node, from its pods.
func (c *Cluster) StoreDSN(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.Root, "hack", "cluster.sh"), "store-dsn")
	cmd.Dir = c.Root
	cmd.Env = append(os.Environ(), "CLUSTER_NAME="+c.Name)
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("CLUSTER_NAME=%s hack/cluster.sh store-dsn: %w", c.Name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Kubeconfig is where hack/cluster.sh writes the cluster's kubeconfig.
func (c *Cluster) Kubeconfig() string {
	if c.Name == DefaultClusterName {
		return filepath.Join(c.Root, ".cluster", "kubeconfig")
	}
	return filepath.Join(c.Root, ".cluster", "kubeconfig-"+c.Name)
}

// Up starts the cluster (or re-applies the CRDs of a running one).
func (c *Cluster) Up(ctx context.Context) error { return c.script(ctx, "up") }

// Down stops the cluster and deletes its state.
func (c *Cluster) Down(ctx context.Context) error { return c.script(ctx, "down") }

// Exists reports whether hack/cluster.sh has state for the cluster (running or not).
func (c *Cluster) Exists() bool {
	for _, dir := range []string{filepath.Join("kwok", "clusters", c.Name), "node-" + c.Name, "postgres-" + c.Name} {
		if _, err := os.Stat(filepath.Join(c.Root, ".cluster", dir)); err == nil {
			return true
		}
	}
	return false
}

func (c *Cluster) script(ctx context.Context, verb string) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(c.Root, "hack", "cluster.sh"), verb)
	cmd.Dir = c.Root
	cmd.Env = append(os.Environ(), "CLUSTER_NAME="+c.Name, "CLUSTER_REAL_NODE="+cmp.Or(c.RealNode, "auto"))
	w := io.Writer(&out)
	if c.Log != nil {
		w = io.MultiWriter(&out, c.Log)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("CLUSTER_NAME=%s hack/cluster.sh %s: %w\n%s", c.Name, verb, err, out.String())
	}
	return nil
}

// ControllerManagerMetricsURL is the kube-controller-manager's /metrics endpoint
// (kwokctl lets it be read without credentials), from kwokctl's record of the cluster.
func (c *Cluster) ControllerManagerMetricsURL() (string, error) {
	path := filepath.Join(c.Root, ".cluster", "kwok", "clusters", c.Name, "kwok.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`(?m)^\s*kubeControllerManagerPort:\s*(\d+)\s*$`).FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("no kubeControllerManagerPort in %s", path)
	}
	return "https://127.0.0.1:" + string(m[1]) + "/metrics", nil
}

// ControllerManagerArgs are the kube-controller-manager's flags, from kwokctl's record
// of the cluster.
func (c *Cluster) ControllerManagerArgs() ([]string, error) {
	path := filepath.Join(c.Root, ".cluster", "kwok", "clusters", c.Name, "kwok.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// kwok.yaml lists each component as "- args: [flags...] ... binary: .../<name>".
	var args, out []string
	for _, line := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "- args:"):
			args = nil
		case strings.HasPrefix(t, "- --"):
			args = append(args, strings.TrimPrefix(t, "- "))
		case strings.HasPrefix(t, "binary:") && strings.HasSuffix(t, "/kube-controller-manager"):
			out = args
		}
	}
	if out == nil {
		return nil, fmt.Errorf("no kube-controller-manager in %s", path)
	}
	return out, nil
}
