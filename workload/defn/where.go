package defn

import (
	"fmt"
	"strconv"
	"strings"
)

// Where is a parsed WHERE filter: a conjunction of comparisons. The grammar is
// deliberately small:
//
//	where := cond ( "AND" cond )*
//	cond  := path op literal | path "IS" "MISSING" | path "IS" "NOT" "MISSING"
//	op    := "=" | "!=" | "<" | "<=" | ">" | ">="
//	literal := number | 'string' | "string" | true | false | null
//
// A comparison is true only when the field exists and its value is of the
// same kind as the literal (number with number, string with string, boolean
// with boolean, null with null) and the comparison holds; so a missing field
// or a field of another type fails every comparison. The projector and the
// oracle each evaluate a Where with their own code.
type Where []Cond

// Cond is one comparison of a Where.
type Cond struct {
	Path string
	Op   string // "=", "!=", "<", "<=", ">", ">=", "missing", "exists"
	// Value is float64, string, bool or nil (JSON null).
	Value any
}

// ParseWhere parses s; an empty s is the empty (always true) filter.
func ParseWhere(s string) (Where, error) {
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	var w Where
	for len(toks) > 0 {
		if len(w) > 0 {
			if !strings.EqualFold(toks[0], "AND") {
				return nil, fmt.Errorf("where %q: expected AND, got %q", s, toks[0])
			}
			toks = toks[1:]
		}
		if len(toks) < 3 {
			return nil, fmt.Errorf("where %q: incomplete condition", s)
		}
		c := Cond{Path: toks[0]}
		if !validPath(c.Path) {
			return nil, fmt.Errorf("where %q: %q is not a field path", s, c.Path)
		}
		if strings.EqualFold(toks[1], "IS") {
			switch {
			case strings.EqualFold(toks[2], "MISSING"):
				c.Op, toks = "missing", toks[3:]
			case len(toks) >= 4 && strings.EqualFold(toks[2], "NOT") && strings.EqualFold(toks[3], "MISSING"):
				c.Op, toks = "exists", toks[4:]
			default:
				return nil, fmt.Errorf("where %q: expected IS MISSING or IS NOT MISSING", s)
			}
			w = append(w, c)
			continue
		}
		switch toks[1] {
		case "=", "!=", "<", "<=", ">", ">=":
			c.Op = toks[1]
		default:
			return nil, fmt.Errorf("where %q: unknown operator %q", s, toks[1])
		}
		v, err := parseLiteral(toks[2])
		if err != nil {
			return nil, fmt.Errorf("where %q: %w", s, err)
		}
		c.Value = v
		toks = toks[3:]
		w = append(w, c)
	}
	return w, nil
}

func (w Where) String() string {
	parts := make([]string, len(w))
	for i, c := range w {
		switch c.Op {
		case "missing":
			parts[i] = c.Path + " IS MISSING"
		case "exists":
			parts[i] = c.Path + " IS NOT MISSING"
		default:
			var lit string
			switch v := c.Value.(type) {
			case string:
				lit = strconv.Quote(v)
			case float64:
				lit = strconv.FormatFloat(v, 'g', -1, 64)
			case bool:
				lit = strconv.FormatBool(v)
			case nil:
				lit = "null"
			}
			parts[i] = c.Path + " " + c.Op + " " + lit
		}
	}
	return strings.Join(parts, " AND ")
}

// ValidPath reports whether p is a dotted field path of non-empty names.
func ValidPath(p string) bool { return validPath(p) }

func validPath(p string) bool {
	if p == "" {
		return false
	}
	for _, part := range strings.Split(p, ".") {
		if part == "" {
			return false
		}
		for _, r := range part {
			if !(r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
	}
	return true
}

func parseLiteral(t string) (any, error) {
	switch {
	case t == "true":
		return true, nil
	case t == "false":
		return false, nil
	case t == "null":
		return nil, nil
	case len(t) >= 2 && (t[0] == '\'' || t[0] == '"'):
		return t[1 : len(t)-1], nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return nil, fmt.Errorf("%q is not a literal (number, quoted string, true, false, null)", t)
	}
	return f, nil
}

func tokenize(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '\'' || c == '"':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return nil, fmt.Errorf("where %q: unterminated string", s)
			}
			toks = append(toks, s[i:i+j+2])
			i += j + 2
		case strings.IndexByte("=!<>", c) >= 0:
			j := i + 1
			if j < len(s) && s[j] == '=' {
				j++
			}
			if s[i:j] == "!" {
				return nil, fmt.Errorf("where %q: unknown operator \"!\"", s)
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			j := i
			for j < len(s) && strings.IndexByte(" \t\n=!<>'\"", s[j]) < 0 {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks, nil
}
