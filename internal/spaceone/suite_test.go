package spaceone_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/indexes"
	"github.com/costops/cost-analysis-operator/internal/kubeauth"
	"github.com/costops/cost-analysis-operator/internal/scheme"
	"github.com/costops/cost-analysis-operator/internal/spaceone"
	"github.com/costops/cost-analysis-operator/internal/store/pgtest"
	"github.com/costops/cost-analysis-operator/internal/testenv"
)

// The suite runs one API server over TLS against a real kube-apiserver, reading from a
// plain controller-runtime cache (no controllers: the tests write status themselves),
// with real ServiceAccount tokens and RBAC.

var (
	env     *testenv.Env
	k8s     client.Client // direct client: writes and assertions
	reader  cache.Cache   // what the API reads
	baseURL string
	https   *http.Client

	// Tokens of the callers (ServiceAccounts in namespace "callers"): reader may get
	// and list Jobs and JobTasks in domainA, canceller may patch Jobs there, stranger
	// may do nothing.
	readerToken, cancellerToken, strangerToken string
)

const (
	domainA = "domain-a"
	domainB = "domain-b"
	callers = "callers"
	// secretValue is a DataSource's secret data in domainA: no response may show it.
	secretValue = "s3cr3t-billing-key-7d1e"
)

func TestMain(m *testing.M) {
	if os.Getenv("TEST_VERBOSE_MANAGER") != "" {
		ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	} else {
		ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	}
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	var err error
	if env, err = testenv.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = env.Stop() }()
	k8s = env.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	if reader, err = cache.New(env.Config, cache.Options{Scheme: scheme.Scheme}); err != nil {
		return 0, err
	}
	if err := indexes.Setup(ctx, reader); err != nil {
		return 0, err
	}
	for _, obj := range []client.Object{&costv1.Job{}, &costv1.JobTask{}} {
		if _, err := reader.GetInformer(ctx, obj); err != nil {
			return 0, err
		}
	}
	go func() { _ = reader.Start(ctx) }()
	if !reader.WaitForCacheSync(ctx) {
		return 0, fmt.Errorf("the cache did not sync")
	}

	if err := setupCallers(ctx); err != nil {
		return 0, err
	}

	// The server's certificate comes from a directory, as a mounted Secret would.
	certDir, err := os.MkdirTemp("", "api-certs-")
	if err != nil {
		return 0, err
	}
	defer func() { _ = os.RemoveAll(certDir) }()
	pool, err := writeCertificate(certDir)
	if err != nil {
		return 0, err
	}
	opts := spaceone.DefaultOptions()
	opts.CertDir = certDir
	srv := spaceone.New(reader, k8s, spaceone.NewKubeAuthenticator(mustAuth(kubeauth.DefaultOptions())), opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	baseURL = "https://" + ln.Addr().String()
	https = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	code := pgtest.Main(m)
	cancel()
	if err := <-served; err != nil {
		return 0, fmt.Errorf("the API server stopped with an error: %w", err)
	}
	return code, nil
}

// writeCertificate writes a certificate for 127.0.0.1 into dir and returns a pool
// that trusts it.
func writeCertificate(dir string) (*x509.CertPool, error) {
	cert, err := spaceone.SelfSignedCertificate(nil, time.Now())
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return nil, err
	}
	certPEM := pemBlock("CERTIFICATE", cert.Certificate[0])
	if err := os.WriteFile(filepath.Join(dir, spaceone.CertFile), certPEM, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, spaceone.KeyFile), pemBlock("PRIVATE KEY", keyDER), 0o600); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	return pool, nil
}

func pemBlock(kind string, der []byte) []byte {
	b64 := base64.StdEncoding.EncodeToString(der)
	var buf bytes.Buffer
	buf.WriteString("-----BEGIN " + kind + "-----\n")
	for len(b64) > 64 {
		buf.WriteString(b64[:64] + "\n")
		b64 = b64[64:]
	}
	buf.WriteString(b64 + "\n-----END " + kind + "-----\n")
	return buf.Bytes()
}

// setupCallers creates the namespaces, the three ServiceAccounts with their RBAC, their
// tokens (TokenRequest API), and a Secret plus DataSource holding secretValue.
func setupCallers(ctx context.Context) error {
	for _, ns := range []string{domainA, domainB, callers} {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	if err := grant(ctx, domainA); err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		return err
	}
	tokens := map[string]*string{"reader": &readerToken, "canceller": &cancellerToken, "stranger": &strangerToken}
	for name, token := range tokens {
		if err := k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: callers}}); err != nil {
			return err
		}
		tr, err := cs.CoreV1().ServiceAccounts(callers).CreateToken(ctx, name, &authnv1.TokenRequest{
			Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
		}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("requesting a token for %s: %w", name, err)
		}
		*token = tr.Status.Token
	}

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "billing-creds", Namespace: domainA},
		StringData: map[string]string{"api_key": secretValue}}
	if err := k8s.Create(ctx, secret); err != nil {
		return err
	}
	ds := &costv1.DataSource{
		ObjectMeta: metav1.ObjectMeta{Name: "billing", Namespace: domainA},
		Spec: costv1.DataSourceSpec{
			Plugin: costv1.PluginSpec{Endpoint: "plugin.example:50051",
				Options:   &runtime.RawExtension{Raw: []byte(`{"bucket":"costs"}`)},
				SecretRef: &costv1.LocalObjectReference{Name: secret.Name}},
			Collector: costv1.CollectorSpec{Image: "collector:test"},
		},
	}
	return k8s.Create(ctx, ds)
}

