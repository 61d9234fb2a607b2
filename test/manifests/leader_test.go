package manifests_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/operator"
)

// Two replicas, as `make deploy` runs them: the one that is not the leader runs no
// controller, yet its HTTP API answers from its own cache, under the install's RBAC.
func TestTheReplicaThatDoesNotLeadServesTheAPI(t *testing.T) {
	ctx := context.Background()
	defer noRefusals(t, logMark())
	ensureNamespace(t, releaseNamespace)
	const id = "manifests-test-two-replicas"
	leader, stopLeader := runManagerAs(t, "config/default", nil, func(o *operator.Options) { o.LeaderElectionID = id })
	defer stopLeader()
	select {
	case <-leader.Elected():
	case <-time.After(30 * time.Second):
		t.Fatal("the first replica was not elected")
	}
	apiAddr, probeAddr := freeAddr(t), freeAddr(t)
	follower, stopFollower := runManagerAs(t, "config/default", nil, func(o *operator.Options) {
		o.LeaderElectionID = id
		o.API.BindAddress, o.ProbeAddr = apiAddr, probeAddr
	})
	defer stopFollower()

	ns := "two-replicas"
	ensureNamespace(t, ns)
	createJob(t, ns, "run", "absent") // the leader acts on it; the follower only serves it

	// A caller allowed to read Jobs in ns.
	cs := kubernetes.NewForConfigOrDie(env.Config)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reader"}}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reader"}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{costv1.GroupVersion.Group}, Resources: []string{"jobs"}, Verbs: []string{"get", "list"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "reader"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "reader", Namespace: ns}}}
	for _, o := range []interface{ GetName() string }{sa, role, binding} {
		var err error
		switch o := o.(type) {
		case *corev1.ServiceAccount:
			_, err = cs.CoreV1().ServiceAccounts(ns).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = cs.RbacV1().Roles(ns).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = cs.RbacV1().RoleBindings(ns).Create(ctx, o, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "reader", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	httpc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the API's self-signed certificate
	eventually(t, 30*time.Second, func() error {
		resp, err := httpc.Get("http://" + probeAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("the follower's /readyz: %s", resp.Status)
		}
		return nil
	})
	eventually(t, 30*time.Second, func() error {
		req, err := http.NewRequest(http.MethodPost, "https://"+apiAddr+"/cost-analysis/v1/job/get",
			strings.NewReader(fmt.Sprintf(`{"domain_id": %q, "job_id": "run"}`, ns)))
		if err != nil {
			return err
		}
		req.Header.Set("X-Auth-Token", tr.Status.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := httpc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("the follower's API: %s %s", resp.Status, body)
		}
		var got struct {
			JobID string `json:"job_id"`
		}
		if err := json.Unmarshal(body, &got); err != nil || got.JobID != "run" {
			return fmt.Errorf("the follower's API answered %s", body)
		}
		return nil
	})
	select {
	case <-follower.Elected():
		t.Fatal("the second replica was elected while the first one led")
	default:
	}
}

// freeAddr is a loopback address with a port free now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
