package main

import (
	"context"
	"errors"
	"io"
)

func cmdWorkload(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("workload: not built yet")
}
