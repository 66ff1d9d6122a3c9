//go:build race

package main

// buildFlags build the program under test with the race detector when the
// test itself runs with it (go test -race), and without it otherwise, so
// that a plain "go test" needs no C toolchain.
var buildFlags = []string{"-race"}
