// Package durable writes files so that a crash at any moment leaves either
// the old content or the new, never a part: a temporary file in the same
// directory, fsync, rename over the final name, fsync of the directory.
// The client (keys, salts, envelopes, results, the auditor's state) and the
// coordinator (its sealed identity, blobs) both write through it.
package durable

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile writes data to path durably, with mode perm.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}

// SyncDir fsyncs a directory so that a rename or create inside it is
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// File is a file being written: nothing appears at its path until Commit,
// and Abort (or a failed Commit) leaves nothing behind.
type File struct {
	f    *os.File
	path string
	done bool
}

// Create starts writing path, with mode perm, through a temporary file in
// the same directory.
func Create(path string, perm os.FileMode) (*File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &File{f: f, path: path}, nil
}

// Write appends p to the temporary file.
func (f *File) Write(p []byte) (int, error) {
	if f.done {
		return 0, fmt.Errorf("writing %s: %w", f.path, os.ErrClosed)
	}
	return f.f.Write(p)
}

// Commit makes the content durable and visible at the path: fsync, close,
// rename, fsync of the directory.
func (f *File) Commit() error {
	if f.done {
		return errors.New("durable: " + f.path + " was already committed or aborted")
	}
	f.done = true
	tmp := f.f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	err := f.f.Sync()
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(f.path))
}

// Abort drops what was written; the path is left as it was. It is safe to
// call after Commit, where it does nothing.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.f.Close()
	os.Remove(f.f.Name())
}
