package control

// MoreRcptHostsKey turns one line of control/morercpthosts (with or
// without its LF) into the key qmail-newmrh stores for it in
// morercpthosts.cdb, with an empty value: the whole line lower-cased
// (ASCII A-Z only) first, then trailing spaces, tabs and LFs removed. ok
// is false for a line that is then empty or starts with '#'. Leading
// blanks and a CR are kept, as qmail-newmrh keeps them: a CRLF file gives
// keys ending in CR, which no lookup matches. The key is a new slice.
func MoreRcptHostsKey(line []byte) (key []byte, ok bool) {
	n := len(line)
	for n > 0 && (line[n-1] == ' ' || line[n-1] == '\t' || line[n-1] == '\n') {
		n--
	}
	if n == 0 || line[0] == '#' {
		return nil, false
	}
	key = make([]byte, n)
	for i, c := range line[:n] {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		key[i] = c
	}
	return key, true
}
