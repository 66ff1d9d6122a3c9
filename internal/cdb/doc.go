// Package cdb reads and writes djb's constant databases, byte-compatible with
// cdbmake, tinycdb's "cdb -c", tcprules and qmail-newu.
//
// # Format
//
// A 2048-byte header of 256 (table offset, slot count) pairs, the records in
// the order they were added (key length, value length, key, value), then 256
// open-addressing hash tables of (hash, record offset) slots. All integers are
// 32-bit little-endian, so no database reaches 4 GiB; the writer returns
// [ErrTooMuchData] rather than wrap. Duplicate keys are kept in insertion
// order, and a lookup meets the first one first: this is what makes "first
// rule wins" in tcprules and "first line wins" in qmail-newu.
//
// # API
//
// The API has the shape of github.com/colinmarc/cdb ([Create], [NewWriter],
// [Writer.Put], [Writer.Close], [Writer.Freeze], [Open], [New], [CDB.Get],
// [CDB.Iter]) so that swapping to it is one import, with these differences:
// [Create] writes a temporary file and renames it into place after fsync, as
// qmail's tools do; an empty slot is one whose record offset is 0 (a key
// whose hash is 0 works); every read is bounds-checked, so a corrupt or
// truncated file gives an error wrapping [ErrCorrupt], never a panic; and
// [CDB.GetAll] returns every value of a key, in order.
//
// [Open] memory-maps the file: lookups then cost no system call and no
// allocation until the value is copied out.
package cdb
