package tlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// A view of the log is the log as one reader may see it: the checkpoint and
// the hash tiles as they are, and the entry bundles with every entry outside
// the view replaced by a redacted slot, an entry of length zero (real
// entries are never empty). A reader of a view verifies the whole tree —
// a redacted entry's leaf hash is taken from the level-0 hash tile — and
// every entry it is shown, and learns of the others only their leaf hashes.
//
// The coordinator signs, for each view and tree size, a view head: a signed
// note saying how many entries of the first size the view shows. A reader
// that counts fewer was not shown all of them; one that is shown more was
// shown entries outside its view. docs/log.md §7 specifies both.

// MaxViewHeadSize bounds a signed view head. Real ones are about 300 bytes.
const MaxViewHeadSize = 4096

// viewNamePattern is what a view name may be: the coordinator names views by
// contract id (64 hex digits).
var viewNamePattern = regexp.MustCompile(`^[0-9a-z][0-9a-z-]{0,63}$`)

// ViewHeadPath returns the path, relative to the log root, of the view head
// for a tree of size entries: "head/<size>".
func ViewHeadPath(size uint64) string { return "head/" + strconv.FormatUint(size, 10) }

// ParseViewHeadPath parses a path made by ViewHeadPath strictly (canonical
// decimal size).
func ParseViewHeadPath(p string) (uint64, bool) {
	s, ok := strings.CutPrefix(p, "head/")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != s {
		return 0, false
	}
	return n, true
}

// ViewHeadText returns the body of the view head note of view in the log
// with the given origin: "<origin>/view/<view>\n<size>\n<count>\n".
func ViewHeadText(origin, view string, size, count uint64) ([]byte, error) {
	if !viewNamePattern.MatchString(view) {
		return nil, fmt.Errorf("view name %q is not 1 to 64 of [0-9a-z-]", view)
	}
	if count > size {
		return nil, fmt.Errorf("a view of %d entries cannot show %d", size, count)
	}
	return fmt.Appendf(nil, "%s/view/%s\n%d\n%d\n", origin, view, size, count), nil
}

// ErrBadViewHead reports a view head that is malformed, not signed by the
// log's key, or for another log or view.
var ErrBadViewHead = errors.New("bad view head")

// ViewHead is a view head whose signature has been verified. Values come
// only from Verifier.VerifyViewHead.
type ViewHead struct {
	view  string
	size  uint64
	count uint64
	raw   []byte
}

// View returns the view's name.
func (h *ViewHead) View() string { return h.view }

// Size returns the tree size the head describes.
func (h *ViewHead) Size() uint64 { return h.size }

// Count returns how many of the first Size entries the view shows.
func (h *ViewHead) Count() uint64 { return h.count }

// Bytes returns the signed note exactly as verified: with a later entry of
// the view at an index below Size, it proves that the coordinator withheld
// that entry.
func (h *ViewHead) Bytes() []byte { return bytes.Clone(h.raw) }

// VerifyViewHead parses a signed view head strictly and verifies it: exactly
// the note
//
//	<origin>/view/<view>\n<size>\n<count>\n\n— <origin> <base64(key hash ‖ signature)>\n
//
// with the Verifier's origin and the given view, size and count in canonical
// decimal, count ≤ size, and exactly one signature line, by the log's key.
// Its first line is never an origin, so a view head can never pass for a
// checkpoint, nor a checkpoint for a view head.
func (v *Verifier) VerifyViewHead(raw []byte, view string) (*ViewHead, error) {
	bad := func(format string, args ...any) (*ViewHead, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrBadViewHead}, args...)...)
	}
	if len(raw) > MaxViewHeadSize {
		return bad("%d bytes, more than the %d a view head may have", len(raw), MaxViewHeadSize)
	}
	n, err := note.Open(raw, note.VerifierList(v.nv))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return bad("not signed by the log key %s: %s", v.NoteVerifierKey(), describeSigs(unverified.Note.UnverifiedSigs, v.origin))
		case errors.As(err, &invalid):
			return bad("signature by %s does not verify: the view head was altered or forged", v.origin)
		default:
			return bad("not a signed note (text, blank line, signature lines): %v", err)
		}
	}
	if len(n.UnverifiedSigs) > 0 {
		return bad("carries signatures by keys other than the log's (%s)", describeSigs(n.UnverifiedSigs, v.origin))
	}
	if sigBlock := raw[len(n.Text)+1:]; bytes.Count(sigBlock, []byte("\n")) != 1 {
		return bad("has %d signature lines, want exactly one", bytes.Count(sigBlock, []byte("\n")))
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		return bad("body has %d lines, want the view line, size and count", len(lines)-1)
	}
	if want := v.origin + "/view/" + view; lines[0] != want {
		return bad("names %q, want %q: this head is for another view or log", lines[0], want)
	}
	num := func(s string) (uint64, bool) {
		x, err := strconv.ParseUint(s, 10, 64)
		return x, err == nil && strconv.FormatUint(x, 10) == s
	}
	size, ok := num(lines[1])
	if !ok {
		return bad("size %q is not a decimal number in canonical form", lines[1])
	}
	count, ok := num(lines[2])
	if !ok {
		return bad("count %q is not a decimal number in canonical form", lines[2])
	}
	if count > size {
		return bad("says the view shows %d of %d entries", count, size)
	}
	return &ViewHead{view: view, size: size, count: count, raw: bytes.Clone(raw)}, nil
}

