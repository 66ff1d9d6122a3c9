package mta

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/qmailkit/qmailkit/assign"
	"github.com/qmailkit/qmailkit/internal/durable"
	"github.com/qmailkit/qmailkit/maildir"
	"github.com/qmailkit/qmailkit/pop3"
	"github.com/qmailkit/qmailkit/tcprules"
)

// Demo describes the demo mailbox of a home made by Init.
type Demo struct {
	Domain   string
	User     string
	Password string // "" when users/poppasswd no longer holds it in clear
	Maildir  string
}

// Address is the demo mailbox's address.
func (d Demo) Address() string { return d.User + "@" + d.Domain }

// InitOptions choose what Init puts in a new home.
type InitOptions struct {
	// Domain is the local domain (control/me, locals, rcpthosts); empty
	// means "localhost".
	Domain string
	// User is the demo mailbox's name; empty means "demo".
	User string
	// Password is its password; empty means a random one.
	Password string
	// UID and GID own the new home and receive the demo mailbox's mail
	// when Init runs as root (which may not give them to uid 0); otherwise
	// the process's own ids are used and these are ignored.
	UID, GID int
}

// Init makes home a working mail system's home if it does not exist (or is
// an empty directory) and reports the demo mailbox; on a home that has
// control/me it changes nothing and reads the demo mailbox back; any other
// existing directory is an error, left alone. The home is built beside its
// place and renamed into it, so it is whole or absent. A new home has:
// control/me, locals and rcpthosts naming the domain (for a domain without
// a dot, such as localhost, also DOMAIN.localdomain, with
// control/defaultdomain "localdomain": the host qmail-inject and sendmail
// give a bare local name); users/assign and
// users/cdb giving the demo user its address, its extensions (user-ext) and
// a catch-all alias user whose .qmail-postmaster, -root and -mailer-daemon
// forward to the demo user; users/poppasswd with the demo user's password;
// control/tcp.smtp(.cdb) letting 127.0.0.1 relay; control/servercert.pem, a
// self-signed certificate for the domain, 127.0.0.1 and ::1. Everything
// belongs to the process's user, or as root to UID and GID but for users/:
// users/, users/assign and users/cdb then belong to root (mode 755 and
// 644), as qmail-newu run by root leaves them, because a root delivery
// helper trusts users/cdb to say under which uid mail is delivered, and
// users/poppasswd to root with group GID, mode 640, so that the account
// reads it for POP3 and SMTP AUTH; and control/ and its files belong to
// root (755 and 644), so that the account cannot rewrite them (rcpthosts
// and tcp.smtp decide who may relay), but for servercert.pem, root's with
// group GID, mode 640: the account reads the key, no one else; and the
// home directory itself belongs to root, so that the account cannot
// rename control/ or users/ away and make its own in their place. What
// the account writes as the mail system runs is its own: queue/ (mode
// 750), mail/, alias/ and run/ (where examples/mta puts its qmail-queue
// socket). The home is mode 755, as /var/qmail
// is, so that deliveries running under other uids can reach it
// (examples/mta's forwards); what is secret in it (users/poppasswd,
// servercert.pem) is mode 600 (but as said as root).
func Init(home string, o InitOptions) (Demo, bool, error) {
	if o.Domain == "" {
		o.Domain = "localhost"
	}
	if o.User == "" {
		o.User = "demo"
	}
	home, err := filepath.Abs(home)
	if err != nil {
		return Demo{}, false, fmt.Errorf("mta: %w", err)
	}
	if _, err := os.Stat(filepath.Join(home, "control", "me")); err == nil {
		d, err := readDemo(home)
		return d, false, err
	}
	if entries, err := os.ReadDir(home); err == nil && len(entries) > 0 {
		return Demo{}, false, fmt.Errorf("mta: %s is not empty and has no control/me: not a home Init made, left alone", home)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Demo{}, false, fmt.Errorf("mta: %w", err)
	}
	if os.Getuid() != 0 {
		o.UID, o.GID = os.Getuid(), os.Getgid()
	} else if o.UID == 0 {
		return Demo{}, false, errors.New("mta: will not make a home whose mail is delivered as root: give it another account")
	}
	if o.Password == "" {
		o.Password = randomPassword()
	}
	// Built beside the home and renamed into place, so that a crash
	// leaves no half-made home.
	if err := os.MkdirAll(filepath.Dir(home), 0o755); err != nil {
		return Demo{}, false, fmt.Errorf("mta: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(home), "."+filepath.Base(home)+".init-")
	if err != nil {
		return Demo{}, false, fmt.Errorf("mta: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := build(tmp, home, o); err != nil {
		return Demo{}, false, err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return Demo{}, false, fmt.Errorf("mta: %w", err)
	}
	if os.Getuid() == 0 {
		err := filepath.WalkDir(tmp, func(path string, _ fs.DirEntry, err error) error {
			if err == nil {
				err = os.Lchown(path, o.UID, o.GID)
			}
			return err
		})
		if err != nil {
			return Demo{}, false, fmt.Errorf("mta: %w", err)
		}
		if err := rootUsers(tmp, o.GID); err != nil {
			return Demo{}, false, err
		}
		if err := rootControl(tmp, o.GID); err != nil {
			return Demo{}, false, err
		}
		// The home itself is root's: an account owning it could rename
		// control/ or users/ away and put its own in their place.
		if err := os.Lchown(tmp, 0, 0); err != nil {
			return Demo{}, false, fmt.Errorf("mta: %w", err)
		}
	}
	os.Remove(home) // an empty directory, if any
	if err := durable.Rename(tmp, home); err != nil {
		return Demo{}, false, fmt.Errorf("mta: %w", err)
	}
	return Demo{Domain: o.Domain, User: o.User, Password: o.Password, Maildir: filepath.Join(home, "mail", o.User, "Maildir")}, true, nil
}

// build makes in dir the files of a new home whose final path is home.
func build(dir, home string, o InitOptions) error {
	uid, gid := o.UID, o.GID
	userHome := filepath.Join(home, "mail", o.User)
	hashed, err := pop3.HashPassword(o.Password)
	if err != nil {
		return fmt.Errorf("mta: %w", err)
	}
	alias := filepath.Join(home, "alias")
	for _, d := range []string{"control", "users", "mail", "mail/" + o.User, "alias", "run", "queue"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("mta: %w", err)
		}
	}
	// The queue's own modes (queue.Open makes what is inside).
	if err := os.Chmod(filepath.Join(dir, "queue"), 0o750); err != nil {
		return fmt.Errorf("mta: %w", err)
	}
	if err := os.Chmod(filepath.Join(dir, "mail", o.User), 0o700); err != nil {
		return fmt.Errorf("mta: %w", err)
	}
	if _, err := maildir.Create(filepath.Join(dir, "mail", o.User, "Maildir")); err != nil {
		return fmt.Errorf("mta: %w", err)
	}
	// qmail-inject and sendmail complete a host without a dot with
	// control/defaultdomain (else me): with a dotless domain such as
	// localhost, "To: demo" becomes demo@localhost.localdomain, which must
	// be local too (and localdomain is what such hosts conventionally
	// get, as in /etc/hosts).
	hosts := o.Domain + "\n"
	if !strings.Contains(o.Domain, ".") && !strings.HasPrefix(o.Domain, "[") {
		hosts += o.Domain + ".localdomain\n"
		if err := os.WriteFile(filepath.Join(dir, "control", "defaultdomain"), []byte("localdomain\n"), 0o644); err != nil {
			return fmt.Errorf("mta: %w", err)
		}
	}
	files := []struct {
		name, data string
		mode       os.FileMode
	}{
		{"control/locals", hosts, 0o644},
		{"control/rcpthosts", hosts, 0o644},
		{"control/tcp.smtp", "127.:allow,RELAYCLIENT=\"\"\n:allow\n", 0o644},
		{"users/assign", fmt.Sprintf("=%[1]s:%[1]s:%[2]d:%[3]d:%[4]s:::\n+%[1]s-:%[1]s:%[2]d:%[3]d:%[4]s:-::\n+:alias:%[2]d:%[3]d:%[5]s:-::\n.\n",
			o.User, uid, gid, userHome, alias), 0o644},
		{"users/poppasswd", fmt.Sprintf("%s:%s:%d:%d:demo mailbox:%s:/bin/false\n", o.User, hashed, uid, gid, userHome), 0o600},
		{"alias/.qmail-postmaster", o.User + "\n", 0o644},
		{"alias/.qmail-root", o.User + "\n", 0o644},
		{"alias/.qmail-mailer-daemon", o.User + "\n", 0o644},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.data), f.mode); err != nil {
			return fmt.Errorf("mta: %w", err)
		}
	}
	if err := assign.CompileFile(filepath.Join(dir, "users", "assign"), filepath.Join(dir, "users", "cdb")); err != nil {
		return fmt.Errorf("mta: %w", err)
	}
	rules, err := os.Open(filepath.Join(dir, "control", "tcp.smtp"))
	if err != nil {
		return fmt.Errorf("mta: %w", err)
	}
	defer rules.Close()
	cdbPath := filepath.Join(dir, "control", "tcp.smtp.cdb")
	if err := tcprules.CompileFile(cdbPath, cdbPath+".tmp", rules); err != nil {
		return fmt.Errorf("mta: %w", err)
	}
	if err := writeCert(filepath.Join(dir, "control", "servercert.pem"), o.Domain); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "control", "me"), []byte(o.Domain+"\n"), 0o644); err != nil {
		return fmt.Errorf("mta: %w", err)
	}
	return nil
}

