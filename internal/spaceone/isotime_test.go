package spaceone

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

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
