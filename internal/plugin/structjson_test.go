package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/costops/cost-analysis-operator/internal/plugin/pluginpb"
)

// runtimeJSON is what the protobuf runtime and encoding/json make of a Struct's
// wire bytes together (proto.Unmarshal, AsMap, json.Marshal): the reference
// structJSON must agree with.
func runtimeJSON(b []byte) (any, error) {
	var s structpb.Struct
	if err := proto.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	m := s.AsMap()
	if depth(m) >= maxJSONDepth {
		return nil, errors.New("too deep")
	}
	j, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out any
	return out, json.Unmarshal(j, &out)
}

// depth is the nesting of v: 1 for an object of scalars.
func depth(v any) int {
	d := 0
	switch v := v.(type) {
	case map[string]any:
		for _, x := range v {
			d = max(d, depth(x))
		}
	case []any:
		for _, x := range v {
			d = max(d, depth(x))
		}
	default:
		return 0
	}
	return d + 1
}

func decodeJSON(t testing.TB, b []byte) any {
	t.Helper()
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("structJSON wrote %q, which is not JSON: %v", b, err)
	}
	return out
}

// randomValue makes a Value of every kind, nested up to depth levels, with the
// strings and numbers JSON has to take care over.
func randomValue(r *rand.Rand, depth int) *structpb.Value {
	strs := []string{"", "a", "prod", `quote " and \ backslash`, "tab\tnew\nline\r", "\x01\x1f ctrl", "<html>&amp;",
		"Ünïcode ✓ 日本", "\u2028\u2029", "emoji 🙂", "nul \x00 inside"}
	nums := []float64{0, 1, -1, 0.1, 12.34, 1e-7, 1e-6, 123456789012345678, 1e20, 1e21, 1.7976931348623157e308,
		5e-324, -0.5, math.Copysign(0, -1), 3}
	k := r.IntN(6)
	if depth <= 0 {
		k = r.IntN(4)
	}
	switch k {
	case 0:
		return structpb.NewNullValue()
	case 1:
		if r.IntN(2) == 0 {
			return structpb.NewNumberValue(nums[r.IntN(len(nums))])
		}
		return structpb.NewNumberValue(r.NormFloat64() * math.Pow(10, float64(r.IntN(30)-15)))
	case 2:
		return structpb.NewStringValue(strs[r.IntN(len(strs))])
	case 3:
		return structpb.NewBoolValue(r.IntN(2) == 0)
	case 4:
		return structpb.NewStructValue(randomStruct(r, depth-1))
	default:
		l := &structpb.ListValue{}
		for range r.IntN(4) {
			l.Values = append(l.Values, randomValue(r, depth-1))
		}
		return structpb.NewListValue(l)
	}
}

func randomStruct(r *rand.Rand, depth int) *structpb.Struct {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for i := range r.IntN(5) {
		keys := []string{"env", "Account ID", "", "key\"quoted", "ключ", fmt.Sprintf("k%d", i)}
		s.Fields[keys[r.IntN(len(keys))]] = randomValue(r, depth)
	}
	return s
}

// Thousands of random Structs: structJSON writes the same JSON as the runtime,
// AsMap and encoding/json, value for value.
func TestStructJSONMatchesTheRuntime(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var e structJSON
	for i := range 5000 {
		s := randomStruct(r, 4)
		b, err := proto.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		want, werr := runtimeJSON(b)
		got, gerr := e.appendObject(nil, [][]byte{b})
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("struct %d %v: runtime error %v, structJSON error %v", i, s, werr, gerr)
		}
		if gerr != nil {
			continue
		}
		if g := decodeJSON(t, got); !reflect.DeepEqual(g, want) {
			t.Fatalf("struct %d: structJSON %s\nruntime %v", i, got, want)
		}
	}
}

