package audit

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"
)

//go:embed web
var webFiles embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"ptime": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"idx": func(i *uint64) string {
		if i == nil {
			return "–"
		}
		return fmt.Sprint(*i)
	},
	"short": func(s string) string {
		if len(s) > 16 {
			return s[:16] + "…"
		}
		return s
	},
	"deref": func(i *int64) int64 {
		if i == nil {
			return -1
		}
		return *i
	},
	"uploaded": func(ds []DatasetFact) int {
		n := 0
		for _, d := range ds {
			if d.Uploaded {
				n++
			}
		}
		return n
	},
	"join":     strings.Join,
	"sortkeys": sortedKeys,
}).ParseFS(webFiles, "web/*.html"))

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// page is what the templates render.
type page struct {
	Title    string
	Dir      string
	Facts    *Facts
	Reports  []*Report // the contracts, by name
	Contract *Report   // the contract page's report
	Evidence []EvidenceEntry
	// Failure is the last failed audit; FailureCurrent says it is newer
	// than the last verified one.
	Failure        *Report
	FailureCurrent bool
	Error          string // a state directory that cannot be read
}

var contractPath = regexp.MustCompile(`^/contracts/([0-9a-f]{64})$`)

// Handler returns the read-only web view of the state directory dir: what
// `cleanroom audit log` verified (the coordinator, the checkpoint history,
// each contract's participants, signatures, datasets, runs and timeline),
// the last failed audit and any rollback or fork evidence on file. It reads
// the directory on every request and never writes to it or talks to the
// coordinator. Pages are server-rendered HTML with inline CSS and no
// scripts. Requests must name the host by IP address or as localhost, which
// keeps other web sites from reading the view through DNS rebinding.
func Handler(dir string, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: this view is read-only", http.StatusMethodNotAllowed)
			return
		}
		if !localHost(r.Host) {
			http.Error(w, "forbidden: open this view as http://127.0.0.1:PORT/ or http://localhost:PORT/", http.StatusForbidden)
			return
		}
		p := load(dir)
		name := "index"
		p.Title = "Cleanroom audit"
		switch {
		case r.URL.Path == "/":
		case contractPath.MatchString(r.URL.Path):
			cid := contractPath.FindStringSubmatch(r.URL.Path)[1]
			if p.Facts == nil || p.Facts.Contracts[cid] == nil {
				http.Error(w, "no verified audit of contract "+cid+" in this state directory", http.StatusNotFound)
				return
			}
			p.Contract = p.Facts.Contracts[cid]
			p.Title = "Contract " + p.Contract.Contract.Name + " — Cleanroom audit"
			name = "contract"
		default:
			http.NotFound(w, r)
			return
		}
		var buf bytes.Buffer
		if err := pages.ExecuteTemplate(&buf, name, p); err != nil {
			logger.Error("rendering the audit view", "page", r.URL.Path, "err", err)
			http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
			return
		}
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write(buf.Bytes())
		}
	})
}

// localHost reports whether a Host header names this machine by IP address
// or as localhost.
func localHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return host == "localhost" || net.ParseIP(host) != nil
}

// load reads what the view shows; problems reading become the page's Error.
func load(dir string) *page {
	p := &page{Dir: dir}
	var errs []string
	facts, err := ReadFacts(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		errs = append(errs, err.Error())
	default:
		p.Facts = facts
		for _, r := range facts.Contracts {
			p.Reports = append(p.Reports, r)
		}
		sort.Slice(p.Reports, func(i, j int) bool {
			a, b := p.Reports[i].Contract, p.Reports[j].Contract
			return a.Name < b.Name || (a.Name == b.Name && a.ID < b.ID)
		})
	}
	if p.Evidence, err = ListEvidence(dir); err != nil {
		errs = append(errs, err.Error())
	}
	if p.Failure, err = ReadLastFailure(dir); err != nil {
		errs = append(errs, err.Error())
	}
	if p.Failure != nil {
		p.FailureCurrent = p.Facts == nil || !p.Failure.Failure.Time.Before(p.Facts.VerifiedAt)
	}
	p.Error = strings.Join(errs, "; ")
	return p
}
