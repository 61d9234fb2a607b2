package sampleplugin

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"

	"strconv"

	"google.golang.org/protobuf/encoding/protowire"

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
// source is seeded from the account, month and index of the task. It writes each
// record straight into the wire form of a CostsInfo message (protowire): a plugin
// that streams millions of records should not spend more on them than the
// collector that reads them.
type generator struct {
	spec   dataSpec
	rnd    *rand.Rand
	days   int
	i      int
	record []byte // one CostInfo, reused
	text   []byte // the resource or billed date being formatted, reused
}

func newGenerator(spec dataSpec) *generator {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%s/%s", spec.account, spec.month, spec.index)
	seed := h.Sum64()
	return &generator{spec: spec, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), days: spec.month.days()}
}

// The google.protobuf.Struct fields the generator writes.
const (
	structFields protowire.Number = 1 // Struct.fields (map entries)
	entryKey     protowire.Number = 1
	entryValue   protowire.Number = 2
	valueNumber  protowire.Number = 2
	valueString  protowire.Number = 3
)

// appendNext appends the next record to b, a CostsInfo message being built, as
// one of its results.
func (g *generator) appendNext(b []byte) []byte {
	i := g.i
	g.i++
	r := g.rnd
	region := regions[r.IntN(len(regions))]
	p := products[r.IntN(len(products))]
	cost := math.Round(r.Float64()*10000) / 100
	usage := math.Round(r.Float64()*1000000) / 1000
	env := envs[r.IntN(len(envs))]
	account := g.spec.account

	c := g.record[:0]
	c = appendDouble(c, pluginpb.CostInfoCost, cost)
	c = appendDouble(c, pluginpb.CostInfoUsageQuantity, usage)
	c = appendString(c, pluginpb.CostInfoUsageUnit, p.unit)
	c = appendString(c, pluginpb.CostInfoProvider, "sample")
	c = appendString(c, pluginpb.CostInfoRegionCode, region)
	c = appendString(c, pluginpb.CostInfoProduct, p.name)
	c = appendString(c, pluginpb.CostInfoUsageType, p.usageType)
	t := append(g.text[:0], "sample:"...)
	t = append(append(append(append(t, region...), ':'), account...), ":resource-"...)
	t = strconv.AppendInt(t, int64(i), 10)
	c = appendBytes(c, pluginpb.CostInfoResource, t)
	c = appendBytes(c, pluginpb.CostInfoTags, stringEntry(nil, "env", env))
	c = appendBytes(c, pluginpb.CostInfoAdditionalInfo, stringEntry(nil, "account_id", account))
	c = appendBytes(c, pluginpb.CostInfoData, numberEntry(stringEntry(nil, "account_id", account), "record", float64(i)))
	t = append(t[:0], g.spec.month.String()...)
	day := 1 + i%g.days
	t = append(t, '-', byte('0'+day/10), byte('0'+day%10))
	c = appendBytes(c, pluginpb.CostInfoBilledDate, t)
	g.record, g.text = c, t
	return protowire.AppendBytes(protowire.AppendTag(b, pluginpb.CostsInfoResults, protowire.BytesType), c)
}

// appendDouble appends a double field, which proto3 leaves out when it is zero.
func appendDouble(b []byte, num protowire.Number, v float64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendFixed64(protowire.AppendTag(b, num, protowire.Fixed64Type), math.Float64bits(v))
}

// appendString appends a string field, which proto3 leaves out when it is empty.
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
}

// stringEntry appends a Struct map entry key: {string_value: v}.
func stringEntry(b []byte, key, v string) []byte {
	value := appendString(nil, valueString, v)
	return mapEntry(b, key, value)
}

// numberEntry appends a Struct map entry key: {number_value: v}.
func numberEntry(b []byte, key string, v float64) []byte {
	value := protowire.AppendFixed64(protowire.AppendTag(nil, valueNumber, protowire.Fixed64Type), math.Float64bits(v))
	return mapEntry(b, key, value)
}

func mapEntry(b []byte, key string, value []byte) []byte {
	n := protowire.SizeTag(entryKey) + protowire.SizeBytes(len(key)) + protowire.SizeTag(entryValue) + protowire.SizeBytes(len(value))
	b = protowire.AppendVarint(protowire.AppendTag(b, structFields, protowire.BytesType), uint64(n))
	b = protowire.AppendString(protowire.AppendTag(b, entryKey, protowire.BytesType), key)
	return protowire.AppendBytes(protowire.AppendTag(b, entryValue, protowire.BytesType), value)
}
