package queue

import (
	"sync"

	"github.com/qmailkit/qmailkit/internal/durable"
)

// dirSync shares the fsyncs of one queue directory between concurrent
// injections (and the inode pool's flushes): a durable.GroupSync over
// durable.SyncDir(dir).
type dirSync struct {
	dir    string
	syncFn func(dir string) error // nil means durable.SyncDir; tests replace it

	once sync.Once
	g    durable.GroupSync
}

// sync returns when the change the caller made to the directory before
// calling it is durable.
func (d *dirSync) sync() error {
	d.once.Do(func() {
		fn := d.syncFn
		if fn == nil {
			fn = durable.SyncDir
		}
		d.g.Fn = func() error { return fn(d.dir) }
	})
	return d.g.Sync()
}

func (d *dirSync) count() uint64 { return d.g.Count() }
