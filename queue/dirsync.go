package queue

import "github.com/qmailkit/qmailkit/internal/durable"

// dirSync shares the fsyncs of one queue directory between concurrent
// injections (and the inode pool's flushes): a durable.GroupSync over the
// queue's syncDir.
type dirSync struct {
	dir string
	g   durable.GroupSync
}

func (q *Queue) newDirSync(dir string) *dirSync {
	d := &dirSync{dir: dir}
	d.g.Fn = func() error { return q.syncDir(dir) }
	return d
}

// sync returns when the change the caller made to the directory before
// calling it is durable.
func (d *dirSync) sync() error { return d.g.Sync() }

func (d *dirSync) count() uint64 { return d.g.Count() }
