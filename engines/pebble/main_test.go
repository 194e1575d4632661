package pebble_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that closing a store stops every goroutine the engine
// started.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