// rootUsers gives users/ to root, as qmail-newu, run by root, leaves it:
// a root delivery helper believes users/cdb (which uid receives which
// address), so the account must not be able to write it. users/poppasswd
// stays readable by the account's group gid, for POP3 and SMTP AUTH.
func rootUsers(dir string, gid int) error {
	for _, f := range []struct {
		name string
		gid  int
		mode os.FileMode
	}{
		{"users", 0, 0o755},
		{"users/assign", 0, 0o644},
		{"users/cdb", 0, 0o644},
		{"users/poppasswd", gid, 0o640},
	} {
		p := filepath.Join(dir, f.name)
		if err := os.Lchown(p, 0, f.gid); err != nil {
			return fmt.Errorf("mta: %w", err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return fmt.Errorf("mta: %w", err)
		}
	}
	return nil
}

// rootControl gives control/ to root, so that the account cannot rewrite
// what decides who may relay, nor replace the key: the directory mode 755,
// its files 644, but for servercert.pem, which holds the private key:
// root with group gid, mode 640, so that the account reads it and no one
// else does. The mta writes nothing in control/ as it runs.
func rootControl(dir string, gid int) error {
	ctl := filepath.Join(dir, "control")
	return filepath.WalkDir(ctl, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		g, mode := 0, os.FileMode(0o644)
		switch {
		case d.IsDir():
			mode = 0o755
		case path == filepath.Join(ctl, "servercert.pem"):
			g, mode = gid, 0o640
		}
		if err := os.Lchown(path, 0, g); err != nil {
			return fmt.Errorf("mta: %w", err)
		}
		if err := os.Chmod(path, mode); err != nil {
			return fmt.Errorf("mta: %w", err)
		}
		return nil
	})
}

