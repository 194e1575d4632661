package results

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// JSONSchema is the JSON Schema (draft 2020-12) of results.json at
// SchemaVersion, the file in the repository at
// results/schema/results.schema.json.
//
//go:embed schema/results.schema.json
var JSONSchema []byte

const schemaURL = "https://github.com/idxbench/idxbench/results/schema/results.schema.json"

// compiledSchema compiles JSONSchema once; it is immutable afterwards, and
// a schema that does not compile is a bug of this package's build, which
// every test of it reports.
var compiledSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(JSONSchema))
	if err != nil {
		return nil, fmt.Errorf("results JSON schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, fmt.Errorf("results JSON schema: %w", err)
	}
	s, err := c.Compile(schemaURL)
	if err != nil {
		return nil, fmt.Errorf("results JSON schema: %w", err)
	}
	return s, nil
})

// ErrSchema is returned (wrapped) when results.json does not match
// JSONSchema: a bug of its writer or of the schema, not of the run.
var ErrSchema = errors.New("results.json does not match its schema")

// Validate checks results.json's bytes against JSONSchema. Its error wraps
// ErrSchema and lists every violation with its JSON pointer, on one line.
func Validate(data []byte) error {
	s, err := compiledSchema()
	if err != nil {
		return err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("results.json is not JSON: %w", err)
	}
	if err := s.Validate(doc); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return fmt.Errorf("%w: %s", ErrSchema, violations(ve))
		}
		return fmt.Errorf("%w: %w", ErrSchema, err)
	}
	return nil
}

// violations lists a validation error's leaves as "at /path: message",
// joined by "; ", so the error stays one line.
func violations(ve *jsonschema.ValidationError) string {
	p := message.NewPrinter(language.English)
	var parts []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			parts = append(parts, fmt.Sprintf("at /%s: %s", strings.Join(e.InstanceLocation, "/"), e.ErrorKind.LocalizedString(p)))
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return strings.Join(parts, "; ")
}

// ValidateRun encodes run as WriteDir would and validates it.
func ValidateRun(run *Run) error {
	data, err := json.Marshal(sanitized(run))
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	return Validate(data)
}
