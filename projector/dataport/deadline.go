package dataport

import (
	"context"
	"time"
)

// aLongTimeAgo is a deadline in the past: setting it interrupts blocked
// I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// interruptOnDone makes ctx's end interrupt the I/O that the deadline set
// guards, by moving the deadline into the past. The returned stop must be
// called once that I/O is over; if it was interrupted, stop clears the
// deadline again so the connection stays usable.
func interruptOnDone(ctx context.Context, set func(time.Time) error) (stop func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	fired := make(chan struct{})
	stopFunc := context.AfterFunc(ctx, func() {
		_ = set(aLongTimeAgo)
		close(fired)
	})
	return func() {
		if !stopFunc() {
			<-fired
			_ = set(time.Time{})
		}
	}
}
