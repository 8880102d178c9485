// Package apierr builds the gRPC statuses clusterd returns, each carrying the
// structured details (google.rpc.BadRequest, PreconditionFailure,
// ResourceInfo) that let the CLI print an exact, one-line error and map it to
// an exit code. Every service builds its errors here so the wording and the
// detail types stay uniform.
package apierr

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

// withDetails attaches details to a status; attaching never fails for these
// well-known messages, but if it did the plain status is still correct.
func withDetails(st *status.Status, details ...protoadapt.MessageV1) error {
	if d, err := st.WithDetails(details...); err == nil {
		return d.Err()
	}
	return st.Err()
}

// Field is one bad request field.
type Field struct {
	Field       string
	Description string
}

// InvalidArgument reports bad input fields. The status message is the first
// violation's description, which is written to stand alone on one line.
func InvalidArgument(fields ...Field) error {
	br := &errdetails.BadRequest{}
	msgs := make([]string, 0, len(fields))
	for _, f := range fields {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field: f.Field, Description: f.Description,
		})
		msgs = append(msgs, f.Description)
	}
	return withDetails(status.New(codes.InvalidArgument, strings.Join(msgs, "; ")), br)
}

// BadField is InvalidArgument for a single field with a formatted description.
func BadField(field, format string, args ...any) error {
	return InvalidArgument(Field{Field: field, Description: fmt.Sprintf(format, args...)})
}

// Violation is one failed precondition.
type Violation struct {
	// Type groups violations, e.g. "MEMORY", "POWER_STATE", "BUSY".
	Type string
	// Subject names the entity, e.g. "host:h1".
	Subject     string
	Description string
}

// maxMessageViolations bounds the one-line message; the details carry all.
const maxMessageViolations = 4

// FailedPrecondition reports every violated rule. summary starts the message;
// the violations follow it (the first few, the details carry every one).
func FailedPrecondition(summary string, vs ...Violation) error {
	pf := &errdetails.PreconditionFailure{}
	for _, v := range vs {
		pf.Violations = append(pf.Violations, &errdetails.PreconditionFailure_Violation{
			Type: v.Type, Subject: v.Subject, Description: v.Description,
		})
	}
	return withDetails(status.New(codes.FailedPrecondition, joinSummary(summary, vs)), pf)
}

func joinSummary(summary string, vs []Violation) string {
	listed := listViolations(vs)
	switch {
	case listed == "":
		return summary
	case summary == "":
		return listed
	}
	return summary + ": " + listed
}

// listViolations is the part of a message that lists violations: the
// first few descriptions, then how many more.
func listViolations(vs []Violation) string {
	if len(vs) == 0 {
		return ""
	}
	parts := make([]string, 0, maxMessageViolations+1)
	for i, v := range vs {
		if i == maxMessageViolations {
			parts = append(parts, fmt.Sprintf("and %d more", len(vs)-i))
			break
		}
		parts = append(parts, v.Description)
	}
	return strings.Join(parts, "; ")
}

// Summary is the headline FailedPrecondition gave err, without the
// violations its message lists ("" when it gave none); errors of any other
// shape are their whole message.
func Summary(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	msg, listed := st.Message(), listViolations(Violations(err))
	if listed == "" {
		return msg
	}
	if msg == listed {
		return ""
	}
	if s, ok := strings.CutSuffix(msg, ": "+listed); ok {
		return s
	}
	return msg
}

// Violations are the violations err's PreconditionFailure lists (none for
// an error of another shape).
func Violations(err error) []Violation {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	var vs []Violation
	for _, d := range st.Details() {
		if pf, ok := d.(*errdetails.PreconditionFailure); ok {
			for _, v := range pf.GetViolations() {
				vs = append(vs, Violation{Type: v.GetType(), Subject: v.GetSubject(), Description: v.GetDescription()})
			}
		}
	}
	return vs
}

// Precondition is FailedPrecondition with a single violation whose
// description is also the whole message.
func Precondition(typ, subject, format string, args ...any) error {
	return FailedPrecondition("", Violation{Type: typ, Subject: subject, Description: fmt.Sprintf(format, args...)})
}

