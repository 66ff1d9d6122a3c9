package main

import (
	"fmt"
	"log/slog"
	"net"

	"github.com/coreos/go-systemd/v22/activation"
)

// activationRoles are the names a systemd .socket unit gives its socket
// (FileDescriptorName=) to hand it to a role of the mta: a contract.
var activationRoles = map[string]bool{
	"smtp": true, "submission": true, "submissions": true, "pop3": true, "pop3s": true,
	"lmtp": true, "metrics": true, "admin": true,
}

// activated returns the listening sockets systemd handed over (socket
// activation: $LISTEN_PID, $LISTEN_FDS and $LISTEN_FDNAMES, which it then
// removes from the environment), by role. A role may have one socket; a
// socket with a name that is no role is an error, so that a typo in a unit
// is not a silently closed port. "admin" is accepted for the web admin to
// come, and closed meanwhile.
func activated(logger *slog.Logger) (map[string]net.Listener, error) {
	named, err := activation.ListenersWithNames()
	if err != nil {
		return nil, fmt.Errorf("socket activation: %w", err)
	}
	out := map[string]net.Listener{}
	for name, ls := range named {
		var live []net.Listener
		for _, l := range ls {
			if l != nil {
				live = append(live, l)
			}
		}
		switch {
		case len(live) == 0:
			continue
		case !activationRoles[name]:
			closeAll(live)
			return nil, fmt.Errorf("socket activation: a socket named %q: no such role (smtp, submission, submissions, pop3, pop3s, lmtp, metrics, admin)", name)
		case len(live) > 1:
			closeAll(live)
			return nil, fmt.Errorf("socket activation: %d sockets named %q: one per role", len(live), name)
		case name == "admin":
			logger.Warn("mta: socket activation: no admin server yet; its socket is closed")
			closeAll(live)
			continue
		}
		out[name] = live[0]
	}
	return out, nil
}

func closeAll(ls []net.Listener) {
	for _, l := range ls {
		l.Close()
	}
}
