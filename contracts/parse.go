package contracts

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"cleanroom.dev/cleanroom/cleanroom"
)

// ErrInvalid is wrapped by every error that reports a malformed or
// inconsistent contract.
var ErrInvalid = errors.New("invalid contract")

// MaxSize bounds the size of a contract document.
const MaxSize = 1 << 20

// Limits on list lengths, so a hostile contract cannot make the coordinator
// do unbounded work.
const (
	MaxParticipants = 64
	MaxDatasets     = 64
	MaxColumns      = 1024
	MaxMeasurements = 64
	MaxModels       = 16
	MaxModelArgs    = 64
	maxNameLen      = 200
)

var (
	participantIDPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	datasetIDPattern     = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	columnNamePattern    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)
	modelNamePattern     = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
)

// ParseOptions adjust Parse.
type ParseOptions struct {
	// Now is the time against which expiry is checked. Zero means
	// time.Now().
	Now time.Time
	// AllowExpired accepts a contract whose expires_at has passed. Auditors
	// and result verifiers use it: a contract's history stays verifiable
	// after it ends. Nothing new may happen under an expired contract.
	AllowExpired bool
}

// ParseFile reads and parses a contract file. Errors name the file.
func ParseFile(path string, opts ParseOptions) (*Contract, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(data, opts)
	var pe *ParseError
	if errors.As(err, &pe) {
		pe.File = path
	}
	return c, err
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading contract: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading contract %s: %w", path, err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalid, path, MaxSize)
	}
	return data, nil
}

