package atls

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/attest/simulated"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/canon"
)

// Two simulated platforms shared by the tests (each costs two RSA key
// generations).
var platforms = sync.OnceValues(func() ([2]*simulated.Platform, error) {
	var ps [2]*simulated.Platform
	for i := range ps {
		p, err := simulated.New()
		if err != nil {
			return ps, err
		}
		ps[i] = p
	}
	return ps, nil
})

func twoPlatforms(t *testing.T) (*simulated.Platform, *simulated.Platform) {
	t.Helper()
	ps, err := platforms()
	if err != nil {
		t.Fatal(err)
	}
	return ps[0], ps[1]
}

func newIdentity(t *testing.T) *cleanroom.Identity {
	t.Helper()
	id, err := cleanroom.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

var measurement = [48]byte{0xc1, 0xea, 0x17}

// evidenceFor returns simulated evidence binding key.
func evidenceFor(t *testing.T, p *simulated.Platform, key *cleanroom.PublicKey) attest.Evidence {
	t.Helper()
	rd, err := attest.ReportData([]*cleanroom.PublicKey{key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := p.Attest(simulated.Request{Measurement: measurement, ReportData: rd})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func policyFor(p *simulated.Platform, m [48]byte) *contracts.CoordinatorPolicy {
	root := p.RootSHA256()
	return &contracts.CoordinatorPolicy{Platform: contracts.PlatformSEVSNPSimulated, Measurements: [][48]byte{m}, SimulatedRootSHA256: &root}
}

// server is a TLS server on 127.0.0.1 that reports each handshake's result
// and answers "hello <client key>" on success.
type server struct {
	addr    string
	results chan error
}

func startServer(t *testing.T, cfg *tls.Config) *server {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &server{addr: ln.Addr().String(), results: make(chan error, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c *tls.Conn) {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				err := c.Handshake()
				s.results <- err
				if err == nil {
					cs := c.ConnectionState()
					fmt.Fprintf(c, "hello %x\n", []byte(PeerKey(&cs)))
				}
			}(c.(*tls.Conn))
		}
	}()
	return s
}

func (s *server) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.results:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no handshake on the server")
		return nil
	}
}

// dial connects and reads the greeting; it returns the first error.
func dial(addr string, cfg *tls.Config) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func wantError(t *testing.T, err error, kind error, says ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	if kind != nil && !errors.Is(err, kind) {
		t.Errorf("error %v does not wrap %v", err, kind)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

func testContract(ids map[string]*cleanroom.Identity) *contracts.Contract {
	c := &contracts.Contract{Version: 1, Name: "atls-test"}
	for name, id := range ids {
		c.Participants = append(c.Participants, contracts.Participant{ID: name, Roles: []contracts.Role{contracts.RoleDataProvider}, PublicKey: id.Public()})
	}
	return c
}

func TestAttestedHandshake(t *testing.T) {
	p1, _ := twoPlatforms(t)
	coord := newIdentity(t)
	alice := newIdentity(t)
	ct := testContract(map[string]*cleanroom.Identity{"alice": alice})
	var seen []ed25519.PublicKey
	var mu sync.Mutex
	scfg, err := NewServerConfig(ServerOptions{
		Identity: coord,
		Evidence: evidenceFor(t, p1, coord.Public()),
		AuthorizeClient: func(k ed25519.PublicKey) error {
			mu.Lock()
			seen = append(seen, k)
			mu.Unlock()
			return AuthorizeParticipants(func() []*contracts.Contract { return []*contracts.Contract{ct} }, true)(k)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, scfg)

	var got *Coordinator
	ccfg, err := NewClientConfig(ClientOptions{Policy: policyFor(p1, measurement), Identity: alice, OnVerified: func(c *Coordinator) { got = c }})
	if err != nil {
		t.Fatal(err)
	}
	line, err := dial(srv.addr, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.result(t); err != nil {
		t.Fatal(err)
	}
	if line != "hello "+hex.EncodeToString(alice.Public().SigningKey()) {
		t.Fatalf("server saw %q", line)
	}
	if got == nil || !got.PublicKey.Equal(coord.Public()) || !got.PolicyChecked || got.Claims.Measurement != measurement {
		t.Fatalf("verified coordinator %+v", got)
	}
	if p := ParticipantOf(ct, seen[0]); p == nil || p.ID != "alice" {
		t.Fatalf("the server cannot map the client key to alice")
	}

	// Anonymous clients are let through when the hook allows them.
	anon, err := NewClientConfig(ClientOptions{Policy: policyFor(p1, measurement)})
	if err != nil {
		t.Fatal(err)
	}
	if line, err := dial(srv.addr, anon); err != nil || line != "hello" {
		t.Fatalf("anonymous: %q %v", line, err)
	}
	srv.result(t)
}

func TestClientRefusesCoordinator(t *testing.T) {
	p1, p2 := twoPlatforms(t)
	coord := newIdentity(t)
	other := newIdentity(t)

	good := evidenceFor(t, p1, coord.Public())
	tests := []struct {
		name   string
		cert   func() tls.Certificate
		policy *contracts.CoordinatorPolicy
		kind   error
		says   []string
	}{
		{
			name:   "measurement not in the contract",
			cert:   func() tls.Certificate { c, _ := CoordinatorCertificate(coord, good); return c },
			policy: policyFor(p1, [48]byte{0xee}),
			kind:   attest.ErrRefused,
			says: []string{"coordinator refused: measurement check failed: measurement " + hex.EncodeToString(measurement[:]) +
				" is not in the contract's list [ee"},
		},
		{
			name: "evidence binds another key",
			cert: func() tls.Certificate {
				c, _ := CoordinatorCertificate(coord, evidenceFor(t, p1, other.Public()))
				return c
			},
			policy: policyFor(p1, measurement),
			kind:   attest.ErrRefused,
			says:   []string{"report data check failed", "does not bind the coordinator key " + coord.Public().Fingerprint().Short()},
		},
		{
			name: "certificate key is not the attested key",
			cert: func() tls.Certificate {
				value, err := marshalExtension(coord.Public(), good)
				if err != nil {
					t.Fatal(err)
				}
				c, err := selfSigned(other, "impostor", []pkix.Extension{{Id: OIDAttestation, Value: value}}, x509.ExtKeyUsageServerAuth)
				if err != nil {
					t.Fatal(err)
				}
				return c
			},
			policy: policyFor(p1, measurement),
			kind:   attest.ErrNotGenuine,
			says:   []string{"key binding check failed", "is not the Ed25519 part of the attested coordinator key " + coord.Public().Fingerprint().Short()},
		},
		{
			name:   "root not pinned",
			cert:   func() tls.Certificate { c, _ := CoordinatorCertificate(coord, good); return c },
			policy: policyFor(p2, measurement),
			kind:   attest.ErrNotGenuine,
			says:   []string{"simulated root check failed", "the contract pins"},
		},
		{
			name: "no attestation",
			cert: func() tls.Certificate {
				c, err := selfSigned(coord, "plain", nil, x509.ExtKeyUsageServerAuth)
				if err != nil {
					t.Fatal(err)
				}
				return c
			},
			policy: policyFor(p1, measurement),
			kind:   attest.ErrNotGenuine,
			says:   []string{"carries no attestation extension"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{tc.cert()}})
			ccfg, err := NewClientConfig(ClientOptions{Policy: tc.policy, Identity: newIdentity(t)})
			if err != nil {
				t.Fatal(err)
			}
			_, err = dial(srv.addr, ccfg)
			wantError(t, err, tc.kind, tc.says...)
			srv.result(t)
		})
	}

	// A contract naming a simulated coordinator without pinning its root
	// cannot verify anything: refused before any connection.
	_, err := NewClientConfig(ClientOptions{Policy: &contracts.CoordinatorPolicy{Platform: contracts.PlatformSEVSNPSimulated, Measurements: [][48]byte{measurement}}})
	wantError(t, err, nil, "needs the simulated root's SHA-256 pinned")
	// Real SEV-SNP required, simulated coordinator offered.
	srv := startServer(t, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{func() tls.Certificate { c, _ := CoordinatorCertificate(coord, good); return c }()}})
	ccfg, err := NewClientConfig(ClientOptions{Policy: &contracts.CoordinatorPolicy{Platform: contracts.PlatformSEVSNP, Measurements: [][48]byte{measurement}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = dial(srv.addr, ccfg)
	wantError(t, err, attest.ErrNotGenuine, `platform check failed: the evidence comes from platform "sev-snp-simulated"; the contract requires "sev-snp"`)
}

func TestServerRefusesStrangers(t *testing.T) {
	p1, _ := twoPlatforms(t)
	coord := newIdentity(t)
	alice, stranger := newIdentity(t), newIdentity(t)
	ct := testContract(map[string]*cleanroom.Identity{"alice": alice})
	scfg, err := NewServerConfig(ServerOptions{
		Identity:        coord,
		Evidence:        evidenceFor(t, p1, coord.Public()),
		AuthorizeClient: AuthorizeParticipants(func() []*contracts.Contract { return []*contracts.Contract{ct} }, false),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, scfg)
	for _, tc := range []struct {
		name string
		id   *cleanroom.Identity
		says string
	}{
		{"stranger", stranger, fmt.Sprintf("not a participant: client key %x… is not the key of any participant", []byte(stranger.Public().SigningKey()[:8]))},
		{"anonymous", nil, "not a participant: the client presented no key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ccfg, err := NewClientConfig(ClientOptions{Policy: policyFor(p1, measurement), Identity: tc.id})
			if err != nil {
				t.Fatal(err)
			}
			_, err = dial(srv.addr, ccfg)
			// TLS 1.3 clients learn of the refusal from the server's alert.
			wantError(t, err, nil, "bad certificate")
			wantError(t, srv.result(t), ErrNotParticipant, tc.says)
		})
	}
	// alice gets in.
	ccfg, _ := NewClientConfig(ClientOptions{Policy: policyFor(p1, measurement), Identity: alice})
	if _, err := dial(srv.addr, ccfg); err != nil {
		t.Fatal(err)
	}
	if err := srv.result(t); err != nil {
		t.Fatal(err)
	}
}

func TestServerRefusesBadClientCertificates(t *testing.T) {
	p1, _ := twoPlatforms(t)
	coord := newIdentity(t)
	scfg, err := NewServerConfig(ServerOptions{Identity: coord, Evidence: evidenceFor(t, p1, coord.Public())})
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, scfg)
	// A client certificate signed by another key than its own.
	alice, mallory := newIdentity(t), newIdentity(t)
	aliceCert, err := ParticipantCertificate(alice)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := *aliceCert.Leaf
	der, err := x509.CreateCertificate(randReader{}, &tmpl, aliceCert.Leaf, mallory.Public().SigningKey(), alice.Signer())
	if err != nil {
		t.Fatal(err)
	}
	forged := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: mallory.Signer()}
	ccfg, err := NewClientConfig(ClientOptions{Policy: policyFor(p1, measurement)})
	if err != nil {
		t.Fatal(err)
	}
	ccfg.Certificates = []tls.Certificate{forged}
	_, err = dial(srv.addr, ccfg)
	wantError(t, err, nil)
	wantError(t, srv.result(t), ErrUnauthenticated, "not self-signed by its key")
}

type randReader struct{}

func (randReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(i)
	}
	return len(b), nil
}

func TestAuthenticityOnly(t *testing.T) {
	p1, p2 := twoPlatforms(t)
	coord := newIdentity(t)
	cert, err := CoordinatorCertificate(coord, evidenceFor(t, p1, coord.Public()))
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}})

	root := p1.RootSHA256()
	var got *Coordinator
	ccfg, err := NewClientConfig(ClientOptions{InsecureSkipPolicy: true, SimulatedRootSHA256: &root, OnVerified: func(c *Coordinator) { got = c }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(srv.addr, ccfg); err != nil {
		t.Fatal(err)
	}
	srv.result(t)
	if got == nil || got.PolicyChecked || got.Claims.Measurement != measurement || !got.PublicKey.Equal(coord.Public()) {
		t.Fatalf("authenticity-only result %+v", got)
	}

	// No pin, or another pin: a simulated coordinator is not genuine.
	for _, pin := range []*[32]byte{nil, func() *[32]byte { r := p2.RootSHA256(); return &r }()} {
		ccfg, err := NewClientConfig(ClientOptions{InsecureSkipPolicy: true, SimulatedRootSHA256: pin})
		if err != nil {
			t.Fatal(err)
		}
		_, err = dial(srv.addr, ccfg)
		wantError(t, err, attest.ErrNotGenuine)
		srv.result(t)
	}

	if _, err := NewClientConfig(ClientOptions{}); err == nil {
		t.Error("neither policy nor InsecureSkipPolicy accepted")
	}
	if _, err := NewClientConfig(ClientOptions{Policy: policyFor(p1, measurement), InsecureSkipPolicy: true}); err == nil {
		t.Error("both policy and InsecureSkipPolicy accepted")
	}
}

func TestHTTP(t *testing.T) {
	p1, _ := twoPlatforms(t)
	coord := newIdentity(t)
	alice := newIdentity(t)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %x", r.Proto, []byte(RequestKey(r)))
	})
	srv, err := NewHTTPServer("127.0.0.1:0", handler, ServerOptions{Identity: coord, Evidence: evidenceFor(t, p1, coord.Public())})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.ErrorLog = log.New(io.Discard, "", 0)
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	url := "https://" + ln.Addr().String() + "/"

	for _, id := range []*cleanroom.Identity{alice, nil} {
		client, err := NewHTTPClient(ClientOptions{Policy: policyFor(p1, measurement), Identity: id})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := "HTTP/2.0 "
		if id != nil {
			want += hex.EncodeToString(id.Public().SigningKey())
		}
		if string(body) != want {
			t.Errorf("response %q, want %q", body, want)
		}
	}

	// A client with another contract's measurement cannot even send.
	client, err := NewHTTPClient(ClientOptions{Policy: policyFor(p1, [48]byte{1})})
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Get(url)
	wantError(t, err, attest.ErrRefused, "measurement check failed")
}

func TestExtensionRoundTrip(t *testing.T) {
	p1, _ := twoPlatforms(t)
	coord := newIdentity(t)
	ev := evidenceFor(t, p1, coord.Public())
	value, err := marshalExtension(coord.Public(), ev)
	if err != nil {
		t.Fatal(err)
	}
	key, back, err := ParseExtension(value)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := ev.MarshalBinary()
	b, _ := back.MarshalBinary()
	if !key.Equal(coord.Public()) || !bytes.Equal(a, b) {
		t.Fatal("extension does not round-trip")
	}
	for name, bad := range map[string][]byte{
		"empty":     nil,
		"truncated": value[:len(value)-1],
		"trailing":  append(bytes.Clone(value), 0),
		"not cmw":   {0xa0},
	} {
		if _, _, err := ParseExtension(bad); !errors.Is(err, attest.ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	other, _ := canon.Marshal(cmwRecord{Type: "application/other", Value: []byte{0xa0}})
	if _, _, err := ParseExtension(other); err == nil || !strings.Contains(err.Error(), "media type") {
		t.Errorf("other media type: %v", err)
	}
}