// response is an answer of the API.
type response struct {
	Status int
	Body   []byte
	JSON   map[string]any
}

// do calls the API. Every answer is checked for the secret's data.
func do(t *testing.T, method, path, token string, body any, headers ...string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, baseURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := https.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if leaks(raw) {
		t.Errorf("%s %s: the answer shows the secret's data: %s", method, path, raw)
	}
	r := response{Status: resp.StatusCode, Body: raw}
	_ = json.Unmarshal(raw, &r.JSON)
	return r
}

func leaks(body []byte) bool {
	return bytes.Contains(body, []byte(secretValue)) ||
		bytes.Contains(body, []byte(base64.StdEncoding.EncodeToString([]byte(secretValue))))
}

// code is the SpaceONE error code of an answer ({"detail": {"code": ...}}).
func (r response) code() string {
	d, _ := r.JSON["detail"].(map[string]any)
	c, _ := d["code"].(string)
	return c
}

func (r response) message() string {
	d, _ := r.JSON["detail"].(map[string]any)
	m, _ := d["message"].(string)
	return m
}

// results are the records of a list answer.
func (r response) results() []map[string]any {
	raw, _ := r.JSON["results"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, e := range raw {
		m, _ := e.(map[string]any)
		out = append(out, m)
	}
	return out
}

func (r response) ids(key string) []string {
	var out []string
	for _, rec := range r.results() {
		s, _ := rec[key].(string)
		out = append(out, s)
	}
	return out
}

// jobSetup describes a Job of a test: its status is written through the status
// subresource.
type jobSetup struct {
	name, dataSource string
	status           costv1.JobStatus
	cancel           bool
}

// createJobs creates Jobs and waits until the API's cache holds them as written.
func createJobs(t *testing.T, ns string, jobs ...jobSetup) map[string]*costv1.Job {
	t.Helper()
	ctx := context.Background()
	out := map[string]*costv1.Job{}
	for _, js := range jobs {
		j := &costv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: js.name, Namespace: ns},
			Spec:       costv1.JobSpec{DataSourceRef: costv1.LocalObjectReference{Name: js.dataSource}, Start: "2026-09", Cancel: js.cancel},
		}
		if err := k8s.Create(ctx, j); err != nil {
			t.Fatal(err)
		}
		j.Status = js.status
		if err := k8s.Status().Update(ctx, j); err != nil {
			t.Fatal(err)
		}
		waitForCache(t, j, &costv1.Job{})
		out[js.name] = j
	}
	return out
}

type taskSetup struct {
	job, dataSource string
	index           int32
	options         string
	status          costv1.JobTaskStatus
}

func createJobTasks(t *testing.T, ns string, tasks ...taskSetup) map[string]*costv1.JobTask {
	t.Helper()
	ctx := context.Background()
	out := map[string]*costv1.JobTask{}
	for _, ts := range tasks {
		jt := &costv1.JobTask{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", ts.job, ts.index), Namespace: ns},
			Spec: costv1.JobTaskSpec{
				JobRef:        costv1.LocalObjectReference{Name: ts.job},
				DataSourceRef: costv1.LocalObjectReference{Name: ts.dataSource},
				Index:         ts.index,
				TaskOptions:   runtime.RawExtension{Raw: []byte(ts.options)},
			},
		}
		if err := k8s.Create(ctx, jt); err != nil {
			t.Fatal(err)
		}
		jt.Status = ts.status
		if err := k8s.Status().Update(ctx, jt); err != nil {
			t.Fatal(err)
		}
		waitForCache(t, jt, &costv1.JobTask{})
		out[jt.Name] = jt
	}
	return out
}

// waitForCache waits until the cache holds obj at its resource version.
func waitForCache(t *testing.T, obj client.Object, into client.Object) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := reader.Get(context.Background(), client.ObjectKeyFromObject(obj), into); err == nil &&
			into.GetResourceVersion() == obj.GetResourceVersion() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the cache never saw %s at resource version %s", obj.GetName(), obj.GetResourceVersion())
}

// roles are what reader and canceller may do in the namespaces granted to them.
var roles = map[string][]rbacv1.PolicyRule{
	"reader":    {{APIGroups: []string{spaceone.Group}, Resources: []string{"jobs", "jobtasks"}, Verbs: []string{"get", "list"}}},
	"canceller": {{APIGroups: []string{spaceone.Group}, Resources: []string{"jobs"}, Verbs: []string{"patch"}}},
}

// grant creates the Roles and RoleBindings of reader and canceller in ns.
func grant(ctx context.Context, ns string) error {
	for name, rules := range roles {
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "api-" + name, Namespace: ns}, Rules: rules}
		if err := k8s.Create(ctx, role); err != nil {
			return err
		}
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "api-" + name, Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: callers}},
		}
		if err := k8s.Create(ctx, binding); err != nil {
			return err
		}
	}
	return nil
}

// newDomain creates a namespace where reader may read and canceller may patch, and
// waits until the API server's authorizer knows it.
func newDomain(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "domain-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := grant(ctx, ns.Name); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := do(t, "POST", "/cost-analysis/v1/job/list", readerToken, map[string]any{"domain_id": ns.Name})
		if r.Status == http.StatusOK {
			return ns.Name
		}
		if time.Now().After(deadline) {
			t.Fatalf("reader never got access to %s: %d %s", ns.Name, r.Status, r.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ts(s string) *metav1.Time {
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return &metav1.Time{Time: tm}
}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// insecureTLS trusts any certificate: for the self-signed one, whose key the test
// never sees.
func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} } //nolint:gosec // test of a self-signed server
