package smtpserver

import (
	"context"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
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
			srv.Auth = func(ctx context.Context, user, pass string) error {
				mu.Lock()
				calls = append(calls, user+"/"+pass)
				mu.Unlock()
				return check(ctx, user, pass)
			}
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
