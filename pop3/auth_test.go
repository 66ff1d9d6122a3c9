package pop3

import (
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"hash"
	"testing"
)

func newSHA256() hash.Hash { return sha256.New() }
func newSHA512() hash.Hash { return sha512.New() }

func isAuthFailed(err error) bool { return errors.Is(err, ErrAuthFailed) }

// RFC 1939 section 7's example.
func TestAPOPDigest(t *testing.T) {
	if got := APOPDigest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf"); got != "c4c9334bac560ecc979e58001b3e22fb" {
		t.Fatalf("APOPDigest = %s", got)
	}
	c := Credentials{User: "mrose", Secret: "C4C9334BAC560ECC979E58001B3E22FB", Challenge: "<1896.697170952@dbc.mtview.ca.us>", Method: MethodAPOP}
	if !CheckSecret(c, "tanstaaf") || CheckSecret(c, "tanstaafl") {
		t.Fatal("CheckSecret")
	}
	if got := string(CheckpasswordInput(Credentials{User: "mrose", Secret: "c4c9334bac560ecc979e58001b3e22fb", Challenge: "<1896.697170952@dbc.mtview.ca.us>"})); got != "mrose\x00c4c9334bac560ecc979e58001b3e22fb\x00<1896.697170952@dbc.mtview.ca.us>\x00" {
		t.Fatalf("CheckpasswordInput = %q", got)
	}
}

func TestDecodePlain(t *testing.T) {
	tests := []struct {
		in, user, pass string
		err            bool
	}{
		{"AGpvZQBzM2NyZXQ=", "joe", "s3cret", false},
		{"am9lAGpvZQBzM2NyZXQ=", "joe", "s3cret", false},
		{"bWFyeQBqb2UAczNjcmV0", "", "", true}, // authzid mary
		{"!!", "", "", true},
		{"", "", "", true},
		{"AABzM2NyZXQ=", "", "", true}, // empty user
	}
	for _, tt := range tests {
		u, p, err := decodePlain(tt.in)
		if (err != nil) != tt.err || u != tt.user || p != tt.pass {
			t.Errorf("decodePlain(%q) = %q, %q, %v", tt.in, u, p, err)
		}
	}
}
