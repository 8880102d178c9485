package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/leader"
	"github.com/acli-dev/acli/manager/pki"
	"github.com/acli-dev/acli/manager/store/bolt"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type recorder struct {
	mu sync.Mutex
	es []*acliv1.AuditEntry
}

func (r *recorder) Record(e *acliv1.AuditEntry) error {
	r.mu.Lock()
	r.es = append(r.es, e)
	r.mu.Unlock()
	return nil
}

func newTokens(t *testing.T, now func() time.Time) *Tokens {
	t.Helper()
	st, err := bolt.Open(t.TempDir(), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return NewTokens(st, now)
}

func withToken(tok string) context.Context {
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok))
	return peer.NewContext(ctx, &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 4000}})
}

func withCert(c *x509.Certificate) context.Context {
	return peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 4000},
		AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}}}})
}

func wantCode(t *testing.T, err error, code codes.Code, text string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), text) {
		t.Fatalf("got %v, want %s containing %q", err, code, text)
	}
}

func TestTokens(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	toks := newTokens(t, clk.Now)
	a := New(Config{Tokens: toks, Now: clk.Now})
	ctx := context.Background()
	rec, secret, err := toks.Create(ctx, "ci", Operator, time.Hour, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "acli_"+rec.GetId()+"_") || rec.GetSecretSha256() != "" {
		t.Fatalf("token %q, record %v", secret, rec)
	}
	p, err := a.Authenticate(withToken(secret))
	if err != nil || p != (Principal{User: "ci", Role: Operator, Method: MethodToken}) {
		t.Fatalf("Authenticate = %v, %v", p, err)
	}
	// A token whose secret is wrong, and one naming no record.
	_, err = a.Authenticate(withToken(secret[:len(secret)-2] + "xx"))
	wantCode(t, err, codes.Unauthenticated, "the token is not valid")
	_, err = a.Authenticate(withToken("acli_000000000000_abc"))
	wantCode(t, err, codes.Unauthenticated, "the token is not valid")
	// Only the hash is stored.
	kv, err := toks.st.Get(ctx, tokenPrefix+rec.GetId())
	if err != nil || strings.Contains(string(kv.Value), strings.TrimPrefix(secret, "acli_"+rec.GetId()+"_")) {
		t.Fatalf("stored record holds the secret (err %v)", err)
	}
	// Expiry.
	clk.Add(time.Hour)
	_, err = a.Authenticate(withToken(secret))
	wantCode(t, err, codes.Unauthenticated, "expired at 2026-01-01T01:00:00Z")
	// Revocation, by id and by whole token; twice is a no-op.
	_, s2, err := toks.Create(ctx, "ci", Viewer, 0, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := toks.Revoke(ctx, s2); err != nil {
		t.Fatal(err)
	}
	if _, err := toks.Revoke(ctx, s2[len("acli_"):len("acli_")+12]); err != nil {
		t.Fatal(err)
	}
	_, err = a.Authenticate(withToken(s2))
	wantCode(t, err, codes.Unauthenticated, "was revoked")
	list, err := toks.List(ctx, "ci")
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %v, %v", list, err)
	}
	_, err = toks.Revoke(ctx, "nosuchtoken0")
	wantCode(t, err, codes.NotFound, "nosuchtoken0")
	_, _, err = toks.Create(ctx, "bad user", Viewer, 0, "admin")
	wantCode(t, err, codes.InvalidArgument, "not a user name")
}

func TestCertificates(t *testing.T) {
	ca, err := pki.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := pki.NewCA("other CA", time.Hour)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	clk := &fakeClock{t: time.Now()}
	a := New(Config{ClientCAs: pool, Now: clk.Now})

	alice, _ := ca.Client("alice", "operator", time.Hour)
	p, err := a.Authenticate(withCert(alice.Cert))
	if err != nil || p != (Principal{User: "alice", Role: Operator, Method: MethodCertificate}) {
		t.Fatalf("Authenticate = %v, %v", p, err)
	}
	mallory, _ := other.Client("mallory", "admin", time.Hour)
	_, err = a.Authenticate(withCert(mallory.Cert))
	wantCode(t, err, codes.Unauthenticated, `"mallory" is not signed by the cluster's CA`)
	norole, _ := ca.Client("carol", "staff", time.Hour)
	_, err = a.Authenticate(withCert(norole.Cert))
	wantCode(t, err, codes.PermissionDenied, "names no role")
	clk.Add(2 * time.Hour)
	_, err = a.Authenticate(withCert(alice.Cert))
	wantCode(t, err, codes.Unauthenticated, `"alice" expired at`)
	// No credentials, and anonymity not allowed.
	_, err = a.Authenticate(context.Background())
	wantCode(t, err, codes.Unauthenticated, "needs a client certificate (--cert/--key) or a token (--token)")
}

// TestEachRoleAgainstEachClass tries a read, an operator write, an admin
// write and fault injection as each role.
func TestEachRoleAgainstEachClass(t *testing.T) {
	calls := []struct {
		method string
		need   Role
	}{
		{"/acli.v1.VmService/ListVms", Viewer},
		{"/acli.v1.EventService/WatchEvents", Viewer},
		{"/acli.v1.VmService/MigrateVm", Operator},
		{"/acli.v1.HostService/EnterMaintenanceMode", Operator},
		{"/acli.v1.VolumeGroupService/AttachToVm", Operator},
		{"/acli.v1.VmService/CreateVm", Admin},
		{"/acli.v1.HostService/AddHost", Admin},
		{"/acli.v1.TokenService/CreateToken", Admin},
		{"/acli.v1.SimService/FailHost", Admin},
	}
	for _, role := range []Role{Viewer, Operator, Admin} {
		a := New(Config{Anonymous: role})
		for _, c := range calls {
			_, err := a.Authorize(context.Background(), c.method)
			if role >= c.need {
				if err != nil {
					t.Errorf("%s calling %s: %v", role, c.method, err)
				}
				continue
			}
			wantCode(t, err, codes.PermissionDenied, "needs the "+c.need.String()+" role; anonymous has "+role.String())
		}
	}
	_, err := New(Config{Anonymous: Admin}).Authorize(context.Background(), "/acli.v1.VmService/NoSuchRpc")
	wantCode(t, err, codes.PermissionDenied, "has no role assigned")
}

