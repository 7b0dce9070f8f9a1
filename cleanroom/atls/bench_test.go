package atls

import (
	"crypto/tls"
	"net"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/attest/simulated"
)

// BenchmarkHandshake measures one attested TLS 1.3 handshake on loopback
// with mutual authentication: the client verifies the simulated
// coordinator's evidence against the contract, the server checks the
// participant's certificate.
func BenchmarkHandshake(b *testing.B) {
	ps, err := platforms()
	if err != nil {
		b.Fatal(err)
	}
	p1 := ps[0]
	coord, err := cleanroom.GenerateIdentity()
	if err != nil {
		b.Fatal(err)
	}
	alice, err := cleanroom.GenerateIdentity()
	if err != nil {
		b.Fatal(err)
	}
	rd, err := attest.ReportData([]*cleanroom.PublicKey{coord.Public()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ev, err := p1.Attest(simulated.Request{Measurement: measurement, ReportData: rd})
	if err != nil {
		b.Fatal(err)
	}
	scfg, err := NewServerConfig(ServerOptions{Identity: coord, Evidence: ev})
	if err != nil {
		b.Fatal(err)
	}
	ccfg, err := NewClientConfig(ClientOptions{Policy: policyFor(p1, measurement), Identity: alice})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", scfg)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				c.(*tls.Conn).Handshake()
				c.Close()
			}(c)
		}
	}()
	for b.Loop() {
		c, err := tls.Dial("tcp", ln.Addr().String(), ccfg)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
