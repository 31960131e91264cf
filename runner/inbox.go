package runner

import (
	"context"

	"github.com/runner-dev/runner/internal/relay"
)

// inboxBatch is how many of the operator's messages are read per request
// (the relay's most).
const inboxBatch = 50

// Inbox hands the messages waiting for the operator to handle, oldest first,
// in batches. Unless keep is set, each batch is removed from the relay once
// handle returns nil for it; if handle fails, or the process dies first, the
// batch is still there next time (shown twice rather than lost). With keep,
// it returns after the first batch and removes nothing. It returns how many
// messages it handled.
func (r *Runner) Inbox(ctx context.Context, run string, keep bool, handle func([]relay.Delivery) error) (int, error) {
	c, err := r.OperatorClient(ctx, run)
	if err != nil {
		return 0, relayUnreachable(run, "FILE", err)
	}
	defer c.Close()
	n := 0
	for ctx.Err() == nil {
		batch, err := c.Pending(inboxBatch)
		if err != nil || len(batch) == 0 {
			return n, err
		}
		if err := handle(batch); err != nil {
			return n, err
		}
		n += len(batch)
		if keep {
			return n, nil
		}
		if _, err := c.Take(batch[len(batch)-1].ID); err != nil {
			return n, err
		}
	}
	return n, ctx.Err()
}
