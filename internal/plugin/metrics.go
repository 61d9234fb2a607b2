package plugin

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// codeMalformed is the code label of a call that succeeded but returned data that
// breaks the protocol.
const codeMalformed = "Malformed"

var (
	callDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cost_analysis_plugin_call_duration_seconds",
		Help:    "Duration of each attempt of a plugin call, by method (e.g. Job.get_tasks) and gRPC code.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900},
	}, []string{"method", "code"})

	callErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cost_analysis_plugin_call_errors_total",
		Help: "Failed attempts of plugin calls, by method and gRPC code (Malformed for answers that break the protocol).",
	}, []string{"method", "code"})
)

func init() {
	crmetrics.Registry.MustRegister(callDuration, callErrors)
}

// observe records one attempt of a call.
func observe(method string, code codes.Code, d time.Duration) {
	callDuration.WithLabelValues(method, code.String()).Observe(d.Seconds())
	if code != codes.OK {
		callErrors.WithLabelValues(method, code.String()).Inc()
	}
}

func observeMalformed(method string) {
	callErrors.WithLabelValues(method, codeMalformed).Inc()
}