// View is a view of the log verified against a checkpoint.
type View struct {
	// Entries holds entry i at position i for every i below the
	// checkpoint's size: the entry's bytes when the view shows it, nil when
	// it is redacted.
	Entries [][]byte
	// Head is the coordinator's signed view head at the checkpoint's size.
	Head *ViewHead
	// Shown is the number of entries the view shows.
	Shown uint64
}

// VerifyView verifies the view named view of the log at the verified
// checkpoint cp, fetching from f: the view head at cp's size
// (ViewHeadPath), which must verify under v's key; every entry bundle, in
// which a redacted slot takes its leaf hash from the level-0 tile; and, as
// VerifyEntries does, the whole tree against cp's root and every hash tile.
// Then the number of entries shown must equal the head's count.
//
// Errors: a *ContentError (wrapping ErrBadLog) for content that does not
// match cp; a *ViewCountError (wrapping ErrBadLog) for a view that shows
// more or fewer entries than its head says; ErrBadViewHead for a head that
// does not verify or is for another size.
func (v *Verifier) VerifyView(ctx context.Context, f Fetcher, cp *Checkpoint, view string) (*View, error) {
	if err := cp.check(); err != nil {
		return nil, err
	}
	if cp.origin != v.origin {
		return nil, fmt.Errorf("%w: checkpoint of log %q, not of %q", ErrBadCheckpoint, cp.origin, v.origin)
	}
	hp := ViewHeadPath(cp.size)
	raw, err := f(ctx, hp)
	if err != nil {
		return nil, fetchErr(hp, err)
	}
	head, err := v.VerifyViewHead(raw, view)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", hp, err)
	}
	if head.size != cp.size {
		return nil, fmt.Errorf("%s: %w: it describes %d entries, the checkpoint %d", hp, ErrBadViewHead, head.size, cp.size)
	}
	entries, err := verifyEntries(ctx, f, cp, true)
	if err != nil {
		return nil, err
	}
	out := &View{Entries: entries, Head: head}
	for _, e := range entries {
		if e != nil {
			out.Shown++
		}
	}
	if out.Shown != head.count {
		return nil, &ViewCountError{Head: head, Shown: out.Shown}
	}
	return out, nil
}

// ViewCountError reports a view that shows more or fewer entries than its
// signed head says: fewer, entries of the view were withheld; more, entries
// outside it were served. Head, signed by the log's key, is the evidence.
// It wraps ErrBadLog.
type ViewCountError struct {
	Head  *ViewHead
	Shown uint64
}

func (e *ViewCountError) Error() string {
	h := e.Head
	if e.Shown < h.count {
		return fmt.Sprintf("%v: %s: the coordinator signed that view %s shows %d of the first %d entries, but only %d were shown: entries of the view were withheld",
			ErrBadLog, ViewHeadPath(h.size), h.view, h.count, h.size, e.Shown)
	}
	return fmt.Sprintf("%v: %s: the coordinator signed that view %s shows %d of the first %d entries, but %d were shown: entries outside the view were served",
		ErrBadLog, ViewHeadPath(h.size), h.view, h.count, h.size, e.Shown)
}

// Unwrap makes errors.Is(err, ErrBadLog) true.
func (e *ViewCountError) Unwrap() error { return ErrBadLog }
