package control

// DefaultHome is qmail's conf-qmail: the home when neither a -home flag nor
// $QMAILHOME names one.
const DefaultHome = "/var/qmail"

// Home is the qmail home every program uses: the -home flag's value when
// set, else $QMAILHOME (read through getenv), else [DefaultHome].
func Home(flag string, getenv func(string) string) string {
	if flag != "" {
		return flag
	}
	if h := getenv("QMAILHOME"); h != "" {
		return h
	}
	return DefaultHome
}
