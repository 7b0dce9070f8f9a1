// Package blobs is the coordinator's content-addressed blob store: large or
// secret material (dataset envelopes, sealed contracts and algorithms,
// encrypted results) that log events refer to by SHA-256.
//
// Writes are durable before they are visible: a blob is streamed to a
// temporary file, fsynced, renamed to its digest, and the directory fsynced.
// A crash leaves either the whole blob under its name or nothing there (a
// stray temporary file at most, removed at the next Open). Reads check the
// digest, so a blob damaged on disk is reported, never used.
package blobs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"cleanroom.dev/cleanroom/internal/durable"
)

// Digest is the SHA-256 of a blob's bytes.
type Digest [32]byte

// String returns 64 lowercase hex digits.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// ParseDigest parses 64 hex digits.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(d) {
		return d, fmt.Errorf("blob digest must be 64 hex digits, got %q", s)
	}
	copy(d[:], b)
	return d, nil
}

// Errors.
var (
	ErrTooLarge = errors.New("blob exceeds the size limit")
	ErrNotFound = errors.New("blob not found")
	ErrCorrupt  = errors.New("blob is damaged")
)

// Store is a directory of blobs named by digest.
type Store struct {
	dir string
	tmp string
}

// Open opens (creating if needed) a blob store in dir and removes
// temporary files left by an interrupted write.
func Open(dir string) (*Store, error) {
	s := &Store{dir: dir, tmp: filepath.Join(dir, "tmp")}
	for _, d := range []string{dir, s.tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("blob store: %w", err)
		}
	}
	entries, err := os.ReadDir(s.tmp)
	if err != nil {
		return nil, fmt.Errorf("blob store: %w", err)
	}
	for _, e := range entries {
		os.Remove(filepath.Join(s.tmp, e.Name()))
	}
	return s, nil
}

func (s *Store) path(d Digest) string {
	h := d.String()
	return filepath.Join(s.dir, "sha256", h[:2], h)
}

// Writer streams a new blob. Nothing is visible until Commit; Abort (or a
// crash) discards it.
type Writer struct {
	s     *Store
	f     *os.File
	h     hash.Hash
	n     int64
	limit int64
	err   error
	done  bool
}

// Create starts a blob of at most limit bytes (limit ≤ 0: no limit).
func (s *Store) Create(limit int64) (*Writer, error) {
	f, err := os.CreateTemp(s.tmp, "blob-*")
	if err != nil {
		return nil, fmt.Errorf("blob store: %w", err)
	}
	return &Writer{s: s, f: f, h: sha256.New(), limit: limit}, nil
}

// Write appends p. Past the limit it fails with ErrTooLarge and the blob
// can only be aborted.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.limit > 0 && w.n+int64(len(p)) > w.limit {
		w.err = fmt.Errorf("%w of %d bytes", ErrTooLarge, w.limit)
		return 0, w.err
	}
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	if err != nil {
		w.err = fmt.Errorf("blob store: %w", err)
	}
	return n, w.err
}

// Size returns the bytes written so far.
func (w *Writer) Size() int64 { return w.n }

// Digest returns the SHA-256 of the bytes written so far.
func (w *Writer) Digest() Digest {
	var d Digest
	copy(d[:], w.h.Sum(nil))
	return d
}

// Commit makes the blob durable and visible under its digest. If a blob
// with the same digest exists, the new copy is dropped.
func (w *Writer) Commit() (Digest, error) {
	if w.done {
		return Digest{}, errors.New("blob store: writer already finished")
	}
	w.done = true
	tmp := w.f.Name()
	defer os.Remove(tmp)
	if w.err != nil {
		w.f.Close()
		return Digest{}, w.err
	}
	d := w.Digest()
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		return Digest{}, fmt.Errorf("blob store: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return Digest{}, fmt.Errorf("blob store: %w", err)
	}
	final := w.s.path(d)
	if fi, err := os.Stat(final); err == nil && fi.Size() == w.n {
		return d, nil
	}
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Digest{}, fmt.Errorf("blob store: %w", err)
	}
	if err := durable.SyncDir(filepath.Dir(dir)); err != nil {
		return Digest{}, fmt.Errorf("blob store: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return Digest{}, fmt.Errorf("blob store: %w", err)
	}
	if err := durable.SyncDir(dir); err != nil {
		return Digest{}, fmt.Errorf("blob store: %w", err)
	}
	return d, nil
}

