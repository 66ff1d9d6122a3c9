package smtpclient

import (
	"strconv"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/smtpclient/scripted"
)

type fakeServer = scripted.Server

func newFake(t *testing.T) *fakeServer { return scripted.New(t) }

// fakeClient returns a Client routed to f by smtproutes
// (":127.0.0.1:PORT"), as the recorded sessions were made.
func fakeClient(t *testing.T, f *fakeServer) *Client {
	return &Client{
		Hostname: "helo.example.org",
		Routes:   mustRoutes(t, ":127.0.0.1:"+strconv.Itoa(f.Port)+"\n"),
		Timeouts: Timeouts{Remote: 5 * time.Second, Quit: time.Second},
	}
}
