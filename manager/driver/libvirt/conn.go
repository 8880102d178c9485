package libvirt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"
)

var (
	// ErrNotFound: no domain with that name or UUID on this host.
	ErrNotFound = errors.New("domain not found")
	// ErrShutdownTimeout: the guest did not power off after an ACPI shutdown request in time.
	ErrShutdownTimeout = errors.New("guest did not shut down in time")
	// ErrDisconnected: the connection to libvirtd is closed or was lost.
	ErrDisconnected = errors.New("libvirt connection lost")
	// ErrTimeout: libvirtd took a call and gave no answer within the call timeout (the
	// daemon, or a guest it waits on, stalled).
	ErrTimeout = errors.New("libvirtd did not answer in time")
)

// timeoutError says which daemon did not answer what, and how long it was given.
type timeoutError struct {
	uri  *URI
	what string
	d    time.Duration
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("libvirtd at %s did not answer %s within %v", e.uri, e.what, e.d)
}

func (e *timeoutError) Is(target error) bool { return target == ErrTimeout }

// Conn is one connection to a libvirtd. Its methods are safe for concurrent use; go-libvirt
// multiplexes requests on the one transport.
type Conn struct {
	uri     *URI
	l       *golibvirt.Libvirt
	d       *dialer
	timeout time.Duration // of each call

	closeOnce sync.Once
	closeErr  error
}

// Dial connects to the libvirtd named by uri.
func Dial(ctx context.Context, uri string, o DialOptions) (*Conn, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	return DialURI(ctx, u, o)
}

// DialURI connects to an already parsed URI.
func DialURI(ctx context.Context, u *URI, o DialOptions) (*Conn, error) {
	d, err := newDialer(u, o)
	if err != nil {
		return nil, err
	}
	l := golibvirt.NewWithDialer(d)
	done := make(chan error, 1)
	go func() {
		if err := l.ConnectToURI(golibvirt.ConnectURI(u.remoteName())); err != nil {
			done <- err
			return
		}
		// go-libvirt's ConnectToURI writes its disconnected channel after starting the
		// goroutine that reads it when the daemon hangs up, with nothing ordering the two.
		// A first request (its callback is registered under the lock that goroutine takes
		// before the read) orders them, unless the daemon hangs up in between. It is under
		// the handshake's deadline too: a daemon can freeze just after the handshake.
		_, err := l.ConnectGetLibVersion()
		done <- err
	}()
	// A frozen daemon accepts TCP (the kernel does) but never answers the handshake.
	handshake := time.NewTimer(2 * o.timeout())
	defer handshake.Stop()
	select {
	case err := <-done:
		if err != nil {
			d.cut()
			return nil, fmt.Errorf("connect %s: %w", u, err)
		}
	case <-handshake.C:
		d.cut()
		<-done
		return nil, fmt.Errorf("connect %s: no answer within %v", u, 2*o.timeout())
	case <-ctx.Done():
		// Cutting the transport makes the pending handshake fail and its goroutine return.
		d.cut()
		<-done
		return nil, fmt.Errorf("connect %s: %w", u, ctx.Err())
	}
	return &Conn{uri: u, l: l, d: d, timeout: o.callTimeout()}, nil
}

// call makes one request to libvirtd within the call timeout. A go-libvirt request cannot
// be withdrawn: past the deadline its goroutine is left to end with the answer, or with
// the connection.
func call[T any](c *Conn, what string, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f()
		done <- result{v, err}
	}()
	d := c.timeout
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case r := <-done:
		return r.v, r.err
	case <-t.C:
		var zero T
		return zero, &timeoutError{c.uri, what, d}
	}
}

// run is call for requests that answer only an error.
func (c *Conn) run(what string, f func() error) error {
	_, err := call(c, what, func() (struct{}, error) { return struct{}{}, f() })
	return err
}

// URI is the URI this connection was made to.
func (c *Conn) URI() *URI { return c.uri }

// closeTimeout bounds the polite close (ConnectClose) before the transport is dropped.
const closeTimeout = time.Second

// Close ends the connection; pending RPCs fail. It returns within about closeTimeout, even
// when the daemon does not answer, and later calls return what the first one did.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.close() })
	return c.closeErr
}

func (c *Conn) close() error {
	if !c.l.IsConnected() {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- c.l.Disconnect() }()
	t := time.NewTimer(closeTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		// A hung daemon never answers ConnectClose; drop the transport instead, which also
		// ends the Disconnect above.
		c.d.cut()
		return nil
	}
}

// Disconnected is closed when the connection is lost or closed.
func (c *Conn) Disconnected() <-chan struct{} { return c.l.Disconnected() }

// Raw exposes the go-libvirt client for calls this package does not wrap.
func (c *Conn) Raw() *golibvirt.Libvirt { return c.l }

// HostInfo identifies a libvirt host and its capacity.
type HostInfo struct {
	Hostname   string
	UUID       string // host_uuid from the capabilities
	CPUs       int
	MemoryMiB  uint64
	LibVersion string // e.g. 9.0.0
}

