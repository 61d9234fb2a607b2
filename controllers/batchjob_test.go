package controllers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/costops/cost-analysis-operator/internal/taskpod"
)

func TestPodSecurityContext(t *testing.T) {
	cases := map[string]struct {
		in      *corev1.PodSecurityContext
		fsGroup int64
		user    *int64
	}{
		"no context gets the collector image's group": {in: nil, fsGroup: taskpod.SecretGroup},
		"a context without fsGroup keeps its fields and gets the group": {
			in: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000)}, fsGroup: taskpod.SecretGroup, user: ptr.To[int64](1000)},
		"the template's own fsGroup wins": {in: &corev1.PodSecurityContext{FSGroup: ptr.To[int64](2000)}, fsGroup: 2000},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var before *corev1.PodSecurityContext
			if tc.in != nil {
				before = tc.in.DeepCopy()
			}
			got := podSecurityContext(tc.in)
			if got.FSGroup == nil || *got.FSGroup != tc.fsGroup {
				t.Errorf("fsGroup %v, want %d", got.FSGroup, tc.fsGroup)
			}
			if tc.user != nil && (got.RunAsUser == nil || *got.RunAsUser != *tc.user) {
				t.Errorf("runAsUser %v, want %d", got.RunAsUser, *tc.user)
			}
			if tc.in != nil && (tc.in.FSGroup == nil) != (before.FSGroup == nil) {
				t.Errorf("the template's context was changed: %+v", tc.in)
			}
		})
	}
}
