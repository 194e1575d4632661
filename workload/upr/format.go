package upr

import (
	"strconv"
	"unicode/utf8"
)

// AppendText appends a one-line, stable text form of e to dst, for
// debugging and golden tests (`idxbench workload --dump`). EmitNanos is left
// out: it comes from a clock. The value of a mutation is printed as is
// when it is printable single-line text (JSON bodies are), quoted otherwise.
//
//	vb=3 stream-begin vbuuid=81297 failover=81297@0
//	vb=3 snapshot 1..12 vbuuid=81297
//	vb=3 mutation seq=5 rev=2 key=doc-0000000042 value={"age":31}
//	vb=3 deletion seq=6 rev=3 key=doc-0000000042
//	vb=3 stream-end reason=state-changed
//	vb=3 rollback seqno=0
func (e *Event) AppendText(dst []byte) []byte {
	dst = append(dst, "vb="...)
	dst = strconv.AppendUint(dst, uint64(e.Vb), 10)
	dst = append(dst, ' ')
	dst = append(dst, e.Op.String()...)
	switch e.Op {
	case OpStreamBegin:
		dst = append(dst, " vbuuid="...)
		dst = strconv.AppendUint(dst, uint64(e.Vbuuid), 10)
		dst = append(dst, " failover="...)
		for i, f := range e.FailoverLog {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendUint(dst, uint64(f.Vbuuid), 10)
			dst = append(dst, '@')
			dst = strconv.AppendUint(dst, uint64(f.Seqno), 10)
		}
	case OpSnapshot:
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, uint64(e.SnapStart), 10)
		dst = append(dst, ".."...)
		dst = strconv.AppendUint(dst, uint64(e.SnapEnd), 10)
		dst = append(dst, " vbuuid="...)
		dst = strconv.AppendUint(dst, uint64(e.Vbuuid), 10)
	case OpMutation, OpDeletion, OpExpiration:
		dst = append(dst, " seq="...)
		dst = strconv.AppendUint(dst, uint64(e.Seqno), 10)
		dst = append(dst, " rev="...)
		dst = strconv.AppendUint(dst, e.RevSeqno, 10)
		dst = append(dst, " key="...)
		dst = appendMaybeQuoted(dst, e.Key)
		if e.Op == OpMutation {
			dst = append(dst, " value="...)
			dst = appendMaybeQuoted(dst, e.Value)
		}
	case OpStreamEnd:
		dst = append(dst, " reason="...)
		dst = append(dst, e.EndReason.String()...)
	case OpRollback:
		dst = append(dst, " seqno="...)
		dst = strconv.AppendUint(dst, uint64(e.RollbackSeqno), 10)
	}
	return dst
}

// String is AppendText as a string.
func (e Event) String() string { return string(e.AppendText(nil)) }

// appendMaybeQuoted appends b as is when it cannot be mistaken for
// anything else on the line (non-empty valid UTF-8 without control
// characters, not starting with a quote, no leading or trailing space),
// else Go-quoted.
func appendMaybeQuoted(dst, b []byte) []byte {
	plain := len(b) > 0 && utf8.Valid(b) && b[0] != '"' && b[0] != ' ' && b[len(b)-1] != ' '
	for _, c := range b {
		if !plain {
			break
		}
		plain = c >= 0x20 && c != 0x7f
	}
	if plain {
		return append(dst, b...)
	}
	return strconv.AppendQuote(dst, string(b))
}
