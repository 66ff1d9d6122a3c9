//go:build !linux

package uring

import (
	"context"
	"fmt"
)

// Ring is not available outside Linux.
type Ring struct{}

// New fails outside Linux: callers use fsync(2).
func New(entries uint32) (*Ring, error) {
	return nil, fmt.Errorf("uring: io_uring is Linux's (%w)", ErrRing)
}

// Fsync fails with ErrClosed.
func (r *Ring) Fsync(ctx context.Context, fd int) error { return ErrClosed }

// Close does nothing.
func (r *Ring) Close() error { return nil }
