package fanout

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// defaultIdentities are tried, like OpenSSH, when present in ~/.ssh.
var defaultIdentities = []string{"id_ed25519", "id_ecdsa", "id_rsa"}

// keyring loads every private key once per run and hands the same signers
// to all connections; parsing keys per host would cost more than the
// handshake itself.
type keyring struct {
	mu       sync.Mutex
	byFile   map[string][]ssh.Signer // cached per identity file (config ones are per host)
	explicit []ssh.Signer            // -i files
	agent    []ssh.Signer
	defaults []ssh.Signer
	warn     io.Writer
	// preferred is the public key that the last successful login signed
	// with; putting it first saves a round trip per extra key on the
	// remaining hosts.
	preferred atomic.Pointer[string]
	closer    io.Closer
}

func newKeyring(opts *Options, warn io.Writer) (*keyring, error) {
	k := &keyring{byFile: map[string][]ssh.Signer{}, warn: warn}
	for _, f := range opts.IdentityFiles {
		s, err := k.load(expandHome(f, opts.Home), true)
		if err != nil {
			return nil, err
		}
		k.explicit = append(k.explicit, s...)
	}
	if opts.AgentSocket != "" {
		conn, err := net.Dial("unix", opts.AgentSocket)
		if err != nil {
			fmt.Fprintf(warn, "warning: ssh-agent at %s: %v (continuing without it)\n", opts.AgentSocket, err)
		} else {
			ss, err := agent.NewClient(conn).Signers()
			if err != nil {
				conn.Close()
				fmt.Fprintf(warn, "warning: ssh-agent: %v (continuing without it)\n", err)
			} else {
				for _, s := range ss {
					k.agent = append(k.agent, &trackingSigner{Signer: s, k: k})
				}
				k.closer = conn
			}
		}
	}
	if opts.Home != "" {
		for _, name := range defaultIdentities {
			s, _ := k.load(filepath.Join(opts.Home, ".ssh", name), false)
			k.defaults = append(k.defaults, s...)
		}
	}
	return k, nil
}

// load parses one private key file. Missing default files are silent;
// an unreadable explicit file is an error. Encrypted keys cannot be
// prompted for across parallel sessions, so they are skipped with a hint.
func (k *keyring) load(file string, explicit bool) ([]ssh.Signer, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if s, ok := k.byFile[file]; ok {
		return s, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		k.byFile[file] = nil
		if explicit {
			return nil, fmt.Errorf("identity file: %w", err)
		}
		return nil, nil
	}
	signer, err := ssh.ParsePrivateKey(data)
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		fmt.Fprintf(k.warn, "warning: %s is passphrase-protected; load it with ssh-add to use it\n", file)
		k.byFile[file] = nil
		return nil, nil
	case err != nil:
		k.byFile[file] = nil
		if explicit {
			return nil, fmt.Errorf("identity file %s: %v", file, err)
		}
		fmt.Fprintf(k.warn, "warning: skipping %s: %v\n", file, err)
		return nil, nil
	}
	s := []ssh.Signer{&trackingSigner{Signer: signer, k: k}}
	k.byFile[file] = s
	return s, nil
}

// signers returns the keys to offer, in OpenSSH-like order (explicit -i,
// then ~/.ssh/config IdentityFile, agent, defaults), without duplicates,
// the last successful key first.
func (k *keyring) signers(configFiles []string) []ssh.Signer {
	var all []ssh.Signer
	all = append(all, k.explicit...)
	for _, f := range configFiles {
		s, _ := k.load(f, false)
		all = append(all, s...)
	}
	all = append(all, k.agent...)
	all = append(all, k.defaults...)
	seen := map[string]bool{}
	out := make([]ssh.Signer, 0, len(all))
	pref := k.preferred.Load()
	for _, s := range all {
		blob := string(s.PublicKey().Marshal())
		if seen[blob] {
			continue
		}
		seen[blob] = true
		if pref != nil && blob == *pref {
			out = append([]ssh.Signer{s}, out...)
		} else {
			out = append(out, s)
		}
	}
	return out
}

func (k *keyring) close() {
	if k.closer != nil {
		k.closer.Close()
	}
}

// trackingSigner notes which key the server accepted: x/crypto only asks
// for a signature after the server said the key is acceptable.
type trackingSigner struct {
	ssh.Signer
	k *keyring
}

func (t *trackingSigner) Sign(rand io.Reader, data []byte) (*ssh.Signature, error) {
	blob := string(t.PublicKey().Marshal())
	t.k.preferred.Store(&blob)
	return t.Signer.Sign(rand, data)
}

// SignWithAlgorithm keeps rsa-sha2-* working through the wrapper.
func (t *trackingSigner) SignWithAlgorithm(rand io.Reader, data []byte, algorithm string) (*ssh.Signature, error) {
	blob := string(t.PublicKey().Marshal())
	t.k.preferred.Store(&blob)
	if as, ok := t.Signer.(ssh.AlgorithmSigner); ok {
		return as.SignWithAlgorithm(rand, data, algorithm)
	}
	return t.Signer.Sign(rand, data)
}
