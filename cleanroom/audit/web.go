package audit

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
)

//go:embed web
var webFiles embed.FS

// styleSheet is the view's only style sheet, inlined in every page; the
// Content-Security-Policy allows it by its SHA-256 and nothing else.
var styleSheet = mustRead("web/style.css")

// contentSecurityPolicy lets a page use its own style sheet and GET forms to
// itself, and nothing else: no scripts, no other styles (not even inline
// style attributes), no images, fonts, frames or connections.
var contentSecurityPolicy = func() string {
	sum := sha256.Sum256([]byte(styleSheet))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}()

func mustRead(name string) string {
	b, err := webFiles.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

const timeLayout = "2006-01-02 15:04:05Z"

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(timeLayout)
	},
	"ptime": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(timeLayout)
	},
	"idx": func(i *uint64) string {
		if i == nil {
			return "–"
		}
		return fmt.Sprint(*i)
	},
	"short": shortHash,
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
	"age":      age,
	"style":    func() template.CSS { return template.CSS(styleSheet) },
	"neg":      func(d time.Duration) time.Duration { return -d },
	"kind":     kindClass,
	"ishash":   isHash,
	"runnums": func(ns []int64) string {
		s := make([]string, len(ns))
		for i, n := range ns {
			s[i] = fmt.Sprintf("#%d", n)
		}
		return strings.Join(s, ", ")
	},
	"entries": func(ns []uint64) string {
		s := make([]string, len(ns))
		for i, n := range ns {
			s[i] = fmt.Sprint(n)
		}
		return strings.Join(s, ", ")
	},
}).ParseFS(webFiles, "web/*.html"))

// shortHashLen is how many characters of a digest or key the view shows;
// the full value is in the element's title (shown on hover) and in the
// exports.
const shortHashLen = 16

func shortHash(s string) string {
	if len(s) > shortHashLen {
		return s[:shortHashLen] + "…"
	}
	return s
}

// isHash reports whether s looks like a digest or key: 32 or more
// lowercase hex digits.
func isHash(s string) bool {
	if len(s) < 32 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// age writes a duration for people: "3 days 4 h", "2 h 5 min", "40 s".
func age(d time.Duration) string {
	if d < 0 {
		return "-" + age(-d)
	}
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days %d h", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%d h %d min", d/time.Hour, d%time.Hour/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%d min %d s", d/time.Minute, d%time.Minute/time.Second)
	case d >= time.Second:
		return fmt.Sprintf("%d s", d/time.Second)
	default:
		return fmt.Sprintf("%d ms", d/time.Millisecond)
	}
}

// DefaultStaleAfter is the age beyond which, by default, the web view warns
// that the last verified audit is old.
const DefaultStaleAfter = 24 * time.Hour

// ViewOptions configures the web view. The zero value is the default view.
type ViewOptions struct {
	// Logger receives errors rendering a page; nil discards them.
	Logger *slog.Logger
	// Now is the clock that tells expired contracts and old audits; nil
	// means time.Now.
	Now func() time.Time
	// StaleAfter is how old the last verified audit (of the state
	// directory on the home page, of the contract on its page) may be
	// before the view warns that it is old: DefaultStaleAfter when zero;
	// negative: never warn.
	StaleAfter time.Duration
}

// page is what the templates render.
type page struct {
	Title string
	Dir   string
	Now   time.Time
	Facts *Facts
	Rows  []contractRow // the contracts, by name (home page)
	View  *contractView // the contract page
	// Evidence lists the rollback and fork evidence on file.
	Evidence []EvidenceEntry
	// Failure is the last failed audit; FailureCurrent says it is newer
	// than the last verified one.
	Failure        *Report
	FailureCurrent bool
	// Stale is set when the last verified audit shown is older than
	// StaleAfter.
	Stale      *staleness
	StaleAfter time.Duration
	Error      string // a state directory that cannot be read
	// Export links of the page (with its filter).
	JSONLink, CSVLink string
	// ErrorPage is the message of a 4xx page.
	ErrorPage *errorPage
}

type staleness struct {
	VerifiedAt time.Time
	Age        time.Duration
}

