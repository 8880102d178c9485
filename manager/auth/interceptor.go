package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// Recorder keeps audit entries (manager/audit.Log).
type Recorder interface {
	Record(*acliv1.AuditEntry) error
}

// Config assembles an Authenticator.
type Config struct {
	// ClientCAs verifies client certificates; nil: certificates identify nobody.
	ClientCAs *x509.CertPool
	// Tokens checks bearer tokens; nil: tokens identify nobody.
	Tokens *Tokens
	// Anonymous is the role of callers without credentials; None refuses them.
	Anonymous Role
	// Audit receives every mutation and every denial; nil: none kept.
	Audit Recorder
	// Logger reports audit failures (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock for certificate validity (default time.Now).
	Now func() time.Time
}

// Authenticator identifies callers, authorizes RPCs by role and audits.
type Authenticator struct {
	cfg      Config
	internal string

	// verified caches certificate verifications: a connection presents the
	// same parsed certificate on every call, so the chain is checked once
	// per connection (validity times are still checked on every call).
	mu       sync.Mutex
	verified map[*x509.Certificate]Principal
}

// maxVerified bounds the cache; it is emptied when full.
const maxVerified = 4096

// New returns an Authenticator; it also mints the secret of clusterd's own
// internal client (see InternalCredentials).
func New(cfg Config) *Authenticator {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	return &Authenticator{cfg: cfg, internal: "internal_" + base64.RawURLEncoding.EncodeToString(b[:]),
		verified: map[*x509.Certificate]Principal{}}
}

// InternalCredentials identify clusterd's own in-process clients (the sim's
// SSH servers reading the model) as the viewer "clusterd".
func (a *Authenticator) InternalCredentials() credentials.PerRPCCredentials {
	return bearerCreds(a.internal)
}

type bearerCreds string

func (b bearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearerCreds) RequireTransportSecurity() bool { return false }

// Authenticate returns the caller of ctx. A token, when sent, must be valid;
// otherwise a client certificate, when presented, must verify; otherwise the
// caller is anonymous, if that is allowed.
func (a *Authenticator) Authenticate(ctx context.Context) (Principal, error) {
	if cert := peerCert(ctx); cert != nil && isManagerCert(cert) {
		// Another manager forwarding a call it authenticated.
		m, err := a.verifyCert(cert)
		if err != nil {
			return Principal{}, err
		}
		return forwarded(ctx, m)
	}
	if tok, ok := bearerToken(ctx); ok {
		if subtle.ConstantTimeCompare([]byte(tok), []byte(a.internal)) == 1 {
			return Principal{User: "clusterd", Role: Viewer, Method: MethodInternal}, nil
		}
		if a.cfg.Tokens == nil {
			return Principal{}, status.Error(codes.Unauthenticated, "unauthenticated: this clusterd accepts no tokens")
		}
		p, err := a.cfg.Tokens.Verify(ctx, tok)
		if err != nil {
			return Principal{}, status.Errorf(codes.Unauthenticated, "unauthenticated: %v", err)
		}
		return p, nil
	}
	if cert := peerCert(ctx); cert != nil {
		return a.verifyCert(cert)
	}
	if a.cfg.Anonymous >= Viewer {
		return Principal{User: "anonymous", Role: a.cfg.Anonymous, Method: MethodAnonymous}, nil
	}
	return Principal{}, status.Error(codes.Unauthenticated,
		"unauthenticated: clusterd needs a client certificate (--cert/--key) or a token (--token)")
}

