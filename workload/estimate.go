package workload

import (
	"fmt"
	"math"
	"strings"

	"github.com/idxbench/idxbench/workload/defn"
)

// Per-document memory costs, measured on the default spec (200,000
// documents, 1024 vbuckets, bodies of 64 to 2048 bytes; heap after a
// forced GC): the bucket holds a document in its body's bytes plus about
// 230 bytes (id, version record, maps); the oracle's view holds about 180
// bytes per index entry (key slice, boxed values, version record, B-tree
// slot).
const (
	bucketBytesPerDoc   = 240
	viewBytesPerEntry   = 190
	builtinBodyBytes    = 224 // the built-in fields of a body, written
	maxEstimateDocBytes = 20 << 20
)

// MemoryEstimate is about how many bytes the bucket and the oracle's view
// hold once the spec's documents are loaded: a floor for what a run needs,
// so a document count no machine can hold is refused before anything
// starts. Mutations after the load, the engines and the indexer come on
// top.
func (s Spec) MemoryEstimate() uint64 {
	return uint64(s.Docs) * s.bytesPerDoc()
}

// bytesPerDoc is the estimated bucket and view cost of one document.
func (s Spec) bytesPerDoc() uint64 {
	extra := 0.0
	for i := range s.Fields.Extra {
		extra += s.Fields.Extra[i].expectedBytes()
	}
	body := max(s.ValueSize.meanBytes(), builtinBodyBytes+extra)
	per := body + bucketBytesPerDoc
	for _, d := range s.Indexes {
		per += viewBytesPerEntry
		// A key's values are decoded copies: an extra field's value in a
		// key costs about its size again, twice over for the boxing.
		for _, e := range d.SecExprs {
			for i := range s.Fields.Extra {
				f := &s.Fields.Extra[i]
				if f.Path == e || strings.HasPrefix(f.Path, e+".") {
					per += 2 * f.expectedBytes()
				}
			}
		}
	}
	return uint64(min(per, 64*maxEstimateDocBytes))
}

// meanBytes is the mean of the size distribution; for a normal one, of
// the draw clamped below at Min (the upper clamp is left out: the estimate
// errs large).
func (d SizeDist) meanBytes() float64 {
	switch d.Dist {
	case "uniform":
		return float64(d.Min+d.Max) / 2
	case "normal":
		if d.Stddev > 0 {
			// E[max(X, m)] for X ~ N(mu, sigma): m + sigma·(z·Φ(z) + φ(z))
			// with z = (mu-m)/sigma.
			mu, sigma, m := float64(d.Mean), float64(d.Stddev), float64(max(d.Min, 0))
			z := (mu - m) / sigma
			phi := math.Exp(-z*z/2) / math.Sqrt(2*math.Pi)
			cdf := 0.5 * (1 + math.Erf(z/math.Sqrt2))
			v := m + sigma*(z*cdf+phi)
			if d.Max > 0 {
				v = min(v, float64(d.Max))
			}
			return v
		}
	}
	return float64(d.Mean)
}

// expectedBytes is the mean size of the field as written in a body: its
// name and its value, when present.
func (f *FieldGen) expectedBytes() float64 {
	v := f.valueBytes(0)
	return (1 - f.Missing) * (float64(len(f.Path)) + 4 + v)
}

// valueBytes is the mean size of a value at nesting depth d, capped at a
// document's size limit (deep, wide nesting grows as items^depth).
func (f *FieldGen) valueBytes(d int) float64 {
	t := f.Types
	scalars := t.Number*24 + t.String*f.stringBytes() + t.Null*4 + t.Bool*5
	wScalar := t.Number + t.String + t.Null + t.Bool
	if d >= f.Depth || t.Array+t.Object == 0 {
		if wScalar == 0 {
			return 0
		}
		return scalars / wScalar
	}
	inner := f.valueBytes(d + 1)
	n := float64(f.Items) / 2
	arr := 2 + n*(inner+1)
	obj := 2 + n*(inner+2+min(f.String.Length.meanBytes(), 8)*f.bytesPerCodePoint())
	sum := wScalar + t.Array + t.Object
	return min((scalars+t.Array*arr+t.Object*obj)/sum, maxEstimateDocBytes)
}

func (f *FieldGen) stringBytes() float64 {
	return 2 + f.String.Length.meanBytes()*f.bytesPerCodePoint()
}

// bytesPerCodePoint is the mean size of a code point of the alphabet as
// written, escapes included.
func (f *FieldGen) bytesPerCodePoint() float64 {
	switch f.String.Alphabet {
	case AlphabetSmall:
		return 3 // a third are \u0000
	case AlphabetHostile, AlphabetUnicode:
		return 5
	}
	return 1.5
}

// CheckMemory refuses a spec whose MemoryEstimate exceeds total, the
// machine's memory in bytes (0: unknown, nothing is refused). The error
// states the estimate.
func (s Spec) CheckMemory(total uint64) error {
	est := s.MemoryEstimate()
	if total == 0 || est <= total {
		return nil
	}
	return fmt.Errorf("workload.docs: %d documents need about %s of memory for the bucket and the oracle alone (about %d B each), more than this machine's %s",
		s.Docs, fmtBytes(est), s.bytesPerDoc(), fmtBytes(total))
}

func fmtBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, exp := float64(n), 0
	for v >= unit && exp < 6 {
		v /= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[exp-1])
}

// builtinKeyBytes are the encoded sizes of the built-in fields' values,
// roughly.
var builtinKeyBytes = map[string]float64{
	"name": 16, "age": 9, "city": 12, "active": 1, "address": 40, "address.city": 12, "address.zip": 9,
	"tags": 30, "score": 9,
}

// EntryBytes is about how many bytes an entry of index d takes in a
// slice, before the engine's own overhead: the main entry (encoded key and
// document id) and, for a secondary index, the back-index entry (document
// id and key again).
func (s Spec) EntryBytes(d defn.IndexDefn) float64 {
	const docid = 16
	if d.IsPrimary {
		return docid + 4
	}
	key := 0.0
	for _, e := range d.SecExprs {
		k, ok := builtinKeyBytes[e]
		for i := range s.Fields.Extra {
			f := &s.Fields.Extra[i]
			if f.Path == e || strings.HasPrefix(f.Path, e+".") {
				k, ok = k+f.expectedBytes(), true
			}
		}
		if !ok {
			k = 16
		}
		key += k
	}
	return 2 * (key + docid + 4)
}
