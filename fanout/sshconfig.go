package fanout

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// SSHConfig holds the subset of an OpenSSH client config that fan-out
// honours: Host blocks (with *, ? and ! patterns) setting User, Port,
// HostName and IdentityFile. As in OpenSSH the first value found for a key
// wins, and IdentityFile accumulates. Match blocks and Include are skipped.
// ConfigHelp says the same to users.
type SSHConfig struct {
	blocks []configBlock
}

type configBlock struct {
	patterns     []string
	user         string
	port         int
	hostName     string
	identityFile []string
}

// HostConfig is what the config says for one host.
type HostConfig struct {
	User string
	Port int
	// HostName is the address to connect to (%h expanded), empty for the
	// target's own name.
	HostName      string
	IdentityFiles []string
}

// ReadSSHConfigFile parses file; a missing file is an empty config.
func ReadSSHConfigFile(file, home string) (*SSHConfig, error) {
	f, err := os.Open(file)
	if os.IsNotExist(err) {
		return &SSHConfig{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ssh config: %w", err)
	}
	defer f.Close()
	return ParseSSHConfig(f, file, home)
}

// ParseSSHConfig parses an OpenSSH client config; home expands "~/".
func ParseSSHConfig(r io.Reader, name, home string) (*SSHConfig, error) {
	c := &SSHConfig{}
	// Lines before the first Host apply to every host.
	cur := &configBlock{patterns: []string{"*"}}
	skipping := false
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, val := splitConfigLine(line)
		switch strings.ToLower(key) {
		case "host":
			c.blocks = append(c.blocks, *cur)
			cur = &configBlock{patterns: strings.Fields(val)}
			skipping = false
		case "match":
			c.blocks = append(c.blocks, *cur)
			cur = &configBlock{}
			skipping = true
		case "user":
			if !skipping && cur.user == "" {
				cur.user = val
			}
		case "port":
			p, err := strconv.Atoi(val)
			if err != nil || p < 1 || p > 65535 {
				return nil, fmt.Errorf("%s:%d: bad Port %q: want 1-65535", name, n, val)
			}
			if !skipping && cur.port == 0 {
				cur.port = p
			}
		case "hostname":
			if !skipping && cur.hostName == "" {
				cur.hostName = val
			}
		case "identityfile":
			if !skipping {
				cur.identityFile = append(cur.identityFile, expandHome(val, home))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	c.blocks = append(c.blocks, *cur)
	return c, nil
}

// Lookup returns the settings for host.
func (c *SSHConfig) Lookup(host string) HostConfig {
	var hc HostConfig
	if c == nil {
		return hc
	}
	for _, b := range c.blocks {
		if !matchHostPatterns(b.patterns, host) {
			continue
		}
		if hc.User == "" {
			hc.User = b.user
		}
		if hc.Port == 0 {
			hc.Port = b.port
		}
		if hc.HostName == "" && b.hostName != "" {
			hc.HostName = expandTokens(b.hostName, host)
		}
		hc.IdentityFiles = append(hc.IdentityFiles, b.identityFile...)
	}
	return hc
}

func splitConfigLine(line string) (string, string) {
	i := strings.IndexAny(line, " \t=")
	if i < 0 {
		return line, ""
	}
	key, rest := line[:i], strings.TrimLeft(line[i:], " \t")
	rest = strings.TrimPrefix(rest, "=")
	rest = strings.Trim(strings.TrimSpace(rest), `"`)
	return key, rest
}

// matchHostPatterns applies OpenSSH semantics: any negated match vetoes.
func matchHostPatterns(patterns []string, host string) bool {
	matched := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		if ok, _ := path.Match(p, host); ok {
			if neg {
				return false
			}
			matched = true
		}
	}
	return matched
}

func expandHome(p, home string) string {
	if home != "" && (p == "~" || strings.HasPrefix(p, "~/")) {
		return filepath.Join(home, p[1:])
	}
	return p
}

// expandTokens expands HostName's %h (the name given) and %%.
func expandTokens(v, host string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '%' && i+1 < len(v) {
			switch v[i+1] {
			case 'h':
				b.WriteString(host)
				i++
				continue
			case '%':
				b.WriteByte('%')
				i++
				continue
			}
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// ConfigHelp tells users what of ~/.ssh/config and ~/.ssh is used.
const ConfigHelp = `Keys and host keys:
  Keys are offered in this order: -i files, IdentityFile from ~/.ssh/config,
  ssh-agent (SSH_AUTH_SOCK), then ~/.ssh/id_ed25519, id_ecdsa and id_rsa;
  passphrase-protected files only through the agent. Host keys are checked
  against --known-hosts files, ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts
  (OpenSSH format; "[host]:port" for ports other than 22). An unknown key is
  refused unless --accept-new records it (in the first --known-hosts file,
  else ~/.ssh/known_hosts); a changed key is always refused.

~/.ssh/config:
  Host blocks (patterns with *, ? and !) are honoured for User, Port,
  HostName (with %h) and IdentityFile; as in ssh(1) the first value wins and
  IdentityFile adds up. Match, Include, ProxyJump, ProxyCommand,
  IdentitiesOnly and other options are ignored.
`
