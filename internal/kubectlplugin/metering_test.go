package kubectlplugin

import (
	"encoding/json"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/spaceone"
)

// The plugin rebuilds the metering API's answer rather than linking the API server;
// this keeps the two the same, entry for entry, for every kind of Job.
func TestMeteringMatchesTheAPI(t *testing.T) {
	tests := map[string]*costv1.MeteringSummary{
		"not picked up yet":        nil,
		"a run with requests":      {ResourceSpecCode: "cpu-100m.memory-64Mi", TaskPodSeconds: 45, CollectedBytes: 39592},
		"a collector with no spec": {TaskPodSeconds: 7200, CollectedBytes: 3 << 30},
		"nothing consumed":         {ResourceSpecCode: "cpu-1", TaskPodSeconds: 0, CollectedBytes: 0},
	}
	for name, m := range tests {
		t.Run(name, func(t *testing.T) {
			j := &costv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "r", UID: "2f1c7d7e-3a55-4c43-9a57-3f3c4e1d2b10"}}
			j.Status.Metering = m
			ours, err := json.Marshal(MeteringInfo{ProductInfoList: meteringProducts(j)})
			if err != nil {
				t.Fatal(err)
			}
			api, err := json.Marshal(spaceone.MeteringInfo{ProductInfoList: spaceone.MeteringProducts(j)})
			if err != nil {
				t.Fatal(err)
			}
			if string(ours) != string(api) {
				t.Errorf("the plugin's metering differs from the API's:\n plugin %s\n api    %s", ours, api)
			}
		})
	}
}
