package eventlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"golang.org/x/mod/sumdb/note"
)

// servedCheckpoint caches the last verified published checkpoint, so the
// handler re-verifies it only when it changes.
type servedCheckpoint struct {
	mu  sync.Mutex
	raw []byte
	cp  *tlog.Checkpoint
}

// published returns the current published checkpoint, verified.
func (l *Log) published() (*tlog.Checkpoint, error) {
	raw, err := os.ReadFile(filepath.Join(l.dir, "checkpoint"))
	if err != nil {
		return nil, err
	}
	s := &l.served
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cp != nil && bytes.Equal(raw, s.raw) {
		return s.cp, nil
	}
	cp, err := l.verifier.VerifyCheckpoint(raw)
	if err != nil {
		return nil, err
	}
	s.raw, s.cp = raw, cp
	return cp, nil
}

// Handler returns an http.Handler serving the log read-only in the C2SP
// tlog-tiles layout: GET or HEAD of /checkpoint, /tile/<L>/<N>[.p/<W>] and
// /tile/entries/<N>[.p/<W>] relative to where it is mounted (use
// http.StripPrefix to mount it under a prefix; one leading slash is
// optional). Access control is the caller's.
//
// It serves only canonical tlog-tiles paths (anything else, such as "..",
// other files or directories, is 404) and only tiles and bundles that the
// published checkpoint covers, so data written by a batch that a crash
// interrupted is never served. The checkpoint is served as
// "text/plain; charset=utf-8" and not cached; tiles and bundles as
// "application/octet-stream", immutable.
func (l *Log) Handler() http.Handler {
	return l.handler(nil, nil)
}

// ViewIndex says which entries of the log a view shows. The coordinator
// keeps it from its state, which it rebuilt from the verified log and
// extends as it appends, so a view never depends on what an entry on disk
// claims to be.
type ViewIndex interface {
	// Shows reports whether the view shows entry index.
	Shows(ctx context.Context, index uint64) (bool, error)
	// Count returns how many of the first size entries the view shows.
	Count(ctx context.Context, size uint64) (uint64, error)
}

// ViewHandler serves the view named view of the log (docs/log.md §7): what
// Handler serves, except that in every entry bundle each entry the view
// does not show is replaced by an entry of length zero, and, at
// head/<size> for a size the published checkpoint covers, the view head: a
// note signed with the log's key saying how many of the first size entries
// the view shows. Bundles and heads are served "no-cache". A bundle that
// cannot be parsed cannot be redacted and is answered with 503.
func (l *Log) ViewHandler(view string, index ViewIndex) http.Handler {
	return l.handler(index, func(ctx context.Context, size uint64) ([]byte, error) {
		n, err := index.Count(ctx, size)
		if err != nil {
			return nil, err
		}
		return l.signViewHead(view, size, n)
	})
}

// signViewHead signs the view head of view for a tree of size entries.
func (l *Log) signViewHead(view string, size, count uint64) ([]byte, error) {
	text, err := tlog.ViewHeadText(l.verifier.Origin(), view, size, count)
	if err != nil {
		return nil, err
	}
	return note.Sign(&note.Note{Text: string(text)}, l.signer)
}

func (l *Log) handler(view ViewIndex, head func(context.Context, uint64) ([]byte, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: the log is read-only", http.StatusMethodNotAllowed)
			return
		}
		p := strings.TrimPrefix(r.URL.Path, "/")
		if size, ok := tlog.ParseViewHeadPath(p); ok && head != nil {
			l.serveViewHead(w, r, size, head)
			return
		}
		res, err := tlog.ParseResourcePath(p)
		if err != nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		cp, err := l.published()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				http.Error(w, "not found: no checkpoint yet", http.StatusNotFound)
				return
			}
			http.Error(w, "log unavailable", http.StatusServiceUnavailable)
			return
		}
		var body []byte
		if res.Kind == tlog.KindCheckpoint {
			body = cp.Bytes()
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
		} else {
			if !covered(res, cp.Size()) {
				http.Error(w, "not found", http.StatusNotFound)
				return
			}
			body, err = os.ReadFile(filepath.Join(l.dir, filepath.FromSlash(res.Path())))
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					http.Error(w, "not found", http.StatusNotFound)
					return
				}
				http.Error(w, "log unavailable", http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Cache-Control", "max-age=31536000, immutable")
			if res.Kind == tlog.KindEntryBundle && view != nil {
				if body, err = redact(r.Context(), body, res, view); err != nil {
					http.Error(w, "the log cannot be served: "+err.Error(), http.StatusServiceUnavailable)
					return
				}
				w.Header().Set("Cache-Control", "no-cache")
			}
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write(body)
		}
	})
}

// serveViewHead serves the signed view head for a tree of size entries, once
// the published checkpoint covers them.
func (l *Log) serveViewHead(w http.ResponseWriter, r *http.Request, size uint64, head func(context.Context, uint64) ([]byte, error)) {
	cp, err := l.published()
	if err != nil {
		http.Error(w, "log unavailable", http.StatusServiceUnavailable)
		return
	}
	if size > cp.Size() {
		http.Error(w, "not found: the published checkpoint covers fewer entries", http.StatusNotFound)
		return
	}
	body, err := head(r.Context(), size)
	if err != nil {
		http.Error(w, "log unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}

// redact returns the entry bundle res with every entry the view does not
// show replaced by an entry of length zero.
func redact(ctx context.Context, bundle []byte, res tlog.Resource, view ViewIndex) ([]byte, error) {
	n := int(res.Width)
	if n == 0 {
		n = tlog.TileWidth
	}
	es, err := tlog.ParseEntryBundle(bundle, n)
	if err != nil {
		return nil, fmt.Errorf("the entry bundle %s on the coordinator's disk is damaged (%w): the operator must restore the log from a backup", res.Path(), err)
	}
	out := make([]byte, 0, len(bundle))
	for i, e := range es {
		shown, err := view.Shows(ctx, res.Index*tlog.TileWidth+uint64(i))
		if err != nil {
			return nil, err
		}
		if !shown {
			e = nil
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(e)))
		out = append(out, e...)
	}
	return out, nil
}

// covered reports whether a tree of size entries has the tile or bundle res,
// at its width: a full tile once its 256 nodes exist, a partial tile of
// width W once the first W do (older partial tiles stay valid for readers
// holding older checkpoints).
func covered(res tlog.Resource, size uint64) bool {
	level := uint64(0)
	if res.Kind == tlog.KindHashTile {
		level = uint64(res.Level)
	}
	if level*tlog.TileHeight >= 64 {
		return false
	}
	nodes := size >> (level * tlog.TileHeight)
	w := uint64(res.Width)
	if w == 0 {
		w = tlog.TileWidth
	}
	return nodes >= w && res.Index <= (nodes-w)/tlog.TileWidth
}
