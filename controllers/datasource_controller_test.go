package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

// waitPluginReady waits until the DataSource's PluginReady condition has the status
// and reason given, and returns its message.
func waitPluginReady(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string) string {
	t.Helper()
	var msg string
	eventually(t, 20*time.Second, func() error {
		ds := &costv1.DataSource{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, ds); err != nil {
			return err
		}
		c := meta.FindStatusCondition(ds.Status.Conditions, costv1.ConditionPluginReady)
		if c == nil || c.Status != status || c.Reason != reason || c.ObservedGeneration != ds.Generation {
			return fmt.Errorf("PluginReady %+v, want %s/%s", c, status, reason)
		}
		msg = c.Message
		return nil
	})
	return msg
}

func TestDataSourcePluginReady(t *testing.T) {
	ctx := context.Background()
	startManager(t, testOptions())

	t.Run("a DataSource whose plugin accepts the secret is ready", func(t *testing.T) {
		ns := newNamespace(t)
		createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
		createDataSource(t, ns, "billing", pluginAddr, `{}`)
		waitPluginReady(t, ns, "billing", metav1.ConditionTrue, costv1.ReasonVerified)
	})

	t.Run("a missing Secret is reported, and creating it makes the DataSource ready", func(t *testing.T) {
		ns := newNamespace(t)
		createDataSource(t, ns, "billing", pluginAddr, `{}`)
		msg := waitPluginReady(t, ns, "billing", metav1.ConditionFalse, costv1.ReasonSecretNotFound)
		if !strings.Contains(msg, "creds") {
			t.Fatalf("message %q does not name the Secret", msg)
		}
		createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
		waitPluginReady(t, ns, "billing", metav1.ConditionTrue, costv1.ReasonVerified)
	})

	t.Run("a secret the plugin rejects is reported with the plugin's error, and fixing it is noticed", func(t *testing.T) {
		ns := newNamespace(t)
		createSecret(t, ns, "creds", map[string]string{"wrong_key": "k"})
		createDataSource(t, ns, "billing", pluginAddr, `{}`)
		msg := waitPluginReady(t, ns, "billing", metav1.ConditionFalse, costv1.ReasonVerifyFailed)
		if !strings.Contains(msg, "api_key") {
			t.Fatalf("message %q does not carry the plugin's error", msg)
		}
		sec := &corev1.Secret{}
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "creds"}, sec); err != nil {
			t.Fatal(err)
		}
		sec.Data["api_key"] = []byte("k")
		if err := k8s.Update(ctx, sec); err != nil {
			t.Fatal(err)
		}
		waitPluginReady(t, ns, "billing", metav1.ConditionTrue, costv1.ReasonVerified)
	})

	t.Run("an unreachable plugin is reported", func(t *testing.T) {
		ns := newNamespace(t)
		createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
		createDataSource(t, ns, "billing", "127.0.0.1:1", `{}`)
		waitPluginReady(t, ns, "billing", metav1.ConditionFalse, costv1.ReasonPluginUnavailable)
	})

	t.Run("a change of the DataSource is verified again", func(t *testing.T) {
		ns := newNamespace(t)
		createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
		ds := createDataSource(t, ns, "billing", pluginAddr, `{}`)
		waitPluginReady(t, ns, "billing", metav1.ConditionTrue, costv1.ReasonVerified)
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "billing"}, ds); err != nil {
			t.Fatal(err)
		}
		ds.Spec.Plugin.Options.Raw = []byte(`{"fail_verify": "account suspended"}`)
		if err := k8s.Update(ctx, ds); err != nil {
			t.Fatal(err)
		}
		msg := waitPluginReady(t, ns, "billing", metav1.ConditionFalse, costv1.ReasonVerifyFailed)
		if !strings.Contains(msg, "account suspended") {
			t.Fatalf("message %q", msg)
		}
	})
}