// Busy reports that an entity is being changed by another task. It is Aborted
// (a concurrency conflict the caller may retry) and names the running task
// (and its operation, when op is not "").
func Busy(kind, name, taskUUID, op string) error {
	task := taskUUID
	if op != "" {
		task += " (" + op + ")"
	}
	msg := fmt.Sprintf("%s %s is busy with task %s; wait for it to finish", kind, name, task)
	pf := &errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{
		Type: "BUSY", Subject: kind + ":" + name, Description: msg,
	}}}
	return withDetails(status.New(codes.Aborted, msg), pf)
}

// Changed reports that an entity changed (by another task or a host
// report) between a request's checks and its task's start, so the checks
// no longer hold. Aborted, like Busy: the caller may retry.
func Changed(kind, name string) error {
	msg := fmt.Sprintf("%s %s changed while the request was checked; retry it", kind, name)
	pf := &errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{
		Type: "CHANGED", Subject: kind + ":" + name, Description: msg,
	}}}
	return withDetails(status.New(codes.Aborted, msg), pf)
}

// NotFound reports a missing entity. candidates are the valid names used to
// suggest the nearest spelling.
func NotFound(kind, name string, candidates []string) error {
	msg := fmt.Sprintf("%s %q not found", kind, name)
	desc := fmt.Sprintf("no %s has the name or UUID %q", kind, name)
	if s := Nearest(name, candidates); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
		desc += fmt.Sprintf("; nearest is %q", s)
	}
	ri := &errdetails.ResourceInfo{ResourceType: kind, ResourceName: name, Description: desc}
	return withDetails(status.New(codes.NotFound, msg), ri)
}

// NotFoundBecause reports a name looked for where there is nothing of its
// kind to suggest (why says so), with the same details as NotFound.
func NotFoundBecause(kind, name, why string) error {
	ri := &errdetails.ResourceInfo{ResourceType: kind, ResourceName: name, Description: why}
	return withDetails(status.New(codes.NotFound, fmt.Sprintf("%s %q not found: %s", kind, name, why)), ri)
}

// AlreadyExists reports a name or UUID already in use.
func AlreadyExists(kind, name, what string) error {
	ri := &errdetails.ResourceInfo{ResourceType: kind, ResourceName: name, Description: what}
	return withDetails(status.New(codes.AlreadyExists, fmt.Sprintf("%s %s already exists: %s", kind, name, what)), ri)
}

// Internal wraps a failure of clusterd itself (e.g. the data file).
func Internal(what string, err error) error {
	return status.Errorf(codes.Internal, "%s: %v", what, err)
}

// Bounds on the work of a suggestion, which runs while the manager holds
// its model: a reference longer than a plausible typo of a name gets none,
// candidates whose length alone puts them out of reach are skipped, and the
// comparisons stop after suggestCells table cells.
const (
	maxSuggestRunes = 64
	suggestCells    = 1 << 20
)

// Nearest returns the candidate closest to s by edit distance, or "" when
// none is close enough to be a plausible typo.
func Nearest(s string, candidates []string) string {
	ls := []rune(strings.ToLower(s))
	if len(ls) > maxSuggestRunes {
		return ""
	}
	limit := min(len(ls)/2+1, 4)
	best, bestD := "", -1
	budget := suggestCells
	for _, c := range candidates {
		if abs(utf8.RuneCountInString(c)-len(ls)) > limit {
			continue // the distance is at least the length difference
		}
		lc := []rune(strings.ToLower(c))
		if budget -= (len(ls) + 1) * (len(lc) + 1); budget < 0 {
			break
		}
		d := distance(ls, lc)
		if bestD < 0 || d < bestD || (d == bestD && c < best) { // ties: the first in order
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > limit {
		return ""
	}
	return best
}

func abs(n int) int { return max(n, -n) }

// distance is the optimal string alignment distance between a and b:
// Levenshtein plus adjacent transpositions, the commonest typo ("scis").
func distance(ra, rb []rune) int {
	// Three rows of the table: the one before last is for transpositions.
	pp, prev, cur := make([]int, len(rb)+1), make([]int, len(rb)+1), make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], pp[j-2]+1)
			}
		}
		pp, prev, cur = prev, cur, pp
	}
	return prev[len(rb)]
}
