package mta

import (
	"github.com/qmailkit/qmailkit/queue"
	"github.com/qmailkit/qmailkit/smtpclient"
)

// remoteDSN turns a delivery's DSN parameters (RFC 3461) into the request
// smtpclient passes on to a server that offers DSN; nil for none.
func remoteDSN(d *queue.DSN) *smtpclient.DSN {
	if d == nil {
		return nil
	}
	out := &smtpclient.DSN{Ret: d.Ret, EnvID: d.EnvID, Recipients: make([]smtpclient.RecipientDSN, len(d.Recipients))}
	for i, r := range d.Recipients {
		out.Recipients[i] = smtpclient.RecipientDSN{Notify: r.Notify.String(), ORcpt: r.ORcpt}
	}
	return out
}
