package coordinator_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"cleanroom.dev/cleanroom/cleanroom/envelope"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/cleanroom/upload"
	"cleanroom.dev/cleanroom/connectors"
	"cleanroom.dev/cleanroom/coordinator"
	"cleanroom.dev/cleanroom/coordinator/internal/arrowipc"
	"cleanroom.dev/cleanroom/coordinator/internal/state"
	storedpkg "cleanroom.dev/cleanroom/coordinator/internal/stored"
	"cleanroom.dev/cleanroom/internal/testenv"
)

// keptKeyProvider is a data provider who writes its envelopes with its own
// code, straight from docs/envelope.md, and keeps the data key: the
// adversary of the dataset swap. It can make as many envelopes under one
// header as it likes, and each authenticates under that header.
type keptKeyProvider struct {
	header  []byte
	key     []byte // the data key the header wraps
	segSize int
}

// newKeptKeyProvider draws a data key and salt and writes the header of a
// dataset envelope for ds, wrapped to the coordinator's HPKE key.
func newKeptKeyProvider(t *testing.T, sc *testenv.Scenario, ds string) *keptKeyProvider {
	t.Helper()
	d := sc.Contract.Dataset(ds)
	k := &keptKeyProvider{key: make([]byte, 32), segSize: envelope.DefaultSegmentSize}
	rand.Read(k.key)
	var salt [32]byte
	rand.Read(salt[:])
	cid, schema := sc.Contract.ID(), d.SchemaDigest()
	h := []byte{0x89, 'C', 'R', 'E', '\r', '\n', 0x1a, '\n', 0, 1, 1, 0x64, 0x7a, 0, 1, 0, 2}
	h = binary.BigEndian.AppendUint32(h, uint32(k.segSize))
	h = append(h, cid[:]...)
	h = append(h, schema[:]...)
	h = append(h, salt[:]...)
	h = append(h, byte(len(ds)))
	h = append(h, ds...)
	info := append([]byte("cleanroom-envelope-v1 key-wrap\x00"), h...)
	pk := sc.Coordinator.PublicKey.HPKE()
	enc, sender, err := hpke.NewSender(pk, hpke.HKDFSHA256(), hpke.AES256GCM(), info)
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := sender.Seal(nil, k.key)
	if err != nil {
		t.Fatal(err)
	}
	keyID := sha256.Sum256(pk.Bytes())
	h = binary.BigEndian.AppendUint16(h, 1)
	h = append(append(append(h, keyID[:]...), enc...), wrapped...)
	k.header = h
	return k
}

