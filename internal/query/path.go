package query

import (
	"strconv"
	"strings"
)

// maxLiteralSpan bounds how many dotted segments are joined back together
// when looking for a literal key that itself contains dots (Kubernetes
// labels such as "app.kubernetes.io/name" stored under a "tags" map).
const maxLiteralSpan = 8

// path is a compiled dotted key.
type path struct {
	raw  string
	segs []string
	// idx[i] is the list index segs[i] denotes, or -1.
	idx []int
	// alts[i] lists literal keys made of segs[i:j] (j >= i+2) to try when
	// segs[i] alone is not a key of the map at that level.
	alts [][]altKey
}

type altKey struct {
	key  string
	next int
}

func parsePath(raw string, errKey string) (*path, *Error) {
	if raw == "" {
		return nil, errorf(errKey, "key must not be empty")
	}
	segs := strings.Split(raw, ".")
	p := &path{raw: raw, segs: segs, idx: make([]int, len(segs)), alts: make([][]altKey, len(segs))}
	for i, s := range segs {
		if s == "" {
			return nil, errorf(errKey, "key %q has an empty path segment", raw)
		}
		p.idx[i] = -1
		if n, err := strconv.Atoi(s); err == nil && n >= 0 && s[0] != '+' {
			p.idx[i] = n
		}
	}
	if len(segs) > 1 {
		for i := range segs {
			end := min(len(segs), i+maxLiteralSpan)
			for j := i + 2; j <= end; j++ {
				p.alts[i] = append(p.alts[i], altKey{key: strings.Join(segs[i:j], "."), next: j})
			}
		}
	}
	return p, nil
}

// step looks segs[i] (or a literal dotted key starting there) up in m.
func (p *path) step(m map[string]any, i int) (v any, key string, next int, ok bool) {
	if v, ok := m[p.segs[i]]; ok {
		return v, p.segs[i], i + 1, true
	}
	for _, a := range p.alts[i] {
		if v, ok := m[a.key]; ok {
			return v, a.key, a.next, true
		}
	}
	return nil, "", 0, false
}

// walk calls fn with every candidate value the path designates in v, with
// MongoDB query semantics: a list met on the way is traversed element by
// element, and a list at the end of the path is offered both as a whole and
// element by element. A path that does not resolve is offered as
// fn(nil, false). walk stops and returns true as soon as fn returns true.
func (p *path) walk(v any, i int, fn func(v any, present bool) bool) bool {
	if i == len(p.segs) {
		if arr, ok := v.([]any); ok {
			if fn(arr, true) {
				return true
			}
			for _, el := range arr {
				if fn(el, true) {
					return true
				}
			}
			return false
		}
		return fn(v, true)
	}
	switch t := v.(type) {
	case map[string]any:
		child, _, next, ok := p.step(t, i)
		if !ok {
			return fn(nil, false)
		}
		return p.walk(child, next, fn)
	case []any:
		yielded := false
		if n := p.idx[i]; n >= 0 && n < len(t) {
			yielded = true
			if p.walk(t[n], i+1, fn) {
				return true
			}
		}
		for _, el := range t {
			if m, ok := el.(map[string]any); ok {
				yielded = true
				if p.walk(m, i, fn) {
					return true
				}
			}
		}
		if !yielded {
			return fn(nil, false)
		}
		return false
	default:
		return fn(nil, false)
	}
}

// get resolves the path with MongoDB aggregation-expression semantics
// ("$a.b"): a list met on the way yields the list of the values found in
// its elements.
func (p *path) get(v any, i int) (any, bool) {
	if i == len(p.segs) {
		return v, true
	}
	switch t := v.(type) {
	case map[string]any:
		child, _, next, ok := p.step(t, i)
		if !ok {
			return nil, false
		}
		return p.get(child, next)
	case []any:
		out := make([]any, 0, len(t))
		for _, el := range t {
			if _, isMap := el.(map[string]any); !isMap {
				if _, isArr := el.([]any); !isArr {
					continue
				}
			}
			if r, ok := p.get(el, i); ok {
				out = append(out, r)
			}
		}
		return out, true
	default:
		return nil, false
	}
}

// getMaps resolves the path through maps only.
func (p *path) getMaps(v any) (any, bool) {
	for i := 0; i < len(p.segs); {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		child, _, next, ok := p.step(m, i)
		if !ok {
			return nil, false
		}
		v, i = child, next
	}
	return v, true
}

// setCopy returns a copy of rec (copying only the maps along the path) in
// which the path (which must resolve through maps) holds val.
func (p *path) setCopy(rec map[string]any, i int, val any) map[string]any {
	out := make(map[string]any, len(rec))
	for k, v := range rec {
		out[k] = v
	}
	_, key, next, ok := p.step(rec, i)
	if !ok {
		return out
	}
	if next == len(p.segs) {
		out[key] = val
		return out
	}
	if child, ok := rec[key].(map[string]any); ok {
		out[key] = p.setCopy(child, next, val)
	}
	return out
}
