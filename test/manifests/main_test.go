// Package manifests_test checks what users install: config/default (make deploy),
// config/namespaced, the Helm chart in dist/chart and config/samples. They are
// rendered with kubectl's kustomize and helm, compared with each other, applied
// with `kubectl apply --dry-run=server` to an envtest kube-apiserver (with the CRDs
// installed), their RBAC is read for what it grants (Secrets above all) and asked
// of the API server (`kubectl auth can-i`), and the manager is run under that RBAC
// alone, impersonating its ServiceAccount, in both install modes, and as two
// replicas of which the one that does not lead still serves the HTTP API.
package manifests_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/costops/cost-analysis-operator/internal/sampleplugin"
	"github.com/costops/cost-analysis-operator/internal/store/pgtest"
	"github.com/costops/cost-analysis-operator/internal/testenv"
)

var (
	env        *testenv.Env
	k8s        client.Client
	root       string
	kubeconfig string // the envtest API server's admin, for kubectl
	pluginAddr string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	k8s, root = env.Client, env.Root
	dir, err := os.MkdirTemp("", "manifests-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	addr, _, stopPlugin, err := sampleplugin.StartOnLoopback()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stopPlugin()
	pluginAddr = addr
	return pgtest.Main(m)
}

// writeKubeconfig writes the envtest admin's credentials for kubectl.
func writeKubeconfig(path string) error {
	cfg := env.Config
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	return clientcmd.WriteToFile(*kc, path)
}

// kubectlOn runs kubectl against the envtest API server; it returns the combined
// output and the error, for the caller to judge.
func kubectlOn(t *testing.T, stdin []byte, args ...string) (string, error) {
	t.Helper()
	return runIn(kubectl(t), stdin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
}
