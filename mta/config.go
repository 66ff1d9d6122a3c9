package mta

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/queue"
	"github.com/qmailkit/qmailkit/smtpclient"
)

// ErrNoControls is qmail-send's "unable to read controls": neither
// control/locals nor control/me exists, so no domain would be local.
var ErrNoControls = errors.New("mta: neither control/locals nor control/me exists")

// Routing reads what qmail-send routes by: control/locals
// (default: me; neither is ErrNoControls), percenthack, virtualdomains and
// envnoathost (default: me, else the literal "envnoathost").
func Routing(d control.Dir) (queue.Routing, error) {
	var r queue.Routing
	locals, ok, err := d.ListDefault("locals", true)
	if err != nil {
		return r, fmt.Errorf("mta: %w", err)
	}
	if !ok {
		return r, ErrNoControls
	}
	r.Locals = locals
	if r.PercentHack, _, err = d.List("percenthack"); err != nil {
		return r, fmt.Errorf("mta: %w", err)
	}
	vd, _, err := d.List("virtualdomains")
	if err != nil {
		return r, fmt.Errorf("mta: %w", err)
	}
	// control.List has already dropped comments and blank lines; the
	// parser drops lines without a colon, as qmail's constmap does.
	if r.VirtualDomains, err = queue.ParseVirtualDomains(strings.NewReader(strings.Join(vd, "\n"))); err != nil {
		return r, fmt.Errorf("mta: virtualdomains: %w", err)
	}
	if r.EnvNoAtHost, err = d.LineDefault("envnoathost", true, "envnoathost"); err != nil {
		return r, fmt.Errorf("mta: %w", err)
	}
	return r, nil
}

// Bounce reads the bounce settings: control/bouncefrom, bouncehost,
// doublebounceto, doublebouncehost and the bouncemaxbytes extension, with
// qmail's defaults.
func Bounce(d control.Dir) (queue.Bounce, error) {
	var b queue.Bounce
	var err error
	if b.From, err = d.LineDefault("bouncefrom", false, "MAILER-DAEMON"); err != nil {
		return b, fmt.Errorf("mta: %w", err)
	}
	if b.Host, err = d.LineDefault("bouncehost", true, "bouncehost"); err != nil {
		return b, fmt.Errorf("mta: %w", err)
	}
	to, ok, err := d.Line("doublebounceto")
	if err != nil {
		return b, fmt.Errorf("mta: %w", err)
	}
	switch {
	case !ok:
		b.DoubleTo = "postmaster"
	case to == "":
		b.DoubleToEmpty = true
	default:
		b.DoubleTo = to
	}
	if b.DoubleHost, err = d.LineDefault("doublebouncehost", true, "doublebouncehost"); err != nil {
		return b, fmt.Errorf("mta: %w", err)
	}
	if b.MaxBytes, err = d.Int("bouncemaxbytes", 0); err != nil {
		return b, fmt.Errorf("mta: %w", err)
	}
	return b, nil
}

// Scheduling holds the scheduler's numeric control files.
type Scheduling struct {
	ConcurrencyLocal, ConcurrencyRemote int
	Lifetime                            time.Duration
}

// ReadScheduling reads control/concurrencylocal (10), concurrencyremote (20)
// and queuelifetime (604800 s). A concurrency of 0 holds the channel, as in
// qmail.
func ReadScheduling(d control.Dir) (Scheduling, error) {
	var s Scheduling
	cl, err := d.Int("concurrencylocal", 10)
	if err != nil {
		return s, fmt.Errorf("mta: %w", err)
	}
	cr, err := d.Int("concurrencyremote", 20)
	if err != nil {
		return s, fmt.Errorf("mta: %w", err)
	}
	lt, err := d.Int("queuelifetime", 604800)
	if err != nil {
		return s, fmt.Errorf("mta: %w", err)
	}
	s.ConcurrencyLocal, s.ConcurrencyRemote = channel(cl), channel(cr)
	s.Lifetime = time.Duration(lt) * time.Second
	return s, nil
}

// channel maps qmail's concurrency value to the Scheduler's: qmail's 0
// (hold) is the Scheduler's negative value.
func channel(n int64) int {
	if n <= 0 {
		return -1
	}
	if n > queue.MaxConcurrency {
		return queue.MaxConcurrency
	}
	return int(n)
}

// Remote reads what qmail-remote reads into c: control/helohost (default
// me), smtproutes, timeoutconnect and timeoutremote.
func Remote(d control.Dir, c *smtpclient.Client) error {
	var err error
	if c.Hostname, err = d.LineDefault("helohost", true, ""); err != nil {
		return fmt.Errorf("mta: %w", err)
	}
	f, err := os.Open(d.Path("smtproutes"))
	switch {
	case err == nil:
		c.Routes, err = smtpclient.ParseRoutes(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("mta: smtproutes: %w", err)
		}
	case errors.Is(err, os.ErrNotExist):
		c.Routes = nil
	default:
		return fmt.Errorf("mta: %w", err)
	}
	tc, err := d.Int("timeoutconnect", 60)
	if err != nil {
		return fmt.Errorf("mta: %w", err)
	}
	tr, err := d.Int("timeoutremote", 1200)
	if err != nil {
		return fmt.Errorf("mta: %w", err)
	}
	c.Timeouts.Connect = time.Duration(max(tc, 1)) * time.Second
	c.Timeouts.Remote = time.Duration(max(tr, 1)) * time.Second
	return nil
}
