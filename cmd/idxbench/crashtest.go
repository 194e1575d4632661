package main

import (
	"context"
	"errors"
	"io"
)

func cmdCrashtest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("crashtest: not built yet")
}
