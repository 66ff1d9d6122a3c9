package smtpserver

import (
	"context"
	"encoding/base64"
	"strings"
	"sync"
	"testing"

	"github.com/qmailkit/qmailkit/auth"
)

// b64 is the base64 of s, as a client sends a SASL response.
func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestAuthExchanges pins every AUTH PLAIN and LOGIN exchange, step by
// step: the lines the server answers and what reaches the Authenticator.
// Each case runs on its own connection after STARTTLS and EHLO, and ends
// with a NOOP to show the server is still reading commands in step.
func TestAuthExchanges(t *testing.T) {
	type step struct{ send, want string }
	tests := []struct {
		name  string
		steps []step
		calls []string // user/password pairs given to the Authenticator
	}{
		{"plain initial response", []step{{"AUTH PLAIN " + b64("\x00joe\x00s3cret"), "235 2.7.0 authentication successful"}}, []string{"joe/s3cret"}},
		{"plain lower case", []step{{"auth plain " + b64("\x00joe\x00s3cret"), "235 2.7.0 authentication successful"}}, []string{"joe/s3cret"}},
		{"plain extra spaces", []step{{"AUTH PLAIN  " + b64("\x00joe\x00s3cret") + " ", "235 2.7.0 authentication successful"}}, []string{"joe/s3cret"}},
		{"plain authzid equal", []step{{"AUTH PLAIN " + b64("joe\x00joe\x00s3cret"), "235 2.7.0 authentication successful"}}, []string{"joe/s3cret"}},
		{"plain authzid differs", []step{{"AUTH PLAIN " + b64("mary\x00joe\x00s3cret"), "535 5.7.8 authentication credentials invalid"}}, nil},
		{"plain challenge", []step{{"AUTH PLAIN", "334 "}, {b64("\x00joe\x00s3cret"), "235 2.7.0 authentication successful"}}, []string{"joe/s3cret"}},
		{"plain challenge authzid differs", []step{{"AUTH PLAIN", "334 "}, {b64("mary\x00joe\x00s3cret"), "535 5.7.8 authentication credentials invalid"}}, nil},
		{"plain wrong password", []step{{"AUTH PLAIN " + b64("\x00joe\x00wrong"), "535 5.7.8 authentication credentials invalid"}}, []string{"joe/wrong"}},
		{"plain temporary failure", []step{{"AUTH PLAIN " + b64("\x00down\x00x"), "454 4.7.0 temporary authentication failure"}}, []string{"down/x"}},
		{"plain empty authcid", []step{{"AUTH PLAIN " + b64("\x00\x00pw"), "535 5.7.8 authentication credentials invalid"}}, []string{"/pw"}},
		{"plain empty password", []step{{"AUTH PLAIN " + b64("\x00joe\x00"), "535 5.7.8 authentication credentials invalid"}}, []string{"joe/"}},
		{"plain empty initial response", []step{{"AUTH PLAIN =", "501 5.5.2 cannot decode response"}}, nil},
		{"plain empty response", []step{{"AUTH PLAIN", "334 "}, {"=", "501 5.5.2 cannot decode response"}}, nil},
		{"plain empty line", []step{{"AUTH PLAIN", "334 "}, {"", "501 5.5.2 cannot decode response"}}, nil},
		{"plain cancel", []step{{"AUTH PLAIN", "334 "}, {"*", "501 5.0.0 authentication cancelled"}}, nil},
		{"plain cancel as initial response", []step{{"AUTH PLAIN *", "501 5.0.0 authentication cancelled"}}, nil},
		{"plain bad base64", []step{{"AUTH PLAIN !!!", "501 5.5.2 cannot decode response"}}, nil},
		{"plain bad base64 response", []step{{"AUTH PLAIN", "334 "}, {"AGpvZQBzM2NyZXQ", "501 5.5.2 cannot decode response"}}, nil},
		{"plain two fields", []step{{"AUTH PLAIN " + b64("joe\x00s3cret"), "501 5.5.2 cannot decode response"}}, nil},
		{"plain four fields", []step{{"AUTH PLAIN " + b64("\x00joe\x00s3cret\x00"), "501 5.5.2 cannot decode response"}}, nil},
		{"plain response too long", []step{{"AUTH PLAIN", "334 "}, {strings.Repeat("A", 20000), "500 5.5.2 line too long"}}, nil},
		{"login", []step{{"AUTH LOGIN", "334 VXNlcm5hbWU6"}, {b64("joe"), "334 UGFzc3dvcmQ6"}, {b64("s3cret"), "235 2.7.0 authentication successful"}}, []string{"joe/s3cret"}},
		{"login initial response", []step{{"AUTH LOGIN " + b64("joe"), "334 UGFzc3dvcmQ6"}, {b64("s3cret"), "235 2.7.0 authentication successful"}}, []string{"joe/s3cret"}},
		{"login lower case", []step{{"auth login " + b64("joe"), "334 UGFzc3dvcmQ6"}, {b64("s3cret"), "235 2.7.0 authentication successful"}}, []string{"joe/s3cret"}},
		{"login wrong password", []step{{"AUTH LOGIN " + b64("joe"), "334 UGFzc3dvcmQ6"}, {b64("wrong"), "535 5.7.8 authentication credentials invalid"}}, []string{"joe/wrong"}},
		{"login empty user", []step{{"AUTH LOGIN =", "334 UGFzc3dvcmQ6"}, {"=", "535 5.7.8 authentication credentials invalid"}}, []string{"/"}},
		{"login cancel user", []step{{"AUTH LOGIN", "334 VXNlcm5hbWU6"}, {"*", "501 5.0.0 authentication cancelled"}}, nil},
		{"login cancel password", []step{{"AUTH LOGIN " + b64("joe"), "334 UGFzc3dvcmQ6"}, {"*", "501 5.0.0 authentication cancelled"}}, nil},
		{"login bad base64 user", []step{{"AUTH LOGIN !!!", "501 5.5.2 cannot decode response"}}, nil},
		{"login bad base64 password", []step{{"AUTH LOGIN", "334 VXNlcm5hbWU6"}, {b64("joe"), "334 UGFzc3dvcmQ6"}, {"!!!", "501 5.5.2 cannot decode response"}}, nil},
		{"unknown mechanism", []step{{"AUTH CRAM-MD5", "504 5.5.4 unrecognized authentication type"}}, nil},
		{"no mechanism", []step{{"AUTH", "504 5.5.4 unrecognized authentication type"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tlsServer(t, &sink{})
			check := srv.Auth
			var mu sync.Mutex
			var calls []string
			srv.Auth = auth.Func(func(ctx context.Context, c auth.Credentials) (*auth.User, error) {
				mu.Lock()
				calls = append(calls, c.User+"/"+c.Secret)
				mu.Unlock()
				if c.Service != auth.ServiceSMTP || (c.Method != auth.MethodPlain && c.Method != auth.MethodLogin) {
					t.Errorf("credentials %+v: want service smtp, method PLAIN or LOGIN", c)
				}
				return check.Authenticate(ctx, c)
			})
			c := start(t, srv, qmailEnv())
			c.expect("220 *")
			c.starttls()
			c.send("EHLO c\r\n")
			c.reply()
			for _, s := range tt.steps {
				c.send(s.send + "\r\n")
				c.expect(s.want)
			}
			c.send("NOOP\r\n")
			c.expect("250 *")
			mu.Lock()
			defer mu.Unlock()
			if strings.Join(calls, ",") != strings.Join(tt.calls, ",") {
				t.Errorf("Authenticator called with %q, want %q", calls, tt.calls)
			}
		})
	}
}

// plainReply is the reply to an AUTH PLAIN response as the hand-written
// parser gave it before go-sasl parsed PLAIN (RFC 4616, RFC 4954), for an
// Authenticator that accepts joe/s3cret: the oracle of FuzzAuthPlainReply.
func plainReply(resp string) string {
	resp = strings.TrimSpace(resp)
	var b []byte
	switch resp {
	case "*":
		return "501 5.0.0 authentication cancelled"
	case "=":
	default:
		var err error
		if b, err = base64.StdEncoding.DecodeString(resp); err != nil {
			return "501 5.5.2 cannot decode response"
		}
	}
	f := strings.Split(string(b), "\x00")
	switch {
	case len(f) != 3:
		return "501 5.5.2 cannot decode response"
	case f[0] != "" && f[0] != f[1]:
		return "535 5.7.8 authentication credentials invalid"
	case f[1] == "joe" && f[2] == "s3cret":
		return "235 2.7.0 authentication successful"
	}
	return "535 5.7.8 authentication credentials invalid"
}

// FuzzAuthPlainReply: a whole session answers any AUTH PLAIN response, as
// the initial response or after the 334, as the hand-written parser did,
// and goes on reading commands in step.
func FuzzAuthPlainReply(f *testing.F) {
	for _, s := range []string{"\x00joe\x00s3cret", "joe\x00joe\x00s3cret", "mary\x00joe\x00s3cret", "\x00\x00x", "joe\x00x", "a\x00b\x00c\x00d", "", "\x00joe\x00"} {
		f.Add(s, true, true)
		f.Add(s, true, false)
	}
	for _, s := range []string{"*", "=", "!!!", "AGpvZQBzM2NyZXQ", "AGpvZQBzM2NyZXQ=="} {
		f.Add(s, false, true)
		f.Add(s, false, false)
	}
	f.Fuzz(func(t *testing.T, raw string, encode, initial bool) {
		resp := raw
		if encode {
			resp = b64(raw)
		}
		if resp == "" || len(resp) > 900 || strings.ContainsFunc(resp, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			return // command parsing, not AUTH's
		}
		in := "EHLO c\r\nAUTH PLAIN\r\n" + resp + "\r\nNOOP\r\n"
		if initial {
			in = "EHLO c\r\nAUTH PLAIN " + resp + "\r\nNOOP\r\n"
		}
		srv := &Server{Hostname: "mx.example", AuthOnLoopback: true, AuthFailDelay: -1,
			Enqueuer: &sink{}, IsLocalIP: func(ip netipAddr) bool { return false },
			Auth: Authenticator(func(ctx context.Context, u, p string) error {
				if u == "joe" && p == "s3cret" {
					return nil
				}
				return ErrBadCredentials
			})}
		c := &recordConn{scriptConn: scriptConn{r: strings.NewReader(in)}}
		srv.ServeConn(context.Background(), c, map[string]string{"TCPREMOTEIP": "127.0.0.1"})
		got := strings.Split(strings.TrimSuffix(c.out.String(), "\r\n"), "\r\n")
		for len(got) > 0 && (strings.HasPrefix(got[0], "220 ") || strings.HasPrefix(got[0], "250-")) {
			got = got[1:] // the greeting and the EHLO reply
		}
		if len(got) > 0 {
			got = got[1:] // the EHLO reply's last line
		}
		want := []string{plainReply(resp), "250 2.0.0 ok"}
		if !initial {
			want = append([]string{"334 "}, want...)
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("AUTH PLAIN with %q (initial %v): replies %q, want %q", resp, initial, got, want)
		}
	})
}
