package queue

import (
	"bytes"
	"errors"
	"testing"
)

func FuzzReadEnvelope(f *testing.F) {
	for _, s := range []string{
		"Fjoe@a.example\x00Tbob@b.example\x00Tcarol@c.example\x00\x00",
		"F\x00\x00", "Xa@b\x00\x00", "Fa@b\x00Tc@d\x00", "Fa@b\x00Zc@d\x00\x00", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		env, err := ReadEnvelope(bytes.NewReader(in))
		if err != nil {
			var qe *Error
			if !errors.As(err, &qe) || (qe.Code != 11 && qe.Code != 54 && qe.Code != 91) {
				t.Fatalf("error %v without a qmail-queue code", err)
			}
			return
		}
		// What was read re-encodes to a prefix of the input.
		enc := append(envelopeRecords(Origin{}, env)[len("u0\x00p0\x00"):], 0)
		if !bytes.HasPrefix(in, enc) {
			t.Fatalf("%q re-encodes to %q", in, enc)
		}
		if err := checkEnvelope(env); err != nil {
			t.Fatalf("accepted envelope fails checkEnvelope: %v", err)
		}
	})
}
