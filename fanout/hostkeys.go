package fanout

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeys verifies server keys against known_hosts files (parsed once per
// run), keys supplied per target by the caller, and keys recorded earlier
// in the same run by --accept-new.
type hostKeys struct {
	db        ssh.HostKeyCallback // nil when no known_hosts file exists
	files     []string
	writeFile string
	acceptNew bool
	insecure  bool
	probe     ssh.PublicKey // never matches; used to list known key types

	mu       sync.Mutex
	accepted map[string]ssh.PublicKey
	pins     map[string]*pinFile // by file name
}

// pinFile is a known_hosts file of keys pinned on first use, read once per
// run; keys pinned during the run are kept beside it.
type pinFile struct {
	db    ssh.HostKeyCallback // nil when the file did not exist
	added map[string]ssh.PublicKey
}

func newHostKeys(opts *Options) (*hostKeys, error) {
	h := &hostKeys{acceptNew: opts.AcceptNew, insecure: opts.InsecureIgnoreHostKey, accepted: map[string]ssh.PublicKey{},
		pins: map[string]*pinFile{}}
	var candidates []string
	candidates = append(candidates, opts.KnownHostsFiles...)
	if opts.Home != "" {
		candidates = append(candidates, filepath.Join(opts.Home, ".ssh", "known_hosts"))
	}
	if len(candidates) > 0 {
		h.writeFile = expandHome(candidates[0], opts.Home)
	}
	candidates = append(candidates, opts.ReadOnlyKnownHostsFiles...)
	for _, f := range candidates {
		f = expandHome(f, opts.Home)
		if _, err := os.Stat(f); err == nil {
			h.files = append(h.files, f)
		} else if !os.IsNotExist(err) {
			return nil, fmt.Errorf("known hosts: %w", err)
		}
	}
	if len(h.files) > 0 {
		db, err := knownhosts.New(h.files...)
		if err != nil {
			return nil, fmt.Errorf("known hosts: %w", err)
		}
		h.db = db
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if h.probe, err = ssh.NewPublicKey(pub); err != nil {
		return nil, err
	}
	return h, nil
}

// ParseHostKeys parses authorized_keys-form keys ("ssh-ed25519 AAAA... c").
func ParseHostKeys(lines []string) ([]ssh.PublicKey, error) {
	var out []ssh.PublicKey
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(l))
		if err != nil {
			return nil, fmt.Errorf("bad host key %q: want authorized_keys form, e.g. \"ssh-ed25519 AAAA...\"", abbreviate(l))
		}
		out = append(out, k)
	}
	return out, nil
}

// known lists the keys known_hosts and the pin file hold for addr.
func (h *hostKeys) known(addr, pin string) []ssh.PublicKey {
	out := h.wanted(h.db, addr)
	h.mu.Lock()
	if k, ok := h.accepted[knownhosts.Normalize(addr)]; ok {
		out = append(out, k)
	}
	h.mu.Unlock()
	if pin != "" {
		p, err := h.pinned(pin)
		if err == nil {
			out = append(out, h.wanted(p.db, addr)...)
			h.mu.Lock()
			if k, ok := p.added[knownhosts.Normalize(addr)]; ok {
				out = append(out, k)
			}
			h.mu.Unlock()
		}
	}
	return out
}

// wanted lists the keys db holds for addr.
func (h *hostKeys) wanted(db ssh.HostKeyCallback, addr string) []ssh.PublicKey {
	var out []ssh.PublicKey
	if db != nil {
		var ke *knownhosts.KeyError
		if err := db(addr, dummyAddr, h.probe); errors.As(err, &ke) {
			for _, w := range ke.Want {
				out = append(out, w.Key)
			}
		}
	}
	return out
}

// pinned returns the pin file named file, reading it on first use.
func (h *hostKeys) pinned(file string) (*pinFile, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p, ok := h.pins[file]; ok {
		return p, nil
	}
	p := &pinFile{added: map[string]ssh.PublicKey{}}
	if _, err := os.Stat(file); err == nil {
		if p.db, err = knownhosts.New(file); err != nil {
			return nil, fmt.Errorf("known hosts: %w", err)
		}
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("known hosts: %w", err)
	}
	h.pins[file] = p
	return p, nil
}

