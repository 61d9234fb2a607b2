package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/costops/cost-analysis-operator/internal/taskpod"
)

// The images of hack/image that the network tests run besides the collector.
const (
	managerImage = "localhost/costops/cost-analysis-operator:dev"
	pluginImage  = "localhost/costops/cost-analysis-sample-plugin:dev"
)

// restricted is the securityContext of every container of these tests (what the
// restricted Pod Security level asks for), as YAML lines indented for a container at
// indent spaces.
func restricted(indent int) string {
	pad := "\n" + strings.Repeat(" ", indent)
	return pad + "securityContext:" + pad + "  runAsNonRoot: true" + pad + "  readOnlyRootFilesystem: true" +
		pad + "  allowPrivilegeEscalation: false" + pad + "  capabilities: {drop: [ALL]}" +
		pad + "  seccompProfile: {type: RuntimeDefault}"
}

// Services on the real node (hack/node.sh: kube-proxy and CoreDNS): the sample plugin
// runs as a Deployment behind a Service, and collector pods (the task-pod contract,
// --output dry run) stream a task's records from it by the Service's fully qualified
// name, by its short name (the pod's DNS search path) and by its ClusterIP. Each
// reports what it streamed in its termination message, so a pod that succeeded
// resolved the name and reached the plugin pod through the ClusterIP.
func TestNetworkServiceByNameAndClusterIP(t *testing.T) {
	requireRealNode(t)
	k := setup(t)
	t.Parallel()

	k.apply(`
apiVersion: apps/v1
kind: Deployment
metadata:
  name: plugin
spec:
  replicas: 1
  selector:
    matchLabels: {app: plugin}
  template:
    metadata:
      labels: {app: plugin}
    spec:
      nodeSelector: {cost-analysis.costops.dev/node: real}
      containers:
      - name: plugin
        image: ` + pluginImage + `
        imagePullPolicy: IfNotPresent
        args: [--listen, ":50051", -v]
        ports: [{name: grpc, containerPort: 50051}]
        readinessProbe:
          tcpSocket: {port: grpc}
          periodSeconds: 1` + restricted(8) + `
---
apiVersion: v1
kind: Service
metadata:
  name: plugin
spec:
  selector: {app: plugin}
  ports: [{name: grpc, port: 50051, targetPort: grpc}]
`)
	k.wait("deployment/plugin", "{.status.readyReplicas}", "1", 2*time.Minute)
	clusterIP := strings.TrimSpace(k.kubectl("get", "service", "plugin", "-o", "jsonpath={.spec.clusterIP}"))
	if net.ParseIP(clusterIP) == nil {
		t.Fatalf("Service plugin has no ClusterIP (%q)", clusterIP)
	}

	const records = 5
	endpoints := map[string]string{
		"fqdn":       "plugin." + k.ns + ".svc.cluster.local:50051",
		"short":      "plugin:50051",
		"cluster-ip": net.JoinHostPort(clusterIP, "50051"),
	}
	for name, endpoint := range endpoints {
		k.apply(collectorPod("collect-"+name, endpoint, records))
	}
	for name, endpoint := range endpoints {
		p := k.finished("collect-"+name, 2*time.Minute)
		st := p.Status.ContainerStatuses[0].State.Terminated
		res, err := taskpod.ParseResult(st.Message)
		if p.Status.Phase != corev1.PodSucceeded || err != nil || res.CreatedCount == nil || *res.CreatedCount != records {
			t.Errorf("pod collect-%s (plugin at %s): %s, exit %d, termination message %q (%v); want Succeeded with created_count %d",
				name, endpoint, p.Status.Phase, st.ExitCode, st.Message, err, records)
		}
	}

	// The kubelet knows the cluster's DNS: it warns of none for these pods.
	if out := k.kubectl("get", "events", "--field-selector", "reason=MissingClusterDNS", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Errorf("MissingClusterDNS events: %s", out)
	}
}

