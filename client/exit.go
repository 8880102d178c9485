package client

import (
	"context"
	"errors"
	"fmt"
	"strings"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Exit codes of acli: one table, no collisions (DESIGN.md).
const (
	ExitOK          = 0 // success
	ExitFailed      = 1 // the operation failed
	ExitUsage       = 2 // usage or bad input
	ExitNotFound    = 3 // an entity does not exist
	ExitDenied      = 4 // permission denied or unauthenticated
	ExitRefused     = 5 // refused by a precondition or a conflict
	ExitUnreachable = 6 // clusterd cannot be reached
	ExitTimeout     = 7 // timed out waiting; the task is still running
)

// statusExit is THE mapping from gRPC status codes to exit codes. Every code
// appears exactly once; codes absent here (Unknown, Internal, DataLoss,
// Unimplemented, Canceled) are plain failures.
var statusExit = map[codes.Code]int{
	codes.OK:                 ExitOK,
	codes.InvalidArgument:    ExitUsage,
	codes.OutOfRange:         ExitUsage,
	codes.NotFound:           ExitNotFound,
	codes.PermissionDenied:   ExitDenied,
	codes.Unauthenticated:    ExitDenied,
	codes.FailedPrecondition: ExitRefused,
	codes.Aborted:            ExitRefused,
	codes.AlreadyExists:      ExitRefused,
	codes.ResourceExhausted:  ExitRefused,
	codes.Unavailable:        ExitUnreachable,
	codes.DeadlineExceeded:   ExitTimeout,
}

// ExitForStatus maps one gRPC status code to its exit code.
func ExitForStatus(c codes.Code) int {
	if e, ok := statusExit[c]; ok {
		return e
	}
	return ExitFailed
}

// Error is an error that knows its exit code and its detail lines
// (field and precondition violations), each printed on its own line.
type Error struct {
	Code    int
	Msg     string
	Details []string
	Err     error
	// Missing names the entities a not-found error is about.
	Missing []string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error with the given exit code.
func Errorf(code int, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: code, Msg: err.Error(), Err: errors.Unwrap(err)}
}

// ExitCode returns the exit code for err: nil is 0, gRPC statuses go through
// the table, context deadlines are timeouts, anything else is a failure.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ae *Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	var ue *UnreachableError
	if errors.As(err, &ue) {
		return ExitUnreachable
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ExitTimeout
	}
	if s, ok := status.FromError(err); ok {
		return ExitForStatus(s.Code())
	}
	return ExitFailed
}

// UnknownNames are the entity names a not-found error is about, as given
// (acli prints each as "Unknown name: <name>").
func UnknownNames(err error) []string {
	var ae *Error
	if errors.As(err, &ae) && len(ae.Missing) > 0 {
		return ae.Missing
	}
	s, ok := status.FromError(err)
	if !ok || s.Code() != codes.NotFound {
		return nil
	}
	var out []string
	for _, d := range s.Details() {
		if ri, ok := d.(*errdetails.ResourceInfo); ok && ri.GetResourceName() != "" {
			out = append(out, ri.GetResourceName())
		}
	}
	return out
}

// Wrap turns a gRPC error into an *Error with its exit code, its message
// without the "rpc error: code = ... desc =" noise, and its details.
// Other errors are returned unchanged.
func Wrap(err error) error {
	if err == nil {
		return nil
	}
	var ae *Error
	if errors.As(err, &ae) {
		return err
	}
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := s.Message()
	if s.Code() == codes.Unavailable {
		msg = "clusterd unavailable: " + msg
	}
	return &Error{Code: ExitForStatus(s.Code()), Msg: msg, Details: Details(s), Err: err}
}

// Details renders the status details operators act on, one line each.
// Details the message already says (a single violation, a not-found
// resource) are left out, so the usual error stays one line.
func Details(s *status.Status) []string {
	var out []string
	said := func(desc string) bool { return desc != "" && strings.Contains(s.Message(), desc) }
	for _, d := range s.Details() {
		switch v := d.(type) {
		case *errdetails.BadRequest:
			for _, f := range v.GetFieldViolations() {
				if said(f.GetDescription()) {
					continue
				}
				out = append(out, fmt.Sprintf("%s: %s", f.GetField(), f.GetDescription()))
			}
		case *errdetails.PreconditionFailure:
			for _, p := range v.GetViolations() {
				if said(p.GetDescription()) {
					continue
				}
				line := p.GetDescription()
				if p.GetSubject() != "" {
					line = p.GetSubject() + ": " + line
				}
				if p.GetType() != "" {
					line = "[" + p.GetType() + "] " + line
				}
				out = append(out, line)
			}
		case *errdetails.ResourceInfo:
			// The message names the resource and the nearest spelling.
		case *errdetails.ErrorInfo:
			if v.GetReason() != "" {
				out = append(out, "reason: "+v.GetReason())
			}
		case *errdetails.Help:
			for _, l := range v.GetLinks() {
				out = append(out, "see: "+strings.TrimSpace(l.GetDescription()+" "+l.GetUrl()))
			}
		case *errdetails.LocalizedMessage:
			out = append(out, v.GetMessage())
		}
	}
	return out
}

// TaskError converts a finished, unsuccessful task into an *Error whose exit
// code comes from the task's recorded gRPC code.
func TaskError(op string, t *acliv1.Task) *Error {
	code := ExitFailed
	if t.GetErrorCode() != 0 {
		code = ExitForStatus(codes.Code(t.GetErrorCode()))
	}
	msg := t.GetError()
	if msg == "" {
		msg = strings.TrimPrefix(t.GetStatus().String(), "k")
	}
	return &Error{Code: code, Msg: fmt.Sprintf("%s: %s", op, msg)}
}