// HostInfo asks the daemon who and how big it is.
func (c *Conn) HostInfo() (HostInfo, error) {
	var hi HostInfo
	var memKiB uint64
	var cpus int32
	var caps []byte
	var v uint64
	err := c.run("read the host's identity", func() (err error) {
		if hi.Hostname, err = c.l.ConnectGetHostname(); err != nil {
			return err
		}
		if _, memKiB, cpus, _, _, _, _, _, err = c.l.NodeGetInfo(); err != nil {
			return err
		}
		if caps, err = c.l.Capabilities(); err != nil {
			return err
		}
		v, err = c.l.ConnectGetLibVersion()
		return err
	})
	if err != nil {
		return hi, c.wrap(err)
	}
	hi.CPUs, hi.MemoryMiB = int(cpus), memKiB>>10
	if hi.UUID, err = hostUUIDFromCapabilities(caps); err != nil {
		return hi, err
	}
	hi.LibVersion = fmt.Sprintf("%d.%d.%d", v/1000000, v/1000%1000, v%1000)
	return hi, nil
}

// State is a domain's power state.
type State int

const (
	StateUnknown      State = iota
	StateRunning            // includes "blocked" (idle vCPUs)
	StatePaused             // includes the short pause at the end of a live migration
	StateShuttingDown       // ACPI shutdown requested, guest still running
	StateOff
	StateCrashed
	StateSuspended // guest power-management suspend
)

var stateNames = [...]string{"unknown", "running", "paused", "shutting-down", "off", "crashed", "suspended"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Active reports whether a QEMU process exists for the domain.
func (s State) Active() bool {
	return s == StateRunning || s == StatePaused || s == StateShuttingDown || s == StateSuspended
}

func stateFromLibvirt(s golibvirt.DomainState) State {
	switch s {
	case golibvirt.DomainRunning, golibvirt.DomainBlocked:
		return StateRunning
	case golibvirt.DomainPaused:
		return StatePaused
	case golibvirt.DomainShutdown:
		return StateShuttingDown
	case golibvirt.DomainShutoff:
		return StateOff
	case golibvirt.DomainCrashed:
		return StateCrashed
	case golibvirt.DomainPmsuspended:
		return StateSuspended
	}
	return StateUnknown
}

// Domain is a domain as the host sees it.
type Domain struct {
	Name       string
	UUID       string
	State      State
	Persistent bool
}

func formatUUID(u golibvirt.UUID) string { return uuid.UUID(u).String() }

// lookup finds a domain by UUID (when ref parses as one) or by name.
func (c *Conn) lookup(ref string) (golibvirt.Domain, error) {
	d, err := call(c, "look up domain "+ref, func() (golibvirt.Domain, error) {
		if id, perr := uuid.Parse(ref); perr == nil {
			return c.l.DomainLookupByUUID(golibvirt.UUID(id))
		}
		return c.l.DomainLookupByName(ref)
	})
	if err != nil {
		if golibvirt.IsNotFound(err) {
			return d, fmt.Errorf("%w: %q on %s", ErrNotFound, ref, c.uri)
		}
		return d, c.wrap(err)
	}
	return d, nil
}

// wrap marks errors caused by a lost connection so callers can tell them from refusals.
func (c *Conn) wrap(err error) error {
	if err == nil {
		return nil
	}
	if !c.l.IsConnected() {
		return fmt.Errorf("%w (%s): %v", ErrDisconnected, c.uri, err)
	}
	return err
}

// failed says which operation on which domain failed; a timeout already says.
func (c *Conn) failed(op, name string, err error) error {
	if errors.Is(err, ErrTimeout) {
		return err
	}
	return fmt.Errorf("%s %s: %w", op, name, c.wrap(err))
}

// Define creates or updates the persistent definition of a domain.
func (c *Conn) Define(s DomainSpec) (Domain, error) {
	x, err := s.XML()
	if err != nil {
		return Domain{}, err
	}
	d, err := call(c, "define "+s.Name, func() (golibvirt.Domain, error) {
		return c.l.DomainDefineXMLFlags(string(x), golibvirt.DomainDefineValidate)
	})
	if err != nil {
		return Domain{}, c.failed("define", s.Name, err)
	}
	return Domain{Name: d.Name, UUID: formatUUID(d.UUID), State: StateOff, Persistent: true}, nil
}

// Start boots a defined domain.
func (c *Conn) Start(ref string) error {
	return c.do("start", ref, func(d golibvirt.Domain) error {
		_, err := c.l.DomainCreateWithFlags(d, 0)
		return err
	})
}

// Destroy powers a domain off at once (virsh destroy); the definition stays.
func (c *Conn) Destroy(ref string) error {
	return c.do("destroy", ref, func(d golibvirt.Domain) error {
		err := c.l.DomainDestroyFlags(d, golibvirt.DomainDestroyDefault)
		if isCode(err, golibvirt.ErrOperationInvalid) {
			// "domain is not running": it stopped since the caller looked.
			// The caller wants it off, and it is.
			if st, _, serr := c.l.DomainGetState(d, 0); serr == nil && !stateFromLibvirt(golibvirt.DomainState(st)).Active() {
				return nil
			}
		}
		return err
	})
}

// isCode reports whether err is a libvirt error with the given number.
func isCode(err error, code golibvirt.ErrorNumber) bool {
	var le golibvirt.Error
	return errors.As(err, &le) && le.Code == uint32(code)
}

// Reboot asks the guest to reboot through ACPI.
func (c *Conn) Reboot(ref string) error {
	return c.do("reboot", ref, func(d golibvirt.Domain) error {
		return c.l.DomainReboot(d, golibvirt.DomainRebootAcpiPowerBtn)
	})
}

// Suspend pauses a running domain's vCPUs (QEMU drains its disks first).
func (c *Conn) Suspend(ref string) error {
	return c.do("suspend", ref, func(d golibvirt.Domain) error { return c.l.DomainSuspend(d) })
}

// Resume continues a suspended domain.
func (c *Conn) Resume(ref string) error {
	return c.do("resume", ref, func(d golibvirt.Domain) error { return c.l.DomainResume(d) })
}

// Reset is a hard reset, like pressing the reset button.
func (c *Conn) Reset(ref string) error {
	return c.do("reset", ref, func(d golibvirt.Domain) error { return c.l.DomainReset(d, 0) })
}

// Undefine removes a domain's persistent definition. A running domain keeps running as a
// transient one until it stops, as in libvirt; callers stop it first.
func (c *Conn) Undefine(ref string) error {
	return c.do("undefine", ref, func(d golibvirt.Domain) error {
		return c.l.DomainUndefineFlags(d, golibvirt.DomainUndefineManagedSave|golibvirt.DomainUndefineSnapshotsMetadata|golibvirt.DomainUndefineNvram)
	})
}

func (c *Conn) do(op, ref string, f func(golibvirt.Domain) error) error {
	d, err := c.lookup(ref)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := c.run(op+" "+d.Name, func() error { return f(d) }); err != nil {
		if golibvirt.IsNotFound(err) {
			// A transient domain vanishes once it stops.
			return fmt.Errorf("%s %s: %w", op, d.Name, ErrNotFound)
		}
		return c.failed(op, d.Name, err)
	}
	return nil
}

// Shutdown sends an ACPI power-button press and waits up to timeout (0: until ctx ends) for
// the guest to power off. On ErrShutdownTimeout the domain is still running; the caller
// decides whether to Destroy.
func (c *Conn) Shutdown(ctx context.Context, ref string, timeout time.Duration) error {
	d, err := c.lookup(ref)
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := c.run("shut down "+d.Name, func() error { return c.l.DomainShutdownFlags(d, golibvirt.DomainShutdownAcpiPowerBtn) }); err != nil {
		return c.failed("shutdown", d.Name, err)
	}
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := c.state(d)
		if err != nil {
			return c.failed("shutdown", d.Name, err)
		}
		if !st.Active() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("shutdown %s: %w", d.Name, ctx.Err())
		case <-deadline:
			return fmt.Errorf("shutdown %s: %w after %v", d.Name, ErrShutdownTimeout, timeout)
		case <-tick.C:
		}
	}
}

