// Package tcprules reads and writes ucspi-tcp's access rules.
package tcprules
