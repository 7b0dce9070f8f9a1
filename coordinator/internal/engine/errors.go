package engine

import (
	"errors"
	"fmt"
	"strings"

	"github.com/duckdb/duckdb-go/v2"
)

// ErrRefused is wrapped by every *RefusalError: the algorithm, a dataset or
// a result was refused on purpose, as opposed to failing.
var ErrRefused = errors.New("refused")

// ErrResourceLimit is wrapped by the error of a query or load that needed
// more memory than Config.MemoryLimit allows. The session stays usable.
var ErrResourceLimit = errors.New("resource limit exceeded")

// Layer names the defence that refused something.
type Layer int

// The layers, in the order a query meets them.
const (
	// LayerStatement is the statement check: DuckDB's parser must find
	// exactly one SELECT statement that reads only the loaded tables and its
	// own CTEs and calls only allowed functions (cleanroom/sqlcheck), and
	// its bound plan must read nothing else.
	LayerStatement Layer = iota + 1
	// LayerSandbox is the locked-down DuckDB itself: no file system, no
	// network, no extensions, no configuration changes.
	LayerSandbox
	// LayerPolicy is the contract's output policy, applied to the result.
	LayerPolicy
	// LayerInput is the check of a dataset's schema and Arrow buffers
	// before DuckDB reads them.
	LayerInput
	// LayerPrivacy is the privacy analysis of mode aggregate
	// (sqlcheck.Analyze): the rules of SPEC §7.1 on the algorithm's parse
	// tree, before it runs.
	LayerPrivacy
)

func (l Layer) String() string {
	switch l {
	case LayerStatement:
		return "statement check"
	case LayerSandbox:
		return "sandbox"
	case LayerPolicy:
		return "output policy"
	case LayerInput:
		return "input check"
	case LayerPrivacy:
		return "privacy analysis"
	}
	return fmt.Sprintf("layer(%d)", int(l))
}

// RefusalError reports a refusal: which layer refused, and why. It wraps
// ErrRefused and, when DuckDB gave one, DuckDB's own error.
type RefusalError struct {
	Layer  Layer
	Reason string
	Err    error // DuckDB's error, or nil
}

func (e *RefusalError) Error() string {
	var b strings.Builder
	b.WriteString("refused by the ")
	b.WriteString(e.Layer.String())
	b.WriteString(": ")
	b.WriteString(e.Reason)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(duckdbMessage(e.Err))
	}
	return b.String()
}

// Unwrap returns ErrRefused and the underlying error.
func (e *RefusalError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrRefused}
	}
	return []error{ErrRefused, e.Err}
}

func refuse(l Layer, err error, format string, args ...any) error {
	return &RefusalError{Layer: l, Reason: fmt.Sprintf(format, args...), Err: err}
}

// duckdbMessage returns DuckDB's message without trailing blank lines.
func duckdbMessage(err error) string {
	return strings.TrimRight(err.Error(), " \n")
}

// duckdbErrorType returns the type of a DuckDB error, or ErrorTypeInvalid.
func duckdbErrorType(err error) duckdb.ErrorType {
	var de *duckdb.Error
	if errors.As(err, &de) {
		return de.Type
	}
	return duckdb.ErrorTypeInvalid
}

// isSandboxError reports whether DuckDB refused an operation because of the
// lock-down, rather than because the query itself went wrong.
func isSandboxError(err error) bool {
	switch duckdbErrorType(err) {
	case duckdb.ErrorTypePermission, duckdb.ErrorTypeInvalidConfiguration,
		duckdb.ErrorTypeMissingExtension, duckdb.ErrorTypeAutoLoad, duckdb.ErrorTypeIO,
		duckdb.ErrorTypeHTTP, duckdb.ErrorTypeNetwork:
		return true
	case duckdb.ErrorTypeInvalidInput:
		return strings.Contains(err.Error(), "the configuration has been locked")
	}
	return false
}
