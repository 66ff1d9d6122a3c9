package queueadmin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/queue"
)

// ErrNoServer is the error of a Client when nothing serves its socket (it
// is missing, or no process listens on it): no mta runs.
var ErrNoServer = errors.New("queueadmin: no server on the socket")

// maxLine bounds a response line (a message's entry with its recipients).
const maxLine = 64 << 20

// RequestError is a failure of a whole request, as the server reported it.
type RequestError struct {
	Text      string
	Temporary bool
}

func (e *RequestError) Error() string { return "queueadmin: " + e.Text }

// Client talks to a Server on a unix socket.
type Client struct {
	Path string
	// Timeout is the time the server may take for an operation (sent as
	// timeout_ms); 0 means the server's own limit.
	Timeout time.Duration
}

// do sends one request and calls each for every line before the last.
func (c *Client) do(ctx context.Context, op string, ids []queue.ID, each func(l line) error) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Path)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w: %w", ErrNoServer, err)
		}
		return fmt.Errorf("queueadmin: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	req := Request{V: Version, Op: op, TimeoutMS: c.Timeout.Milliseconds()}
	for _, id := range ids {
		req.IDs = append(req.IDs, id.String())
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	// A server that refuses the peer answers without reading: a failed
	// write is reported only when no answer can be read.
	_, werr := conn.Write(append(b, '\n'))
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("queueadmin: bad reply: %w", err)
		}
		if l.Done {
			if l.Error != "" {
				return &RequestError{Text: l.Error, Temporary: l.Temporary}
			}
			return nil
		}
		if err := each(l); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if werr != nil {
		return fmt.Errorf("queueadmin: %w", werr)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("queueadmin: %w", err)
	}
	return errors.New("queueadmin: the server closed the connection before its last line")
}

// List lists every queued message.
func (c *Client) List(ctx context.Context) ([]Message, error) {
	var ms []Message
	err := c.do(ctx, OpList, nil, func(l line) error {
		if l.Message == nil {
			return errors.New("queueadmin: unexpected reply line")
		}
		ms = append(ms, *l.Message)
		return nil
	})
	return ms, err
}

// Show returns the messages ids; an ID not in the queue has an error
// wrapping queue.ErrNoMessage, and no Message.
func (c *Client) Show(ctx context.Context, ids []queue.ID) ([]Message, []error, error) {
	ms := make([]Message, len(ids))
	errs := make([]error, len(ids))
	i := 0
	err := c.do(ctx, OpShow, ids, func(l line) error {
		if i >= len(ids) {
			return errors.New("queueadmin: more replies than IDs")
		}
		if l.Message != nil {
			ms[i] = *l.Message
		} else {
			errs[i] = lineErr(l)
		}
		i++
		return nil
	})
	if err == nil && i != len(ids) {
		err = errors.New("queueadmin: fewer replies than IDs")
	}
	return ms, errs, err
}

// Do carries out op (hold, release, delete, flush, requeue) on ids and
// returns one error per ID (wrapping queue.ErrNoMessage for an ID not in
// the queue), or an error for the whole request. flush without IDs makes
// every message due.
func (c *Client) Do(ctx context.Context, op string, ids []queue.ID) ([]error, error) {
	errs := make([]error, len(ids))
	i := 0
	err := c.do(ctx, op, ids, func(l line) error {
		if i >= len(ids) || l.OK == nil {
			return errors.New("queueadmin: unexpected reply line")
		}
		if !*l.OK {
			errs[i] = lineErr(l)
		}
		i++
		return nil
	})
	if err == nil && i != len(ids) {
		err = errors.New("queueadmin: fewer replies than IDs")
	}
	if err != nil {
		return nil, err
	}
	return errs, nil
}

func lineErr(l line) error {
	if l.NotFound {
		return fmt.Errorf("%w: %s", queue.ErrNoMessage, l.ID)
	}
	return errors.New(l.Error)
}
