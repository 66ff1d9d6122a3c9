// Package moduletest holds tests written as a program in another module
// would use qmailkit: only its public packages, imported through a
// replace directive, with no file of configuration. Its tests run with
// `cd moduletest && go test ./...` (the repository's CI runs them).
package moduletest
