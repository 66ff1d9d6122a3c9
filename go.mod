module github.com/qmailkit/qmailkit

go 1.26

require (
	github.com/emersion/go-message v0.18.2
	github.com/emersion/go-sasl v0.0.0-20241020182733-b788ff22d5a6
	github.com/miekg/dns v1.1.73
	github.com/pires/go-proxyproto v0.15.0
	golang.org/x/sys v0.47.0
)

require golang.org/x/net v0.57.0 // indirect
