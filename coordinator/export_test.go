package coordinator

import (
	"net"
	"net/http"

	"cleanroom.dev/cleanroom/coordinator/internal/eventlog"
	"cleanroom.dev/cleanroom/coordinator/internal/state"
	"cleanroom.dev/cleanroom/coordinator/internal/tee"
)

// SetFaultHook installs the fault hook for tests (see faults.go).
func SetFaultHook(f func(point string)) { faultHook = f }

// What the package's own tests reach beyond the API.

func (c *Coordinator) TEE() *tee.Instance    { return c.tee }
func (c *Coordinator) Log() *eventlog.Log    { return c.log }
func (c *Coordinator) State() *state.State   { return c.state }
func (c *Coordinator) Handler() http.Handler { return c.handler() }

// Apply is ServerLimits' apply.
func (l ServerLimits) Apply(srv *http.Server, ln net.Listener) net.Listener { return l.apply(srv, ln) }

// LimitListener holds at most n connections, from any one address too.
func LimitListener(l net.Listener, n int) net.Listener { return limitListenerPerHost(l, n, n) }