// collectorPod is a task pod of the collector image whose plugin is at endpoint: it
// streams one task of records records and writes them to its log (a dry run, no store).
func collectorPod(name, endpoint string, records int) string {
	return fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  restartPolicy: Never
  nodeSelector: {cost-analysis.costops.dev/node: real}
  containers:
  - name: collector
    image: %s
    imagePullPolicy: IfNotPresent
    args: [--output, "-"]
    env:
    - {name: %s, value: %q}
    - {name: %s, value: '{"account_id": "network", "records_per_task": %d}'}
    - {name: %s, value: "{}"}
    - {name: %s, value: network-test}%s
`, name, collectorImage, taskpod.EnvPluginEndpoint, endpoint, taskpod.EnvTaskOptions, records,
		taskpod.EnvPluginOptions, taskpod.EnvDomainID, restricted(4))
}

// finished waits until pod name has succeeded or failed, and returns it.
func (k *kube) finished(name string, timeout time.Duration) *corev1.Pod {
	k.t.Helper()
	p := &corev1.Pod{}
	k.eventually(timeout, func() error {
		k.get(p, "pod", name)
		if (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed) &&
			len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Terminated != nil {
			return nil
		}
		return fmt.Errorf("pod %s is %s", name, p.Status.Phase)
	})
	return p
}

// The `kubernetes` Service from a pod: the manager's image runs in a pod with a
// ServiceAccount and client-go's in-cluster config (the Service's ClusterIP from the
// environment, the ServiceAccount's token, and its ca.crt to verify the API server's
// certificate). It becomes Ready only once its informers have listed and watched
// through that connection. A Lease the test holds keeps it from ever leading, so it
// reconciles nothing of the other tests.
func TestNetworkKubernetesServiceInCluster(t *testing.T) {
	requireRealNode(t)
	k := setup(t)
	t.Parallel()

	// The Service's endpoint is the host address of the node's bridge (where
	// hack/node.sh relays to the API server), at the API server's port.
	var slices struct {
		Items []struct {
			Endpoints []struct {
				Addresses []string `json:"addresses"`
			} `json:"endpoints"`
		} `json:"items"`
	}
	k.get(&slices, "endpointslices", "--namespace", "default", "-l", "kubernetes.io/service-name=kubernetes")
	if len(slices.Items) != 1 || len(slices.Items[0].Endpoints) != 1 ||
		strings.Join(slices.Items[0].Endpoints[0].Addresses, ",") != env.HostAddr {
		t.Fatalf("the kubernetes Service's EndpointSlices: %+v; want one endpoint at the host address %s", slices.Items, env.HostAddr)
	}

	binding := k.ns + "-manager"
	t.Cleanup(func() { _, _, _ = k.try("delete", "clusterrolebinding", binding, "--ignore-not-found") })
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000000Z")
	// The manager may read everything it caches: this test is about the way to the API
	// server, not the manager's RBAC (the deploy test's).
	k.apply(`
apiVersion: v1
kind: ServiceAccount
metadata:
  name: manager
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: ` + binding + `
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: manager, namespace: ` + k.ns + `}]
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: held-by-the-test
spec:
  holderIdentity: network-test
  leaseDurationSeconds: 3600
  acquireTime: "` + now + `"
  renewTime: "` + now + `"
---
apiVersion: v1
kind: Pod
metadata:
  name: manager
spec:
  serviceAccountName: manager
  nodeSelector: {cost-analysis.costops.dev/node: real}
  containers:
  - name: manager
    image: ` + managerImage + `
    imagePullPolicy: IfNotPresent
    args:
    - --leader-elect
    - --leader-election-id=held-by-the-test
    - --leader-election-namespace=` + k.ns + `
    - --metrics-bind-address=0
    - --api-bind-address=0
    - --health-probe-bind-address=:8081
    ports: [{name: probes, containerPort: 8081}]
    readinessProbe:
      httpGet: {path: /readyz, port: probes}
      periodSeconds: 1` + restricted(4) + `
`)
	start := time.Now()
	if _, _, err := k.try("wait", "pod/manager", "--for=condition=Ready", "--timeout=2m"); err != nil {
		logs, _, _ := k.try("logs", "manager", "--tail=30")
		t.Fatalf("the manager pod did not become Ready (its caches did not sync through the kubernetes Service): %v\nlog:\n%s", err, logs)
	}
	t.Logf("manager pod Ready %s after it was created", time.Since(start).Round(100*time.Millisecond))
	logs := k.kubectl("logs", "manager")
	for _, bad := range []string{"x509", "connection refused"} {
		if strings.Contains(logs, bad) {
			t.Errorf("the manager's log mentions %q:\n%s", bad, logs)
		}
	}
	// It waits for the Lease the test holds: it never leads.
	if holder := k.kubectl("get", "lease", "held-by-the-test", "-o", "jsonpath={.spec.holderIdentity}"); holder != "network-test" {
		t.Errorf("the Lease is held by %q, want the test's network-test", holder)
	}
}
