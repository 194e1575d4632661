package main

import (
	"context"
	"errors"
	"io"
)

func cmdScenarios(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("scenarios: not built yet")
}
