package eventlog_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/coordinator/internal/eventlog"
	"cleanroom.dev/cleanroom/internal/tlogtest"
)

// inViewA is the view of these tests: the fixture's entries whose number is
// a multiple of 7.
const viewA = "view-a"

func inViewA(e []byte) bool {
	var n, x int
	fmt.Sscanf(string(e), "event %d: %x", &n, &x)
	return n%7 == 0
}

// viewFetcher serves dir's log as the view viewA through the coordinator's
// ViewHandler over real TLS; count says how many entries the heads claim
// (nil: the true number).
func viewFetcher(t *testing.T, dir string, entries [][]byte, count func(size uint64) uint64) tlog.Fetcher {
	t.Helper()
	id := tlogtest.Identity()
	l, err := eventlog.Open(dir, id.Signer(), tlog.Origin(id.Public()), &eventlog.Options{CheckpointInterval: eventlog.MinCheckpointInterval})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	if count == nil {
		count = func(size uint64) uint64 {
			var n uint64
			for _, e := range entries[:size] {
				if inViewA(e) {
					n++
				}
			}
			return n
		}
	}
	h := l.ViewHandler(viewA, testView{entries, count})
	srv := httptest.NewTLSServer(http.StripPrefix("/view", h))
	t.Cleanup(srv.Close)
	c := srv.Client()
	return func(ctx context.Context, p string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/view/"+p, nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			return io.ReadAll(io.LimitReader(resp.Body, 20<<20))
		case http.StatusNotFound:
			return nil, fmt.Errorf("GET %s: %w", p, fs.ErrNotExist)
		default:
			return nil, fmt.Errorf("GET %s: %s", p, resp.Status)
		}
	}
}

// testView is the view viewA of entries, whose heads claim count.
type testView struct {
	entries [][]byte
	count   func(uint64) uint64
}

func (v testView) Shows(_ context.Context, i uint64) (bool, error) { return inViewA(v.entries[i]), nil }
func (v testView) Count(_ context.Context, size uint64) (uint64, error) {
	return v.count(size), nil
}

// TestVerifyView: a view shows exactly its entries and redacts the others
// to empty slots, whose leaf hashes the level-0 tiles give; the whole tree
// still verifies, and so does the signed head.
func TestVerifyView(t *testing.T) {
	fx := getFixture(t)
	f := viewFetcher(t, copyLog(t, fx.dir), fx.entries, nil)
	v := tlogtest.Verifier(t)
	for _, size := range fixtureSizes {
		cp := tlogtest.MustVerify(t, v, fx.cps[size])
		view, err := v.VerifyView(tlogtest.Context(t), f, cp, viewA)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		var shown uint64
		for i, e := range view.Entries {
			switch {
			case inViewA(fx.entries[i]) && !bytes.Equal(e, fx.entries[i]):
				t.Fatalf("size %d: entry %d of the view is %q", size, i, e)
			case !inViewA(fx.entries[i]) && e != nil:
				t.Fatalf("size %d: entry %d outside the view was shown: %q", size, i, e)
			}
			if e != nil {
				shown++
			}
		}
		if uint64(len(view.Entries)) != size || view.Shown != shown || view.Head.Count() != shown || view.Head.Size() != size {
			t.Fatalf("size %d: %d entries, %d shown, head %d of %d", size, len(view.Entries), view.Shown, view.Head.Count(), view.Head.Size())
		}
	}
	// What the view serves of an entry outside it is two zero bytes.
	raw, err := f(tlogtest.Context(t), "tile/entries/000")
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for _, e := range fx.entries[:256] {
		if !inViewA(e) {
			e = nil
		}
		want = append(binary.BigEndian.AppendUint16(want, uint16(len(e))), e...)
	}
	if !bytes.Equal(raw, want) {
		t.Fatalf("bundle 000 of the view is not the bundle with the other entries emptied")
	}
}

// lastInView returns the index of the last entry of the view in entries.
func lastInView(t *testing.T, entries [][]byte) int {
	t.Helper()
	for i := len(entries) - 1; i >= 0; i-- {
		if inViewA(entries[i]) {
			return i
		}
	}
	t.Fatal("no entry of the view")
	return 0
}

// editEntry returns f with entry k of the bundle at path replaced by
// edit(entry).
func editEntry(f tlog.Fetcher, path string, k int, edit func([]byte) []byte) tlog.Fetcher {
	return func(ctx context.Context, p string) ([]byte, error) {
		b, err := f(ctx, p)
		if err != nil || p != path {
			return b, err
		}
		es, err := tlog.ParseEntryBundle(b, tlog.TileWidth)
		if err != nil {
			return nil, err
		}
		var out []byte
		for i, e := range es {
			if i == k {
				e = edit(e)
			}
			out = binary.BigEndian.AppendUint16(out, uint16(len(e)))
			out = append(out, e...)
		}
		return out, nil
	}
}

