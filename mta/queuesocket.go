package mta

import (
	"context"
	"errors"
	"fmt"
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
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("mta: %w", err)
	}
	l.SetUnlinkOnClose(false) // stop removes it, once the injections ended
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		os.Remove(path)
		return nil, fmt.Errorf("mta: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	qs := &lspawn.QueueServer{
		Queue:      s.Queue,
		MaxBytes:   maxBytes,
		CheckSpace: s.CheckSpace,
		Who:        who,
		Logger:     s.logger.With("part", "qmail-queue"),
	}
	go func() {
		defer close(done)
		if err := qs.Serve(ctx, l); err != nil {
			s.logger.Error("mta: qmail-queue socket: " + err.Error())
		}
	}()
	return func() {
		cancel()
		<-done
		os.Remove(path)
	}, nil
}
