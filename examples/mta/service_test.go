package main

import (
	"os"
	"strings"
	"testing"
)

// TestServiceFilesRunAsRoot: the shipped systemd unit and daemontools run
// script start the mta as root, so that it runs users' deliveries and
// mailboxes under their uids (a non-root mta would run them with its
// own), and the unit's capabilities are those the helper needs.
func TestServiceFilesRunAsRoot(t *testing.T) {
	unit, err := os.ReadFile("mta.service")
	if err != nil {
		t.Fatal(err)
	}
	var caps []string
	var exec string
	for line := range strings.Lines(string(unit)) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "User", "Group", "DynamicUser":
			if v != "root" && v != "0" {
				t.Errorf("mta.service: %s", line)
			}
		case "ExecStart":
			exec = v
		case "CapabilityBoundingSet":
			caps = strings.Fields(v)
		case "AmbientCapabilities", "ProtectHome":
			if k == "ProtectHome" && v != "no" && v != "false" {
				t.Errorf("mta.service: %s hides the homes deliveries write to", line)
			}
		case "KillMode":
			if v != "mixed" && v != "process" {
				t.Errorf("mta.service: %s sends SIGTERM to users' deliveries too", line)
			}
		}
	}
	if !strings.Contains(exec, "/mta") || strings.Contains(exec, "setuidgid") || strings.Contains(exec, "runuser") || strings.Contains(exec, "-user nobody") {
		t.Errorf("mta.service: ExecStart=%s", exec)
	}
	for _, c := range []string{"CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN", "CAP_NET_BIND_SERVICE"} {
		if !strings.Contains(" "+strings.Join(caps, " ")+" ", " "+c+" ") {
			t.Errorf("mta.service: CapabilityBoundingSet lacks %s: %q", c, caps)
		}
	}

	run, err := os.ReadFile("run")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for line := range strings.Lines(string(run)) {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		for i, w := range f {
			if strings.HasSuffix(w, "/mta") || w == "mta" {
				found = true
				for _, before := range f[:i] {
					switch before {
					case "setuidgid", "envuidgid", "chpst", "s6-setuidgid", "runuser", "su", "sudo":
						t.Errorf("run: %s drops root before the mta: %s", before, strings.TrimSpace(line))
					}
				}
			}
		}
	}
	if !found {
		t.Error("run: no line runs the mta")
	}
}
