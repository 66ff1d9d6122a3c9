package inject

// Header field names qmail-inject recognises (hfield.c), in its order.
const (
	hUnknown = iota
	hSender
	hFrom
	hReplyTo
	hTo
	hCc
	hBcc
	hDate
	hMessageID
	hSubject
	hResentSender
	hResentFrom
	hResentReplyTo
	hResentTo
	hResentCc
	hResentBcc
	hResentDate
	hResentMessageID
	hReturnReceiptTo
	hErrorsTo
	hApparentlyTo
	hReceived
	hReturnPath
	hDeliveredTo
	hContentLength
	hContentType
	hContentTransferEncoding
	hNoticeRequestedUponDeliveryTo
	hMailFollowupTo
	hNum
)

var hnames = [hNum]string{
	"", "sender", "from", "reply-to", "to", "cc", "bcc", "date", "message-id", "subject",
	"resent-sender", "resent-from", "resent-reply-to", "resent-to", "resent-cc", "resent-bcc",
	"resent-date", "resent-message-id", "return-receipt-to", "errors-to", "apparently-to",
	"received", "return-path", "delivered-to", "content-length", "content-type",
	"content-transfer-encoding", "notice-requested-upon-delivery-to", "mail-followup-to",
}

// hmatch reports whether field s is named name (lower case): ASCII letters
// match in either case, then optional spaces and tabs, then ":".
func hmatch(s []byte, name string) bool {
	i := 0
	for ; i < len(name); i++ {
		if i >= len(s) {
			return false
		}
		if c := name[i]; c != s[i] && (c == '-' || c-32 != s[i]) {
			return false
		}
	}
	for ; i < len(s); i++ {
		switch s[i] {
		case ':':
			return true
		case ' ', '\t':
		default:
			return false
		}
	}
	return false
}

// known returns the field's type, hUnknown if it is not one of hnames.
func known(s []byte) int {
	for h := 1; h < hNum; h++ {
		if hmatch(s, hnames[h]) {
			return h
		}
	}
	return hUnknown
}

// validField reports whether line starts a header field (hfield_valid): a
// ":" preceded by a name of bytes 33-126, with spaces or tabs allowed
// between the name and the colon.
func validField(s []byte) bool {
	j := 0
	for j < len(s) && s[j] != ':' {
		j++
	}
	if j >= len(s) {
		return false
	}
	for j > 0 && (s[j-1] == ' ' || s[j-1] == '\t') {
		j--
	}
	if j == 0 {
		return false
	}
	for _, c := range s[:j] {
		if c <= 32 || c >= 127 {
			return false
		}
	}
	return true
}