// Parse parses a contract written as YAML or JSON (JSON is read as the YAML
// it also is), strictly: unknown or duplicate fields, wrong types, bad ids,
// dangling references, impossible policies, malformed hex and (unless
// allowed) past expiry are errors that name the field and line. All problems
// are reported together in a *ParseError.
func Parse(data []byte, opts ParseOptions) (*Contract, error) {
	if len(data) > MaxSize {
		return nil, &ParseError{Problems: []*FieldError{{Msg: fmt.Sprintf("contract is larger than %d bytes", MaxSize)}}}
	}
	if !utf8.Valid(data) {
		return nil, &ParseError{Problems: []*FieldError{{Msg: "contract is not valid UTF-8"}}}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, &ParseError{Problems: []*FieldError{{Msg: "not valid YAML or JSON: " + strings.TrimPrefix(err.Error(), "yaml: ")}}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &ParseError{Problems: []*FieldError{{Line: extra.Line, Msg: "a contract file holds exactly one document"}}}
	}
	if len(doc.Content) != 1 {
		return nil, &ParseError{Problems: []*FieldError{{Msg: "contract is empty"}}}
	}
	d := &decoder{}
	d.checkNoAliases(doc.Content[0])
	if len(d.problems) > 0 {
		return nil, &ParseError{Problems: d.problems}
	}
	c, lines := d.contract(doc.Content[0])
	if len(d.problems) == 0 {
		v := &validator{decoder: d, c: c, lines: lines}
		v.validate(opts)
	}
	if len(d.problems) > 0 {
		slices.SortStableFunc(d.problems, func(a, b *FieldError) int { return a.Line - b.Line })
		return nil, &ParseError{Problems: d.problems}
	}
	c.id = sha256.Sum256(c.CanonicalBytes())
	return c, nil
}

// lineMap remembers the line of each field path, so that checks made after
// decoding can still name the line.
type lineMap map[string]int

// contract decodes the top-level mapping into a Contract, checking syntax
// and the form of each value. Cross-references are checked by validate.
func (d *decoder) contract(n *yaml.Node) (*Contract, lineMap) {
	c := &Contract{}
	lines := lineMap{}
	at := func(path string, n *yaml.Node) { lines[path] = n.Line }
	d.mapping(n, "", []field{
		{"version", true, func(n *yaml.Node, p string) {
			at(p, n)
			if v, ok := d.integer(n, p); ok {
				if v != 1 {
					d.errorf(p, n, "unsupported version %d (this software reads version 1)", v)
				}
				c.Version = int(v)
			}
		}},
		{"name", true, func(n *yaml.Node, p string) {
			at(p, n)
			if s, ok := d.str(n, p); ok {
				if s == "" || len(s) > maxNameLen || strings.TrimSpace(s) != s || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
					d.errorf(p, n, "must be 1 to %d printable characters without leading or trailing spaces", maxNameLen)
				}
				c.Name = s
			}
		}},
		{"expires_at", true, func(n *yaml.Node, p string) {
			at(p, n)
			if n.Kind != yaml.ScalarNode || (n.Tag != "!!timestamp" && n.Tag != "!!str") {
				d.errorf(p, n, "must be an RFC 3339 time such as 2027-03-31T00:00:00Z, got %s", describe(n))
				return
			}
			t, err := time.Parse(time.RFC3339, n.Value)
			if err != nil {
				d.errorf(p, n, "must be an RFC 3339 time with a zone, such as 2027-03-31T00:00:00Z; got %q", truncate(n.Value))
				return
			}
			if t.Nanosecond() != 0 {
				d.errorf(p, n, "must be a whole second (no fractional seconds)")
				return
			}
			c.ExpiresAt = t.UTC()
		}},
		{"participants", true, func(n *yaml.Node, p string) {
			at(p, n)
			d.sequence(n, p, func(_ int, item *yaml.Node, p string) {
				at(p, item)
				c.Participants = append(c.Participants, d.participant(item, p, at))
			})
		}},
		{"datasets", true, func(n *yaml.Node, p string) {
			at(p, n)
			d.sequence(n, p, func(_ int, item *yaml.Node, p string) {
				at(p, item)
				c.Datasets = append(c.Datasets, d.dataset(item, p, at))
			})
		}},
		{"algorithm", true, func(n *yaml.Node, p string) {
			at(p, n)
			c.Algorithm = d.algorithm(n, p, at)
		}},
		{"models", false, func(n *yaml.Node, p string) {
			at(p, n)
			d.sequence(n, p, func(_ int, item *yaml.Node, p string) {
				at(p, item)
				c.Models = append(c.Models, d.model(item, p, at))
			})
			if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
				d.errorf(p, n, "an empty models list: leave the field out when the contract has no model")
			}
		}},
		{"output", true, func(n *yaml.Node, p string) {
			at(p, n)
			c.Output = d.output(n, p, at)
		}},
		{"coordinator", true, func(n *yaml.Node, p string) {
			at(p, n)
			c.Coordinator = d.coordinator(n, p, at)
		}},
		{"supersedes", false, func(n *yaml.Node, p string) {
			at(p, n)
			if s, ok := d.str(n, p); ok && s == "" {
				return // an empty id is the same as none
			}
			if b, ok := d.hexBytes(n, p, 32); ok {
				var id ID
				copy(id[:], b)
				c.Supersedes = &id
			}
		}},
	})
	return c, lines
}

func (d *decoder) participant(n *yaml.Node, path string, at func(string, *yaml.Node)) Participant {
	var p Participant
	d.mapping(n, path, []field{
		{"id", true, func(n *yaml.Node, path string) {
			at(path, n)
			if s, ok := d.str(n, path); ok {
				if !participantIDPattern.MatchString(s) {
					d.errorf(path, n, "%q is not a valid participant id (lowercase letter, then up to 62 lowercase letters, digits or '-')", truncate(s))
				}
				p.ID = s
			}
		}},
		{"roles", true, func(n *yaml.Node, path string) {
			at(path, n)
			seen := map[Role]bool{}
			d.sequence(n, path, func(_ int, item *yaml.Node, ip string) {
				s, ok := d.str(item, ip)
				if !ok {
					return
				}
				r := Role(s)
				if !slices.Contains(Roles, r) {
					d.errorf(ip, item, "unknown role %q (want data_provider, algorithm_provider, result_recipient or auditor)", truncate(s))
					return
				}
				if seen[r] {
					d.errorf(ip, item, "role %s is listed twice", r)
					return
				}
				seen[r] = true
			})
			for _, r := range Roles {
				if seen[r] {
					p.Roles = append(p.Roles, r)
				}
			}
			if len(n.Content) == 0 && n.Kind == yaml.SequenceNode {
				d.errorf(path, n, "a participant needs at least one role")
			}
		}},
		{"public_key", true, func(n *yaml.Node, path string) {
			at(path, n)
			if s, ok := d.str(n, path); ok {
				pk, err := cleanroom.ParsePublicKey(s)
				if err != nil {
					d.errorf(path, n, "%v", err)
					return
				}
				p.PublicKey = pk
			}
		}},
	})
	return p
}

