package spaceone

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/costops/cost-analysis-operator/internal/query"
)

// maxBodyBytes bounds a request body; a Query is far smaller.
const maxBodyBytes = 1 << 20

// params are a call's parameters: the JSON body, then the URL's query string for keys
// the body does not set, then the path's values, which win (as grpc-gateway's do).
type params map[string]any

// readParams decodes a call's parameters. A GET's query string carries strings;
// "only" may repeat or be comma-separated and "query" is JSON text.
func readParams(w http.ResponseWriter, r *http.Request, pathKeys ...string) (params, error) {
	p := params{}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, errInvalid("body", "the body is larger than 1 MiB")
		}
		return nil, errInvalid("body", "the body could not be read")
	}
	if len(bytes.TrimSpace(body)) > 0 {
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return nil, errInvalid("body", "the body must be a JSON object")
		}
		switch m := v.(type) {
		case nil: // "null": no parameters
		case map[string]any:
			p = m
		default:
			return nil, errInvalid("body", "the body must be a JSON object")
		}
	}
	for key, values := range r.URL.Query() {
		if _, set := p[key]; set || len(values) == 0 {
			continue
		}
		switch key {
		case "only":
			var only []any
			for _, v := range values {
				for _, f := range strings.Split(v, ",") {
					if f = strings.TrimSpace(f); f != "" {
						only = append(only, f)
					}
				}
			}
			p[key] = only
		case "query":
			var q any
			if err := json.Unmarshal([]byte(values[0]), &q); err != nil {
				return nil, errInvalid("query", "the query parameter must be a JSON object")
			}
			p[key] = q
		default:
			p[key] = values[0]
		}
	}
	for _, key := range pathKeys {
		if v := r.PathValue(key); v != "" {
			p[key] = v
		}
	}
	return p, nil
}

// str reads a string parameter; "" counts as unset.
func (p params) str(key string, required bool) (string, error) {
	v, ok := p[key]
	if !ok || v == nil {
		if required {
			return "", errRequired(key)
		}
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", errInvalid(key, "expected a string")
	}
	if s == "" && required {
		return "", errRequired(key)
	}
	return s, nil
}

// domainID reads the required domain_id: the namespace.
func (p params) domainID() (string, error) {
	ns, err := p.str("domain_id", true)
	if err != nil {
		return "", err
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return "", errInvalid("domain_id", "not a namespace name")
	}
	return ns, nil
}

// enum reads an optional string parameter that must be one of values.
func (p params) enum(key string, values []string) (string, error) {
	s, err := p.str(key, false)
	if err != nil || s == "" {
		return s, err
	}
	if !slices.Contains(values, s) {
		return "", errInvalid(key, "must be one of "+strings.Join(values, ", "))
	}
	return s, nil
}

// only reads the "only" field list: a list of strings, or one comma-separated string.
func (p params) only() ([]string, error) {
	switch v := p["only"].(type) {
	case nil:
		return nil, nil
	case string:
		var out []string
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
		return out, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, errInvalid("only", "expected a list of strings")
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, errInvalid("only", "expected a list of strings")
}

// query reads the optional SpaceONE Query of a list call.
func (p params) query() (*query.Query, error) {
	switch v := p["query"].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		q, err := query.NewQuery(v)
		if err != nil {
			return nil, queryError(err)
		}
		return q, nil
	}
	return nil, errInvalid("query", "expected an object")
}

// statisticsQuery reads the required StatisticsQuery of a stat call.
func (p params) statisticsQuery() (*query.StatisticsQuery, error) {
	switch v := p["query"].(type) {
	case nil:
		return nil, errRequired("query")
	case map[string]any:
		q, err := query.NewStatisticsQuery(v)
		if err != nil {
			return nil, queryError(err)
		}
		return q, nil
	}
	return nil, errInvalid("query", "expected an object")
}

// queryError turns the query engine's error into ERROR_INVALID_PARAMETER.
func queryError(err error) error {
	var qe *query.Error
	if errors.As(err, &qe) {
		key := qe.Key
		if key == "" {
			key = "query"
		}
		return errInvalid(key, qe.Message)
	}
	return err
}

// trim keeps the record's keys listed in only.
func trim(record map[string]any, only []string) map[string]any {
	out := make(map[string]any, len(only))
	for _, k := range only {
		if v, ok := record[k]; ok {
			out[k] = v
		}
	}
	return out
}