func (a *Authenticator) verifyCert(cert *x509.Certificate) (Principal, error) {
	if a.cfg.ClientCAs == nil {
		return Principal{}, status.Error(codes.Unauthenticated, "unauthenticated: this clusterd accepts no client certificates (use a token)")
	}
	now := a.cfg.Now()
	if now.After(cert.NotAfter) {
		return Principal{}, status.Errorf(codes.Unauthenticated, "unauthenticated: client certificate %q expired at %s",
			cert.Subject.CommonName, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(cert.NotBefore) {
		return Principal{}, status.Errorf(codes.Unauthenticated, "unauthenticated: client certificate %q is not valid before %s",
			cert.Subject.CommonName, cert.NotBefore.UTC().Format(time.RFC3339))
	}
	a.mu.Lock()
	p, ok := a.verified[cert]
	a.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := a.verifyChain(cert, now)
	if err == nil {
		a.mu.Lock()
		if len(a.verified) >= maxVerified {
			clear(a.verified)
		}
		a.verified[cert] = p
		a.mu.Unlock()
	}
	return p, err
}

func (a *Authenticator) verifyChain(cert *x509.Certificate, now time.Time) (Principal, error) {
	if _, err := cert.Verify(x509.VerifyOptions{Roots: a.cfg.ClientCAs, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return Principal{}, status.Errorf(codes.Unauthenticated, "unauthenticated: client certificate %q is not signed by the cluster's CA", cert.Subject.CommonName)
	}
	user := cert.Subject.CommonName
	if isManagerCert(cert) {
		return Principal{User: user, Role: None, Method: MethodCertificate}, nil
	}
	if CheckUser(user) != nil {
		return Principal{}, status.Errorf(codes.Unauthenticated, "unauthenticated: client certificate CN %q is not a user name", user)
	}
	role := None
	for _, o := range cert.Subject.Organization {
		if r, err := ParseRole(o); err == nil && r > role {
			role = r
		}
	}
	if role == None {
		return Principal{}, status.Errorf(codes.PermissionDenied, "permission denied: client certificate of %s names no role (O=viewer, operator or admin)", user)
	}
	return Principal{User: user, Role: role, Method: MethodCertificate}, nil
}

func bearerToken(ctx context.Context) (string, bool) {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if tok, ok := strings.CutPrefix(v, "Bearer "); ok {
			return strings.TrimSpace(tok), true
		}
	}
	return "", false
}

func peerCert(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return nil
	}
	return ti.State.PeerCertificates[0]
}

// Authorize authenticates the caller of fullMethod and checks its role.
func (a *Authenticator) Authorize(ctx context.Context, fullMethod string) (Principal, error) {
	p, err := a.Authenticate(ctx)
	if err != nil {
		return p, err
	}
	need, ok := RoleFor(fullMethod)
	if !ok {
		return p, status.Errorf(codes.PermissionDenied, "permission denied: %s has no role assigned; nobody may call it", shortMethod(fullMethod))
	}
	if !p.Role.Allows(need) {
		return p, status.Errorf(codes.PermissionDenied, "permission denied: %s needs the %s role; %s has %s",
			shortMethod(fullMethod), need, p.User, p.Role)
	}
	return p, nil
}

// shortMethod is "VmService/CreateVm" for "/acli.v1.VmService/CreateVm".
func shortMethod(full string) string {
	s := strings.TrimPrefix(full, "/")
	if i := strings.LastIndex(s, "."); i >= 0 && i < strings.Index(s, "/") {
		s = s[i+1:]
	}
	return s
}

// UnaryInterceptor authorizes and audits unary calls.
func (a *Authenticator) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		p, err := a.Authorize(ctx, info.FullMethod)
		if err != nil {
			a.audit(ctx, p, info.FullMethod, req, nil, err)
			return nil, err
		}
		resp, err := handler(NewContext(ctx, p), req)
		if Mutating(info.FullMethod) || isDenial(err) {
			a.audit(ctx, p, info.FullMethod, req, resp, err)
		}
		return resp, err
	}
}

// StreamInterceptor authorizes streams (watches); denials are audited.
func (a *Authenticator) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		p, err := a.Authorize(ss.Context(), info.FullMethod)
		if err != nil {
			a.audit(ss.Context(), p, info.FullMethod, nil, nil, err)
			return err
		}
		return handler(srv, &principalStream{ServerStream: ss, ctx: NewContext(ss.Context(), p)})
	}
}

type principalStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *principalStream) Context() context.Context { return s.ctx }

func isDenial(err error) bool {
	c := status.Code(err)
	return c == codes.PermissionDenied || c == codes.Unauthenticated
}

func (a *Authenticator) audit(ctx context.Context, p Principal, method string, req, resp any, err error) {
	if a.cfg.Audit == nil {
		return
	}
	e := &acliv1.AuditEntry{Time: timestamppb.New(a.cfg.Now()), Principal: p.User, Rpc: method,
		Result: status.Code(err).String()}
	if p.Role != None {
		e.Role = p.Role.String()
	}
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		e.Source = pr.Addr.String()
	}
	if p.Source != "" {
		e.Source = p.Source
	}
	if err != nil {
		e.Error = status.Convert(err).Message()
	}
	if m, ok := req.(proto.Message); ok {
		e.Args = redactedJSON(m)
	}
	if t, ok := resp.(*acliv1.Task); ok {
		e.TaskUuid = t.GetUuid()
	}
	if rerr := a.cfg.Audit.Record(e); rerr != nil {
		a.cfg.Logger.Error("audit log", "err", rerr, "rpc", method, "principal", p.User)
	}
}

// secretFields are request fields never written to the audit log.
var secretFields = map[protoreflect.Name]bool{"secret": true, "token": true, "password": true, "private_key": true, "chap_secret": true}

// redactedJSON is m as compact JSON with secret fields replaced.
func redactedJSON(m proto.Message) string {
	c := proto.Clone(m)
	redact(c.ProtoReflect())
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(c)
	if err != nil {
		return ""
	}
	return compactJSON(b)
}

func redact(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case secretFields[fd.Name()] && fd.Kind() == protoreflect.StringKind && !fd.IsList() && !fd.IsMap():
			m.Set(fd, protoreflect.ValueOfString("[redacted]"))
		case fd.Kind() == protoreflect.MessageKind && fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				redact(l.Get(i).Message())
			}
		case fd.Kind() == protoreflect.MessageKind && !fd.IsMap():
			redact(v.Message())
		}
		return true
	})
}

// compactJSON strips the random spaces protojson inserts.
func compactJSON(b []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return string(b)
	}
	return buf.String()
}

// Denial formats a PermissionDenied for a role check made inside a handler
// (e.g. on a field that needs more than the RPC's role).
func Denial(what string, need Role, p Principal) error {
	return status.Errorf(codes.PermissionDenied, "permission denied: %s needs the %s role; %s has %s", what, need, p.User, p.Role)
}
