package client_test

import (
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/cleanroom/upload"
	"cleanroom.dev/cleanroom/connectors"
)

var errDiskFull = errors.New("disk full")

// failAfter accepts n bytes, then fails.
type failAfter struct{ n int }

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, errDiskFull
	}
	return len(p), nil
}

// TestEncryptDatasetDestinationError: when the destination fails part way
// (the envelope's segments are sealed and written on goroutines of their
// own), EncryptDataset returns the destination's error, and when the input
// is rejected after the envelope has begun, the input's; either way it
// leaves no goroutine behind.
func TestEncryptDatasetDestinationError(t *testing.T) {
	ex := exampleContract(stageRegistered)
	cols := ex.Contract.Dataset("impressions").Columns
	rows, err := connectors.NewReader(strings.NewReader(impressionsCSV), connectors.FormatCSV, cols, connectors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	enc, _, err := client.EncryptDataset(io.Discard, rows, ex.Contract, "impressions", ex.IdentityDocument, ex.Key("publisher"),
		upload.EncryptOptions{SegmentSize: 64})
	rows.Release()
	if err != nil {
		t.Fatal(err)
	}
	size := int(enc.Summary.Size)
	before := runtime.NumGoroutine()
	for _, after := range []int{0, size / 2, size - 1} {
		rows, err := connectors.NewReader(strings.NewReader(impressionsCSV), connectors.FormatCSV, cols, connectors.Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = client.EncryptDataset(&failAfter{n: after}, rows, ex.Contract, "impressions", ex.IdentityDocument, ex.Key("publisher"),
			upload.EncryptOptions{SegmentSize: 64})
		rows.Release()
		if !errors.Is(err, errDiskFull) {
			t.Fatalf("failing after %d bytes: %v, want the destination's error", after, err)
		}
	}
	// An input rejected after the envelope has begun: the envelope is
	// abandoned (its goroutines stopped) and the input's error returned.
	var long strings.Builder
	long.WriteString("user_id,campaign\n")
	for i := range 500 {
		long.WriteString("u" + strconv.Itoa(i) + ",spring\n")
	}
	long.WriteString("u501,spring,extra\n")
	for range 3 {
		rows, err := connectors.NewReader(strings.NewReader(long.String()), connectors.FormatCSV, cols, connectors.Options{BatchSize: 10})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = client.EncryptDataset(io.Discard, rows, ex.Contract, "impressions", ex.IdentityDocument, ex.Key("publisher"),
			upload.EncryptOptions{SegmentSize: 64})
		rows.Release()
		var ie *connectors.InputError
		if !errors.As(err, &ie) {
			t.Fatalf("a bad last row: %v, want the input's error", err)
		}
	}
	for i := 0; runtime.NumGoroutine() > before && i < 200; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after the failed encryptions, %d before", n, before)
	}
}
