package sqlstore_test

import (
	"path/filepath"
	"testing"

	"github.com/qmailkit/qmailkit/vmail"
	"github.com/qmailkit/qmailkit/vmail/sqlstore"
	"github.com/qmailkit/qmailkit/vmail/storetest"
)

var _ vmail.Store = (*sqlstore.Store)(nil)

func openSQLite(t *testing.T) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.OpenSQLite(filepath.Join(t.TempDir(), "vmail.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) vmail.Store { return openSQLite(t) })
}