func (d *decoder) dataset(n *yaml.Node, path string, at func(string, *yaml.Node)) Dataset {
	var ds Dataset
	d.mapping(n, path, []field{
		{"id", true, func(n *yaml.Node, path string) {
			at(path, n)
			if s, ok := d.str(n, path); ok {
				if !datasetIDPattern.MatchString(s) {
					d.errorf(path, n, "%q is not a valid dataset id (it is also the SQL table name: lowercase letter, then up to 62 lowercase letters, digits or '_')", truncate(s))
				}
				ds.ID = s
			}
		}},
		{"provider", true, func(n *yaml.Node, path string) {
			at(path, n)
			ds.Provider, _ = d.str(n, path)
		}},
		{"columns", true, func(n *yaml.Node, path string) {
			at(path, n)
			d.sequence(n, path, func(_ int, item *yaml.Node, p string) {
				at(p, item)
				ds.Columns = append(ds.Columns, d.column(item, p))
			})
		}},
		{"privacy_unit", false, func(n *yaml.Node, path string) {
			at(path, n)
			if s, ok := d.str(n, path); ok {
				if s == "" {
					d.errorf(path, n, "must name a column (omit the field for a dataset without a privacy unit)")
				}
				ds.PrivacyUnit = s
			}
		}},
		{"dimensions", false, func(n *yaml.Node, path string) {
			at(path, n)
			ds.Dimensions = d.strings(n, path)
			if ds.Dimensions == nil {
				ds.Dimensions = []string{}
			}
			for i, item := range n.Content {
				at(index(path, i), item)
			}
		}},
		{"aggregations", false, func(n *yaml.Node, path string) {
			at(path, n)
			ds.Aggregations = d.aggregations(n, path, at)
		}},
	})
	return ds
}

// aggregations decodes a mapping from column names to lists of aggregate
// function names.
func (d *decoder) aggregations(n *yaml.Node, path string, at func(string, *yaml.Node)) []Aggregation {
	if n.Kind != yaml.MappingNode {
		d.errorf(path, n, "must be a mapping from column names to lists of aggregate functions, got %s", describe(n))
		return nil
	}
	out := []Aggregation{}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			d.errorf(path, k, "keys must be column names, got %s", describe(k))
			continue
		}
		p := join(path, k.Value)
		at(p, k)
		if first, dup := seen[k.Value]; dup {
			d.errorf(p, k, "duplicate field (first given on line %d)", first.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, Aggregation{Column: k.Value, Functions: d.strings(v, p)})
	}
	return out
}

func (d *decoder) column(n *yaml.Node, path string) Column {
	var col Column
	d.mapping(n, path, []field{
		{"name", true, func(n *yaml.Node, p string) {
			if s, ok := d.str(n, p); ok {
				if !columnNamePattern.MatchString(s) {
					d.errorf(p, n, "%q is not a valid column name (letter or '_', then up to 62 letters, digits or '_')", truncate(s))
				}
				col.Name = s
			}
		}},
		{"type", true, func(n *yaml.Node, p string) {
			if s, ok := d.str(n, p); ok {
				t, err := ParseColumnType(s)
				if err != nil {
					d.errorf(p, n, "%v", err)
					return
				}
				col.Type = t
			}
		}},
		{"nullable", false, func(n *yaml.Node, p string) {
			if b, ok := d.boolean(n, p); ok {
				col.NotNull = !b
			}
		}},
	})
	return col
}

