package blobs

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPutGet(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("cleanroom"), 1000)
	d, err := s.Put(data)
	if err != nil {
		t.Fatal(err)
	}
	if d != sha256.Sum256(data) {
		t.Fatal("digest is not SHA-256 of the content")
	}
	got, err := s.Get(d, int64(len(data)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get: %v", err)
	}
	if err := s.Check(d, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	// Putting the same content again is harmless.
	if d2, err := s.Put(data); err != nil || d2 != d {
		t.Fatalf("second Put: %v", err)
	}
}

func TestLimitAndAbort(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	w, err := s.Create(10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 8)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over-limit write: %v", err)
	}
	if _, err := w.Commit(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("commit after over-limit write: %v", err)
	}
	w2, _ := s.Create(0)
	w2.Write([]byte("abandoned"))
	w2.Abort()
	left, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	if _, err := os.Stat(filepath.Join(dir, "sha256")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("an aborted or refused blob became visible")
	}
}

func TestDamageDetected(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	data := []byte("the conversions of the advertiser")
	d, _ := s.Put(data)
	p := s.path(d)
	// Truncated.
	os.WriteFile(p, data[:10], 0o600)
	if _, err := s.Get(d, int64(len(data))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated blob: %v", err)
	}
	if err := s.Check(d, int64(len(data))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Check of a truncated blob: %v", err)
	}
	// Same size, one bit changed.
	bad := bytes.Clone(data)
	bad[3] ^= 1
	os.WriteFile(p, bad, 0o600)
	if _, err := s.Get(d, int64(len(data))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped blob: %v", err)
	}
	os.Remove(p)
	if _, err := s.Get(d, -1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing blob: %v", err)
	}
}

func TestOpenRemovesTemporaries(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	w, _ := s.Create(0)
	w.Write([]byte("interrupted"))
	// Simulate a crash: the writer is never finished.
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	if len(left) != 0 {
		t.Fatalf("temporary files survived Open: %v", left)
	}
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.List(); err != nil || len(got) != 0 {
		t.Fatalf("an empty store lists %v, %v", got, err)
	}
	a, _ := s.Put([]byte("a"))
	b, _ := s.Put([]byte("b"))
	w, _ := s.Create(0) // being written: not a blob yet
	w.Write([]byte("c"))
	defer w.Abort()
	// Not blobs: a name that is not a digest, a digest in the wrong
	// directory, an upper-case digest, a directory of another name.
	c := sha256.Sum256([]byte("c"))
	for _, p := range []string{
		filepath.Join(dir, "sha256", a.String()[:2], "notes.txt"),
		filepath.Join(dir, "sha256", "zz", Digest(c).String()),
		filepath.Join(dir, "sha256", a.String()[:2], strings.ToUpper(Digest(c).String())),
		filepath.Join(dir, "sha256", "other", Digest(c).String()),
	} {
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !slices.Contains(got, a) || !slices.Contains(got, b) {
		t.Fatalf("List = %v, want %s and %s", got, a, b)
	}
}

// BenchmarkPut stores a small blob (a result's size) durably.
func BenchmarkPut(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 4096)
	var i uint64
	for b.Loop() {
		i++
		binary.LittleEndian.PutUint64(data, i)
		if _, err := s.Put(data); err != nil {
			b.Fatal(err)
		}
	}
}