type errorPage struct {
	Code    int
	Heading string
	Message string
}

var contractPath = regexp.MustCompile(`^/contracts/([0-9a-f]{64})$`)

// Handler returns the read-only web view of the state directory dir: what
// `cleanroom audit log` verified (the coordinator, the checkpoint history,
// each contract with its participants, signatures, datasets, runs, a
// summary of their outcomes and its timeline, drawn and listed, filtered by
// event type, participant and time), the last failed audit, any rollback
// or fork evidence on file, contracts that have expired and audits older
// than opts.StaleAfter. The home page and each contract page export their
// data as JSON or CSV (?format=json, ?format=csv; docs/audit.md). It reads
// the directory on every request and never writes to it or talks to the
// coordinator. Pages are server-rendered HTML with one inline style sheet
// and no scripts, under a Content-Security-Policy that allows nothing else.
// Requests must name the host by IP address or as localhost, which keeps
// other web sites from reading the view through DNS rebinding.
func Handler(dir string, opts ViewOptions) http.Handler {
	v := &view{dir: dir, logger: opts.Logger, now: opts.Now, staleAfter: opts.StaleAfter}
	if v.logger == nil {
		v.logger = slog.New(slog.DiscardHandler)
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.staleAfter == 0 {
		v.staleAfter = DefaultStaleAfter
	}
	return v
}

type view struct {
	dir        string
	logger     *slog.Logger
	now        func() time.Time
	staleAfter time.Duration
}

func (v *view) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		v.fail(w, r, http.StatusMethodNotAllowed, "Method not allowed", "Method "+r.Method+" is not allowed: this view is read-only (GET and HEAD only).")
		return
	}
	if !localHost(r.Host) {
		v.fail(w, r, http.StatusForbidden, "Forbidden", "Request forbidden: open this view as http://127.0.0.1:PORT/ or http://localhost:PORT/ (the host "+r.Host+" is not an IP address or localhost).")
		return
	}
	p := v.load()
	switch {
	case r.URL.Path == "/":
		q, err := checkQuery(r.URL.Query(), "format")
		if err != nil {
			v.fail(w, r, http.StatusBadRequest, "Bad request", err.Error())
			return
		}
		p.Title = "Cleanroom audit"
		p.JSONLink, p.CSVLink = "/?format=json", "/?format=csv"
		v.respond(w, r, p, q.Get("format"), "index", "cleanroom-audit-contracts")
	case contractPath.MatchString(r.URL.Path):
		cid := contractPath.FindStringSubmatch(r.URL.Path)[1]
		if p.Facts == nil || p.Facts.Contracts[cid] == nil {
			v.fail(w, r, http.StatusNotFound, "Not found",
				"There is no verified audit of contract "+cid+" in this state directory. Audit it with `cleanroom audit log --contract FILE --state "+v.dir+"`, or pick a contract on the home page.")
			return
		}
		q, err := checkQuery(r.URL.Query(), "format", "type", "participant", "from", "to")
		if err != nil {
			v.fail(w, r, http.StatusBadRequest, "Bad request", err.Error())
			return
		}
		rep := p.Facts.Contracts[cid]
		f, err := parseFilter(q, rep)
		if err != nil {
			v.fail(w, r, http.StatusBadRequest, "Bad filter", err.Error()+" (the filter's fields are described in docs/audit.md §6)")
			return
		}
		p.View = newContractView(rep, f, p.Now)
		p.Title = "Contract " + rep.Contract.Name + " — Cleanroom audit"
		p.Stale = v.stale(rep.VerifiedAt, p.Now)
		fq := f.query()
		p.JSONLink, p.CSVLink = exportLink(r.URL.Path, fq, "json"), exportLink(r.URL.Path, fq, "csv")
		v.respond(w, r, p, q.Get("format"), "contract", "cleanroom-audit-"+cid)
	default:
		v.fail(w, r, http.StatusNotFound, "Not found",
			"There is no page "+r.URL.Path+" in this view: it has the home page (/) and one page per audited contract (/contracts/<contract id>).")
	}
}

