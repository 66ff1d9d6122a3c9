module github.com/qmailkit/qmailkit

go 1.26
