package coordinator

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Server limits: the defaults of ServerLimits.
const (
	DefaultMaxConnections    = 256
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
)

// ServerLimits bound what clients can hold of the coordinator's HTTPS
// server: connections, and time spent on the handshake and the request
// headers, or idle between requests. The zero value of each field means its
// default. Slow request bodies (uploads) are bounded by the Config's
// UploadIdleTimeout and UploadGracePeriod.
type ServerLimits struct {
	// MaxConnections is the most connections served at once; more wait in
	// the kernel's backlog until one closes. Default 256.
	MaxConnections int
	// ReadHeaderTimeout bounds the TLS handshake and the reading of a
	// request's headers; a client slower than that is disconnected.
	// Default 10 s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection with no request for that
	// long. Default 120 s.
	IdleTimeout time.Duration
}

func (l ServerLimits) withDefaults() ServerLimits {
	if l.MaxConnections <= 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	return l
}

// Apply sets the timeouts on srv and returns ln wrapped by LimitListener:
// serve srv on the returned listener.
func (l ServerLimits) Apply(srv *http.Server, ln net.Listener) net.Listener {
	l = l.withDefaults()
	srv.ReadHeaderTimeout = l.ReadHeaderTimeout
	srv.IdleTimeout = l.IdleTimeout
	return LimitListener(ln, l.MaxConnections)
}

// LimitListener returns a listener that holds at most n connections open
// at once; further connections wait in the kernel's backlog until one
// closes. It bounds the memory and file descriptors clients can take.
// Closing the listener ends an Accept waiting for a free slot.
func LimitListener(l net.Listener, n int) net.Listener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
