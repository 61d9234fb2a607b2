package e2e

import (
	"strings"
	"testing"
)

// The metrics endpoint is HTTPS and answers only a caller whose token the cluster
// accepts and whom RBAC lets get /metrics (the same TokenReview and
// SubjectAccessReview path as the HTTP API).
func TestMetricsNeedAKubernetesTokenAndRBAC(t *testing.T) {
	k := setup(t)
	t.Parallel()
	for _, sa := range []string{"scraper", "stranger"} {
		k.kubectl("create", "serviceaccount", sa)
	}
	role := "e2e-metrics-" + k.ns
	k.kubectl("create", "clusterrole", role, "--verb=get", "--non-resource-url=/metrics")
	k.kubectl("create", "clusterrolebinding", role, "--clusterrole="+role, "--serviceaccount="+k.ns+":scraper")
	t.Cleanup(func() {
		_, _, _ = k.try("delete", "clusterrolebinding", role)
		_, _, _ = k.try("delete", "clusterrole", role)
	})
	token := func(sa string) string { return strings.TrimSpace(k.kubectl("create", "token", sa)) }
	scraper, stranger := token("scraper"), token("stranger")

	c := &curl{t: t, base: "https://" + env.MetricsAddr}
	if status, body := c.call("", "GET", "/metrics", ""); status != 401 {
		t.Errorf("no token: %d %q, want 401", status, body)
	}
	if status, body := c.call("", "GET", "/metrics", "", "Authorization: Bearer not-a-token"); status != 401 {
		t.Errorf("an invalid token: %d %q, want 401", status, body)
	}
	if status, body := c.call("", "GET", "/metrics", "", "Authorization: Bearer "+stranger); status != 403 {
		t.Errorf("a token without the role: %d %q, want 403", status, body)
	}
	status, body := c.call("", "GET", "/metrics", "", "Authorization: Bearer "+scraper)
	if status != 200 || !strings.Contains(body, "cost_analysis_") {
		t.Fatalf("the scraper: %d, %d bytes, want 200 with the cost_analysis_ metrics", status, len(body))
	}
	// The plain-HTTP form of the address answers nothing useful.
	plain := &curl{t: t, base: "http://" + env.MetricsAddr}
	if status, _ := plain.call("", "GET", "/metrics", ""); status == 200 {
		t.Errorf("plain HTTP served the metrics")
	}
}