// checkQuery refuses query parameters a page does not take, and any given
// twice.
func checkQuery(q url.Values, allowed ...string) (url.Values, error) {
	for k, vs := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return nil, fmt.Errorf("unknown query parameter %q: this page takes %s", k, strings.Join(allowed, ", "))
		}
		if len(vs) > 1 {
			return nil, fmt.Errorf("query parameter %q is given %d times; give it once", k, len(vs))
		}
	}
	return q, nil
}

func exportLink(path string, filter url.Values, format string) string {
	q := url.Values{}
	for k, vs := range filter {
		q[k] = vs
	}
	q.Set("format", format)
	return path + "?" + q.Encode()
}

// respond writes page p as HTML (template name), JSON or CSV.
func (v *view) respond(w http.ResponseWriter, r *http.Request, p *page, format, name, file string) {
	var (
		body        bytes.Buffer
		contentType string
		err         error
	)
	switch format {
	case "", "html":
		contentType = "text/html; charset=utf-8"
		err = pages.ExecuteTemplate(&body, name, p)
	case "json":
		contentType = "application/json"
		err = writeExportJSON(&body, p)
	case "csv":
		contentType = "text/csv; charset=utf-8"
		err = writeExportCSV(&body, p)
	default:
		v.fail(w, r, http.StatusBadRequest, "Bad request", fmt.Sprintf("format %q is not one this view exports: use format=json or format=csv (or none, for the page)", format))
		return
	}
	if err != nil {
		v.logger.Error("rendering the audit view", "page", r.URL.String(), "err", err)
		v.fail(w, r, http.StatusInternalServerError, "Internal error", "Internal error rendering the page; the view's log on stderr says what.")
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	if format == "json" || format == "csv" {
		h.Set("Content-Disposition", `attachment; filename="`+file+"."+format+`"`)
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body.Bytes())
	}
}

// fail writes an error page in the view's style.
func (v *view) fail(w http.ResponseWriter, r *http.Request, code int, heading, msg string) {
	p := &page{Title: fmt.Sprintf("%s (%d) — Cleanroom audit", heading, code), Dir: v.dir, ErrorPage: &errorPage{Code: code, Heading: heading, Message: msg}}
	var body bytes.Buffer
	h := w.Header()
	h.Del("Content-Disposition")
	if err := pages.ExecuteTemplate(&body, "error", p); err != nil {
		v.logger.Error("rendering the audit view's error page", "page", r.URL.String(), "err", err)
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		fmt.Fprintln(w, msg)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		w.Write(body.Bytes())
	}
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

// stale returns how old an audit verified at t is, if older than the
// threshold.
func (v *view) stale(t, now time.Time) *staleness {
	if v.staleAfter < 0 || t.IsZero() {
		return nil
	}
	if d := now.Sub(t); d > v.staleAfter {
		return &staleness{VerifiedAt: t, Age: d}
	}
	return nil
}

// load reads what the view shows; problems reading become the page's Error.
func (v *view) load() *page {
	now := v.now().UTC()
	p := &page{Dir: v.dir, Now: now, StaleAfter: v.staleAfter}
	var errs []string
	facts, err := ReadFacts(v.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		errs = append(errs, err.Error())
	default:
		p.Facts = facts
		for _, r := range facts.Contracts {
			row := newContractRow(r, now)
			row.Stale = v.stale(r.VerifiedAt, now) != nil
			p.Rows = append(p.Rows, row)
		}
		sort.Slice(p.Rows, func(i, j int) bool {
			a, b := p.Rows[i], p.Rows[j]
			return a.Name < b.Name || (a.Name == b.Name && a.ID < b.ID)
		})
		p.Stale = v.stale(facts.VerifiedAt, now)
	}
	if p.Evidence, err = ListEvidence(v.dir); err != nil {
		errs = append(errs, err.Error())
	}
	if p.Failure, err = ReadLastFailure(v.dir); err != nil {
		errs = append(errs, err.Error())
	}
	if p.Failure != nil {
		p.FailureCurrent = p.Facts == nil || !p.Failure.Failure.Time.Before(p.Facts.VerifiedAt)
	}
	p.Error = strings.Join(errs, "; ")
	return p
}
