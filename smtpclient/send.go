package smtpclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// maxSendDomains bounds the domains Send delivers to at once.
const maxSendDomains = 8

// Send delivers one message from sender to recipients at any domains: it
// groups the recipients by domain (the text after the last '@', compared
// without case), calls [Client.Deliver] once per domain (up to 8 domains at
// once, each reading msg from its start), and returns one result per
// recipient, in the order given. A recipient without a domain fails
// permanently.
//
// The error is nil when every recipient was delivered; otherwise it joins
// each failed recipient's error ("smtpclient: rcpt@domain: ..."). Use the
// results to tell permanent failures (bounce) from temporary ones (retry).
func (c *Client) Send(ctx context.Context, sender string, recipients []string, msg io.ReaderAt) ([]RecipientResult, error) {
	results := make([]RecipientResult, len(recipients))
	type group struct {
		domain string
		index  []int
	}
	var groups []*group
	byDomain := map[string]*group{}
	for i, r := range recipients {
		results[i].Address = r
		at := strings.LastIndexByte(r, '@')
		if at < 0 || at == len(r)-1 {
			results[i].Err = newError(true, "Recipient "+printable(r)+" has no domain. (#5.1.3)\n", ErrNoHost)
			continue
		}
		domain := r[at+1:]
		key := strings.ToLower(domain)
		g := byDomain[key]
		if g == nil {
			g = &group{domain: domain}
			byDomain[key] = g
			groups = append(groups, g)
		}
		g.index = append(g.index, i)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxSendDomains)
	for _, g := range groups {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			rcpts := make([]string, len(g.index))
			for k, i := range g.index {
				rcpts[k] = recipients[i]
			}
			res, _ := c.Deliver(ctx, g.domain, sender, rcpts, io.NewSectionReader(msg, 0, 1<<62))
			for k, i := range g.index {
				results[i] = res.Recipients[k]
			}
		})
	}
	wg.Wait()
	var errs []error
	for _, r := range results {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("smtpclient: %s: %w", r.Address, r.Err))
		}
	}
	return results, errors.Join(errs...)
}
