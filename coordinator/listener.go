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
	// MaxConnectionsPerHost is the most of them one client address may
	// hold; a further connection from it is closed at once, so one client
	// cannot take every slot. Default a quarter of MaxConnections.
	MaxConnectionsPerHost int
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
	if l.MaxConnectionsPerHost <= 0 {
		l.MaxConnectionsPerHost = max(l.MaxConnections/4, 1)
	}
	return l
}

// apply sets the timeouts on srv and returns ln wrapped by a listener that
// holds these limits: serve srv on the returned listener.
func (l ServerLimits) apply(srv *http.Server, ln net.Listener) net.Listener {
	l = l.withDefaults()
	srv.ReadHeaderTimeout = l.ReadHeaderTimeout
	srv.IdleTimeout = l.IdleTimeout
	return limitListenerPerHost(ln, l.MaxConnections, l.MaxConnectionsPerHost)
}

// limitListenerPerHost returns a listener that holds at most n connections
// open at once; further connections wait in the kernel's backlog until one
// closes. It bounds the memory and file descriptors clients can take.
// It also closes, at once, a connection from an address already holding
// perHost connections. Closing the listener ends an Accept waiting for a
// free slot.
func limitListenerPerHost(l net.Listener, n, perHost int) net.Listener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{}),
		perHost: perHost, hosts: map[string]int{}}
}

type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	mu      sync.Mutex
	perHost int
	hosts   map[string]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
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
		host := remoteHost(c)
		l.mu.Lock()
		if l.hosts[host] >= l.perHost {
			l.mu.Unlock()
			c.Close()
			<-l.sem
			continue
		}
		l.hosts[host]++
		l.mu.Unlock()
		return &limitConn{Conn: c, release: func() {
			l.mu.Lock()
			if l.hosts[host]--; l.hosts[host] == 0 {
				delete(l.hosts, host)
			}
			l.mu.Unlock()
			<-l.sem
		}}, nil
	}
}

func remoteHost(c net.Conn) string {
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
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
