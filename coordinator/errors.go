package coordinator

import (
	"errors"
	"fmt"
	"net/http"
	"syscall"
)

// Error is a refusal the API reports to the client: an HTTP status, a
// stable code, a message saying what was wrong and, when useful, a hint
// saying what to do. docs/api.md lists the codes.
type Error struct {
	Status  int
	Code    string
	Message string
	Hint    string
	Err     error // the underlying error, if any
	// Private marks a message meant for the caller alone: the daemon's own
	// log, which the host reads, records only the code.
	Private bool
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

func newError(status int, code string, err error, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

func badRequest(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, "bad_request", nil, format, args...)
}

func forbidden(format string, args ...any) *Error {
	return newError(http.StatusForbidden, "forbidden", nil, format, args...)
}

func notFound(format string, args ...any) *Error {
	return newError(http.StatusNotFound, "not_found", nil, format, args...)
}

func conflict(format string, args ...any) *Error {
	return newError(http.StatusConflict, "conflict", nil, format, args...)
}

func unprocessable(err error, format string, args ...any) *Error {
	return newError(http.StatusUnprocessableEntity, "unprocessable", err, format, args...)
}

func internal(err error, format string, args ...any) *Error {
	return newError(http.StatusInternalServerError, "internal", err, format, args...)
}

func (e *Error) withHint(h string) *Error { e.Hint = h; return e }

// storageError reports a failure to store something durably: 507 when the
// disk is full (nothing was changed; the operator must free space), 500
// otherwise.
func storageError(err error, what string) *Error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return newError(http.StatusInsufficientStorage, "insufficient_storage", err,
			"%s: the coordinator's disk is full; nothing was changed", what).
			withHint("the operator must free space on the coordinator's data disk; then try again")
	}
	return internal(err, "%s: %v", what, err)
}

// asError turns any error into an *Error, treating unknown errors as
// internal.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return internal(err, "internal error: %v", err)
}
