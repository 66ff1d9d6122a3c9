//go:build !linux

package maildir

import (
	"context"
	"io"
)

// deliverUnnamed needs Linux's O_TMPFILE; elsewhere deliveries use the tmp/
// protocol.
func (dl *Deliverer) deliverUnnamed(ctx context.Context, dir Dir, r io.Reader) (string, bool, error) {
	dl.noUnnamed.Store(true)
	return "", false, nil
}
