package plugin

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// The wire form of google.protobuf.Struct, Value and ListValue, which CostInfo's
// tags, additional_info and data are.
const (
	structFields protowire.Number = 1 // Struct: map<string, Value> fields = 1

	mapEntryKey   protowire.Number = 1
	mapEntryValue protowire.Number = 2

	valueNull   protowire.Number = 1 // NullValue null_value = 1 (an enum: varint)
	valueNumber protowire.Number = 2 // double number_value = 2
	valueString protowire.Number = 3 // string string_value = 3
	valueBool   protowire.Number = 4 // bool bool_value = 4
	valueStruct protowire.Number = 5 // Struct struct_value = 5
	valueList   protowire.Number = 6 // ListValue list_value = 6

	listValues protowire.Number = 1 // ListValue: repeated Value values = 1
)

// maxJSONDepth bounds the nesting of a Struct: deeper data is refused rather
// than walked (protobuf's own limit is 10,000; no cost record nests that deep).
const maxJSONDepth = 100

// errParse is a message whose wire bytes do not parse.
var errParse = errors.New("the message does not parse")

// structJSON turns the wire bytes of a google.protobuf.Struct into a JSON object,
// straight from the bytes: what the protobuf runtime's Struct, its AsMap and
// encoding/json would make of them together, without the messages, maps and
// reflection in between (the collector's hot path; TestStructJSONMatchesTheRuntime
// holds the two to the same result).
//
// It follows protobuf's decoding rules: a message field sent several times is
// merged (a Struct's entries add up, the last of one key wins), the last member of
// a oneof wins, a field with a number or wire type the schema does not have is
// skipped, and strings must be UTF-8. The object it writes has each key once.
// Keys are sorted and numbers written as encoding/json writes them; a NaN or infinite number, which JSON cannot hold, is an error, as is a
// string that is not UTF-8.
type structJSON struct {
	// One buffer and one list of members per level of nesting, reused: an
	// object's values are encoded into its level's buffer first, so that a key
	// sent twice keeps its last value in its first place, then copied out in
	// order.
	levels []level
}

type level struct {
	buf     []byte
	entries []entry
	index   map[string]int // of entries by key, once there are many
}

// indexFrom is the number of members from which an object's keys are looked up
// in a map instead of by a scan.
const indexFrom = 16

// entry is an object's member: its key and the span of its level's buffer
// holding its encoded value.
type entry struct {
	key        string
	start, end int
}

// appendObject appends the JSON object of the Struct whose wire bytes are parts
// (one part per time the field was sent: they merge) to dst.
func (e *structJSON) appendObject(dst []byte, parts [][]byte) ([]byte, error) {
	return e.object(dst, parts, 0)
}

func (e *structJSON) object(dst []byte, parts [][]byte, depth int) ([]byte, error) {
	if depth >= maxJSONDepth {
		return dst, fmt.Errorf("nested deeper than %d levels", maxJSONDepth)
	}
	if len(e.levels) <= depth {
		e.levels = append(e.levels, make([]level, depth+1-len(e.levels))...)
	}
	lv := &e.levels[depth]
	buf, entries, index := lv.buf[:0], lv.entries[:0], lv.index
	clear(index)
	var err error
	for _, b := range parts {
		for {
			var ent []byte
			var found bool
			if ent, b, found, err = nextBytes(b, structFields); err != nil {
				return dst, err
			} else if !found {
				break
			}
			var key string
			var value [][]byte
			if key, value, err = mapEntry(ent); err != nil {
				return dst, err
			}
			start := len(buf)
			if buf, err = e.value(buf, value, depth+1); err != nil {
				if key != "" {
					err = fmt.Errorf("%s: %w", strconv.Quote(key), err)
				}
				return dst, err
			}
			i, seen := 0, false
			if index != nil {
				i, seen = index[key]
			} else {
				for i < len(entries) && !seen {
					if seen = entries[i].key == key; !seen {
						i++
					}
				}
			}
			if !seen {
				i = len(entries)
				entries = append(entries, entry{key: key})
				if index != nil {
					index[key] = i
				} else if len(entries) == indexFrom {
					index = make(map[string]int, 2*indexFrom)
					for j, en := range entries {
						index[en.key] = j
					}
				}
			}
			entries[i].start, entries[i].end = start, len(buf)
		}
	}
	e.levels[depth] = level{buf: buf, entries: entries, index: index}
	// Keys in order, as encoding/json writes a map: the same record is the
	// same bytes whatever order the plugin's map had.
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	dst = append(dst, '{')
	for i, en := range entries {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, en.key)
		dst = append(dst, ':')
		dst = append(dst, buf[en.start:en.end]...)
	}
	return append(dst, '}'), nil
}