// seal encrypts csv (rows of dataset ds) under the kept header and data
// key and signs the upload statement for it, as party id.
func (k *keptKeyProvider) seal(t *testing.T, sc *testenv.Scenario, id, ds, csv string) *testenv.Sealed {
	t.Helper()
	d := sc.Contract.Dataset(ds)
	rr, err := connectors.NewReader(strings.NewReader(csv), connectors.FormatCSV, d.Columns, connectors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	var plain bytes.Buffer
	iw := ipc.NewWriter(&plain, ipc.WithSchema(d.Schema()))
	var rows int64
	for rr.Next() {
		iw.Write(rr.RecordBatch())
		rows += rr.RecordBatch().NumRows()
	}
	iw.Close()

	okm, err := hkdf.Key(sha256.New, k.key, k.header[85:117], "cleanroom-envelope-v1 payload", 39)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(okm[:32])
	gcm, _ := cipher.NewGCM(block)
	aad := sha256.Sum256(k.header)
	out := bytes.Clone(k.header)
	p := plain.Bytes()
	n := max(1, (len(p)+k.segSize-1)/k.segSize)
	for i := range n {
		nonce := binary.BigEndian.AppendUint32(bytes.Clone(okm[32:39]), uint32(i))
		if i == n-1 {
			nonce = append(nonce, 1)
		} else {
			nonce = append(nonce, 0)
		}
		out = gcm.Seal(out, nonce, p[i*k.segSize:min((i+1)*k.segSize, len(p))], aad[:])
	}

	hdr, err := envelope.ParseHeader(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	st, err := upload.FromEnvelope(envelope.Summary{Header: hdr, PlaintextSize: int64(len(p)), Size: int64(len(out)),
		Segments: int64(n), SHA256: sha256.Sum256(out)}, rows)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := st.Sign(sc.Party(id).Identity)
	if err != nil {
		t.Fatal(err)
	}
	return &testenv.Sealed{Envelope: out, Statement: signed, Rows: rows}
}

// storedEnvelope returns the path of the blob file that the coordinator
// reads dataset ds from at a run, as the host finds it on disk.
func storedEnvelope(t *testing.T, srv *testenv.Server, sc *testenv.Scenario, ds string) string {
	t.Helper()
	var up *events.DatasetUploaded
	srv.Coord.State().View(func(v *state.Snapshot) {
		if d := v.Contract(sc.Contract.ID()).Datasets[ds]; d != nil {
			up = d.Upload
		}
	})
	if up == nil {
		t.Fatalf("dataset %s is not uploaded", ds)
	}
	d := up.Stored.SHA256
	return filepath.Join(srv.Dir, "blobs", "sha256", d[:2], d)
}

// forgeStored makes what anyone can make, since the coordinator's key is
// public: a valid envelope of dataset ds for the scenario's contract,
// sealed to the coordinator, laid out as a stored dataset (blocks and
// index), holding the rows of csv.
func forgeStored(t *testing.T, sc *testenv.Scenario, ds, csv string) []byte {
	t.Helper()
	d := sc.Contract.Dataset(ds)
	rr, err := connectors.NewReader(strings.NewReader(csv), connectors.FormatCSV, d.Columns, connectors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	var buf bytes.Buffer
	w, err := envelope.NewWriter(&buf, envelope.Header{Kind: envelope.KindDataset, ContractID: sc.Contract.ID(), ObjectID: ds,
		SchemaDigest: d.SchemaDigest(), SegmentSize: storedpkg.SegmentSize}, []hpke.PublicKey{sc.Coordinator.PublicKey.HPKE()})
	if err != nil {
		t.Fatal(err)
	}
	sw := storedpkg.NewWriter(w, d.Schema())
	for rr.Next() {
		if err := sw.Write(rr.RecordBatch()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSwappedDatasetRefused is the dataset swap: a provider who kept its
// data key re-encrypts different rows of the same length under the header
// it uploaded, and the host overwrites the stored envelope with it between
// two runs. The second run must refuse, naming the dataset, instead of
// computing on rows that no upload statement and no log entry names.
func TestSwappedDatasetRefused(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	sc := testenv.New(t, srv, testenv.AdSpec(t, "swapped", 3))
	ctx := context.Background()
	sc.Submit(t, "publisher")
	provider := newKeptKeyProvider(t, sc, "impressions")
	original := provider.seal(t, sc, "publisher", "impressions", testenv.ImpressionsCSV)
	if _, err := sc.Upload(t, "publisher", "impressions", original); err != nil {
		t.Fatalf("uploading the kept-key envelope: %v", err)
	}
	sc.MustUpload(t, "advertiser", "conversions", testenv.ConversionsCSV)
	if _, err := sc.Client(t, "measurer").SubmitAlgorithm(ctx, []byte(sc.Spec.Query), sc.Spec.AlgorithmSalt()); err != nil {
		t.Fatal(err)
	}
	first, err := sc.Client(t, "advertiser").Run(ctx)
	if err != nil {
		t.Fatalf("run 1: %v", err)
	}

	swapped := provider.seal(t, sc, "publisher", "impressions", strings.ReplaceAll(testenv.ImpressionsCSV, "u1,", "u7,"))
	if len(swapped.Envelope) != len(original.Envelope) || !bytes.Equal(swapped.Envelope[:len(provider.header)], original.Envelope[:len(provider.header)]) {
		t.Fatal("the swapped envelope does not have the original's size and header")
	}
	path := storedEnvelope(t, srv, sc, "impressions")
	stored, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, swapped.Envelope, 0o600); err != nil {
		t.Fatal(err)
	}
	second, err := sc.Client(t, "advertiser").Run(ctx)
	if err == nil {
		t.Fatalf("run 2 over the swapped envelope was not refused: it computed on rows the provider swapped in (run 1 kept %d rows, run 2 kept %d)",
			first.RowsKept, second.RowsKept)
	}
	expectRefusal(t, "run over a swapped envelope", err, 422, "dataset impressions")
	t.Logf("refused: %v", err)

	// The host keeps the stored header and puts the provider's segments
	// of the swapped rows behind it.
	hdr, err := envelope.ParseHeader(bytes.NewReader(stored))
	if err != nil {
		t.Fatal(err)
	}
	spliced := append(stored[:hdr.Len():hdr.Len()], swapped.Envelope[len(provider.header):]...)
	if err := os.WriteFile(path, spliced, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = sc.Client(t, "advertiser").Run(ctx)
	expectRefusal(t, "run over the stored header with swapped segments", err, 422, "dataset impressions")
	t.Logf("refused: %v", err)
}

// TestStoredEnvelopeIsReKeyed checks what the coordinator stores for an
// upload and logs about it: an envelope of its own for the same contract,
// dataset and schema, sealed only to the coordinator's key under another
// header, holding exactly the plaintext of the provider's envelope; and a
// dataset.uploaded event that names the provider's envelope and header (as
// the provider signed them) and the stored envelope and header.
func TestStoredEnvelopeIsReKeyed(t *testing.T) {
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	sc := testenv.New(t, srv, testenv.AdSpec(t, "rekeyed", 1))
	sc.Submit(t, "publisher")
	sealed := sc.Seal(t, "publisher", "impressions", testenv.ImpressionsCSV)
	if _, err := sc.Upload(t, "publisher", "impressions", sealed); err != nil {
		t.Fatal(err)
	}
	key := srv.Coord.TEE().Identity().HPKE()
	want := envelope.Expect{Kind: envelope.KindDataset, ContractID: sc.Contract.ID(), ObjectID: "impressions"}
	plain, sent, err := envelope.Open(sealed.Envelope, key, want)
	if err != nil {
		t.Fatal(err)
	}
	path := storedEnvelope(t, srv, sc, "impressions")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, stored, err := envelope.Open(b, key, want)
	if err != nil {
		t.Fatalf("the stored envelope does not open with the coordinator's key: %v", err)
	}
	schema := sc.Contract.Dataset("impressions").Schema()
	sentRows, _, err := arrowipc.Decode(plain, schema, "the provider's envelope")
	if err != nil {
		t.Fatal(err)
	}
	bufs := storedpkg.NewBuffers(func(n int64) ([]byte, func(), error) { return make([]byte, n), func() {}, nil })
	defer bufs.Close()
	sd, err := storedpkg.Open(bytes.NewReader(b), int64(len(b)), key, want, nil, schema, bufs)
	if err != nil {
		t.Fatalf("the stored envelope's blocks do not open: %v", err)
	}
	defer sd.Close()
	var kept []arrow.RecordBatch
	for i := range sd.Blocks() {
		recs, release, err := sd.ReadBlock(i)
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		kept = append(kept, recs...)
	}
	if !array.TableEqual(array.NewTableFromRecords(schema, sentRows), array.NewTableFromRecords(schema, kept)) {
		t.Fatal("the stored envelope does not hold the rows of the provider's envelope")
	}
	if stored.SHA256() == sent.SHA256() || stored.Salt == sent.Salt || bytes.Equal(b, sealed.Envelope) {
		t.Fatal("the coordinator stored the provider's envelope or its header")
	}
	if len(stored.Recipients) != 1 || stored.Recipients[0].KeyID != envelope.KeyID(key.PublicKey()) ||
		stored.SchemaDigest != sc.Contract.Dataset("impressions").SchemaDigest() || stored.SegmentSize != storedpkg.SegmentSize {
		t.Fatalf("stored header: %+v", stored)
	}
	var up *events.DatasetUploaded
	srv.Coord.State().View(func(v *state.Snapshot) { up = v.Contract(sc.Contract.ID()).Datasets["impressions"].Upload })
	sentSum, storedSum, sentHdr, storedHdr := sha256.Sum256(sealed.Envelope), sha256.Sum256(b), sent.SHA256(), stored.SHA256()
	for _, c := range []struct{ field, got, want string }{
		{"ciphertext.sha256", up.Ciphertext.SHA256, fmt.Sprintf("%x", sentSum)},
		{"ciphertext.size", fmt.Sprint(up.Ciphertext.Size), fmt.Sprint(len(sealed.Envelope))},
		{"header_sha256", up.HeaderSHA256, fmt.Sprintf("%x", sentHdr)},
		{"stored.sha256", up.Stored.SHA256, fmt.Sprintf("%x", storedSum)},
		{"stored.size", fmt.Sprint(up.Stored.Size), fmt.Sprint(len(b))},
		{"stored_header_sha256", up.StoredHeaderSHA256, fmt.Sprintf("%x", storedHdr)},
	} {
		if c.got != c.want {
			t.Errorf("dataset.uploaded %s is %s, want %s", c.field, c.got, c.want)
		}
	}
	st, err := upload.Verify(up.UploadStatement, sc.Party("publisher").Identity.Public(), upload.Expect{ContractID: sc.Contract.ID(), DatasetID: "impressions"})
	if err != nil || st.HeaderSHA256 != sentHdr {
		t.Fatalf("the logged statement does not sign the header digest: %v", err)
	}
}

// TestStoredEnvelopeTamperingRefused changes the stored envelope of a
// dataset between two runs in every way the host can — a flipped byte in
// the header or a segment, a truncated or extended file, a segment or the
// whole envelope of another upload of the same data — and checks that each
// second run is refused, naming the dataset, while the first one ran.
func TestStoredEnvelopeTamperingRefused(t *testing.T) {
	// Enough rows for several segments.
	var big strings.Builder
	big.WriteString("user_id,campaign\n")
	for i := range 150_000 {
		fmt.Fprintf(&big, "u%d,c%d\n", i%5000, i%7)
	}
	csv := big.String()
	srv := testenv.Start(t, t.TempDir(), coordinator.Config{})
	ctx := context.Background()
	// The same rows uploaded to a second contract: segments of another
	// upload, the same size and position.
	other := testenv.New(t, srv, testenv.AdSpec(t, "tamper-other", 1))
	prepare(t, other, csv)
	otherBytes, err := os.ReadFile(storedEnvelope(t, srv, other, "impressions"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		tamper func(b []byte) []byte
	}{
		{"flipped header byte", func(b []byte) []byte { b[100] ^= 1; return b }},
		{"flipped byte in a middle segment", func(b []byte) []byte { b[len(b)/2] ^= 0x80; return b }},
		{"flipped tag byte of the last segment", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-100] }},
		{"bytes appended", func(b []byte) []byte { return append(b, 0) }},
		{"a segment of another upload", func(b []byte) []byte {
			hdr, err := envelope.ParseHeader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			seg := int(hdr.SegmentSize) + envelope.TagSize
			at := hdr.Len() + seg
			copy(b[at:at+seg], otherBytes[at:at+seg])
			return b
		}},
		{"the whole envelope of another upload", func(b []byte) []byte { return bytes.Clone(otherBytes) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sc := testenv.New(t, srv, testenv.AdSpec(t, "tamper", 2))
			prepare(t, sc, csv)
			if _, err := sc.Client(t, "advertiser").Run(ctx); err != nil {
				t.Fatalf("run 1: %v", err)
			}
			path := storedEnvelope(t, srv, sc, "impressions")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != len(otherBytes) {
				t.Fatalf("the two uploads' stored envelopes have %d and %d bytes", len(b), len(otherBytes))
			}
			if err := os.WriteFile(path, tc.tamper(b), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = sc.Client(t, "advertiser").Run(ctx)
			expectRefusal(t, tc.name, err, 422, "dataset impressions")
		})
	}
}
