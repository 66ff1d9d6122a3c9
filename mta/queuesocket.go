package mta

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/qmailkit/qmailkit/internal/lspawn"
)

// ServeQueueSocket serves s's queue on the unix socket path (normally
// lspawn.QueueSocket(home)), as
// qmail-queue would queue (lspawn.QueueServer): the Received line says
// "invoked by uid N" with the peer's uid, or who(uid) when who is set and
// returns something; the message is bounded as an SMTP message is
// (control/databytes, else 35 MiB) and refused when the queue's file
// system has no room. mode is the socket's permission: 0666 lets every
// local user inject (qmail-queue is executable by all), 0600 only this
// process's uid (and root). A stale socket at path is replaced; path's
// directory must exist. stop ends the service, waits for the injections in
// progress to end (those not committed are not queued) and removes the
// socket.
func (s *System) ServeQueueSocket(path string, mode os.FileMode, who func(uid int) string) (stop func(), err error) {
	maxBytes, err := s.MaxMessageBytes()
	if err != nil {
		return nil, err
	}
	l, err := listenUnix("unixpacket", path, mode)
	if err != nil {
		return nil, err
	}
	qs := &lspawn.QueueServer{
		Queue:      s.Queue,
		MaxBytes:   maxBytes,
		CheckSpace: s.CheckSpace,
		Who:        who,
		Logger:     s.logger.With("part", "qmail-queue"),
	}
	return serveUnix(path, func(ctx context.Context) error { return qs.Serve(ctx, l) }, s.logger, "qmail-queue socket"), nil
}

// listenUnix listens on a unix socket at path with mode, replacing a stale
// socket there (never another kind of file); it is not removed when the
// listener closes (serveUnix's stop removes it).
func listenUnix(network, path string, mode os.FileMode) (*net.UnixListener, error) {
	fi, err := os.Lstat(path)
	switch {
	case err == nil && fi.Mode()&os.ModeSocket == 0:
		return nil, fmt.Errorf("mta: %s exists and is not a socket", path)
	case err == nil:
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("mta: %w", err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("mta: %w", err)
	}
	l, err := net.ListenUnix(network, &net.UnixAddr{Name: path, Net: network})
	if err != nil {
		return nil, fmt.Errorf("mta: %w", err)
	}
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		os.Remove(path)
		return nil, fmt.Errorf("mta: %w", err)
	}
	return l, nil
}

// serveUnix runs serve until stop, which cancels its context, waits for it
// to return (the requests in progress ended) and removes the socket at
// path.
func serveUnix(path string, serve func(context.Context) error, logger *slog.Logger, what string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := serve(ctx); err != nil {
			logger.Error("mta: " + what + ": " + err.Error())
		}
	}()
	return func() {
		cancel()
		<-done
		os.Remove(path)
	}
}
