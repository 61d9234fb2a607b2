package spaceone

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTTLCache(t *testing.T) {
	start := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		ttl     time.Duration
		size    int
		puts    int
		advance time.Duration
		wantHit bool
		wantLen int
	}{
		"an entry is served within its TTL":  {ttl: 10 * time.Second, size: 4, puts: 1, advance: 9 * time.Second, wantHit: true, wantLen: 1},
		"an entry expires after its TTL":     {ttl: 10 * time.Second, size: 4, puts: 1, advance: 10 * time.Second, wantHit: false, wantLen: 0},
		"a full cache stays within its size": {ttl: time.Minute, size: 4, puts: 100, wantHit: true, wantLen: 4},
		"a TTL of 0 keeps nothing":           {ttl: 0, size: 4, puts: 3, wantHit: false, wantLen: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			now := start
			c := newTTLCache[int](tc.ttl, tc.size)
			c.now = func() time.Time { return now }
			for i := range tc.puts {
				c.put(fmt.Sprint(i), i)
			}
			now = now.Add(tc.advance)
			last := fmt.Sprint(tc.puts - 1)
			v, hit := c.get(last)
			if hit != tc.wantHit || (hit && v != tc.puts-1) {
				t.Errorf("get(%s) = %v, %v; want hit %v", last, v, hit, tc.wantHit)
			}
			if c.len() != tc.wantLen {
				t.Errorf("len = %d, want %d", c.len(), tc.wantLen)
			}
		})
	}
}

func TestISOTimeMatchesTimeFormat(t *testing.T) {
	tests := map[string]time.Time{
		"a time in UTC":              time.Date(2026, 9, 1, 10, 5, 9, 0, time.UTC),
		"a time in another zone":     time.Date(2026, 1, 2, 3, 4, 5, 999, time.FixedZone("KST", 9*3600)),
		"the first second of a year": time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC),
		"a year past 9999":           time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for name, tm := range tests {
		t.Run(name, func(t *testing.T) {
			mt := metav1.NewTime(tm)
			if got, want := isoTime(&mt), tm.UTC().Format(timeLayout); got != want {
				t.Errorf("isoTime = %s, want %s", got, want)
			}
		})
	}
}