// mapEntry reads a Struct's map entry: its key (empty when absent) and the parts
// of its Value (none when absent: the zero Value, a null).
func mapEntry(b []byte) (key string, value [][]byte, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", nil, errParse
		}
		b = b[n:]
		switch {
		case num == mapEntryKey && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return "", nil, errParse
			}
			b = b[n:]
			if !utf8.Valid(v) {
				return "", nil, errors.New("a key is not UTF-8")
			}
			key = string(v)
		case num == mapEntryValue && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return "", nil, errParse
			}
			b = b[n:]
			value = append(value, v) // a value sent twice merges
		default:
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return "", nil, errParse
			}
			b = b[n:]
		}
	}
	return key, value, nil
}

// value appends the JSON of the Value whose wire bytes are parts.
func (e *structJSON) value(dst []byte, parts [][]byte, depth int) ([]byte, error) {
	if depth >= maxJSONDepth {
		return dst, fmt.Errorf("nested deeper than %d levels", maxJSONDepth)
	}
	// The kind is a oneof: its last member wins, and a message member sent again
	// right after itself merges with it.
	var kind protowire.Number
	var scalar uint64 // the varint or fixed64 of a null, number or bool
	var str []byte
	var msg [][]byte
	for _, b := range parts {
		for len(b) > 0 {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 {
				return dst, errParse
			}
			b = b[n:]
			switch {
			case (num == valueNull || num == valueBool) && typ == protowire.VarintType:
				v, n := protowire.ConsumeVarint(b)
				if n < 0 {
					return dst, errParse
				}
				b = b[n:]
				kind, scalar = num, v
			case num == valueNumber && typ == protowire.Fixed64Type:
				v, n := protowire.ConsumeFixed64(b)
				if n < 0 {
					return dst, errParse
				}
				b = b[n:]
				kind, scalar = num, v
			case (num == valueString || num == valueStruct || num == valueList) && typ == protowire.BytesType:
				v, n := protowire.ConsumeBytes(b)
				if n < 0 {
					return dst, errParse
				}
				b = b[n:]
				switch {
				case num == valueString:
					str = v
				case kind == num:
					msg = append(msg, v)
				default:
					msg = append(msg[:0:0], v)
				}
				kind = num
			default:
				if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
					return dst, errParse
				}
				b = b[n:]
			}
		}
	}
	switch kind {
	case valueNumber:
		f := math.Float64frombits(scalar)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return dst, fmt.Errorf("the number %v is not JSON", f)
		}
		return appendJSONNumber(dst, f), nil
	case valueString:
		if !utf8.Valid(str) {
			return dst, errors.New("a string is not UTF-8")
		}
		return appendJSONString(dst, string(str)), nil
	case valueBool:
		return strconv.AppendBool(dst, scalar != 0), nil
	case valueStruct:
		return e.object(dst, msg, depth)
	case valueList:
		return e.list(dst, msg, depth)
	default: // null_value, or no kind at all: the zero Value is a null
		return append(dst, "null"...), nil
	}
}

// list appends the JSON array of the ListValue whose wire bytes are parts.
func (e *structJSON) list(dst []byte, parts [][]byte, depth int) ([]byte, error) {
	dst = append(dst, '[')
	first := true
	for _, b := range parts {
		for {
			v, rest, found, err := nextBytes(b, listValues)
			if err != nil {
				return dst, err
			} else if !found {
				break
			}
			b = rest
			if !first {
				dst = append(dst, ',')
			}
			first = false
			if dst, err = e.value(dst, [][]byte{v}, depth+1); err != nil {
				return dst, err
			}
		}
	}
	return append(dst, ']'), nil
}

// appendJSONNumber appends f as encoding/json writes a float64: the shortest
// decimal that reads back as f, in exponent form only below 1e-6 or from 1e21.
func appendJSONNumber(dst []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// 1e-07 becomes 1e-7.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// nextBytes finds the next length-delimited field num in the wire bytes b,
// skipping the other fields as protobuf skips what it does not know: its value and
// the bytes after it, or found false when b holds no more of it.
func nextBytes(b []byte, num protowire.Number) (v, rest []byte, found bool, err error) {
	for len(b) > 0 {
		n, typ, m := protowire.ConsumeTag(b)
		if m < 0 {
			return nil, nil, false, errParse
		}
		b = b[m:]
		if n == num && typ == protowire.BytesType {
			if v, m = protowire.ConsumeBytes(b); m < 0 {
				return nil, nil, false, errParse
			}
			return v, b[m:], true, nil
		}
		if m = protowire.ConsumeFieldValue(n, typ, b); m < 0 {
			return nil, nil, false, errParse
		}
		b = b[m:]
	}
	return nil, nil, false, nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s, which is UTF-8, as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
