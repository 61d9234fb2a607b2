package plugin

import (
	"errors"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

func crmetricsGather() ([]*dto.MetricFamily, error) { return crmetrics.Registry.Gather() }

func TestPool(t *testing.T) {
	pool := NewPool()
	a, err := pool.Client(Options{Endpoint: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pool.Client(Options{Endpoint: "127.0.0.1:1", CallTimeout: time.Second})
	if a.conn != b.conn {
		t.Errorf("two clients of one endpoint have two connections")
	}
	tlsClient, _ := pool.Client(Options{Endpoint: "127.0.0.1:1", TLS: &TLSConfig{InsecureSkipVerify: true}})
	if tlsClient.conn == a.conn {
		t.Errorf("TLS and plaintext share a connection")
	}
	if b.opts.CallTimeout != time.Second || a.opts.CallTimeout != DefaultCallTimeout || a.opts.Retries != DefaultRetries || a.opts.Backoff != DefaultBackoff {
		t.Errorf("options %+v / %+v", a.opts, b.opts)
	}
	if _, err := pool.Client(Options{}); err == nil {
		t.Errorf("a client without an endpoint")
	}
	if _, err := pool.Client(Options{Endpoint: "x:1", TLS: &TLSConfig{CAPEM: []byte("not pem")}}); err == nil {
		t.Errorf("a CA that is not PEM was accepted")
	}
	pool.Close()
	if _, err := pool.Client(Options{Endpoint: "127.0.0.1:1"}); !errors.Is(err, ErrPoolClosed) {
		t.Errorf("after Close: %v", err)
	}
}

func TestOptionsDefaults(t *testing.T) {
	cases := map[string]struct {
		in, want Options
	}{
		"zero values take the defaults": {
			in:   Options{},
			want: Options{CallTimeout: DefaultCallTimeout, Retries: DefaultRetries, Backoff: DefaultBackoff}},
		"negative retries mean none": {
			in:   Options{Retries: -1, CallTimeout: time.Second, Backoff: time.Millisecond},
			want: Options{Retries: 0, CallTimeout: time.Second, Backoff: time.Millisecond}},
		"set values stay": {
			in:   Options{Retries: 7, CallTimeout: time.Minute, Backoff: time.Second},
			want: Options{Retries: 7, CallTimeout: time.Minute, Backoff: time.Second}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := tc.in.withDefaults(); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestValidateWindow(t *testing.T) {
	cases := map[string]struct {
		start, end string
		ok         bool
	}{
		"a month":                            {"2024-01", "", true},
		"a day to a month":                   {"2024-01-15", "2024-01", true},
		"RFC 3339 times":                     {"2024-01-15T00:00:00Z", "2024-02-01T00:00:00+09:00", true},
		"months in order":                    {"2024-01", "2024-03", true},
		"an empty start":                     {"", "2024-01", false},
		"a start that is no date":            {"last month", "", false},
		"an end that is no date":             {"2024-01", "2024/02", false},
		"an end before the start":            {"2024-03", "2024-02", false},
		"a day after the month that ends it": {"2024-02-01", "2024-01", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := ValidateWindow(tc.start, tc.end)
			if (err == nil) != tc.ok {
				t.Errorf("ValidateWindow(%q, %q) = %v, want ok=%v", tc.start, tc.end, err, tc.ok)
			}
		})
	}
}

func TestToStructTakesGoValues(t *testing.T) {
	s, err := toStruct("options", map[string]any{"list": []string{"a"}, "map": map[string]string{"k": "v"}, "n": 3})
	if err != nil {
		t.Fatal(err)
	}
	m := s.AsMap()
	if m["list"].([]any)[0] != "a" || m["map"].(map[string]any)["k"] != "v" || m["n"] != float64(3) {
		t.Errorf("got %v", m)
	}
	if s, _ := toStruct("options", nil); s == nil || len(s.Fields) != 0 {
		t.Errorf("nil map became %v", s)
	}
	if _, err := toStruct("options", map[string]any{"f": func() {}}); err == nil {
		t.Errorf("a func was encoded")
	}
}