// TestVerifyViewWithheld: a view that hides one of its entries, or a head
// that claims more or fewer entries than the view shows, fails the
// verification and names the head.
func TestVerifyViewWithheld(t *testing.T) {
	fx := getFixture(t)
	v := tlogtest.Verifier(t)
	cp := tlogtest.MustVerify(t, v, fx.cps[600])
	honest := viewFetcher(t, copyLog(t, fx.dir), fx.entries, nil)

	// A server that redacts an entry of the view in bundle 0: the tree
	// still verifies (the tile has its leaf hash), but the count does not.
	k := lastInView(t, fx.entries[:256])
	withheld := editEntry(honest, "tile/entries/000", k, func([]byte) []byte { return nil })
	_, err := v.VerifyView(tlogtest.Context(t), withheld, cp, viewA)
	var ce *tlog.ViewCountError
	if !errors.As(err, &ce) || !errors.Is(err, tlog.ErrBadLog) || ce.Head.Size() != 600 || ce.Shown != ce.Head.Count()-1 || !strings.Contains(err.Error(), "withheld") {
		t.Fatalf("withheld entry: got %v", err)
	}

	for name, count := range map[string]func(uint64) uint64{
		"head claims more": func(size uint64) uint64 { return size/7 + 2 },
		"head claims less": func(size uint64) uint64 { return size/7 - 1 },
	} {
		f := viewFetcher(t, copyLog(t, fx.dir), fx.entries, count)
		_, err := v.VerifyView(tlogtest.Context(t), f, cp, viewA)
		if !errors.As(err, &ce) || ce.Head.Size() != 600 {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

// TestVerifyViewTampered: an entry of the view changed on the way is found
// at its index; a head for another view, size or key is refused.
func TestVerifyViewTampered(t *testing.T) {
	fx := getFixture(t)
	v := tlogtest.Verifier(t)
	cp := tlogtest.MustVerify(t, v, fx.cps[300])
	honest := viewFetcher(t, copyLog(t, fx.dir), fx.entries, nil)
	k := lastInView(t, fx.entries[:256])
	altered := editEntry(honest, "tile/entries/000", k, func(e []byte) []byte { return append(bytes.Clone(e), '!') })
	_, err := v.VerifyView(tlogtest.Context(t), altered, cp, viewA)
	var ce *tlog.ContentError
	if !errors.As(err, &ce) || ce.Index != int64(k) {
		t.Fatalf("altered entry %d: got %v", k, err)
	}

	head, err := honest(tlogtest.Context(t), "head/300")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyViewHead(head, "view-b"); !errors.Is(err, tlog.ErrBadViewHead) {
		t.Errorf("head of another view accepted: %v", err)
	}
	if _, err := v.VerifyCheckpoint(head); !errors.Is(err, tlog.ErrBadCheckpoint) {
		t.Errorf("a view head passed for a checkpoint: %v", err)
	}
	if _, err := v.VerifyViewHead(fx.cps[300], viewA); !errors.Is(err, tlog.ErrBadViewHead) {
		t.Errorf("a checkpoint passed for a view head: %v", err)
	}
	otherKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	forged := tlogtest.SignNote(t, strings.SplitN(string(head), "\n\n", 2)[0]+"\n", tlogtest.NewSigner(t, v.Origin(), otherKey))
	if _, err := v.VerifyViewHead(forged, viewA); !errors.Is(err, tlog.ErrBadViewHead) {
		t.Errorf("head signed by another key accepted: %v", err)
	}
	// The head of another size does not stand for this checkpoint's.
	other := func(ctx context.Context, p string) ([]byte, error) {
		if p == "head/300" {
			p = "head/1"
		}
		return honest(ctx, p)
	}
	if _, err := v.VerifyView(tlogtest.Context(t), other, cp, viewA); !errors.Is(err, tlog.ErrBadViewHead) {
		t.Errorf("head of another size accepted: %v", err)
	}
	// A head beyond the published checkpoint does not exist.
	if _, err := honest(tlogtest.Context(t), "head/601"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("head beyond the checkpoint: %v", err)
	}
	logKey := tlogtest.LogSigner(t)
	if _, err := v.VerifyViewHead(tlogtest.SignNote(t, v.Origin()+"/view/"+viewA+"\n300\n12\n", logKey), viewA); err != nil {
		t.Fatalf("a well-made head is refused: %v", err)
	}
	for _, bad := range [][]byte{
		tlogtest.SignNote(t, v.Origin()+"/view/"+viewA+"\n300\n301\n", logKey),
		tlogtest.SignNote(t, v.Origin()+"/view/"+viewA+"\n300\n012\n", logKey),
		tlogtest.SignNote(t, v.Origin()+"/view/"+viewA+"\n300\n12\nextra\n", logKey),
		tlogtest.SignNote(t, v.Origin()+"/view/"+viewA+"\n300\n", logKey),
		tlogtest.SignNote(t, v.Origin()+"/view/"+viewA+"\n300\n12\n", logKey, tlogtest.NewSigner(t, "witness", ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32)))),
		[]byte("garbage"),
	} {
		if _, err := v.VerifyViewHead(bad, viewA); !errors.Is(err, tlog.ErrBadViewHead) {
			t.Errorf("%q accepted: %v", bad, err)
		}
	}
}
