package tasks

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/store"
)

// ErrorCode is the gRPC code a task failure carries.
func ErrorCode(err error) codes.Code {
	if st, ok := status.FromError(err); ok {
		return st.Code()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return codes.Aborted
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case store.IsConflict(err):
		return codes.Aborted
	case errors.Is(err, store.ErrNotLeader), errors.Is(err, store.ErrUnavailable):
		return codes.Unavailable
	}
	return codes.Unknown
}

// ErrorText is the failure's message as the task records it.
func ErrorText(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}

// Violations carries a precondition failure's violations into the task
// record, so clients read typed blockers instead of parsing text.
func Violations(err error) []*acliv1.Violation {
	s, ok := status.FromError(err)
	if !ok {
		return nil
	}
	var out []*acliv1.Violation
	for _, d := range s.Details() {
		if pf, ok := d.(*errdetails.PreconditionFailure); ok {
			for _, v := range pf.GetViolations() {
				out = append(out, &acliv1.Violation{Type: v.GetType(), Subject: v.GetSubject(), Description: v.GetDescription()})
			}
		}
	}
	return out
}