// Lookup returns one domain's current state.
func (c *Conn) Lookup(ref string) (Domain, error) {
	d, err := c.lookup(ref)
	if err != nil {
		return Domain{}, err
	}
	return c.describe(d)
}

func (c *Conn) describe(d golibvirt.Domain) (Domain, error) {
	st, err := c.state(d)
	if err != nil {
		if golibvirt.IsNotFound(err) {
			return Domain{}, fmt.Errorf("%w: %q on %s", ErrNotFound, d.Name, c.uri)
		}
		return Domain{}, c.wrap(err)
	}
	pers, err := call(c, "ask whether "+d.Name+" is persistent", func() (int32, error) { return c.l.DomainIsPersistent(d) })
	if err != nil && !golibvirt.IsNotFound(err) {
		return Domain{}, c.wrap(err)
	}
	return Domain{Name: d.Name, UUID: formatUUID(d.UUID), State: st, Persistent: pers == 1}, nil
}

// state asks for a domain's power state.
func (c *Conn) state(d golibvirt.Domain) (State, error) {
	return call(c, "read the state of "+d.Name, func() (State, error) {
		st, _, err := c.l.DomainGetState(d, 0)
		return stateFromLibvirt(golibvirt.DomainState(st)), err
	})
}

// List returns every domain on the host, defined or running.
func (c *Conn) List() ([]Domain, error) {
	doms, err := call(c, "list domains", func() ([]golibvirt.Domain, error) {
		doms, _, err := c.l.ConnectListAllDomains(1, golibvirt.ConnectListDomainsActive|golibvirt.ConnectListDomainsInactive)
		return doms, err
	})
	if err != nil {
		return nil, c.wrap(err)
	}
	out := make([]Domain, 0, len(doms))
	for _, d := range doms {
		dd, err := c.describe(d)
		if errors.Is(err, ErrNotFound) {
			continue // undefined between the listing and the state query
		}
		if err != nil {
			return nil, err
		}
		out = append(out, dd)
	}
	return out, nil
}
