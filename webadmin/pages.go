package webadmin

import (
	"fmt"
	"html/template"
	"net/url"
	"strings"
	"time"

	"github.com/qmailkit/qmailkit/vmail"
)

// pageData is what a page's template is given; each page uses its part.
type pageData struct {
	Title   string
	Message string // the error page's text, or the login page's
	Flash   string // what the last POST did
	CSRF    string
	Who     *identity
	// HasQueue shows the queue page's link.
	HasQueue bool
	// Forms are the page's forms by name: their values and errors.
	Forms map[string]*Form

	Domains   []vmail.Domain
	Domain    *vmail.Domain
	Mailboxes []vmail.Mailbox
	Next      string // the next page of mailboxes starts after this name
	Aliases   []vmail.Alias
	Mailbox   *vmail.Mailbox
	// Base is the path the mailbox forms post under: /me or the
	// mailbox's page.
	Base string
	// Self tells a mailbox page that it is the session's own mailbox.
	Self bool
	// Editable are the flags the session may change on the mailbox.
	Editable vmail.Flags
	Status   *QueueStatus
	States   []stateCount
}

// Invalid reports whether a form of the page has an error, for the
// notice at the top of the page (the messages are next to the fields).
func (d *pageData) Invalid() bool {
	for _, f := range d.Forms {
		if f != nil && !f.OK() {
			return true
		}
	}
	return false
}

// stateCount is a row of the queue page.
type stateCount struct {
	State string
	Count int
}

// flagNames are the flags the pages show, by the names the forms use.
var flagNames = []struct {
	Name string
	Flag vmail.Flags
	Text string
}{
	{"domainadmin", vmail.DomainAdmin, "Domain administrator"},
	{"nopasswordchange", vmail.NoPasswordChange, "May not change the password"},
	{"nopop", vmail.NoPOP, "No POP3"},
	{"noimap", vmail.NoIMAP, "No IMAP"},
	{"nosmtp", vmail.NoSMTP, "No SMTP AUTH"},
	{"norelay", vmail.NoRelay, "No relaying after POP3"},
	{"nowebmail", vmail.NoWebmail, "No webmail"},
	{"bouncemail", vmail.BounceMail, "Bounce all mail (locked)"},
	{"override", vmail.Override, "The domain's disabled services do not apply"},
	{"systemadmin", vmail.SystemAdmin, "System administrator"},
}

// flagByName returns a flag by its form name.
func flagByName(name string) vmail.Flags {
	for _, f := range flagNames {
		if f.Name == name {
			return f.Flag
		}
	}
	return 0
}

func domainURL(d string) string { return "/d/" + url.PathEscape(d) + "/" }

func mailboxURL(d, name string) string {
	return "/d/" + url.PathEscape(d) + "/m/" + url.PathEscape(name)
}

var funcs = template.FuncMap{
	"quota":      formatQuota,
	"domainURL":  domainURL,
	"mailboxURL": mailboxURL,
	"join":       strings.Join,
	"date": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.DateOnly)
	},
	"datetime": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"has":   func(f vmail.Flags, name string) bool { return f&flagByName(name) != 0 },
	"flags": func() any { return flagNames },
	// args makes a map for a template called with several values.
	"args": func(kv ...any) (map[string]any, error) {
		if len(kv)%2 != 0 {
			return nil, fmt.Errorf("args: odd count")
		}
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			k, ok := kv[i].(string)
			if !ok {
				return nil, fmt.Errorf("args: key %v", kv[i])
			}
			m[k] = kv[i+1]
		}
		return m, nil
	},
}

// pageNames are the templates/NAME.html pages, each parsed with the
// layout and the forms they share.
var pageNames = []string{"login", "error", "domains", "domain", "mailbox", "queue"}

func parseTemplates() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(files,
			"templates/layout.html", "templates/forms.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("webadmin: templates: %w", err)
		}
		pages[name] = t
	}
	return pages, nil
}
