package mta

import (
	"context"

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
	l, err := listenUnix("unix", path, 0o600)
	if err != nil {
		return nil, err
	}
	srv := &queueadmin.Server{Backend: s.Scheduler, Logger: s.logger.With("part", "queue-admin")}
	return serveUnix(path, func(ctx context.Context) error { return srv.Serve(ctx, l) }, s.logger, "queue administration socket"), nil
}
