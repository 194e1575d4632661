package results

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// FuzzDecodeRun: any input either decodes or fails with an error naming the
// file; a decoded run survives WriteBench and re-encoding.
func FuzzDecodeRun(f *testing.F) {
	run := synthRun(testRandSeed(1), time.Unix(0, 0), []string{"pebble"}, 1, 0.1, 1)
	good, _ := json.Marshal(run)
	f.Add(good)
	f.Add([]byte(`{"schema":1}`))
	f.Add([]byte(`{"schema":2}`))
	f.Add([]byte(`{"schema":1,"cells":[{"phases":[{"metrics":{"x":1e308}}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeRun(data, "fuzz.json")
		if err != nil {
			if !bytes.Contains([]byte(err.Error()), []byte("fuzz.json")) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := WriteBench(&buf, r); err != nil {
			t.Fatal(err)
		}
		if _, err := json.Marshal(sanitized(r)); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

// FuzzDecodeTicks: never panics; a torn last line is never an error.
func FuzzDecodeTicks(f *testing.F) {
	f.Add([]byte("{\"engine\":\"a\",\"op\":\"x\",\"elapsed\":1}\n{\"eng"))
	f.Add([]byte("\n\n{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := decodeTicks(bytes.NewReader(data), "ticks")
		if err != nil {
			return
		}
		// Appending a torn line to valid input must not make it invalid.
		torn := append(append([]byte(nil), data...), []byte("\n{\"op\":")...)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			return // the torn line would join the previous one
		}
		recs2, err := decodeTicks(bytes.NewReader(torn), "ticks")
		if err != nil || len(recs2) != len(recs) {
			t.Fatalf("torn tail: %d→%d records, %v", len(recs), len(recs2), err)
		}
	})
}
