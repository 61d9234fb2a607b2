package framework

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Kubectl runs the kubectl built from source (never one from PATH) against one
// kubeconfig.
type Kubectl struct {
	Bin        string // the kubectl binary
	Kubeconfig string
}

// NewKubectl is the kubectl of hack/kube-build.sh's directory kubeBin.
func NewKubectl(kubeBin, kubeconfig string) Kubectl {
	return Kubectl{Bin: filepath.Join(kubeBin, "kubectl"), Kubeconfig: kubeconfig}
}

// Run runs kubectl with args, stdin as its input, and returns its output.
func (k Kubectl) Run(ctx context.Context, stdin string, args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, k.Bin, append([]string{"--kubeconfig", k.Kubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = dieWithParent()
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), errb.String(), err
}
