package plugin

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/costops/cost-analysis-operator/internal/plugin/pluginpb"
)

// The CostInfo fields that plugins on spaceone-api 1.12.x still send as protobuf
// float (fixed32) where the current schema has double (fixed64).
const (
	costField          protowire.Number = 1
	usageQuantityField protowire.Number = 2
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
// the record the collector writes, and validates it against the data contract.
//
// cost (field 1) and usage_quantity (field 2) are read from the message's double
// fields (wire type fixed64), as current plugins send them, or, when the message
// carries them in its unknown fields as wire type 5 (fixed32) on field numbers 1 and
// 2, decoded from there: plugins on spaceone-api 1.12.x (Cloudforet's AWS Cost
// Explorer plugin pins 1.12.54) declare both as protobuf float, and the protobuf
// runtime keeps a field whose wire type does not match the schema's as an unknown
// field instead of decoding it. Those bytes are walked with protowire.ConsumeTag and
// protowire.ConsumeFixed32, the 32 bits read with math.Float32frombits, and the
// float32 widened to the shortest decimal that reads back as the same float32
// (12.34, not 12.340000152587890625), which is what the plugin's own float meant
// and what SpaceONE's Python engine reads from it (json_format's ToShortestFloat).
// A float carries about 7 significant digits: that is all such a plugin sends. When
// one field arrives several times as fixed32 the last one wins, as in protobuf; a
// field sent both as a non-zero double and as a float is malformed.
//
// Any other unknown field (another field number, or another wire type on fields 1
// and 2) is malformed data, never read as a zero. So is a record without
// billed_date, with a billed_date that is not a YYYY-MM-DD date, or with a cost or
// usage_quantity that is NaN or infinite. The error is a *RecordError that names
// the record (index, account, product) and the field.
func CostRecordFromInfo(index int, c *pluginpb.CostInfo) (CostRecord, error) {
	rec := CostRecord{
		Cost:           c.GetCost(),
		UsageQuantity:  c.GetUsageQuantity(),
		UsageUnit:      c.GetUsageUnit(),
		Provider:       c.GetProvider(),
		RegionCode:     c.GetRegionCode(),
		Product:        c.GetProduct(),
		UsageType:      c.GetUsageType(),
		Resource:       c.GetResource(),
		Tags:           fromStruct(c.GetTags()),
		AdditionalInfo: fromStruct(c.GetAdditionalInfo()),
		Data:           fromStruct(c.GetData()),
		BilledDate:     c.GetBilledDate(),
	}
	bad := func(field, format string, args ...any) (CostRecord, error) {
		return CostRecord{}, &RecordError{
			Index: index, Account: recordAccount(rec), Product: rec.Product,
			Field: field, Problem: fmt.Sprintf(format, args...),
		}
	}

	if unknown := c.ProtoReflect().GetUnknown(); len(unknown) > 0 {
		var floatCost, floatUsage *float32
		for b := unknown; len(b) > 0; {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 {
				return bad("unknown fields", "the unknown fields do not parse: %v", protowire.ParseError(n))
			}
			b = b[n:]
			if typ != protowire.Fixed32Type || (num != costField && num != usageQuantityField) {
				field, problem := unknownField(num, typ)
				return bad(field, "%s", problem)
			}
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
	for _, m := range []map[string]any{r.AdditionalInfo, r.Data} {
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
