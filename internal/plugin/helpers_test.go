package plugin

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/costops/cost-analysis-operator/internal/sampleplugin"
)

// startPlugin serves a sample plugin on loopback until the test ends.
func startPlugin(t *testing.T, opts ...sampleplugin.Option) (string, *sampleplugin.Server) {
	t.Helper()
	addr, srv, stop, err := sampleplugin.StartOnLoopback(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return addr, srv
}

// testClient returns a client from a pool of its own, closed when the test ends.
func testClient(t *testing.T, opts Options) *Client {
	t.Helper()
	pool := NewPool()
	t.Cleanup(pool.Close)
	c, err := pool.Client(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var secret = map[string]any{"api_key": "s3cret"}

// member is the value of key in the JSON object raw (nil when raw is empty or has
// no such key), decoded as encoding/json decodes into any.
func member(t *testing.T, raw json.RawMessage, key string) any {
	t.Helper()
	if len(raw) == 0 {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s is not a JSON object: %v", raw, err)
	}
	return m[key]
}
