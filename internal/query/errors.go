package query

import (
	"errors"
	"fmt"
)

// Error is an invalid-parameter error: the query (or a part of it) is
// malformed. Key locates the offending parameter using the query's own
// spelling, e.g. "query.filter[0].o" or "query.aggregate[1].group.fields[0].operator".
type Error struct {
	Key     string
	Message string
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Key == "" {
		return "invalid parameter: " + e.Message
	}
	return fmt.Sprintf("invalid parameter %s: %s", e.Key, e.Message)
}

// IsInvalid reports whether err is (or wraps) an *Error, i.e. whether it was
// caused by an invalid query and should be answered with a 400
// (ERROR_INVALID_PARAMETER) rather than a server error.
func IsInvalid(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

func errorf(key, format string, args ...any) *Error {
	return &Error{Key: key, Message: fmt.Sprintf(format, args...)}
}
