package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrClosed is returned (possibly wrapped; use errors.Is) by every method
// called after Close.
var ErrClosed = errors.New("pgstore: store is closed")

// UnavailableError reports that the database could not be reached or
// stopped answering: connection refused or reset, the server shutting down
// or refusing connections, an operation that ran past Config.OpTimeout.
// The outcome of a write that failed this way is unknown (it may have
// committed); a compare-and-swap retried after it reports the truth as a
// *driver.ConflictError. Lock fails with it rather than waiting for the
// database to come back, so a refresh or authorization that needs the lease
// fails promptly instead of hanging.
//
// It never holds a stored value: Err is the driver's error about the
// connection, or a server error stripped to its code and message.
type UnavailableError struct {
	Op  string // "get", "put", "delete", "lock", "watch", "open"
	Key string // "" for operations on no key
	Err error
}

func (e *UnavailableError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("pgstore: database unavailable: %s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("pgstore: database unavailable: %s %q: %v", e.Op, e.Key, e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// QueryError reports a statement the server refused for a reason other
// than availability (a missing privilege, a table altered by hand). It
// carries the SQLSTATE code and the server's primary message only: the
// detail and context fields, which can quote a row and so a stored value,
// are dropped.
type QueryError struct {
	Op      string
	Key     string
	Code    string // SQLSTATE
	Message string
}

func (e *QueryError) Error() string {
	return fmt.Sprintf("pgstore: %s %q: %s (SQLSTATE %s)", e.Op, e.Key, e.Message, e.Code)
}

// opError wraps the caller's context error with the operation.
type opError struct {
	Op, Key string
	Err     error
}

func (e *opError) Error() string { return fmt.Sprintf("pgstore: %s %q: %v", e.Op, e.Key, e.Err) }
func (e *opError) Unwrap() error { return e.Err }

// classify turns a pgx error into the package's errors. ctx is the
// caller's context: when it has ended, its error is what is returned.
func classify(ctx context.Context, op, key string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return &opError{Op: op, Key: key, Err: cerr}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		clean := &pgconn.PgError{Severity: pgErr.Severity, Code: pgErr.Code, Message: pgErr.Message}
		if unavailableCode(pgErr.Code) {
			return &UnavailableError{Op: op, Key: key, Err: clean}
		}
		return &QueryError{Op: op, Key: key, Code: pgErr.Code, Message: pgErr.Message}
	}
	// Anything that is not an answer from the server is about reaching
	// it: dial errors, resets, EOF, timeouts, a closed pool connection.
	return &UnavailableError{Op: op, Key: key, Err: err}
}

// unavailableCode reports SQLSTATEs that mean the server cannot serve now:
// class 08 (connection exception), 53 (insufficient resources, e.g.
// too_many_connections), 57P01-57P05 (shutdown, crash, cannot connect now,
// database dropped, idle session timeout).
func unavailableCode(code string) bool {
	if len(code) != 5 {
		return false
	}
	switch code[:2] {
	case "08", "53":
		return true
	case "57":
		return code[2] == 'P'
	}
	return false
}