func (d *decoder) algorithm(n *yaml.Node, path string, at func(string, *yaml.Node)) Algorithm {
	var a Algorithm
	d.mapping(n, path, []field{
		{"provider", true, func(n *yaml.Node, p string) {
			at(p, n)
			a.Provider, _ = d.str(n, p)
		}},
		{"language", true, func(n *yaml.Node, p string) {
			if s, ok := d.str(n, p); ok {
				if s != LanguageDuckDBSQL {
					d.errorf(p, n, "unsupported language %q (the only language is %s: exactly one SELECT statement)", truncate(s), LanguageDuckDBSQL)
				}
				a.Language = s
			}
		}},
		{"sha256", true, func(n *yaml.Node, p string) {
			if b, ok := d.hexBytes(n, p, 32); ok {
				copy(a.SHA256[:], b)
			}
		}},
		{"confidential", false, func(n *yaml.Node, p string) {
			a.Confidential, _ = d.boolean(n, p)
		}},
		{"parameters", false, func(n *yaml.Node, p string) {
			at(p, n)
			a.Parameters = d.parameters(n, p, at)
		}},
	})
	return a
}

func (d *decoder) model(n *yaml.Node, path string, at func(string, *yaml.Node)) Model {
	var m Model
	typ := func(n *yaml.Node, p string) (ColumnType, bool) {
		s, ok := d.str(n, p)
		if !ok {
			return ColumnType{}, false
		}
		t, err := ParseColumnType(s)
		if err != nil {
			d.errorf(p, n, "%v", err)
			return ColumnType{}, false
		}
		if t.Kind == KindDecimal {
			d.errorf(p, n, "a model cannot take or return %s; cast it to float64 in the SQL (decimals have no WebAssembly layout)", t)
			return ColumnType{}, false
		}
		return t, true
	}
	d.mapping(n, path, []field{
		{"name", true, func(n *yaml.Node, p string) {
			at(p, n)
			if s, ok := d.str(n, p); ok {
				if !modelNamePattern.MatchString(s) {
					d.errorf(p, n, "%q is not a valid model name (it is the SQL function name: lowercase letter, then up to 62 lowercase letters, digits or '_')", truncate(s))
				}
				m.Name = s
			}
		}},
		{"provider", true, func(n *yaml.Node, p string) {
			at(p, n)
			m.Provider, _ = d.str(n, p)
		}},
		{"sha256", true, func(n *yaml.Node, p string) {
			if b, ok := d.hexBytes(n, p, 32); ok {
				copy(m.SHA256[:], b)
			}
		}},
		{"confidential", false, func(n *yaml.Node, p string) {
			m.Confidential, _ = d.boolean(n, p)
		}},
		{"args", true, func(n *yaml.Node, p string) {
			at(p, n)
			d.sequence(n, p, func(_ int, item *yaml.Node, ip string) {
				if t, ok := typ(item, ip); ok {
					m.Args = append(m.Args, t)
				}
			})
			if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
				d.errorf(p, n, "a model takes at least one argument")
			}
			if len(n.Content) > MaxModelArgs {
				d.errorf(p, n, "%d arguments is more than the limit of %d", len(n.Content), MaxModelArgs)
			}
		}},
		{"result", true, func(n *yaml.Node, p string) {
			at(p, n)
			m.Result, _ = typ(n, p)
		}},
	})
	return m
}

func (d *decoder) output(n *yaml.Node, path string, at func(string, *yaml.Node)) Output {
	var o Output
	d.mapping(n, path, []field{
		{"recipients", true, func(n *yaml.Node, p string) {
			at(p, n)
			o.Recipients = d.strings(n, p)
			for i, item := range n.Content {
				at(index(p, i), item)
			}
		}},
		{"mode", false, func(n *yaml.Node, p string) {
			at(p, n)
			if s, ok := d.str(n, p); ok {
				switch m := OutputMode(s); m {
				case ModeAggregate, ModeDifferentialPrivacy, ModeCustom:
					o.Mode = m
				default:
					d.errorf(p, n, "unknown mode %q (want %s, %s or %s)", truncate(s), ModeAggregate, ModeDifferentialPrivacy, ModeCustom)
				}
			}
		}},
		{"group_size_column", false, func(n *yaml.Node, p string) {
			at(p, n)
			if s, ok := d.str(n, p); ok {
				if !columnNamePattern.MatchString(s) {
					d.errorf(p, n, "%q is not a valid column name", truncate(s))
				}
				o.GroupSizeColumn = s
			}
		}},
		{"min_group_size", false, func(n *yaml.Node, p string) {
			at(p, n)
			o.MinGroupSize, _ = d.integer(n, p)
		}},
		{"max_rows", true, func(n *yaml.Node, p string) {
			at(p, n)
			o.MaxRows, _ = d.integer(n, p)
		}},
		{"max_runs", true, func(n *yaml.Node, p string) {
			at(p, n)
			o.MaxRuns, _ = d.integer(n, p)
		}},
	})
	return o
}

