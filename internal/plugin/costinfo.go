package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/costops/cost-analysis-operator/internal/plugin/pluginpb"
)

// The CostInfo fields that plugins on spaceone-api 1.12.x still send as protobuf
// float (fixed32) where the current schema has double (fixed64).
const (
	costField          = pluginpb.CostInfoCost
	usageQuantityField = pluginpb.CostInfoUsageQuantity
)

// BilledDateLayout is the form of a record's billed_date: "YYYY-MM-DD".
const BilledDateLayout = "2006-01-02"

// RecordError is a record of Cost.get_data that breaks the data contract. GetData
// fails with it wrapped in a *MalformedError (errors.As finds either).
type RecordError struct {
	// Index is the record's position in the get_data stream, counting from 0 across
	// all the stream's messages.
	Index int
	// Account and Product identify the record for a person; empty when it has none.
	Account string
	Product string
	// Field is the field at fault as the protocol names it ("billed_date", "cost",
	// "usage_quantity"), or "field N" for a field the schema does not have.
	Field string
	// Problem says what is wrong, naming the field: `billed_date "2026-13-01" is
	// not a date`.
	Problem string
}

// Error is e.g. `record 17 (account 1111, product EC2): billed_date "2026-13-01"
// is not a date`.
func (e *RecordError) Error() string {
	var id []string
	if e.Account != "" {
		id = append(id, "account "+e.Account)
	}
	if e.Product != "" {
		id = append(id, "product "+e.Product)
	}
	if len(id) == 0 {
		return fmt.Sprintf("record %d: %s", e.Index, e.Problem)
	}
	return fmt.Sprintf("record %d (%s): %s", e.Index, strings.Join(id, ", "), e.Problem)
}

// CostRecordFromInfo turns the CostInfo at position index of a get_data stream into
// the record the collector writes, and validates it against the data contract, as
// the stream's own decoding does (costDecoder, on the message's wire bytes).
func CostRecordFromInfo(index int, c *pluginpb.CostInfo) (CostRecord, error) {
	b, err := proto.Marshal(c)
	if err != nil {
		return CostRecord{}, &RecordError{Index: index, Field: "record", Problem: "does not encode: " + err.Error()}
	}
	var d costDecoder
	return d.record(index, b)
}

// costDecoder decodes the records of get_data from their wire bytes, with buffers
// reused from one record to the next. It is not safe for concurrent use.
type costDecoder struct {
	json  structJSON
	parts [3][][]byte // the wire bytes of tags, additional_info and data
	// out holds the JSON objects of the current message's records: one buffer
	// per message rather than three per record. A record's objects are slices of
	// it, which stay valid as it grows.
	out []byte
}