func TestStructJSON(t *testing.T) {
	str := func(fields map[string]*structpb.Value) []byte {
		b, err := proto.Marshal(&structpb.Struct{Fields: fields})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	entry := func(key string, value []byte) []byte {
		e := protowire.AppendString(protowire.AppendTag(nil, mapEntryKey, protowire.BytesType), key)
		if value != nil {
			e = protowire.AppendBytes(protowire.AppendTag(e, mapEntryValue, protowire.BytesType), value)
		}
		return protowire.AppendBytes(protowire.AppendTag(nil, structFields, protowire.BytesType), e)
	}
	value := func(v *structpb.Value) []byte {
		b, err := proto.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := map[string]struct {
		parts [][]byte
		want  string // exact output
		err   string
	}{
		"keys are sorted and strings escaped as encoding/json escapes them": {
			parts: [][]byte{str(map[string]*structpb.Value{
				"b": structpb.NewStringValue("line\nquote\"back\\slash\x01"), "a": structpb.NewNumberValue(1e21),
				"c": structpb.NewNumberValue(1e-7), "d": structpb.NewNumberValue(100), "e": structpb.NewBoolValue(true),
				"f": structpb.NewNullValue(),
			})},
			want: `{"a":1e+21,"b":"line\nquote\"back\\slash\u0001","c":1e-7,"d":100,"e":true,"f":null}`},
		"an empty Struct is an empty object": {parts: [][]byte{nil}, want: `{}`},
		"a Struct sent twice merges, and the last value of a key wins": {
			parts: [][]byte{
				str(map[string]*structpb.Value{"a": structpb.NewNumberValue(1), "b": structpb.NewNumberValue(2)}),
				str(map[string]*structpb.Value{"b": structpb.NewNumberValue(3), "c": structpb.NewNumberValue(4)}),
			},
			want: `{"a":1,"b":3,"c":4}`},
		"a key sent twice in one Struct keeps its last value": {
			parts: [][]byte{append(entry("k", value(structpb.NewStringValue("first"))), entry("k", value(structpb.NewStringValue("last")))...)},
			want:  `{"k":"last"}`},
		"an entry without a value is a null, one without a key has the empty key": {
			parts: [][]byte{append(entry("nothing", nil), entry("", value(structpb.NewBoolValue(false)))...)},
			want:  `{"":false,"nothing":null}`},
		"the last member of a Value's oneof wins": {
			parts: [][]byte{entry("v", append(value(structpb.NewStringValue("s")), value(structpb.NewNumberValue(2))...))},
			want:  `{"v":2}`},
		"a Value's object sent twice in a row merges, as a oneof's message does": {
			parts: [][]byte{entry("v", append(
				value(structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"a": structpb.NewNumberValue(1)}})),
				value(structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"b": structpb.NewNumberValue(2)}}))...))},
			want: `{"v":{"a":1,"b":2}}`},
		"a Value's list sent again after another kind starts anew": {
			parts: [][]byte{entry("v", append(append(
				value(structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewNumberValue(1)}})),
				value(structpb.NewStringValue("between"))...),
				value(structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewNumberValue(2)}}))...))},
			want: `{"v":[2]}`},
		"fields the schema does not have are skipped, as protobuf skips them": {
			parts: [][]byte{append(entry("a", append(value(structpb.NewBoolValue(true)), protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 7)...)),
				protowire.AppendString(protowire.AppendTag(nil, 2, protowire.BytesType), "not a field")...)},
			want: `{"a":true}`},
		"nested objects and lists": {
			parts: [][]byte{str(map[string]*structpb.Value{"o": structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
				"l": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewNumberValue(1), structpb.NewStructValue(&structpb.Struct{}), structpb.NewListValue(&structpb.ListValue{})}}),
			}})})},
			want: `{"o":{"l":[1,{},[]]}}`},
		"a NaN is refused, naming its key": {
			parts: [][]byte{str(map[string]*structpb.Value{"rate": structpb.NewNumberValue(math.NaN())})},
			err:   `"rate": the number NaN is not JSON`},
		"an infinity deep inside is refused, naming the path": {
			parts: [][]byte{str(map[string]*structpb.Value{"o": structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"x": structpb.NewNumberValue(math.Inf(1))}})})},
			err:   `"o": "x": the number +Inf is not JSON`},
		"a string that is not UTF-8 is refused": {
			parts: [][]byte{entry("s", protowire.AppendString(protowire.AppendTag(nil, valueString, protowire.BytesType), "\xff"))},
			err:   `"s": a string is not UTF-8`},
		"a key that is not UTF-8 is refused": {
			parts: [][]byte{entry("\xfe", nil)},
			err:   `a key is not UTF-8`},
		"truncated bytes do not parse": {
			parts: [][]byte{entry("a", value(structpb.NewStringValue("abc")))[:6]},
			err:   `the message does not parse`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var e structJSON
			got, err := e.appendObject(nil, tc.parts)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err %v, want %q (wrote %s)", err, tc.err, got)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %s, %v; want %s", got, err, tc.want)
			}
			// The runtime agrees wherever it can read the parts as one message.
			want, werr := runtimeJSON(joinParts(tc.parts))
			if werr != nil || !reflect.DeepEqual(decodeJSON(t, got), want) {
				t.Errorf("runtime: %v, %v", want, werr)
			}
		})
	}
}

