package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/atls"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/bundle"
	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/cleanroom/upload"
	"cleanroom.dev/cleanroom/connectors"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/internal/bundletest"
)

// lyingCoordinator serves, with the coordinator's own key and evidence (as
// a subverted coordinator would), a proxy in front of the real one that
// forwards every request as participant party and lets edit change each
// response body. It returns the proxy's URL.
func lyingCoordinator(t *testing.T, ex *example, party string, edit func(path string, body []byte) []byte) string {
	t.Helper()
	id, evidence, err := coordinator.InsecureSimulatedIdentity(server().Dir)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := atls.NewHTTPClient(atls.ClientOptions{Policy: &ex.Contract.Coordinator, Identity: ex.Key(party)})
	if err != nil {
		t.Fatal(err)
	}
	target, err := url.Parse(ex.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body) // to its end: the trailer is read then
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		out, err := http.NewRequestWithContext(r.Context(), r.Method, target.String()+r.URL.RequestURI(), io.NopCloser(bytes.NewReader(body)))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		out.Header = r.Header.Clone()
		out.Header.Del("Trailer")
		out.Trailer = r.Trailer.Clone()
		out.ContentLength = -1
		resp, err := hc.Do(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		got = edit(r.URL.Path, got)
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(got)))
		w.WriteHeader(resp.StatusCode)
		w.Write(got)
	})
	srv, err := atls.NewHTTPServer("127.0.0.1:0", proxy, atls.ServerOptions{Identity: id, Evidence: evidence})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String()
}

// TestUploadDatasetChecksReceipt: a coordinator that acknowledges another
// row count than the envelope it received holds is caught by
// UploadDataset, which returns no receipt.
func TestUploadDatasetChecksReceipt(t *testing.T) {
	ex := exampleContract(stageRegistered)
	lying := lyingCoordinator(t, ex, "publisher", func(path string, body []byte) []byte {
		if strings.HasSuffix(path, "/datasets/impressions") {
			return bytes.Replace(body, []byte(`"rows":5`), []byte(`"rows":4`), 1)
		}
		return body
	})
	cl, err := client.New(lying, client.Options{Contract: ex.Contract, Identity: ex.Key("publisher")})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rows, err := connectors.NewReader(strings.NewReader(impressionsCSV), connectors.FormatCSV, ex.Contract.Dataset("impressions").Columns, connectors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Release()
	rec, err := cl.UploadDataset(context.Background(), "impressions", rows, client.UploadOptions{})
	if err == nil || rec != nil || !strings.Contains(err.Error(), "with 4 rows, but") {
		t.Fatalf("an altered receipt: %+v, %v", rec, err)
	}
}

// TestResultRefusesAlteredBundle: a result bundle altered on its way is
// refused by Result, which names the failed step and returns nothing.
func TestResultRefusesAlteredBundle(t *testing.T) {
	ex := exampleContract(stageRun)
	lying := lyingCoordinator(t, ex, "advertiser", func(path string, body []byte) []byte {
		if strings.HasSuffix(path, "/result") && len(body) > 100 {
			body[len(body)-100] ^= 1 // inside the encrypted result
		}
		return body
	})
	cl, err := client.New(lying, client.Options{Contract: ex.Contract, Identity: ex.Key("advertiser")})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	res, err := cl.Result(context.Background(), ex.RunID)
	var ve *bundle.VerifyError
	if res != nil || !errors.As(err, &ve) {
		t.Fatalf("an altered bundle: %+v, %v", res, err)
	}
}

// TestOperationsCheckBeforeSending: what a participant may not do is
// refused by the SDK before anything reaches the coordinator (its log does
// not grow): an upload by another party than the dataset's provider, an
// algorithm that is not the contract's, a contract that not every
// participant signed, a salt for an algorithm that is not confidential.
func TestOperationsCheckBeforeSending(t *testing.T) {
	ex := exampleContract(stageRegistered)
	ctx := context.Background()
	before := server().Coord.LogSize()
	rows, err := connectors.NewReader(strings.NewReader(impressionsCSV), connectors.FormatCSV, ex.Contract.Dataset("impressions").Columns, connectors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Release()
	if _, err := ex.client("advertiser").UploadDataset(ctx, "impressions", rows, client.UploadOptions{}); err == nil || !strings.Contains(err.Error(), `provided by "publisher"`) {
		t.Errorf("an upload by the wrong party: %v", err)
	}
	if _, err := ex.client("measurer").SubmitAlgorithm(ctx, []byte(exampleQuery+"\n"), nil); !errors.Is(err, contracts.ErrAlgorithmMismatch) {
		t.Errorf("another algorithm: %v", err)
	}
	salt := [32]byte{}
	if _, err := ex.client("measurer").SubmitAlgorithm(ctx, []byte(exampleQuery), (*cleanroom.Salt)(&salt)); !errors.Is(err, client.ErrSalt) {
		t.Errorf("a salt for a plain algorithm: %v", err)
	}
	if _, err := ex.client("publisher").SubmitAlgorithm(ctx, []byte(exampleQuery), nil); err == nil || !strings.Contains(err.Error(), "not the algorithm provider") {
		t.Errorf("an algorithm from a data provider: %v", err)
	}
	fresh := exampleContract(stageSigned)
	if _, err := fresh.client("publisher").RegisterContract(ctx, fresh.Text, fresh.Signatures[:3]); !errors.Is(err, client.ErrNotSigned) {
		t.Errorf("a contract missing a signature: %v", err)
	}
	if got := server().Coord.LogSize(); got != before {
		t.Errorf("the log grew from %d to %d entries", before, got)
	}
}

// TestEncryptDatasetRefusesUnverifiedKey: an identity document that does
// not satisfy the contract's coordinator section (another simulated root)
// is refused before a byte is encrypted, and EncryptDatasetFile leaves no
// file behind.
func TestEncryptDatasetRefusesUnverifiedKey(t *testing.T) {
	ex := exampleContract(stageRegistered)
	other, err := bundletest.NewCoordinator()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := otherDocument(other)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := connectors.NewReader(strings.NewReader(impressionsCSV), connectors.FormatCSV, ex.Contract.Dataset("impressions").Columns, connectors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Release()
	var buf bytes.Buffer
	if _, _, err := client.EncryptDataset(&buf, rows, ex.Contract, "impressions", doc, ex.Key("publisher"), upload.EncryptOptions{}); !errors.Is(err, client.ErrIdentityRefused) || buf.Len() != 0 {
		t.Fatalf("another coordinator's document: %d bytes written, %v", buf.Len(), err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "imp.env")
	if _, _, err := client.EncryptDatasetFile(out, rows, ex.Contract, "impressions", doc, ex.Key("publisher"), out+".stmt"); !errors.Is(err, client.ErrIdentityRefused) {
		t.Fatalf("EncryptDatasetFile: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a refused encryption left %d files", len(entries))
	}
}

// otherDocument is the identity document of a coordinator on another
// simulated platform.
func otherDocument(c *bundletest.Coordinator) ([]byte, error) {
	doc, err := attest.NewIdentityDocument(c.PublicKey(), c.StaticEvidence())
	if err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}