// record decodes one CostInfo, the one at position index of the stream, from its
// wire bytes b, and validates it against the data contract.
//
// cost (field 1) and usage_quantity (field 2) are read as double (wire type
// fixed64), as current plugins send them, or as float (wire type fixed32):
// plugins on spaceone-api 1.12.x (Cloudforet's AWS Cost Explorer plugin pins
// 1.12.54) declare both as protobuf float, which the protobuf runtime decoding
// the current schema would keep as an unknown field rather than read. The 32 bits
// are read with math.Float32frombits and the float32 widened to the shortest
// decimal that reads back as the same float32 (12.34, not
// 12.340000152587890625), which is what the plugin's own float meant and what
// SpaceONE's Python engine reads from it (json_format's ToShortestFloat). A float
// carries about 7 significant digits: that is all such a plugin sends. When one
// field arrives several times the last one wins, as in protobuf; a field sent both
// as a non-zero double and as a float is malformed.
//
// Any other field the schema does not have (another field number, or a wire
// type its field's type does not have) is malformed data, never read as a zero.
// So is a record without billed_date, with a billed_date that is not a
// YYYY-MM-DD date, with a cost or usage_quantity that is NaN or infinite, with a
// string that is not UTF-8, or with tags, additional_info or data that JSON cannot
// hold (a NaN inside). tags, additional_info and data become JSON objects
// (structJSON); a message field sent twice merges, as in protobuf. The error is a
// *RecordError that names the record (index, account, product) and the field.
func (d *costDecoder) record(index int, b []byte) (CostRecord, error) {
	var rec CostRecord
	var floatCost, floatUsage *float32
	// problem is the first thing wrong in the wire form; it is reported once the
	// whole record is read, so that the error can name the record.
	var problemField, problem string
	bad := func(field, format string, args ...any) (CostRecord, error) {
		return CostRecord{}, &RecordError{
			Index: index, Account: recordAccount(rec), Product: rec.Product,
			Field: field, Problem: fmt.Sprintf(format, args...),
		}
	}
	note := func(field, p string) {
		if problem == "" {
			problemField, problem = field, p
		}
	}
	for i := range d.parts {
		d.parts[i] = d.parts[i][:0]
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return bad("record", "the record does not parse: %v", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case (num == costField || num == usageQuantityField) && typ == protowire.Fixed64Type:
			v, m := protowire.ConsumeFixed64(b)
			if m < 0 {
				return bad(string(costInfoField(num).Name()), "%s does not parse: %v", costInfoField(num).Name(), protowire.ParseError(m))
			}
			b = b[m:]
			if num == costField {
				rec.Cost = math.Float64frombits(v)
			} else {
				rec.UsageQuantity = math.Float64frombits(v)
			}
		case (num == costField || num == usageQuantityField) && typ == protowire.Fixed32Type:
			bits, m := protowire.ConsumeFixed32(b)
			if m < 0 {
				name := costInfoField(num).Name()
				return bad(string(name), "%s (field %d, fixed32) does not parse: %v", name, num, protowire.ParseError(m))
			}
			b = b[m:]
			f := math.Float32frombits(bits)
			if num == costField {
				floatCost = &f
			} else {
				floatUsage = &f
			}
		case typ == protowire.BytesType && (num >= pluginpb.CostInfoUsageUnit && num <= pluginpb.CostInfoResource || num == pluginpb.CostInfoBilledDate ||
			num == pluginpb.CostInfoTags || num == pluginpb.CostInfoAdditionalInfo || num == pluginpb.CostInfoData):
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				name := costInfoField(num).Name()
				return bad(string(name), "%s does not parse: %v", name, protowire.ParseError(m))
			}
			b = b[m:]
			if num == pluginpb.CostInfoTags || num == pluginpb.CostInfoAdditionalInfo || num == pluginpb.CostInfoData {
				i := num - pluginpb.CostInfoTags
				d.parts[i] = append(d.parts[i], v) // sent twice, a message merges
				continue
			}
			if !utf8.Valid(v) {
				name := string(costInfoField(num).Name())
				note(name, name+" is not UTF-8")
				continue
			}
			s := bytesString(v)
			switch num {
			case pluginpb.CostInfoUsageUnit:
				rec.UsageUnit = s
			case pluginpb.CostInfoProvider:
				rec.Provider = s
			case pluginpb.CostInfoRegionCode:
				rec.RegionCode = s
			case pluginpb.CostInfoProduct:
				rec.Product = s
			case pluginpb.CostInfoUsageType:
				rec.UsageType = s
			case pluginpb.CostInfoResource:
				rec.Resource = s
			case pluginpb.CostInfoBilledDate:
				rec.BilledDate = s
			}
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return bad("record", "the record does not parse: %v", protowire.ParseError(m))
			}
			b = b[m:]
			note(unknownField(num, typ))
		}
	}
	for i, dst := range []*json.RawMessage{&rec.Tags, &rec.AdditionalInfo, &rec.Data} {
		if len(d.parts[i]) == 0 {
			continue
		}
		start := len(d.out)
		var err error
		d.out, err = d.json.appendObject(d.out, d.parts[i])
		if err != nil {
			d.out = d.out[:start]
			name := string(costInfoField(pluginpb.CostInfoTags + protowire.Number(i)).Name())
			if errors.Is(err, errParse) {
				note(name, name+" does not parse")
			} else {
				note(name, name+": "+err.Error())
			}
			continue
		}
		*dst = d.out[start:len(d.out):len(d.out)]
	}
	if problem != "" {
		return bad(problemField, "%s", problem)
	}
	if floatCost != nil {
		if rec.Cost != 0 {
			return bad("cost", "cost (field 1) is sent both as double and as float")
		}
		rec.Cost = widenFloat32(*floatCost)
	}
	if floatUsage != nil {
		if rec.UsageQuantity != 0 {
			return bad("usage_quantity", "usage_quantity (field 2) is sent both as double and as float")
		}
		rec.UsageQuantity = widenFloat32(*floatUsage)
	}

	switch {
	case rec.BilledDate == "":
		return bad("billed_date", "billed_date is missing")
	case !isDate(rec.BilledDate):
		return bad("billed_date", "billed_date %q is not a date", rec.BilledDate)
	case !isFinite(rec.Cost):
		return bad("cost", "cost is %v, not a finite number", rec.Cost)
	case !isFinite(rec.UsageQuantity):
		return bad("usage_quantity", "usage_quantity is %v, not a finite number", rec.UsageQuantity)
	}
	return rec, nil
}