// algorithms restricts negotiation to the key types we can verify, as
// OpenSSH does; otherwise a server offering ECDSA first would look like a
// changed key when known_hosts holds its Ed25519 key.
func (h *hostKeys) algorithms(addr string, trusted []ssh.PublicKey, pin string) []string {
	if h.insecure {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, k := range append(h.known(addr, pin), trusted...) {
		for _, a := range algorithmsFor(k.Type()) {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos
}

func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// callback builds the verifier for one target: known_hosts first, then
// the pin file, then the published keys (pinned on first use).
func (h *hostKeys) callback(trusted []ssh.PublicKey, pin string) ssh.HostKeyCallback {
	return func(addr string, remote net.Addr, key ssh.PublicKey) error {
		if h.insecure {
			return nil
		}
		fp := ssh.FingerprintSHA256(key)
		if done, err := checkKnown(h.db, addr, remote, key); done {
			return err
		}
		var p *pinFile
		if pin != "" && len(trusted) > 0 {
			var err error
			if p, err = h.pinned(pin); err != nil {
				return err
			}
			if done, err := checkKnown(p.db, addr, remote, key); done {
				return err
			}
			h.mu.Lock()
			prev, ok := p.added[knownhosts.Normalize(addr)]
			h.mu.Unlock()
			if ok && !bytes.Equal(prev.Marshal(), key.Marshal()) {
				return fmt.Errorf("HOST KEY CHANGED for %s during this run: %s then %s", addr, ssh.FingerprintSHA256(prev), fp)
			}
		}
		if len(trusted) > 0 {
			for _, t := range trusted {
				if bytes.Equal(t.Marshal(), key.Marshal()) {
					if p != nil {
						return h.pin(pin, p, addr, key)
					}
					return nil
				}
			}
			return fmt.Errorf("host key %s for %s does not match the published host key %s", fp, addr, ssh.FingerprintSHA256(trusted[0]))
		}
		return h.acceptOrRefuse(addr, key)
	}
}

// checkKnown verifies key against a known_hosts db: done when the db
// decides (a match, a changed or revoked key), with the refusal if any.
func checkKnown(db ssh.HostKeyCallback, addr string, remote net.Addr, key ssh.PublicKey) (done bool, err error) {
	if db == nil {
		return false, nil
	}
	fp := ssh.FingerprintSHA256(key)
	err = db(addr, remote, key)
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &re):
		return true, fmt.Errorf("host key %s for %s is revoked (%s)", fp, addr, re.Revoked.String())
	case errors.As(err, &ke) && len(ke.Want) > 0:
		w := ke.Want[0]
		return true, fmt.Errorf("HOST KEY CHANGED for %s: server sent %s, %s:%d has %s; remove that line if the change is expected",
			addr, fp, w.Filename, w.Line, ssh.FingerprintSHA256(w.Key))
	case !errors.As(err, &ke):
		return true, err
	}
	return false, nil
}

// pin records a published key of addr in the pin file, once per run.
func (h *hostKeys) pin(file string, p *pinFile, addr string, key ssh.PublicKey) error {
	norm := knownhosts.Normalize(addr)
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := p.added[norm]; ok {
		return nil
	}
	if err := appendKnownHost(file, norm, key); err != nil {
		return err
	}
	p.added[norm] = key
	return nil
}

// appendKnownHost adds a known_hosts line for addr to file (mode 0600).
func appendKnownHost(file, norm string, key ssh.PublicKey) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("record host key: %w", err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("record host key: %w", err)
	}
	_, err = fmt.Fprintln(f, knownhosts.Line([]string{norm}, key))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("record host key: %w", err)
	}
	return nil
}

func (h *hostKeys) acceptOrRefuse(addr string, key ssh.PublicKey) error {
	fp := ssh.FingerprintSHA256(key)
	norm := knownhosts.Normalize(addr)
	h.mu.Lock()
	defer h.mu.Unlock()
	if prev, ok := h.accepted[norm]; ok {
		if bytes.Equal(prev.Marshal(), key.Marshal()) {
			return nil
		}
		return fmt.Errorf("HOST KEY CHANGED for %s during this run: %s then %s", addr, ssh.FingerprintSHA256(prev), fp)
	}
	if !h.acceptNew {
		return fmt.Errorf("unknown host key %s for %s (use --accept-new to record it, or add it to known_hosts)", fp, addr)
	}
	if h.writeFile == "" {
		return fmt.Errorf("unknown host key %s for %s and no known_hosts file to record it in (give --known-hosts FILE)", fp, addr)
	}
	if err := appendKnownHost(h.writeFile, norm, key); err != nil {
		return err
	}
	h.accepted[norm] = key
	return nil
}

var dummyAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 22}

func abbreviate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
