package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/plugin"
)

// pluginInputs is what every plugin call of a DataSource is given.
type pluginInputs struct {
	Options    map[string]any
	SecretData map[string]any
	Schema     string
	Conn       plugin.Options
}

// inputError says why a DataSource cannot be used for a plugin call.
type inputError struct {
	Code   string // SpaceONE-style error code for a Job
	Reason string // condition reason for a DataSource
	Err    error
}

func (e *inputError) Error() string { return e.Err.Error() }

// resolvePluginInputs reads the DataSource's options and its Secrets. Secrets are read
// through reader, which should be the API reader: the manager never caches Secret data.
func resolvePluginInputs(ctx context.Context, reader client.Reader, ds *costv1.DataSource, callTimeout time.Duration) (*pluginInputs, *inputError) {
	in := &pluginInputs{Schema: ds.Spec.Plugin.Schema}
	opts, err := rawObject(ds.Spec.Plugin.Options)
	if err != nil {
		return nil, &inputError{Code: costv1.ErrorGetJobTasks, Reason: costv1.ReasonInvalidSpec,
			Err: fmt.Errorf("spec.plugin.options of DataSource %s: %w", ds.Name, err)}
	}
	in.Options = opts
	in.SecretData = map[string]any{}
	if ref := ds.Spec.Plugin.SecretRef; ref != nil {
		sec, ierr := getSecret(ctx, reader, ds.Namespace, ref.Name)
		if ierr != nil {
			return nil, ierr
		}
		for k, v := range sec.Data {
			in.SecretData[k] = string(v)
		}
	}
	in.Conn = plugin.Options{Endpoint: ds.Spec.Plugin.Endpoint, CallTimeout: callTimeout}
	if tls := ds.Spec.Plugin.TLS; tls != nil {
		in.Conn.TLS = &plugin.TLSConfig{ServerName: tls.ServerName, InsecureSkipVerify: tls.InsecureSkipVerify}
		if ca := tls.CASecretRef; ca != nil {
			sec, ierr := getSecret(ctx, reader, ds.Namespace, ca.Name)
			if ierr != nil {
				return nil, ierr
			}
			pem, ok := sec.Data[ca.Key]
			if !ok {
				return nil, &inputError{Code: costv1.ErrorSecretNotFound, Reason: costv1.ReasonInvalidSpec,
					Err: fmt.Errorf("secret %s has no key %q for the plugin's CA", ca.Name, ca.Key)}
			}
			in.Conn.TLS.CAPEM = pem
		}
	}
	return in, nil
}

func getSecret(ctx context.Context, reader client.Reader, namespace, name string) (*corev1.Secret, *inputError) {
	sec := &corev1.Secret{}
	if err := reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &inputError{Code: costv1.ErrorSecretNotFound, Reason: costv1.ReasonSecretNotFound,
				Err: fmt.Errorf("secret %s/%s not found", namespace, name)}
		}
		return nil, &inputError{Code: costv1.ErrorSecretNotFound, Reason: costv1.ReasonSecretNotFound,
			Err: fmt.Errorf("reading secret %s/%s: %w", namespace, name, err)}
	}
	return sec, nil
}

// rawObject decodes a free-form object field; nil is an empty object.
func rawObject(raw *runtime.RawExtension) (map[string]any, error) {
	out := map[string]any{}
	if raw == nil || len(raw.Raw) == 0 {
		return out, nil
	}
	if err := json.Unmarshal(raw.Raw, &out); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	return out, nil
}

// toRaw encodes a map as a RawExtension.
func toRaw(m map[string]any) (*runtime.RawExtension, error) {
	if m == nil {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &runtime.RawExtension{Raw: b}, nil
}
