package tlog_test

import (
	"testing"

	"cleanroom.dev/cleanroom/cleanroom/tlog"
)

func TestParseResourcePath(t *testing.T) {
	good := []struct {
		path string
		want tlog.Resource
	}{
		{"checkpoint", tlog.Resource{Kind: tlog.KindCheckpoint}},
		{"tile/0/000", tlog.Resource{Kind: tlog.KindHashTile}},
		{"tile/0/001.p/17", tlog.Resource{Kind: tlog.KindHashTile, Index: 1, Width: 17}},
		{"tile/63/x001/x234/067", tlog.Resource{Kind: tlog.KindHashTile, Level: 63, Index: 1234067}},
		{"tile/entries/x001/234.p/255", tlog.Resource{Kind: tlog.KindEntryBundle, Index: 1234, Width: 255}},
		{"tile/entries/x018/x446/x744/x073/x709/x551/615", tlog.Resource{Kind: tlog.KindEntryBundle, Index: 18446744073709551615}},
	}
	for _, tc := range good {
		r, err := tlog.ParseResourcePath(tc.path)
		if err != nil {
			t.Errorf("%q: %v", tc.path, err)
			continue
		}
		if r != tc.want || r.Path() != tc.path {
			t.Errorf("%q parsed as %+v (path %q), want %+v", tc.path, r, r.Path(), tc.want)
		}
	}
	bad := []string{
		"", "/checkpoint", "checkpoint/", "../checkpoint", "tile/../checkpoint", "tile/0/../../etc/passwd",
		"tile/0/000/../001", "tile//0/000", "tile/0//000", "tile/0/000/", "tile/0", "tile/0/", "tile/",
		"tile/00/000", "tile/64/000", "tile/-1/000", "tile/+1/000", "tile/0/0", "tile/0/0000", "tile/0/x000/001",
		"tile/0/x1/001", "tile/0/001.p/0", "tile/0/001.p/256", "tile/0/001.p/017", "tile/0/001.p/", "tile/0/001.p",
		"tile/0/001.p/1/2", "tile/0/x001/x002.p/3/004", "tile/0/x018/x446/x744/x073/x709/x551/616",
		"tile/0/x001/x000/x000/x000/x000/x000/x000/000", "tile/entries", "tile/entries/", "tile/Entries/000",
		".state/treeState", ".lock", "tile/0/000.p/5123456", "tile/0/0a0", "tile/0/000\x00", "tile/0/ 000",
		"tile/entries/000.p/1.p/1",
	}
	for _, p := range bad {
		if r, err := tlog.ParseResourcePath(p); err == nil {
			t.Errorf("%q accepted as %+v", p, r)
		}
	}
}

func FuzzParseResourcePath(f *testing.F) {
	for _, s := range []string{"checkpoint", "tile/0/000", "tile/1/x001/234.p/7", "tile/entries/000.p/1", "../x", "tile/0/001.p/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		r, err := tlog.ParseResourcePath(p)
		if err != nil {
			return
		}
		if r.Path() != p {
			t.Fatalf("%q parsed to %+v whose path is %q", p, r, r.Path())
		}
		r2, err := tlog.ParseResourcePath(r.Path())
		if err != nil || r2 != r {
			t.Fatalf("round trip of %q: %+v, %v", p, r2, err)
		}
	})
}
