package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"cleanroom.dev/cleanroom/cleanroom/envelope"
	"cleanroom.dev/cleanroom/cleanroom/upload"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/coordinator/internal/arrowipc"
	"cleanroom.dev/cleanroom/coordinator/internal/tee"
)

// sealedPatients returns an envelope of about 128 MiB of the all-types
// contract's dataset, sealed by its provider to the coordinator c.
func sealedPatients(b *testing.B, c *Coordinator) ([]byte, *contracts.Contract) {
	ct, provider := allTypesContract(b)
	ds := ct.Dataset("patients")
	schema := ds.Schema()
	batch := sampleBatch(b, schema, 65536)
	defer batch.Release()
	var batches []arrow.RecordBatch
	for range 40 {
		batches = append(batches, batch)
	}
	rr, err := array.NewRecordReader(schema, batches)
	if err != nil {
		b.Fatal(err)
	}
	var sealed bytes.Buffer
	if _, err := upload.Encrypt(&sealed, rr, ct, ds.ID, c.tee.PublicKey(), provider, upload.EncryptOptions{}); err != nil {
		b.Fatal(err)
	}
	return sealed.Bytes(), ct
}

// BenchmarkRunIntegrity measures what checking a dataset's integrity costs
// a run, on the run's own decryption path (openDataset from a file into
// memory outside the heap, segments in parallel, then the Arrow decode):
//
//   - "provider": the provider's envelope, as a run decrypted it before
//     uploads were re-keyed (its header checked against the log, which
//     does not stop a provider who knows its data key);
//   - "stored": the envelope the coordinator stored at upload, its header
//     checked against the log — what runs do now;
//   - "stored+segment-sha256": the same, plus a SHA-256 of every segment
//     checked against a list, on all cores: the work of the design not
//     chosen (a per-segment commitment checked at every run).
//
// On a shared machine run it with -count and compare medians.
func BenchmarkRunIntegrity(b *testing.B) {
	ctx := context.Background()
	c, err := Open(ctx, Config{DataDir: filepath.Join(b.TempDir(), "coord"), Attestation: tee.ModeSimulated})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	env, ct := sealedPatients(b, c)
	ds := ct.Dataset("patients")
	w, err := c.blobs.Create(0)
	if err != nil {
		b.Fatal(err)
	}
	got, err := c.receiveEnvelope(ctx, bytes.NewReader(env), w, ct, ds)
	if err != nil {
		b.Fatal(err)
	}
	size := w.Size()
	d, err := w.Commit()
	if err != nil {
		b.Fatal(err)
	}
	stored, err := c.blobs.Get(d, size)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	files := map[string]string{"provider": filepath.Join(dir, "provider"), "stored": filepath.Join(dir, "stored")}
	os.WriteFile(files["provider"], env, 0o600)
	os.WriteFile(files["stored"], stored, 0o600)
	headers := map[string]string{"provider": fmt.Sprintf("%x", got.header), "stored": fmt.Sprintf("%x", got.storedHeader)}
	hdr, _ := envelope.ParseHeader(bytes.NewReader(stored))
	seg := hdr.SegmentSize + envelope.TagSize
	var digests [][32]byte
	for i := hdr.Len(); i < len(stored); i += seg {
		digests = append(digests, sha256.Sum256(stored[i:min(i+seg, len(stored))]))
	}
	run := func(b *testing.B, name string, segmentDigests bool) {
		f, err := os.Open(files[name])
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.SetBytes(int64(len(env)))
		for b.Loop() {
			recs, _, free, err := openDataset(f, int64(len(stored)), c.tee.Identity().HPKE(), ct, ds.ID, headers[name], allocPlain)
			if err != nil {
				b.Fatal(err)
			}
			if segmentDigests {
				var next atomic.Int64
				var wg sync.WaitGroup
				for range runtime.GOMAXPROCS(0) {
					wg.Go(func() {
						for i := next.Add(1) - 1; i < int64(len(digests)); i = next.Add(1) - 1 {
							at := int64(hdr.Len()) + i*int64(seg)
							if sha256.Sum256(stored[at:min(at+int64(seg), int64(len(stored)))]) != digests[i] {
								panic("segment digest")
							}
						}
					})
				}
				wg.Wait()
			}
			for _, r := range recs {
				r.Release()
			}
			free()
		}
	}
	if len(env) != len(stored) {
		b.Fatalf("the provider's envelope has %d bytes, the stored one %d", len(env), len(stored))
	}
	b.Run("provider", func(b *testing.B) { run(b, "provider", false) })
	b.Run("stored", func(b *testing.B) { run(b, "stored", false) })
	b.Run("stored+segment-sha256", func(b *testing.B) { run(b, "stored", true) })
}

// BenchmarkReceiveEnvelope measures what the coordinator does with an
// upload's bytes, without the network: "verify" is hashing the received
// envelope while decrypting it and decoding its Arrow stream, in one
// goroutine; "verify+store-as-received" is what a coordinator that stored
// the provider's envelope did (the bytes hashed and written to a blob while
// another goroutine verifies them); "verify+rekey" is receiveEnvelope as
// uploads run it, which re-encrypts the plaintext into the stored envelope
// and writes that to a blob instead. The difference between the last two
// is the price of re-keying at upload. The envelope holds about 128 MiB of
// Arrow data.
func BenchmarkReceiveEnvelope(b *testing.B) {
	ctx := context.Background()
	c, err := Open(ctx, Config{DataDir: filepath.Join(b.TempDir(), "coord"), Attestation: tee.ModeSimulated})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	env, ct := sealedPatients(b, c)
	ds := ct.Dataset("patients")
	schema := ds.Schema()
	b.Run("verify", func(b *testing.B) {
		b.SetBytes(int64(len(env)))
		for b.Loop() {
			sum := sha256.New()
			er, err := envelope.NewReader(io.TeeReader(bytes.NewReader(env), sum), c.tee.Identity().HPKE(), envelope.Expect{
				Kind: envelope.KindDataset, ContractID: ct.ID(), ObjectID: ds.ID})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := arrowipc.Count(er, schema); err != nil {
				b.Fatal(err)
			}
			sum.Sum(nil)
		}
	})
	// What receiving cost before uploads were re-keyed: the received
	// bytes hashed and written to a blob while a goroutine decrypts and
	// decodes them from a pipe.
	b.Run("verify+store-as-received", func(b *testing.B) {
		b.SetBytes(int64(len(env)))
		for b.Loop() {
			w, err := c.blobs.Create(0)
			if err != nil {
				b.Fatal(err)
			}
			pr, pw := io.Pipe()
			done := make(chan error, 1)
			go func() {
				er, err := envelope.NewReader(pr, c.tee.Identity().HPKE(), envelope.Expect{
					Kind: envelope.KindDataset, ContractID: ct.ID(), ObjectID: ds.ID})
				if err == nil {
					_, err = arrowipc.Count(er, schema)
				}
				io.Copy(io.Discard, pr)
				done <- err
			}()
			if _, err := io.CopyBuffer(io.MultiWriter(w, pw), bytes.NewReader(env), make([]byte, 256<<10)); err != nil {
				b.Fatal(err)
			}
			pw.Close()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			w.Abort()
		}
	})
	b.Run("verify+rekey", func(b *testing.B) {
		b.SetBytes(int64(len(env)))
		for b.Loop() {
			w, err := c.blobs.Create(0)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.receiveEnvelope(ctx, bytes.NewReader(env), w, ct, ds); err != nil {
				b.Fatal(err)
			}
			w.Abort()
		}
	})
}