// readDemo finds the demo mailbox of a home Init made: the first user of
// users/poppasswd.
func readDemo(home string) (Demo, error) {
	me, err := os.ReadFile(filepath.Join(home, "control", "me"))
	if err != nil {
		return Demo{}, fmt.Errorf("mta: %w", err)
	}
	d := Demo{Domain: strings.TrimSpace(string(me))}
	data, err := os.ReadFile(filepath.Join(home, "users", "poppasswd"))
	if errors.Is(err, fs.ErrNotExist) {
		return d, nil
	}
	if err != nil {
		return d, fmt.Errorf("mta: %w", err)
	}
	for line := range strings.Lines(string(data)) {
		e, err := pop3.ParsePasswdLine(strings.TrimRight(line, "\n"))
		if err != nil {
			continue
		}
		d.User = e.Name
		d.Password, _ = strings.CutPrefix(e.Password, "{PLAIN}")
		if d.Password == e.Password {
			d.Password = ""
		}
		d.Maildir = filepath.Join(e.Home, "Maildir")
		break
	}
	return d, nil
}

func randomPassword() string {
	const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 12)
	for i := range b {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic(err) // crypto/rand does not fail on Linux
		}
		b[i] = alphabet[n.Int64()]
	}
	return string(b)
}

// writeCert writes a self-signed certificate for name, 127.0.0.1 and ::1,
// and its key, to path (mode 0600), as the qmail TLS patch's servercert.pem.
func writeCert(path, name string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("mta: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return fmt.Errorf("mta: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("mta: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("mta: %w", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})...)
	if err := os.WriteFile(path, out, 0o600); err != nil {
		return fmt.Errorf("mta: %w", err)
	}
	return nil
}
