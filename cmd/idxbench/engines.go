package main

import (
	"context"
	"errors"
	"io"
)

func cmdEngines(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("engines: not built yet")
}