// Abort discards the blob.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name())
}

// Put stores b durably and returns its digest.
func (s *Store) Put(b []byte) (Digest, error) {
	w, err := s.Create(0)
	if err != nil {
		return Digest{}, err
	}
	if _, err := w.Write(b); err != nil {
		w.Abort()
		return Digest{}, err
	}
	return w.Commit()
}

// Stat returns the size of a stored blob.
func (s *Store) Stat(d Digest) (int64, error) {
	fi, err := os.Stat(s.path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("%w: %s", ErrNotFound, d)
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Get reads a whole blob and checks its digest and, when size ≥ 0, its
// size. A mismatch is ErrCorrupt naming the blob.
func (s *Store) Get(d Digest, size int64) ([]byte, error) {
	f, err := os.Open(s.path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, d)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if size >= 0 && fi.Size() != size {
		return nil, fmt.Errorf("%w: %s has %d bytes, the log records %d (truncated or replaced on disk)", ErrCorrupt, d, fi.Size(), size)
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, d, err)
	}
	if sha256.Sum256(b) != d {
		return nil, fmt.Errorf("%w: %s does not hash to its name (changed on disk)", ErrCorrupt, d)
	}
	return b, nil
}

// OpenSized opens a blob for reading after checking its size, but not its
// digest: for content the caller authenticates more cheaply another way —
// the dataset envelope the coordinator made at upload, whose header digest
// is logged and whose every segment carries an AEAD tag, bound to that
// header, under a data key that only the coordinator has ever held. (Not
// for an envelope someone else wrote: its writer knows the key and can
// seal other segments under the same header.) Get is the safe default.
func (s *Store) OpenSized(d Digest, size int64) (*os.File, error) {
	f, err := os.Open(s.path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, d)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.Size() != size {
		f.Close()
		return nil, fmt.Errorf("%w: %s has %d bytes, the log records %d (truncated or replaced on disk)", ErrCorrupt, d, fi.Size(), size)
	}
	return f, nil
}

// Check verifies that a blob is present with the given size, without
// reading it: a quick test made at start for every blob the log names.
func (s *Store) Check(d Digest, size int64) error {
	got, err := s.Stat(d)
	if err != nil {
		return err
	}
	if got != size {
		return fmt.Errorf("%w: %s has %d bytes, the log records %d (truncated or replaced on disk)", ErrCorrupt, d, got, size)
	}
	return nil
}

// Remove deletes blob d durably: the file is unlinked and its directory
// synced, so the deletion survives a crash. A blob already gone is not an
// error (a replay finishing an interrupted deletion calls it again). Its
// bytes are not overwritten: what protects a deleted envelope's rows is
// that the only wrapped copy of its data key was in that file.
func (s *Store) Remove(d Digest) error {
	p := s.path(d)
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("blob store: removing %s: %w", d, err)
	}
	if err := durable.SyncDir(filepath.Dir(p)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("blob store: %w", err)
	}
	return nil
}

// List returns every blob in the store: each file named by a digest in
// the directory of its first two hex digits. Anything else under the
// store (a file of another name, a directory of another name) is not a
// blob and is left alone.
func (s *Store) List() ([]Digest, error) {
	root := filepath.Join(s.dir, "sha256")
	dirs, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("blob store: %w", err)
	}
	var out []Digest
	for _, dir := range dirs {
		if !dir.IsDir() || len(dir.Name()) != 2 {
			continue
		}
		files, err := os.ReadDir(filepath.Join(root, dir.Name()))
		if err != nil {
			return nil, fmt.Errorf("blob store: %w", err)
		}
		for _, f := range files {
			d, err := ParseDigest(f.Name())
			if err != nil || f.Name() != d.String() || !f.Type().IsRegular() || f.Name()[:2] != dir.Name() {
				continue
			}
			out = append(out, d)
		}
	}
	return out, nil
}

// Exists reports whether blob d is present.
func (s *Store) Exists(d Digest) bool {
	_, err := os.Stat(s.path(d))
	return err == nil
}

// Path returns the file of blob d, for tests and operators who look.
func (s *Store) Path(d Digest) string { return s.path(d) }
