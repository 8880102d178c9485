// Package datapath runs the iSCSI data path of a cluster on its hosts: one
// storage target per CVM (tgtd, every CVM serving every vDisk from the
// shared container) and the login redirectors in front of them (one per
// host on port 3261, one on the data services IP on port 3260). The
// redirectors only answer logins, with a temporary redirect to the CVM that
// clusterd chose; the data then flows between initiator and CVM directly.
// Failover is a change of that answer: libiscsi reconnects to the portal it
// first dialled, so QEMU's disks follow without an I/O error.
package datapath

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// Login is what a redirector learns from an initiator's first login PDU.
type Login struct {
	Initiator string // InitiatorName
	Target    string // TargetName (empty for a discovery session)
	Remote    string // the initiator's ip:port
}

// Route picks the portal ("ip:port") a login is sent to. An error refuses
// the login; errors wrapping ErrFenced answer "not authorized".
type Route func(Login) (string, error)

// ErrFenced refuses a login of an initiator the cluster has fenced.
var ErrFenced = errors.New("initiator fenced")

// Login status classes and details (RFC 7143 11.13.5).
const (
	statusRedirect      = 0x01 // class: redirection
	detailMovedTemp     = 0x01 // target moved temporarily: libiscsi follows it
	statusInitiatorErr  = 0x02 // class: initiator error
	detailNotAuthorized = 0x02
	statusTargetErr     = 0x03 // class: target error
	detailUnavailable   = 0x01 // service unavailable: libiscsi retries later
)

const (
	opLoginReq  = 0x03
	opLoginResp = 0x23
	bhsLen      = 48
	maxDataLen  = 64 << 10
)

// Redirector answers every iSCSI login on one listener with a redirect
// to the portal Route returns.
type Redirector struct {
	Route Route
	Log   *slog.Logger

	l    net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	conn map[net.Conn]struct{}
}

// Listen starts a redirector on addr ("ip:port").
func Listen(addr string, route Route, log *slog.Logger) (*Redirector, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("redirector: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Redirector{Route: route, Log: log, l: l, conn: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.serve()
	return r, nil
}

// Addr is the address the redirector listens on.
func (r *Redirector) Addr() string { return r.l.Addr().String() }

// Close stops listening and ends the logins in progress.
func (r *Redirector) Close() error {
	err := r.l.Close()
	r.mu.Lock()
	for c := range r.conn {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil // closed before
	}
	return err
}

func (r *Redirector) serve() {
	defer r.wg.Done()
	for {
		c, err := r.l.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.conn[c] = struct{}{}
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.handle(c)
			r.mu.Lock()
			delete(r.conn, c)
			r.mu.Unlock()
			c.Close()
		}()
	}
}

// handle answers one login. The initiator closes the connection once it
// has read a redirect; a bounded wait keeps a silent peer from holding it.
func (r *Redirector) handle(c net.Conn) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	bhs, data, err := readPDU(c)
	if err != nil {
		if !errors.Is(err, io.EOF) {
			r.Log.Debug("redirector: bad PDU", "remote", c.RemoteAddr(), "err", err)
		}
		return
	}
	if bhs[0]&0x3f != opLoginReq {
		r.Log.Debug("redirector: not a login", "remote", c.RemoteAddr(), "opcode", bhs[0]&0x3f)
		return
	}
	keys := parseKeys(data)
	in := Login{Initiator: keys["InitiatorName"], Target: keys["TargetName"], Remote: c.RemoteAddr().String()}
	var resp []byte
	to, err := r.Route(in)
	switch {
	case err == nil:
		resp = loginResponse(bhs, statusRedirect, detailMovedTemp, "TargetAddress="+to+",1")
		r.Log.Debug("redirector: login redirected", "initiator", in.Initiator, "target", in.Target, "to", to)
	case errors.Is(err, ErrFenced):
		resp = loginResponse(bhs, statusInitiatorErr, detailNotAuthorized, "")
		r.Log.Info("redirector: login refused", "initiator", in.Initiator, "target", in.Target, "err", err)
	default:
		resp = loginResponse(bhs, statusTargetErr, detailUnavailable, "")
		r.Log.Info("redirector: no portal for login", "initiator", in.Initiator, "target", in.Target, "err", err)
	}
	if _, err := c.Write(resp); err != nil {
		return
	}
	io.Copy(io.Discard, c)
}

func readPDU(c io.Reader) (bhs, data []byte, err error) {
	bhs = make([]byte, bhsLen)
	if _, err := io.ReadFull(c, bhs); err != nil {
		return nil, nil, err
	}
	ahs := int(bhs[4]) * 4
	dlen := int(bhs[5])<<16 | int(bhs[6])<<8 | int(bhs[7])
	if dlen > maxDataLen {
		return nil, nil, fmt.Errorf("data segment of %d bytes", dlen)
	}
	rest := make([]byte, ahs+pad4(dlen))
	if _, err := io.ReadFull(c, rest); err != nil {
		return nil, nil, err
	}
	return bhs, rest[ahs : ahs+dlen], nil
}

func pad4(n int) int { return (n + 3) &^ 3 }

// parseKeys reads NUL-separated key=value text.
func parseKeys(data []byte) map[string]string {
	keys := map[string]string{}
	for kv := range bytes.SplitSeq(data, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			keys[k] = v
		}
	}
	return keys
}

// loginResponse builds the Login Response to req with the given status and
// text (one key=value, or none).
func loginResponse(req []byte, class, detail byte, text string) []byte {
	var data []byte
	if text != "" {
		data = append([]byte(text), 0)
	}
	out := make([]byte, bhsLen+pad4(len(data)))
	out[0] = opLoginResp
	out[1] = req[1] & 0x0f // CSG and NSG as asked, T and C clear
	out[2] = req[2]        // Version-max
	out[3] = req[3]        // Version-active: the initiator's minimum
	out[5], out[6], out[7] = byte(len(data)>>16), byte(len(data)>>8), byte(len(data))
	copy(out[8:16], req[8:16])   // ISID and TSIH
	copy(out[16:20], req[16:20]) // Initiator Task Tag
	cmdSN := binary.BigEndian.Uint32(req[24:28])
	binary.BigEndian.PutUint32(out[24:28], 0) // StatSN
	binary.BigEndian.PutUint32(out[28:32], cmdSN)
	binary.BigEndian.PutUint32(out[32:36], cmdSN)
	out[36], out[37] = class, detail
	copy(out[bhsLen:], data)
	return out
}
