package enginetest

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/idxbench/idxbench/engines"
)

// RunConcurrent has one writer apply batches that each rewrite every key
// of a small set to the batch's number, while readers take views, iterate
// and get. Every view must see one batch entirely (all keys equal, and the
// Meta counter matching), and Get of the counter must never go backwards.
// Run it with -race to check an adapter's locking.
func RunConcurrent(t *testing.T, f Factory) {
	const (
		keys    = 20
		batches = 300
		readers = 3
	)
	s, err := f.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	counter := []byte("n")
	apply := func(n int) error {
		var b engines.Batch
		v := []byte(strconv.Itoa(n))
		for k := range keys {
			b.Set(engines.Main, fmt.Appendf(nil, "k%02d", k), v)
		}
		b.Set(engines.Meta, counter, v)
		return s.Apply(&b, engines.NoSync)
	}
	if err := apply(0); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, readers+1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for n := 1; n <= batches; n++ {
			if err := apply(n); err != nil {
				errs <- fmt.Errorf("apply %d: %w", n, err)
				return
			}
		}
	}()
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := -1
			for {
				select {
				case <-done:
					return
				default:
				}
				if err := checkView(s, keys, counter); err != nil {
					errs <- fmt.Errorf("reader %d: %w", r, err)
					return
				}
				v, ok, err := s.Get(engines.Meta, counter)
				if err != nil || !ok {
					errs <- fmt.Errorf("reader %d: get counter: %v, %t", r, err, ok)
					return
				}
				n, _ := strconv.Atoi(string(v))
				if n < last {
					errs <- fmt.Errorf("reader %d: counter went back from %d to %d", r, last, n)
					return
				}
				last = n
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func checkView(s engines.Store, keys int, counter []byte) error {
	v, err := s.NewView()
	if err != nil {
		return err
	}
	defer v.Close()
	want, ok, err := v.Get(engines.Meta, counter)
	if err != nil || !ok {
		return fmt.Errorf("view get counter: %v, %t", err, ok)
	}
	it, err := v.NewIter(engines.Main, nil, nil)
	if err != nil {
		return err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if !bytes.Equal(it.Value(), want) {
			it.Close()
			return fmt.Errorf("view torn: %s=%s but counter %s", it.Key(), it.Value(), want)
		}
		n++
	}
	if err := it.Close(); err != nil {
		return err
	}
	if n != keys {
		return fmt.Errorf("view has %d keys, want %d", n, keys)
	}
	return nil
}