func (d *decoder) coordinator(n *yaml.Node, path string, at func(string, *yaml.Node)) CoordinatorPolicy {
	var cp CoordinatorPolicy
	d.mapping(n, path, []field{
		{"platform", true, func(n *yaml.Node, p string) {
			at(p, n)
			if s, ok := d.str(n, p); ok {
				if Platform(s).Known() {
					cp.Platform = Platform(s)
				} else {
					d.errorf(p, n, "unknown platform %q (want one of %s)", truncate(s), platformList())
				}
			}
		}},
		{"measurements", false, func(n *yaml.Node, p string) {
			at(p, n)
			d.sequence(n, p, func(_ int, item *yaml.Node, ip string) {
				if b, ok := d.hexBytes(item, ip, 48); ok {
					var m [48]byte
					copy(m[:], b)
					if slices.Contains(cp.Measurements, m) {
						d.errorf(ip, item, "measurement listed twice")
						return
					}
					cp.Measurements = append(cp.Measurements, m)
				}
			})
		}},
		{"allow_debug", false, func(n *yaml.Node, p string) {
			cp.AllowDebug, _ = d.boolean(n, p)
		}},
		{"min_tcb", false, func(n *yaml.Node, p string) {
			cp.MinTCB = d.tcb(n, p)
		}},
		{"simulated_root_sha256", false, func(n *yaml.Node, p string) {
			at(p, n)
			if s, ok := d.str(n, p); ok && s == "" {
				return // an empty pin is the same as none
			}
			if b, ok := d.hexBytes(n, p, 32); ok {
				var h [32]byte
				copy(h[:], b)
				cp.SimulatedRootSHA256 = &h
			}
		}},
		{"tdx", false, func(n *yaml.Node, p string) {
			at(p, n)
			cp.TDX = d.tdx(n, p, at)
		}},
		{"nitro", false, func(n *yaml.Node, p string) {
			at(p, n)
			cp.Nitro = d.nitro(n, p, at)
		}},
		{"cca", false, func(n *yaml.Node, p string) {
			at(p, n)
			cp.CCA = d.cca(n, p, at)
		}},
	})
	return cp
}

func (d *decoder) tcb(n *yaml.Node, path string) TCB {
	var t TCB
	component := func(dst *uint8) func(*yaml.Node, string) {
		return func(n *yaml.Node, p string) {
			if v, ok := d.integer(n, p); ok {
				if v < 0 || v > 255 {
					d.errorf(p, n, "must be a security version number from 0 to 255, got %d", v)
					return
				}
				*dst = uint8(v)
			}
		}
	}
	d.mapping(n, path, []field{
		{"bootloader", true, component(&t.Bootloader)},
		{"tee", true, component(&t.TEE)},
		{"snp", true, component(&t.SNP)},
		{"microcode", true, component(&t.Microcode)},
	})
	return t
}

// hexBytes decodes a string of exactly 2*size hex digits (either case).
func (d *decoder) hexBytes(n *yaml.Node, path string, size int) ([]byte, bool) {
	s, ok := d.str(n, path)
	if !ok {
		return nil, false
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != size {
		d.errorf(path, n, "must be %d hex digits (%d bytes), got %q", 2*size, size, truncate(s))
		return nil, false
	}
	return b, true
}
