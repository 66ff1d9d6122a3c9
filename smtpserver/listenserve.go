package smtpserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
)

// ListenAndServe listens on the TCP address addr and serves it (see
// [Server.Serve]) until [Server.Shutdown] or [Server.Close], then returns
// ErrServerClosed; it closes the listener before it returns. An empty addr
// means ":25".
func (srv *Server) ListenAndServe(addr string) error {
	if addr == "" {
		addr = ":25"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("smtpserver: %w", err)
	}
	defer l.Close()
	return srv.Serve(l)
}

// ListenAndServeTLS listens on the TCP address addr and serves implicit
// TLS (RFC 8314: each connection is TLS from its first byte, as on the
// submissions port): the session is under TLS from the greeting, so
// STARTTLS is not offered and AUTH is. An empty addr means ":465".
//
// certFile and keyFile name a PEM certificate chain and its key, read
// now (an error is returned at once if they cannot be) and re-read when
// they change ([CertReloader]). With both empty, the certificates of
// TLSConfig are used. TLSConfig, when set, is the base of the listener's
// configuration (it is cloned, not changed).
func (srv *Server) ListenAndServeTLS(addr, certFile, keyFile string) error {
	if addr == "" {
		addr = ":465"
	}
	var cfg *tls.Config
	if srv.TLSConfig != nil {
		cfg = srv.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	switch {
	case certFile != "" || keyFile != "":
		cr := &CertReloader{CertFile: certFile, KeyFile: keyFile}
		if _, err := cr.GetCertificate(nil); err != nil {
			return fmt.Errorf("smtpserver: %w", err)
		}
		cfg.Certificates, cfg.GetCertificate = nil, cr.GetCertificate
	case len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil:
		return errors.New("smtpserver: ListenAndServeTLS: no certificate (certFile and keyFile empty, none in TLSConfig)")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("smtpserver: %w", err)
	}
	defer l.Close()
	return srv.Serve(tls.NewListener(l, cfg))
}
