package enginetest

import (
	"regexp"
	"testing"

	"github.com/idxbench/idxbench/engines"
	"github.com/idxbench/idxbench/engines/memory"
)

// TestSuiteOnReference runs the suite against the reference engine, so a
// broken scenario file shows up in this package's own tests.
func TestSuiteOnReference(t *testing.T) {
	Run(t, Factory{
		Name: memory.Name,
		Open: func(dir string) (engines.Store, error) { return memory.Open(dir, engines.Options{}) },
	})
}

func TestRunPattern(t *testing.T) {
	p := runPattern("TestConformance/model")
	if p != "^TestConformance$/^model$" {
		t.Fatalf("runPattern = %q", p)
	}
	for _, part := range []string{"^TestConformance$", "^model$"} {
		re := regexp.MustCompile(part)
		if re.MatchString("TestConformanceHashmapFreelist") {
			t.Errorf("%s matches a sibling test", part)
		}
	}
}
