package client

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is acli's config file: named contexts, one of them current, in the
// manner of kubeconfig and clouds.yaml.
//
//	current-context: prod
//	contexts:
//	  - name: prod
//	    server: 10.0.0.10:2030
//	    cacert: /etc/acli/prod/ca.crt
//	    cert: ~/.acli/prod/alice.crt
//	    key: ~/.acli/prod/alice.key
//	  - name: lab
//	    server: 127.0.0.1:2030
//	    token: acli_0123456789ab_...
type Config struct {
	CurrentContext string    `yaml:"current-context,omitempty"`
	Contexts       []Context `yaml:"contexts"`
	// file is where the config was read from (relative paths are relative
	// to its directory).
	file string
}

// Context is where a cluster is and how to prove who we are to it.
type Context struct {
	Name   string `yaml:"name"`
	Server string `yaml:"server,omitempty"`
	CACert string `yaml:"cacert,omitempty"`
	Cert   string `yaml:"cert,omitempty"`
	Key    string `yaml:"key,omitempty"`
	Token  string `yaml:"token,omitempty"`
}

// ConfigPath is the config file acli reads: ACLI_CONFIG, else
// $XDG_CONFIG_HOME/acli/config.yaml, else ~/.config/acli/config.yaml.
func ConfigPath(getenv func(string) string) string {
	if p := getenv("ACLI_CONFIG"); p != "" {
		return p
	}
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "acli", "config.yaml")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "acli", "config.yaml")
	}
	return ""
}

// LoadConfig reads file; a missing file is an empty config.
func LoadConfig(file string) (*Config, error) {
	c := &Config{file: file}
	if file == "" {
		return c, nil
	}
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", file, err)
	}
	if err := yaml.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("config %s: %v", file, oneLine(err))
	}
	seen := map[string]bool{}
	for i, ctx := range c.Contexts {
		if ctx.Name == "" {
			return nil, fmt.Errorf("config %s: context %d has no name", file, i+1)
		}
		if seen[ctx.Name] {
			return nil, fmt.Errorf("config %s: context %q is defined twice", file, ctx.Name)
		}
		seen[ctx.Name] = true
	}
	return c, nil
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// Context returns the named context (name "" is the current one; no current
// one and no name is the zero context). Paths come back absolute.
func (c *Config) Context(name string) (Context, error) {
	if name == "" {
		name = c.CurrentContext
	}
	if name == "" {
		return Context{}, nil
	}
	var names []string
	for _, ctx := range c.Contexts {
		if ctx.Name == name {
			return c.resolve(ctx), nil
		}
		names = append(names, ctx.Name)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return Context{}, fmt.Errorf("no context %q: %s defines no contexts", name, c.where())
	}
	return Context{}, fmt.Errorf("no context %q in %s; contexts: %s", name, c.where(), strings.Join(names, ", "))
}

func (c *Config) where() string {
	if c.file == "" {
		return "the config file"
	}
	return c.file
}

func (c *Config) resolve(ctx Context) Context {
	dir := filepath.Dir(c.file)
	abs := func(p string) string {
		if p == "" {
			return ""
		}
		if rest, ok := strings.CutPrefix(p, "~/"); ok {
			if h, err := os.UserHomeDir(); err == nil {
				return filepath.Join(h, rest)
			}
		}
		if !filepath.IsAbs(p) && c.file != "" {
			return filepath.Join(dir, p)
		}
		return p
	}
	ctx.CACert, ctx.Cert, ctx.Key = abs(ctx.CACert), abs(ctx.Cert), abs(ctx.Key)
	return ctx
}

// Set adds or replaces a context.
func (c *Config) Set(ctx Context) {
	for i := range c.Contexts {
		if c.Contexts[i].Name == ctx.Name {
			c.Contexts[i] = ctx
			return
		}
	}
	c.Contexts = append(c.Contexts, ctx)
}

// Save writes the config to file with mode 0600 (it may hold tokens).
func (c *Config) Save(file string) error {
	data, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}
