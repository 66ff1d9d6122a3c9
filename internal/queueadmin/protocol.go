// Package queueadmin is the control protocol between the mta program's
// queue command (mta queue list|show|delete|hold|release|flush|requeue)
// and a running mta: a Server the mta serves on a unix socket
// (QMAILHOME/run/queue-admin.sock), which carries out each request through
// the running queue.Scheduler, and a Client.
//
// It is internal because its wire format is young: a Go program that
// embeds the mta calls the Scheduler's methods (Hold, Release, Delete,
// FlushMessages, Requeue, List, Show) directly, and the command is the
// interface for scripts. The format is versioned so that it can become
// public unchanged.
//
// # Protocol
//
// One request per connection: a client sends one line, a JSON object of
// at most MaxRequest bytes ending in "\n":
//
//	{"v":1,"op":"hold","ids":["1234","5678"],"timeout_ms":60000}
//
// v is Version; op is one of list, show, hold, release, delete, flush,
// requeue; ids are decimal message numbers (at most MaxIDs; show, hold,
// release, delete and requeue need at least one; flush without any makes
// every message due; list without any lists all); timeout_ms, optional,
// bounds the time the operation may take (a delete waits for a delivery in
// progress), capped by the server's own limit. Unknown fields are refused.
//
// The server answers with lines, each a JSON object: for list and show, one
// {"message":{...}} per message (the fields of Message); for the others
// one {"id":"N","ok":true} or {"id":"N","ok":false,"not_found":true,
// "error":"..."} per ID, in the order given; then always a last line
// {"v":1,"done":true}, with "error" and "temporary" when the request as a
// whole failed (malformed, refused, the scheduler stopped, a timeout),
// after which the server closes the connection. A request that comes while
// the scheduler does not run yet (an mta starting) waits up to 5 s for it.
//
// # Security
//
// The socket is mode 0600 and the server admits only peers whose uid
// (SO_PEERCRED, the kernel's word) is 0 or its own. A request line is
// read within 10 s; at most MaxConns connections are served at once (one
// beyond is told so and closed); each request has a time limit.
package queueadmin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/qmailkit/qmailkit/queue"
)

// Version is the protocol version, the "v" of requests and final lines.
const Version = 1

// Limits of a request.
const (
	MaxRequest = 64 << 10 // bytes of the request line, "\n" included
	MaxIDs     = 10000    // IDs in one request
)

// The operations.
const (
	OpList    = "list"
	OpShow    = "show"
	OpHold    = "hold"
	OpRelease = "release"
	OpDelete  = "delete"
	OpFlush   = "flush"
	OpRequeue = "requeue"
)

// Request is a request line.
type Request struct {
	V         int      `json:"v"`
	Op        string   `json:"op"`
	IDs       []string `json:"ids,omitempty"`
	TimeoutMS int64    `json:"timeout_ms,omitempty"`
}

// ParseRequest parses and checks a request line (without its "\n") and
// returns the request and its IDs.
func ParseRequest(line []byte) (Request, []queue.ID, error) {
	var req Request
	if len(line) >= MaxRequest {
		return req, nil, errors.New("request too long")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, nil, fmt.Errorf("malformed request: %w", err)
	}
	if dec.More() {
		return req, nil, errors.New("malformed request: data after the object")
	}
	if req.V != Version {
		return req, nil, fmt.Errorf("unsupported version %d (this server speaks %d)", req.V, Version)
	}
	switch req.Op {
	case OpList, OpFlush:
	case OpShow, OpHold, OpRelease, OpDelete, OpRequeue:
		if len(req.IDs) == 0 {
			return req, nil, fmt.Errorf("%s needs message IDs", req.Op)
		}
	default:
		return req, nil, fmt.Errorf("unknown operation %q", req.Op)
	}
	if len(req.IDs) > MaxIDs {
		return req, nil, fmt.Errorf("too many IDs (%d; at most %d)", len(req.IDs), MaxIDs)
	}
	if req.TimeoutMS < 0 {
		return req, nil, errors.New("negative timeout_ms")
	}
	ids := make([]queue.ID, len(req.IDs))
	for i, s := range req.IDs {
		id, err := ParseID(s)
		if err != nil {
			return req, nil, err
		}
		ids[i] = id
	}
	return req, ids, nil
}

// ParseID parses a message ID: a decimal number (qmail's #N, the inode
// number of its message file), at most 20 digits, not 0.
func ParseID(s string) (queue.ID, error) {
	if s == "" || len(s) > 20 {
		return 0, fmt.Errorf("bad message ID %q", truncate(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("bad message ID %q", truncate(s))
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("bad message ID %q", truncate(s))
	}
	return queue.ID(n), nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// Message is a queued message as list and show report it, and as the
// queue command's -json prints it, one object per line.
type Message struct {
	// ID is the message's number, decimal (qmail-qread's #N).
	ID string `json:"id"`
	// Arrival is when it was queued (preprocessed: info/S/N's mtime, as
	// qmail-qread shows; not yet: todo/N's), RFC 3339 in UTC.
	Arrival time.Time `json:"arrival"`
	// Size is the message file's size in bytes, Received line included.
	Size int64 `json:"size"`
	// Sender is the envelope sender, "" for a bounce.
	Sender string `json:"sender"`
	// Recipients are its recipients and their state.
	Recipients []Recipient `json:"recipients"`
	// Held: none of its deliveries starts until it is released.
	Held bool `json:"held"`
	// Queued: still in todo/, not yet preprocessed (recipients unrouted).
	Queued bool `json:"queued"`
	// Bouncing: permanent failures are collected for a bounce.
	Bouncing bool `json:"bouncing"`
	// NextAttempt is its next delivery attempt, omitted when none is
	// scheduled (held, nothing pending, or unknown).
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	// Active is the number of its deliveries in progress.
	Active int `json:"active"`
}

// Recipient is one recipient of a Message.
type Recipient struct {
	Address string `json:"address"`
	// Channel is "local" or "remote", "" while the message is queued.
	Channel string `json:"channel,omitempty"`
	// State is "pending" or "done" (delivered, or failed and recorded
	// for the bounce).
	State string `json:"state"`
}

// FromEntry converts a queue entry.
func FromEntry(e queue.Entry) Message {
	m := Message{
		ID: e.ID.String(), Arrival: e.Birth.UTC(), Size: e.Size, Sender: e.Sender,
		Held: e.Held, Queued: e.Queued, Bouncing: e.Bouncing, Active: e.Active,
		Recipients: make([]Recipient, 0, len(e.Recipients)),
	}
	if !e.Next.IsZero() {
		t := e.Next.UTC()
		m.NextAttempt = &t
	}
	for _, r := range e.Recipients {
		rc := Recipient{Address: r.Addr, State: "pending"}
		if r.Done {
			rc.State = "done"
		}
		if !e.Queued {
			rc.Channel = "local"
			if r.Remote {
				rc.Channel = "remote"
			}
		}
		m.Recipients = append(m.Recipients, rc)
	}
	return m
}

// line is one response line.
type line struct {
	V         int      `json:"v,omitempty"`
	Message   *Message `json:"message,omitempty"`
	ID        string   `json:"id,omitempty"`
	OK        *bool    `json:"ok,omitempty"`
	NotFound  bool     `json:"not_found,omitempty"`
	Done      bool     `json:"done,omitempty"`
	Error     string   `json:"error,omitempty"`
	Temporary bool     `json:"temporary,omitempty"`
}

// SocketPath is where the mta of home serves the protocol:
// QMAILHOME/run/queue-admin.sock.
func SocketPath(home string) string { return filepath.Join(home, "run", "queue-admin.sock") }
