package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"cleanroom.dev/cleanroom/cleanroom/envelope"
	"cleanroom.dev/cleanroom/cleanroom/upload"
	"cleanroom.dev/cleanroom/coordinator/tee"
)

// BenchmarkReceiveEnvelope measures what the coordinator does with an
// upload's bytes, without the network: "verify" is hashing the received
// envelope while decrypting it and decoding its Arrow stream (what a
// coordinator that stored the provider's envelope had to do, without its
// blob write); "verify+rekey" is receiveEnvelope as uploads run it, which
// also re-encrypts the plaintext into the stored envelope and writes it to
// a blob. The difference is the price of re-keying at upload. The envelope
// holds about 128 MiB of Arrow data.
func BenchmarkReceiveEnvelope(b *testing.B) {
	ctx := context.Background()
	c, err := Open(ctx, Config{DataDir: filepath.Join(b.TempDir(), "coord"), Attestation: tee.ModeSimulated})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
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
	env := sealed.Bytes()
	b.Run("verify", func(b *testing.B) {
		b.SetBytes(int64(len(env)))
		for b.Loop() {
			sum := sha256.New()
			er, err := envelope.NewReader(io.TeeReader(bytes.NewReader(env), sum), c.tee.Identity().HPKE(), envelope.Expect{
				Kind: envelope.KindDataset, ContractID: ct.ID(), ObjectID: ds.ID})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := countArrowStream(er, schema); err != nil {
				b.Fatal(err)
			}
			sum.Sum(nil)
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
