package auth

import (
	"context"
	"crypto/x509"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/acli-dev/acli/manager/pki"
)

// Metadata a follower adds to a call it forwards to the leader: the caller
// it authenticated and authorized. The leader believes them only from a
// peer presenting a manager certificate of the cluster's CA.
const (
	ForwardedUser   = "acli-forwarded-user"
	ForwardedRole   = "acli-forwarded-role"
	ForwardedMethod = "acli-forwarded-method"
	ForwardedFor    = "acli-forwarded-for"
)

// ForwardedIdentity is the metadata naming the caller of ctx (already
// authenticated on this manager) for the leader.
func ForwardedIdentity(ctx context.Context) metadata.MD {
	p, ok := FromContext(ctx)
	if !ok {
		return nil
	}
	md := metadata.Pairs(ForwardedUser, p.User, ForwardedRole, p.Role.String(), ForwardedMethod, p.Method)
	src := p.Source
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil && src == "" {
		src = pr.Addr.String()
	}
	if src != "" {
		md.Set(ForwardedFor, src)
	}
	return md
}

func isManagerCert(cert *x509.Certificate) bool {
	return slices.Contains(cert.Subject.Organization, pki.ManagerOrganization)
}

// forwarded is the caller a follower vouches for; manager is the follower's
// own (verified) identity.
func forwarded(ctx context.Context, manager Principal) (Principal, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	one := func(k string) string {
		if v := md.Get(k); len(v) == 1 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	user := one(ForwardedUser)
	if user == "" {
		return Principal{}, status.Errorf(codes.Unauthenticated, "unauthenticated: a manager certificate (%s) identifies only the callers a follower forwards", manager.User)
	}
	role, err := ParseRole(one(ForwardedRole))
	if err != nil {
		return Principal{}, status.Errorf(codes.Unauthenticated, "unauthenticated: a forwarded call of %s names no role: %v", user, err)
	}
	return Principal{User: user, Role: role, Method: one(ForwardedMethod), Source: one(ForwardedFor)}, nil
}
