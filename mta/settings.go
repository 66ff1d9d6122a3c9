package mta

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/smtpclient"
	"github.com/qmailkit/qmailkit/smtpserver"
)

// The control files of qmail's well-known patches and of qmailkit's own
// extensions that LoadHome reads besides qmail's (see LoadHome).

// line is one line of a control file, with its number.
type line struct {
	n    int
	text string
}

// maxControlFile bounds what is read of one of these control files.
const maxControlFile = 1 << 20

// lines reads a control file's lines without white space at their ends
// and without '#' comments (to the end of the line), leaving out those
// that are then empty; ok is false when the file does not exist. Anything
// but a regular file of at most maxControlFile bytes is an error naming
// the file's path (a FIFO is opened without blocking, then refused).
func lines(d control.Dir, name string) (out []line, ok bool, err error) {
	path := d.Path(name)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("mta: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, fmt.Errorf("mta: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, false, fmt.Errorf("mta: %s: not a regular file", path)
	}
	out, err = readLines(path, f)
	return out, err == nil, err
}

// readLines is lines' reading of r, the file at path (named in errors).
func readLines(path string, r io.Reader) ([]line, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxControlFile+1))
	if err != nil {
		return nil, fmt.Errorf("mta: %s: %w", path, err)
	}
	if len(data) > maxControlFile {
		return nil, fmt.Errorf("mta: %s: larger than %d bytes", path, maxControlFile)
	}
	var out []line
	for n, l := range strings.Split(string(data), "\n") {
		t, _, _ := strings.Cut(l, "#")
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, line{n + 1, t})
		}
	}
	return out, nil
}

// badLine is the error for a line of a control file that cannot be read.
func badLine(name string, l line, why string) error {
	return fmt.Errorf("mta: control/%s line %d: %s: %q", name, l.n, why, l.text)
}

// readDNSServers reads control/dnsserver: the recursive DNS servers to ask,
// one "address" or "address:port" (IPv6 in brackets with a port) per line,
// in order; none: /etc/resolv.conf.
func readDNSServers(d control.Dir) ([]string, error) {
	ls, _, err := lines(d, "dnsserver")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range ls {
		s, err := DNSServer(l.text)
		if err != nil {
			return nil, badLine("dnsserver", l, err.Error())
		}
		out = append(out, s)
	}
	return out, nil
}

// DNSServer turns "192.0.2.53", "192.0.2.53:5353", "2001:db8::53" or
// "[2001:db8::53]:53" into the host:port form Config.DNS holds.
func DNSServer(s string) (string, error) {
	if host, port, err := net.SplitHostPort(s); err == nil {
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 || net.ParseIP(host) == nil {
			return "", fmt.Errorf("not an IP address with a port: %q", s)
		}
		return net.JoinHostPort(host, port), nil
	}
	if net.ParseIP(s) == nil {
		return "", fmt.Errorf("not an IP address: %q", s)
	}
	return net.JoinHostPort(s, "53"), nil
}

// readDNSBL reads control/dnsbllist: the DNS lists clients of the SMTP
// port are looked up in before the greeting, with rblsmtpd's semantics and
// options, one per line: "ZONE" or "-r ZONE" (a listed client is refused
// with the list's TXT text), "-a ZONE" (an anti-RBL: a listed client is
// accepted at once), "-b" (a listing gives 553 rather than 451), "-c" (a
// failed lookup refuses), "-t SECONDS" (how long a refused client is kept
// talking). No file, or no zone: no DNS list.
func readDNSBL(d control.Dir) (*smtpserver.DNSBL, error) {
	ls, _, err := lines(d, "dnsbllist")
	if err != nil {
		return nil, err
	}
	b := &smtpserver.DNSBL{}
	for _, l := range ls {
		opt, arg, _ := strings.Cut(l.text, " ")
		arg = strings.TrimSpace(arg)
		switch {
		case opt == "-r" || opt == "-a":
			if !validZone(arg) {
				return nil, badLine("dnsbllist", l, "not a DNS zone")
			}
			b.Rules = append(b.Rules, smtpserver.DNSBLRule{Zone: arg, Allow: opt == "-a"})
		case opt == "-b" && arg == "":
			b.Permanent = true
		case opt == "-B" && arg == "":
			b.Permanent = false
		case opt == "-c" && arg == "":
			b.FailClosed = true
		case opt == "-C" && arg == "":
			b.FailClosed = false
		case opt == "-t":
			n, err := strconv.Atoi(arg)
			if err != nil || n < 0 || n > 3600 {
				return nil, badLine("dnsbllist", l, "-t needs seconds from 0 to 3600")
			}
			b.Timeout = time.Duration(n) * time.Second
			if n == 0 {
				b.Timeout = -1
			}
		case arg == "" && validZone(opt):
			b.Rules = append(b.Rules, smtpserver.DNSBLRule{Zone: opt})
		default:
			return nil, badLine("dnsbllist", l, "not a zone or an rblsmtpd option (-r, -a, -b, -B, -c, -C, -t)")
		}
	}
	if len(b.Rules) == 0 {
		return nil, nil
	}
	return b, nil
}

