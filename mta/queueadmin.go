package mta

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/qmailkit/qmailkit/internal/queueadmin"
)

// ServeQueueAdmin serves queue administration (the mta program's "queue"
// subcommands: list, show, hold, release, delete, flush, requeue) on the
// unix socket path, normally QMAILHOME/run/queue-admin.sock, carrying out
// each request through s's running Scheduler (see queue.Scheduler.Hold and
// the others). The socket is mode 0600, and only peers whose uid is 0 or
// this process's are served (SO_PEERCRED); requests are bounded in size,
// number of IDs and time, and at most 8 are served at once. A stale socket
// at path is replaced; path's directory must exist. Requests that come
// while the Scheduler does not run fail (temporarily). stop ends the
// service, cancels the requests in progress, waits for them and removes
// the socket.
func (s *System) ServeQueueAdmin(path string) (stop func(), err error) {
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
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("mta: %w", err)
	}
	l.SetUnlinkOnClose(false) // stop removes it, once the requests ended
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		os.Remove(path)
		return nil, fmt.Errorf("mta: %w", err)
	}
	srv := &queueadmin.Server{Backend: s.Scheduler, Logger: s.logger.With("part", "queue-admin")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx, l); err != nil {
			s.logger.Error("mta: queue administration socket: " + err.Error())
		}
	}()
	return func() {
		cancel()
		<-done
		os.Remove(path)
	}, nil
}