func TestInterceptorAudits(t *testing.T) {
	rec := &recorder{}
	toks := newTokens(t, nil)
	_, secret, err := toks.Create(context.Background(), "bob", Viewer, 0, "admin")
	if err != nil {
		t.Fatal(err)
	}
	a := New(Config{Tokens: toks, Audit: rec, Anonymous: Admin})
	icpt := a.UnaryInterceptor()
	ok := func(ctx context.Context, req any) (any, error) {
		if UserFromContext(ctx) == "" {
			t.Error("handler ran without a principal")
		}
		return &acliv1.Task{Uuid: "task-1"}, nil
	}
	// A denied write by bob, a read (not audited), a write by anonymous admin.
	_, err = icpt(withToken(secret), &acliv1.CreateVmRequest{Name: "web01"}, &grpc.UnaryServerInfo{FullMethod: "/acli.v1.VmService/CreateVm"}, ok)
	wantCode(t, err, codes.PermissionDenied, "VmService/CreateVm needs the admin role; bob has viewer")
	if _, err := icpt(withToken(secret), &acliv1.ListVmsRequest{}, &grpc.UnaryServerInfo{FullMethod: "/acli.v1.VmService/ListVms"}, ok); err != nil {
		t.Fatal(err)
	}
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5}})
	if _, err := icpt(ctx, &acliv1.CreateTokenRequest{User: "x", Role: "viewer"}, &grpc.UnaryServerInfo{FullMethod: "/acli.v1.TokenService/CreateToken"}, ok); err != nil {
		t.Fatal(err)
	}
	if len(rec.es) != 2 {
		t.Fatalf("audited %d entries, want 2: %v", len(rec.es), rec.es)
	}
	d := rec.es[0]
	if d.GetPrincipal() != "bob" || d.GetRole() != "viewer" || d.GetResult() != "PermissionDenied" || d.GetSource() != "127.0.0.9:4000" ||
		d.GetRpc() != "/acli.v1.VmService/CreateVm" || d.GetArgs() != `{"name":"web01"}` || d.GetTaskUuid() != "" {
		t.Errorf("denial entry = %v", d)
	}
	m := rec.es[1]
	if m.GetPrincipal() != "anonymous" || m.GetResult() != "OK" || m.GetTaskUuid() != "task-1" || m.GetArgs() != `{"user":"x","role":"viewer"}` {
		t.Errorf("mutation entry = %v", m)
	}
}

func TestRedaction(t *testing.T) {
	got := redactedJSON(&acliv1.CreateTokenResponse{Secret: "s3cret", Token: &acliv1.ApiToken{Id: "i"}})
	if strings.Contains(got, "s3cret") || !strings.Contains(got, `"secret":"[redacted]"`) {
		t.Fatalf("redactedJSON = %s", got)
	}
}

// A manager's certificate vouches for the caller a follower forwards; the
// same claim from a user's certificate, or from another CA's manager, is
// not believed.
func TestForwardedCaller(t *testing.T) {
	ca, _ := pki.NewCA("test CA", time.Hour)
	other, _ := pki.NewCA("other CA", time.Hour)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	a := New(Config{ClientCAs: pool})
	claim := func(c *x509.Certificate, kv ...string) context.Context {
		return metadata.NewIncomingContext(withCert(c), metadata.Pairs(kv...))
	}
	vouch := []string{ForwardedUser, "alice", ForwardedRole, "operator", ForwardedMethod, "token", ForwardedFor, "127.0.0.5:5000"}
	for i := 0; i < len(vouch); i += 2 {
		if !strings.HasPrefix(vouch[i], leader.ForwardedPrefix) {
			t.Errorf("%s: a follower would pass a client's own %s on", vouch[i], vouch[i])
		}
	}

	mgr, _ := ca.Server([]string{"127.0.0.1"}, time.Hour)
	p, err := a.Authenticate(claim(mgr.Cert, vouch...))
	if err != nil || p != (Principal{User: "alice", Role: Operator, Method: MethodToken, Source: "127.0.0.5:5000"}) {
		t.Fatalf("forwarded = %+v, %v", p, err)
	}
	_, err = a.Authenticate(withCert(mgr.Cert))
	wantCode(t, err, codes.Unauthenticated, "a manager certificate (clusterd) identifies only the callers a follower forwards")
	_, err = a.Authenticate(claim(mgr.Cert, ForwardedUser, "alice", ForwardedRole, "root"))
	wantCode(t, err, codes.Unauthenticated, `a forwarded call of alice names no role`)

	bob, _ := ca.Client("bob", "viewer", time.Hour)
	if p, err := a.Authenticate(claim(bob.Cert, vouch...)); err != nil || p.User != "bob" || p.Role != Viewer {
		t.Fatalf("a user's claim: %+v, %v", p, err)
	}
	rogue, _ := other.Server([]string{"127.0.0.1"}, time.Hour)
	_, err = a.Authenticate(claim(rogue.Cert, vouch...))
	wantCode(t, err, codes.Unauthenticated, `"clusterd" is not signed by the cluster's CA`)
}