// joinParts is the one message the parts of a merged message field make: protobuf
// merges a message sent twice exactly as it decodes their concatenation.
func joinParts(parts [][]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func TestStructJSONRefusesDeepNesting(t *testing.T) {
	v := structpb.NewNumberValue(1)
	for range maxJSONDepth + 1 {
		v = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"a": v}})
	}
	b, err := proto.Marshal(v.GetStructValue())
	if err != nil {
		t.Fatal(err)
	}
	var e structJSON
	if _, err := e.appendObject(nil, [][]byte{b}); err == nil || !strings.Contains(err.Error(), "nested deeper than 100 levels") {
		t.Errorf("err %v", err)
	}
}

// A Struct with many keys takes its map index, and keeps the last of a repeated key.
func TestStructJSONWithManyKeys(t *testing.T) {
	fields := map[string]*structpb.Value{}
	for i := range 100 {
		fields[fmt.Sprintf("k%03d", i)] = structpb.NewNumberValue(float64(i))
	}
	b, err := proto.Marshal(&structpb.Struct{Fields: fields})
	if err != nil {
		t.Fatal(err)
	}
	again, err := proto.Marshal(&structpb.Struct{Fields: map[string]*structpb.Value{"k050": structpb.NewStringValue("last")}})
	if err != nil {
		t.Fatal(err)
	}
	var e structJSON
	got, err := e.appendObject(nil, [][]byte{b, again})
	if err != nil {
		t.Fatal(err)
	}
	m := decodeJSON(t, got).(map[string]any)
	if len(m) != 100 || m["k050"] != "last" || m["k099"] != float64(99) {
		t.Errorf("got %s", got)
	}
	if strings.Count(string(got), `"k050"`) != 1 {
		t.Errorf("k050 written more than once: %s", got)
	}
}

// referenceRecord decodes a CostInfo the way the collector did before costDecoder:
// the protobuf runtime, then the unknown fields, then AsMap and encoding/json. It
// reports only whether the record is valid, and its fields when it is.
func referenceRecord(b []byte) (CostRecord, error) {
	var ci pluginpb.CostInfo
	if err := proto.Unmarshal(b, &ci); err != nil {
		return CostRecord{}, err
	}
	rec := CostRecord{Cost: ci.GetCost(), UsageQuantity: ci.GetUsageQuantity(), UsageUnit: ci.GetUsageUnit(),
		Provider: ci.GetProvider(), RegionCode: ci.GetRegionCode(), Product: ci.GetProduct(),
		UsageType: ci.GetUsageType(), Resource: ci.GetResource(), BilledDate: ci.GetBilledDate()}
	for _, f := range []struct {
		s   *structpb.Struct
		dst *json.RawMessage
	}{{ci.GetTags(), &rec.Tags}, {ci.GetAdditionalInfo(), &rec.AdditionalInfo}, {ci.GetData(), &rec.Data}} {
		if f.s == nil {
			continue
		}
		m := f.s.AsMap()
		if depth(m) >= maxJSONDepth {
			return CostRecord{}, errors.New("too deep")
		}
		j, err := json.Marshal(m)
		if err != nil {
			return CostRecord{}, err
		}
		*f.dst = j
	}
	var floatCost, floatUsage *float32
	for u := ci.ProtoReflect().GetUnknown(); len(u) > 0; {
		num, typ, n := protowire.ConsumeTag(u)
		if n < 0 {
			return CostRecord{}, errors.New("unknown fields do not parse")
		}
		u = u[n:]
		if typ != protowire.Fixed32Type || (num != costField && num != usageQuantityField) {
			return CostRecord{}, fmt.Errorf("unknown field %d", num)
		}
		bits, m := protowire.ConsumeFixed32(u)
		if m < 0 {
			return CostRecord{}, errors.New("fixed32 does not parse")
		}
		u = u[m:]
		f := math.Float32frombits(bits)
		if num == costField {
			floatCost = &f
		} else {
			floatUsage = &f
		}
	}
	if floatCost != nil {
		if rec.Cost != 0 {
			return CostRecord{}, errors.New("cost twice")
		}
		rec.Cost = widenFloat32(*floatCost)
	}
	if floatUsage != nil {
		if rec.UsageQuantity != 0 {
			return CostRecord{}, errors.New("usage_quantity twice")
		}
		rec.UsageQuantity = widenFloat32(*floatUsage)
	}
	if !isDate(rec.BilledDate) || !isFinite(rec.Cost) || !isFinite(rec.UsageQuantity) {
		return CostRecord{}, errors.New("invalid")
	}
	return rec, nil
}

