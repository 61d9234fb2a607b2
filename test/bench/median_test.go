package bench

import "testing"

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		v    []float64
		want float64
		at   int
	}{
		{[]float64{3}, 3, 0},
		{[]float64{2.0, 1.5, 1.8}, 1.8, 2},
		{[]float64{4, 1, 3, 2}, 2.5, 3},
		{[]float64{1.2, 1.2, 0.9}, 1.2, 0},
	} {
		if got := median(c.v); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.v, got, c.want)
		}
		if got := medianIndex(c.v); got != c.at {
			t.Errorf("medianIndex(%v) = %d, want %d", c.v, got, c.at)
		}
	}
	if median(nil) != 0 {
		t.Error("median(nil) != 0")
	}
}
