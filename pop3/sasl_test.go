package pop3

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
)

// b64 is the base64 of s, as a client sends a SASL response.
func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestAuthPlainExchanges pins every AUTH PLAIN exchange (RFC 5034, RFC
// 4616), step by step: the lines the server answers and which credentials
// reach the Authenticator. Each case that leaves the session in the
// authorization state ends with a CAPA, to show the server still reads
// commands in step.
func TestAuthPlainExchanges(t *testing.T) {
	type step struct{ send, want string }
	const (
		ok      = "+OK 3 messages"
		invalid = "-ERR invalid AUTH PLAIN response"
		failed  = "-ERR [AUTH] authentication failed"
	)
	tests := []struct {
		name   string
		compat bool
		steps  []step
		calls  []string // user/secret pairs given to the Authenticator
		end    bool     // the session ends after the last step
	}{
		{"initial response", false, []step{{"AUTH PLAIN " + b64("\x00joe\x00s3cret"), ok}}, []string{"joe/s3cret"}, false},
		{"lower case", false, []step{{"auth plain " + b64("\x00joe\x00s3cret"), ok}}, []string{"joe/s3cret"}, false},
		{"trailing space", false, []step{{"AUTH PLAIN " + b64("\x00joe\x00s3cret") + " ", ok}}, []string{"joe/s3cret"}, false},
		{"authzid equal", false, []step{{"AUTH PLAIN " + b64("joe\x00joe\x00s3cret"), ok}}, []string{"joe/s3cret"}, false},
		{"authzid differs", false, []step{{"AUTH PLAIN " + b64("mary\x00joe\x00s3cret"), failed}}, nil, false},
		{"continuation", false, []step{{"AUTH PLAIN", "+ "}, {b64("\x00joe\x00s3cret"), ok}}, []string{"joe/s3cret"}, false},
		{"continuation authzid differs", false, []step{{"AUTH PLAIN", "+ "}, {b64("mary\x00joe\x00s3cret"), failed}}, nil, false},
		{"wrong password", false, []step{{"AUTH PLAIN " + b64("\x00joe\x00wrong"), failed}}, []string{"joe/wrong"}, false},
		{"empty password", false, []step{{"AUTH PLAIN " + b64("\x00joe\x00"), failed}}, []string{"joe/"}, false},
		{"temporary failure", false, []step{{"AUTH PLAIN " + b64("\x00temp\x00x"), "-ERR [SYS/TEMP] authentication temporarily unavailable"}}, []string{"temp/x"}, false},
		{"empty user", false, []step{{"AUTH PLAIN " + b64("\x00\x00s3cret"), invalid}}, nil, false},
		{"empty initial response", false, []step{{"AUTH PLAIN =", invalid}}, nil, false},
		{"empty response", false, []step{{"AUTH PLAIN", "+ "}, {"=", invalid}}, nil, false},
		{"empty line", false, []step{{"AUTH PLAIN", "+ "}, {"", invalid}}, nil, false},
		{"cancel", false, []step{{"AUTH PLAIN", "+ "}, {"*", "-ERR authentication cancelled"}}, nil, false},
		{"cancel as initial response", false, []step{{"AUTH PLAIN *", "-ERR authentication cancelled"}}, nil, false},
		{"bad base64", false, []step{{"AUTH PLAIN !!!", invalid}}, nil, false},
		{"bad base64 response", false, []step{{"AUTH PLAIN", "+ "}, {"AGpvZQBzM2NyZXQ", invalid}}, nil, false},
		{"two fields", false, []step{{"AUTH PLAIN " + b64("joe\x00s3cret"), invalid}}, nil, false},
		{"four fields", false, []step{{"AUTH PLAIN " + b64("\x00joe\x00s3cret\x00"), invalid}}, nil, false},
		{"response too long", false, []step{{"AUTH PLAIN", "+ "}, {strings.Repeat("A", 10000), "-ERR line too long"}}, nil, false},
		{"unknown mechanism", false, []step{{"AUTH LOGIN", "-ERR unsupported authentication mechanism"}}, nil, false},
		{"compat authzid differs", true, []step{{"AUTH PLAIN " + b64("mary\x00joe\x00s3cret"), "-ERR authorization failed"}}, nil, true},
		{"compat wrong password", true, []step{{"AUTH PLAIN " + b64("\x00joe\x00wrong"), "-ERR authorization failed"}}, []string{"joe/wrong"}, true},
		{"compat continuation", true, []step{{"AUTH PLAIN", "+ "}, {b64("\x00joe\x00s3cret"), "+OK "}}, []string{"joe/s3cret"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := vectorMaildir(t)
			check := testAuth(dir)
			var mu sync.Mutex
			var calls []string
			srv := &Server{Compat: tt.compat, AuthFailDelay: -1, Auth: AuthenticatorFunc(func(ctx context.Context, c Credentials) (*User, error) {
				mu.Lock()
				calls = append(calls, c.User+"/"+c.Secret)
				mu.Unlock()
				if c.Method != MethodPlain {
					t.Errorf("Method %q", c.Method)
				}
				return check.Authenticate(ctx, c)
			})}
			if tt.compat {
				cert, _ := testCert(t)
				srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}} // compat speaks AUTH only with TLS configured
			}
			c := startSession(t, srv, map[string]string{"TCPREMOTEIP": "127.0.0.1"})
			c.expect("+OK*")
			for _, s := range tt.steps {
				c.cmd(s.send, s.want)
			}
			if tt.end {
				c.expectEOF()
			} else {
				c.cmd("NOOP", "*")
				c.cmd("QUIT", "+OK*")
			}
			c.result()
			mu.Lock()
			defer mu.Unlock()
			if strings.Join(calls, ",") != strings.Join(tt.calls, ",") {
				t.Errorf("Authenticator called with %q, want %q", calls, tt.calls)
			}
		})
	}
}

// decodePlainBefore is decodePlain as it was written by hand before go-sasl
// parsed the response: the oracle of FuzzDecodePlain.
func decodePlainBefore(resp string) (user, pass string, err error) {
	b, err := base64.StdEncoding.DecodeString(resp)
	if err != nil {
		return "", "", errors.New("bad base64")
	}
	f := strings.Split(string(b), "\x00")
	if len(f) != 3 || f[1] == "" {
		return "", "", errors.New("malformed response")
	}
	if f[0] != "" && f[0] != f[1] {
		return "", "", ErrAuthFailed
	}
	return f[1], f[2], nil
}

// FuzzDecodePlain: go-sasl's parse of an AUTH PLAIN response gives what
// the hand-written one gave, for any response, raw or base64.
func FuzzDecodePlain(f *testing.F) {
	for _, s := range []string{"\x00joe\x00s3cret", "joe\x00joe\x00s3cret", "mary\x00joe\x00s3cret", "\x00\x00x", "joe\x00x", "a\x00b\x00c\x00d", "", "\x00", "\x00\x00", "\x00joe\x00"} {
		f.Add(b64(s), false)
		f.Add(s, true)
	}
	f.Add("!!", false)
	f.Add("AGpvZQBzM2NyZXQ", false)
	f.Fuzz(func(t *testing.T, in string, encode bool) {
		if encode {
			in = b64(in)
		}
		u, p, err := decodePlain(in)
		wu, wp, werr := decodePlainBefore(in)
		if u != wu || p != wp || (err == nil) != (werr == nil) || errors.Is(err, ErrAuthFailed) != errors.Is(werr, ErrAuthFailed) {
			t.Fatalf("decodePlain(%q) = %q, %q, %v; before: %q, %q, %v", in, u, p, err, wu, wp, werr)
		}
	})
}
