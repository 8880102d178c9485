package auth

import "context"

// How a principal was identified.
const (
	MethodCertificate = "certificate"
	MethodToken       = "token"
	MethodAnonymous   = "anonymous"
	MethodInternal    = "internal"
)

// Principal is an authenticated caller.
type Principal struct {
	User   string
	Role   Role
	Method string
	// Source is the caller's address when another manager forwarded the
	// call (the peer is then that manager); "" otherwise.
	Source string
}

// String names the principal for messages: "alice (operator, token)".
func (p Principal) String() string {
	return p.User + " (" + p.Role.String() + ", " + p.Method + ")"
}

type principalKey struct{}

// NewContext returns ctx carrying p; handlers read it with FromContext.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the caller's principal, if the call was authenticated.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// UserFromContext is the caller's user name, "" when unknown (tasks record it).
func UserFromContext(ctx context.Context) string {
	p, _ := FromContext(ctx)
	return p.User
}