// costsInfo decodes one message of the get_data stream (CostsInfo: repeated
// CostInfo results = 1) from its wire bytes and hands its records to fn in order;
// index is the position of its first record in the stream. It returns the number
// of records handed to fn, and stops at the first invalid record (a *RecordError)
// or error of fn (returned as it is).
//
// The records' strings and JSON objects share memory with b, which must not
// change afterwards.
func (d *costDecoder) costsInfo(index int, b []byte, fn func(CostRecord) error) (int, error) {
	handed := 0
	d.out = make([]byte, 0, len(b)) // the records' JSON is about as long as their wire form
	for {
		// CostsInfo has no other field; protobuf skips what it does not know.
		ci, rest, found, err := nextBytes(b, pluginpb.CostsInfoResults)
		if err != nil {
			return handed, &RecordError{Index: index + handed, Field: "results", Problem: "the message does not parse"}
		} else if !found {
			break
		}
		b = rest
		rec, err := d.record(index+handed, ci)
		if err != nil {
			return handed, err
		}
		handed++
		if err := fn(rec); err != nil {
			return handed, errFromFn{err}
		}
	}
	return handed, nil
}

// bytesString is b as a string without a copy: b is a received message's own
// memory, which nothing changes once it is decoded.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// widenFloat32 is the float64 of the shortest decimal that reads back as f, so a
// plugin's 12.34 sent as float is 12.34 here too. float32(widenFloat32(f)) == f.
func widenFloat32(f float32) float64 {
	if !isFinite(float64(f)) {
		return float64(f)
	}
	var buf [32]byte
	v, err := strconv.ParseFloat(string(strconv.AppendFloat(buf[:0], float64(f), 'g', -1, 32)), 64)
	if err != nil {
		return float64(f)
	}
	return v
}

func isFinite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// isDate reports whether s is a calendar date written YYYY-MM-DD.
func isDate(s string) bool {
	if len(s) != len(BilledDateLayout) {
		return false
	}
	_, err := time.Parse(BilledDateLayout, s)
	return err == nil
}

// recordAccount is the account a record names, for error messages: plugins put it
// in additional_info or data, as "account_id" or "Account ID".
func recordAccount(r CostRecord) string {
	for _, raw := range []json.RawMessage{r.AdditionalInfo, r.Data} {
		if len(raw) == 0 {
			continue
		}
		var m map[string]any
		if json.Unmarshal(raw, &m) != nil {
			continue
		}
		for _, k := range []string{"account_id", "Account ID", "account"} {
			if v, ok := m[k].(string); ok && v != "" {
				return v
			}
		}
	}
	return ""
}

// costInfoField is the schema's field of that number, nil for one it does not have.
func costInfoField(num protowire.Number) protoreflect.FieldDescriptor {
	return (*pluginpb.CostInfo)(nil).ProtoReflect().Descriptor().Fields().ByNumber(num)
}

// unknownField describes an unknown field that is not a float-encoded cost or
// usage_quantity: the field at fault and what is wrong with it, naming its number
// and wire type.
func unknownField(num protowire.Number, typ protowire.Type) (field, problem string) {
	fd := costInfoField(num)
	switch {
	case fd == nil:
		return fmt.Sprintf("field %d", num), fmt.Sprintf("unknown field %d (wire type %d, %s)", num, typ, wireTypeName(typ))
	case num == costField || num == usageQuantityField:
		return string(fd.Name()), fmt.Sprintf("%s (field %d) has wire type %d (%s), not fixed64 (double) or fixed32 (float)",
			fd.Name(), num, typ, wireTypeName(typ))
	default:
		return string(fd.Name()), fmt.Sprintf("%s (field %d) has wire type %d (%s), which its type %s does not have",
			fd.Name(), num, typ, wireTypeName(typ), fd.Kind())
	}
}

func wireTypeName(t protowire.Type) string {
	switch t {
	case protowire.VarintType:
		return "varint"
	case protowire.Fixed64Type:
		return "fixed64"
	case protowire.BytesType:
		return "length-delimited"
	case protowire.StartGroupType:
		return "start group"
	case protowire.EndGroupType:
		return "end group"
	case protowire.Fixed32Type:
		return "fixed32"
	default:
		return "invalid"
	}
}
