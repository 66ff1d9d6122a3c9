package pop3

import (
	"net"
	"os"
	"syscall"
	"time"
)

// StdioConn returns the connection of a program run by tcpserver (or
// inetd): it reads from in (fd 0) and writes to out (fd 1), with working
// deadlines, so a [Server] can serve it with [Server.ServeConn] or
// [Server.ServeMailbox]. The descriptors are put in non-blocking mode;
// a [Checkpassword] handoff gives them to its child in blocking mode
// again. Close closes both.
func StdioConn(in, out *os.File) net.Conn {
	return &stdioConn{in: pollable(in), out: pollable(out)}
}

// pollable returns a new *os.File for f's descriptor registered with the
// runtime's poller, which deadlines need.
func pollable(f *os.File) *os.File {
	if f.SetReadDeadline(time.Time{}) == nil {
		return f
	}
	fd := int(f.Fd())
	if err := syscall.SetNonblock(fd, true); err != nil {
		return f
	}
	return os.NewFile(uintptr(fd), f.Name())
}

type stdioConn struct{ in, out *os.File }

type stdioAddr string

func (a stdioAddr) Network() string { return "stdio" }
func (a stdioAddr) String() string  { return string(a) }

func (c *stdioConn) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *stdioConn) Write(p []byte) (int, error) { return c.out.Write(p) }
func (c *stdioConn) Close() error {
	err := c.in.Close()
	if c.out != c.in {
		if e := c.out.Close(); err == nil {
			err = e
		}
	}
	return err
}
func (c *stdioConn) LocalAddr() net.Addr                { return stdioAddr("stdin") }
func (c *stdioConn) RemoteAddr() net.Addr               { return stdioAddr("stdout") }
func (c *stdioConn) SetReadDeadline(t time.Time) error  { return c.in.SetReadDeadline(t) }
func (c *stdioConn) SetWriteDeadline(t time.Time) error { return c.out.SetWriteDeadline(t) }
func (c *stdioConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}