// validZone reports whether s can be a DNS zone: labels of letters,
// digits, '-' (not first or last) and '_', 1 to 63 bytes each, 253 in all.
func validZone(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// readBounceFormat reads control/bounceformat: "qmail" (qmail's QSBMF
// bounces, the default) or "dsn" (RFC 3464 delivery status notifications).
func readBounceFormat(d control.Dir) (dsn bool, err error) {
	ls, _, err := lines(d, "bounceformat")
	if err != nil || len(ls) == 0 {
		return false, err
	}
	switch strings.ToLower(ls[0].text) {
	case "qmail", "qsbmf":
		return false, nil
	case "dsn", "rfc3464":
		return true, nil
	}
	return false, badLine("bounceformat", ls[0], `neither "qmail" nor "dsn"`)
}

// readRemoteReuse reads control/remotereuse: how many seconds a connection
// to a remote host stays open after a delivery, for the next message to
// that host (smtpclient.Pool); no file or 0: none (qmail-remote's one
// connection per delivery).
func readRemoteReuse(d control.Dir) (*smtpclient.Pool, error) {
	ls, _, err := lines(d, "remotereuse")
	if err != nil || len(ls) == 0 {
		return nil, err
	}
	n, err := strconv.Atoi(ls[0].text)
	if err != nil || n < 0 || n > 3600 {
		return nil, badLine("remotereuse", ls[0], "not a number of seconds from 0 to 3600")
	}
	if n == 0 {
		return nil, nil
	}
	return &smtpclient.Pool{IdleTimeout: time.Duration(n) * time.Second}, nil
}

// hostTLS is what qmail's TLS patch reads for qmail-remote: a file
// control/tlshosts/HOST.pem makes TLS required with HOST and its
// certificate verified against the authorities in the file;
// control/notlshosts/HOST makes TLS never tried with HOST; and with
// control/tlshosts/exhaustivelist, TLS is tried with no other host. HOST
// is the name the certificate must carry: an MX host, or an smtproutes
// relay.
type hostTLS struct {
	verify     map[string]*x509.CertPool
	none       map[string]bool
	exhaustive bool
}

// readHostTLS reads control/tlshosts/ and control/notlshosts/; nil when
// neither holds anything.
func readHostTLS(d control.Dir) (*hostTLS, error) {
	h := &hostTLS{verify: map[string]*x509.CertPool{}, none: map[string]bool{}}
	dir := d.Path("tlshosts")
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("mta: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if name == "exhaustivelist" {
			h.exhaustive = true
			continue
		}
		host, ok := strings.CutSuffix(name, ".pem")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("mta: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("mta: control/tlshosts/%s: no certificate in it", name)
		}
		h.verify[strings.ToLower(host)] = pool
	}
	entries, err = os.ReadDir(d.Path("notlshosts"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("mta: %w", err)
	}
	for _, e := range entries {
		h.none[strings.ToLower(e.Name())] = true
	}
	if len(h.verify) == 0 && len(h.none) == 0 && !h.exhaustive {
		return nil, nil
	}
	return h, nil
}

// lookup is smtpclient.Client.HostTLS.
func (h *hostTLS) lookup(host string) (smtpclient.TLSPolicy, *x509.CertPool, bool) {
	if pool, ok := h.verify[host]; ok {
		return smtpclient.TLSVerify, pool, true
	}
	if h.none[host] || h.exhaustive {
		return smtpclient.TLSNone, nil, true
	}
	return 0, nil, false
}
