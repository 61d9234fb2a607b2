package main

import (
	"errors"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestParseSecretRef(t *testing.T) {
	own := func() (string, error) { return "cost-analysis-system", nil }
	notInPod := func() (string, error) { return "", errors.New("not in a pod") }
	tests := map[string]struct {
		value   string
		own     func() (string, error)
		want    types.NamespacedName
		wantErr bool
	}{
		"a namespace and a name":                    {value: "finops/store", own: notInPod, want: types.NamespacedName{Namespace: "finops", Name: "store"}},
		"a bare name is in the manager's namespace": {value: "cost-analysis-store", own: own, want: types.NamespacedName{Namespace: "cost-analysis-system", Name: "cost-analysis-store"}},
		"a bare name outside a pod is an error":     {value: "cost-analysis-store", own: notInPod, wantErr: true},
		"an empty namespace is an error":            {value: "/store", own: own, wantErr: true},
		"an empty name is an error":                 {value: "finops/", own: own, wantErr: true},
		"a third part is an error":                  {value: "a/b/c", own: own, wantErr: true},
		"an invalid name is an error":               {value: "finops/Store_1", own: own, wantErr: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseSecretRef(tt.value, tt.own)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error: %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseNamespaces(t *testing.T) {
	tests := map[string]struct {
		value   string
		want    []string
		wantErr bool
	}{
		"empty is every namespace":                {value: "", want: nil},
		"a list, spaces and repeats dropped":      {value: "team-a, team-b,,team-a", want: []string{"team-a", "team-b"}},
		"a name that is no namespace is an error": {value: "team-a,Team_B", wantErr: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseNamespaces(tt.value)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error: %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
