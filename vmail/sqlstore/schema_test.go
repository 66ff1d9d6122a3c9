package sqlstore

import "testing"

func TestSchemaVersion(t *testing.T) {
	if SchemaVersion != len(migrations) {
		t.Fatalf("SchemaVersion %d, but %d migrations", SchemaVersion, len(migrations))
	}
	s := &Store{postgres: true}
	if got := s.rebind("a = ? AND b > ? LIMIT ?"); got != "a = $1 AND b > $2 LIMIT $3" {
		t.Errorf("rebind = %q", got)
	}
	if got := s.dialect("x {T} NOT NULL"); got != `x TEXT COLLATE "C" NOT NULL` {
		t.Errorf("dialect = %q", got)
	}
}
