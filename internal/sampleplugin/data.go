package sampleplugin

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/costops/cost-analysis-operator/internal/plugin/pluginpb"
)

// maxRecords bounds the records of one task.
const maxRecords = 100_000_000

// dataSpec is what get_data makes up records for.
type dataSpec struct {
	account string
	month   month
	index   string // the task's index, when it has one
	records int
}

// dataSpecOf reads a task's task_options, with the plugin options' defaults.
func dataSpecOf(k, task knobs, current month) (dataSpec, error) {
	spec := dataSpec{account: "account-a", month: current}
	if s, err := task.str("account_id"); err != nil {
		return spec, err
	} else if s != "" {
		spec.account = s
	}
	if s, err := task.str("month"); err != nil {
		return spec, err
	} else if s != "" {
		m, ok := parseMonth(s)
		if !ok {
			return spec, invalid("task_options month must be YYYY-MM, not %q", s)
		}
		spec.month = m
	}
	if v, ok := task["index"]; ok && v != nil {
		spec.index = fmt.Sprint(v)
	}
	var err error
	if spec.records, err = k.integer(OptRecordsPerTask, 24, 0, maxRecords); err != nil {
		return spec, err
	}
	if spec.records, err = task.integer(OptRecordsPerTask, spec.records, 0, maxRecords); err != nil {
		return spec, err
	}
	return spec, nil
}

var (
	regions  = []string{"us-east-1", "eu-west-1", "ap-northeast-2"}
	products = []struct{ name, usageType, unit string }{
		{"Compute", "BoxUsage:m5.large", "Hrs"},
		{"Storage", "TimedStorage-ByteHrs", "GB-Mo"},
		{"Network", "DataTransfer-Out-Bytes", "GB"},
		{"Database", "InstanceUsage:db.r5.large", "Hrs"},
	}
	envs = []string{"prod", "staging", "dev"}
)

// generator makes up the records of one task, the same ones every time: its random
// source is seeded from the account, month and index of the task.
type generator struct {
	spec dataSpec
	rnd  *rand.Rand
	i    int
}

func newGenerator(spec dataSpec) *generator {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%s/%s", spec.account, spec.month, spec.index)
	seed := h.Sum64()
	return &generator{spec: spec, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (g *generator) next() *pluginpb.CostInfo {
	i := g.i
	g.i++
	r := g.rnd
	region := regions[r.IntN(len(regions))]
	p := products[r.IntN(len(products))]
	day := 1 + i%g.spec.month.days()
	return &pluginpb.CostInfo{
		Cost:          math.Round(r.Float64()*10000) / 100,
		UsageQuantity: math.Round(r.Float64()*1000000) / 1000,
		UsageUnit:     p.unit,
		Provider:      "sample",
		RegionCode:    region,
		Product:       p.name,
		UsageType:     p.usageType,
		Resource:      fmt.Sprintf("sample:%s:%s:resource-%d", region, g.spec.account, i),
		Tags: &structpb.Struct{Fields: map[string]*structpb.Value{
			"env": structpb.NewStringValue(envs[r.IntN(len(envs))]),
		}},
		AdditionalInfo: &structpb.Struct{Fields: map[string]*structpb.Value{
			"account_id": structpb.NewStringValue(g.spec.account),
		}},
		Data: &structpb.Struct{Fields: map[string]*structpb.Value{
			"account_id": structpb.NewStringValue(g.spec.account),
			"record":     structpb.NewNumberValue(float64(i)),
		}},
		BilledDate: fmt.Sprintf("%s-%02d", g.spec.month, day),
	}
}