// sameRecord compares two records, their JSON objects by value.
func sameRecord(t testing.TB, a, b CostRecord) bool {
	for _, p := range [][2]*json.RawMessage{{&a.Tags, &b.Tags}, {&a.AdditionalInfo, &b.AdditionalInfo}, {&a.Data, &b.Data}} {
		if (*p[0] == nil) != (*p[1] == nil) {
			return false
		}
		if *p[0] != nil && !reflect.DeepEqual(decodeJSON(t, *p[0]), decodeJSON(t, *p[1])) {
			return false
		}
		*p[0], *p[1] = nil, nil
	}
	eq := func(x, y float64) bool { return x == y || math.IsNaN(x) && math.IsNaN(y) }
	ca, cb := a, b
	ca.Cost, ca.UsageQuantity, cb.Cost, cb.UsageQuantity = 0, 0, 0, 0
	return eq(a.Cost, b.Cost) && eq(a.UsageQuantity, b.UsageQuantity) && reflect.DeepEqual(ca, cb)
}

// FuzzCostDecoder holds costDecoder to the reference on any bytes: the same
// records accepted, with the same fields, and the same refused.
//
//	go test ./internal/plugin -run '^$' -fuzz FuzzCostDecoder -fuzztime 100000x
func FuzzCostDecoder(f *testing.F) {
	seed := func(ci *pluginpb.CostInfo, extra ...[]byte) {
		b, err := proto.Marshal(ci)
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range extra {
			b = append(b, e...)
		}
		f.Add(b)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		seed(&pluginpb.CostInfo{Cost: r.Float64() * 100, UsageQuantity: 2, UsageUnit: "Hrs", Provider: "aws",
			RegionCode: "us-east-1", Product: "EC2", UsageType: "BoxUsage", Resource: "i-1", BilledDate: "2024-02-29",
			Tags: randomStruct(r, 2), AdditionalInfo: randomStruct(r, 2), Data: randomStruct(r, 2)})
	}
	seed(&pluginpb.CostInfo{BilledDate: "2024-01-01"}, wireFloat(1, 12.34), wireFloat(2, 1))
	seed(&pluginpb.CostInfo{BilledDate: "2024-01-01", Cost: 1}, wireFloat(1, 2))
	seed(&pluginpb.CostInfo{BilledDate: "2024-13-01"})
	seed(&pluginpb.CostInfo{BilledDate: "2024-01-01"}, wireVarint(99, 1))
	seed(&pluginpb.CostInfo{BilledDate: "2024-01-01"}, wireString(12, "\x0a\x03\x0a\x01a"))
	f.Fuzz(func(t *testing.T, b []byte) {
		want, werr := referenceRecord(b)
		var d costDecoder
		got, gerr := d.record(0, b)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("%x: reference error %v, costDecoder error %v", b, werr, gerr)
		}
		if gerr == nil && !sameRecord(t, got, want) {
			t.Fatalf("%x: costDecoder %+v\nreference %+v", b, got, want)
		}
	})
}
