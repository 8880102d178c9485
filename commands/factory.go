package commands

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/render"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Globals are the flags given before the command.
type Globals struct {
	Output    string
	Yes       bool
	Server    string
	Timeout   time.Duration
	NoHeaders bool
	Token     string
	Columns   []string // -c: columns to show, by header or JSON key
	SortBy    string   // --sort-by: the column rows are ordered by
	JQ        string   // --jq: an expression over the JSON result
	Debug     bool     // --debug: trace every RPC on stderr
	Watch     bool     // -w: keep printing the rows that change (Command.Watch)
	// Context names a context of the config file (ACLI_CONTEXT; default
	// its current-context). Flags and ACLI_* variables override its fields.
	Context string
	// CACert, Cert and Key are TLS files (ACLI_CACERT, ACLI_CERT, ACLI_KEY).
	CACert, Cert, Key string
}

// Factory carries what commands need and creates it lazily: nothing dials
// until a command asks for a client, so --help and parse errors never touch
// the network. One Factory serves a whole shell session.
type Factory struct {
	IO       *render.IO
	Registry *Registry
	// Getenv reads the environment (ACLI_SERVER, ACLI_TOKEN).
	Getenv func(string) string
	// Connect dials clusterd; tests swap in an in-memory connection.
	Connect func(ctx context.Context, o client.Options) (*client.Client, error)
	// Shell runs the interactive shell when no command is given. main sets
	// it (the shell imports this package, not the other way round).
	Shell func(ctx context.Context, f *Factory, g Globals) error
	// Script runs commands read from r, one per line (acli FILE, acli -).
	Script func(ctx context.Context, f *Factory, g Globals, r io.Reader) error
	// Now and Location, when set, are the clock and zone times are shown
	// against on a terminal (tests fix them).
	Now      func() time.Time
	Location *time.Location

	mu    sync.Mutex
	conns map[client.Options]*client.Client
	debug atomic.Bool // --debug on the current command
	// stale is why an answer to the current command may be stale (a
	// manager without quorum answered from its copy), nil if none was.
	stale atomic.Pointer[string]
}

// NewFactory returns a Factory over the given streams with the default
// registry and the real dialer.
func NewFactory(io *render.IO, getenv func(string) string) *Factory {
	f := &Factory{IO: io, Registry: Default(), Getenv: getenv}
	f.Connect = func(ctx context.Context, o client.Options) (*client.Client, error) {
		return client.Dial(ctx, o, grpc.WithChainUnaryInterceptor(f.noteStale, f.traceUnary), grpc.WithChainStreamInterceptor(f.traceStream))
	}
	return f
}

// noteStale remembers a read answered from a copy of the store that may be
// stale (client.StaleHeader), for the command's warning.
func (f *Factory) noteStale(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	var md metadata.MD
	err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Header(&md))...)
	if v := md.Get(client.StaleHeader); len(v) > 0 && err == nil {
		f.stale.Store(&v[0])
	}
	return err
}

// traceUnary writes one stderr line per RPC under --debug: method, status
// code and time taken.
func (f *Factory) traceUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if !f.debug.Load() {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	fmt.Fprintf(f.IO.Err, "debug: rpc %s %s %s (%s)\n", method, status.Code(err), time.Since(start).Round(10*time.Microsecond), cc.Target())
	return err
}

// traceStream notes where a stream (task and event watches) begins.
func (f *Factory) traceStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if f.debug.Load() {
		fmt.Fprintf(f.IO.Err, "debug: stream %s opened %s (%s)\n", method, status.Code(err), cc.Target())
	}
	return cs, err
}

// DefaultGlobals are the globals before flags are parsed: environment, then
// built-in defaults.
func (f *Factory) DefaultGlobals() Globals {
	g := Globals{Output: string(render.Table)}
	if f.Getenv != nil {
		g.Server = f.Getenv("ACLI_SERVER")
		g.Token = f.Getenv("ACLI_TOKEN")
		g.Context = f.Getenv("ACLI_CONTEXT")
		g.CACert = f.Getenv("ACLI_CACERT")
		g.Cert = f.Getenv("ACLI_CERT")
		g.Key = f.Getenv("ACLI_KEY")
	}
	return g
}

// Options resolves where and how to connect: flags and environment first,
// then the config file's context, then the defaults.
func (f *Factory) Options(g Globals) (client.Options, error) {
	o := client.Options{Addr: g.Server, Token: g.Token, CACert: g.CACert, Cert: g.Cert, Key: g.Key,
		DialTimeout: client.DefaultDialTimeout}
	getenv := f.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	cfg, err := client.LoadConfig(client.ConfigPath(getenv))
	if err != nil {
		return o, client.Errorf(client.ExitUsage, "%v", err)
	}
	ctx, err := cfg.Context(g.Context)
	if err != nil {
		return o, client.Errorf(client.ExitUsage, "--context: %v", err)
	}
	fill := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	if o.Addr == "" && ctx.Server != "" {
		if err := checkServer(ctx.Server); err != nil {
			return o, client.Errorf(client.ExitUsage, "context %q: %v", ctx.Name, err)
		}
		o.Addr = ctx.Server
	}
	fill(&o.Addr, client.DefaultAddr)
	fill(&o.Token, ctx.Token)
	if !o.TLS() { // TLS files come together: a flag's cert never pairs with a context's key
		o.CACert, o.Cert, o.Key = ctx.CACert, ctx.Cert, ctx.Key
	}
	return o, nil
}

// Client returns the (cached) connection for these globals.
func (f *Factory) Client(ctx context.Context, g Globals) (*client.Client, error) {
	o, err := f.Options(g)
	if err != nil {
		return nil, err
	}
	if g.Timeout > 0 && g.Timeout < o.DialTimeout {
		o.DialTimeout = g.Timeout
	}
	key := o
	key.DialTimeout = 0
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.conns[key]; ok {
		return c, nil
	}
	c, err := f.Connect(ctx, o)
	if err != nil {
		return nil, err
	}
	if f.conns == nil {
		f.conns = map[client.Options]*client.Client{}
	}
	f.conns[key] = c
	return c, nil
}

// Close closes every connection made.
func (f *Factory) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, c := range f.conns {
		_ = c.Close()
		delete(f.conns, k)
	}
}

// ExitStatus ends a run with a code whose message was already printed
// (a failing script line).
type ExitStatus int

func (e ExitStatus) Error() string { return "exit status " + itoa(int(e)) }
