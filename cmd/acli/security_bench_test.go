package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
)

// The cost of TLS and authorization, plaintext and secured clusterds in one
// run, alternating, so the ratio holds whatever the machine's load.
// Target (issue 18): one-shot host.list over TLS with a client certificate
// at most 1.3x the plaintext figure.

// securedPair starts a plaintext clusterd (anonymous admin on loopback) and
// one made by clusterd init (TLS 1.3, client certificates, tokens).
func securedPair(b *testing.B) (plain string, sec secured) {
	b.Helper()
	plain = startClusterd(b, "--sim-ssh-port", "0")
	dir := b.TempDir()
	r := runCmd(b, exec.Command(filepath.Join(binDir, "clusterd"), "init", "--data-dir", dir, "--listen", "127.44.3.1:2030"))
	if r.code != 0 {
		b.Fatalf("init: %s", r.err)
	}
	d, err := launchClusterd(b, dir, "--listen", "127.44.3.1:0", "--sim", "3", "--sim-speed", "1000", "--sim-ssh-port", "0")
	if err != nil {
		b.Fatal(err)
	}
	return plain, secured{dir: dir, addr: d.addr}
}

func BenchmarkSecuredOneShotHostList(b *testing.B) {
	plain, sec := securedPair(b)
	token := func() string {
		cmd := exec.Command(filepath.Join(binDir, "acli"), "-o", "json", "token.create", "user=bench", "role=viewer")
		cmd.Env = []string{"HOME=" + b.TempDir(), "ACLI_SERVER=" + sec.addr, "ACLI_CONFIG=" + filepath.Join(sec.dir, "acli.yaml")}
		out, err := cmd.Output()
		if err != nil {
			b.Fatal(err)
		}
		var env struct {
			Data struct {
				Secret string `json:"secret"`
			} `json:"data"`
		}
		if err := json.Unmarshal(out, &env); err != nil || env.Data.Secret == "" {
			b.Fatalf("token.create: %v %s", err, out)
		}
		return env.Data.Secret
	}()
	run := func(env ...string) time.Duration {
		c := exec.Command(filepath.Join(binDir, "acli"), "host.list")
		c.Env = append([]string{"HOME=" + b.TempDir()}, env...)
		start := time.Now()
		out, err := c.Output()
		d := time.Since(start)
		if err != nil || len(out) == 0 {
			b.Fatalf("acli host.list %v: %v", env, err)
		}
		return d
	}
	var tp, tc, tt []time.Duration
	for i := 0; i < b.N; i++ {
		tp = append(tp, run("ACLI_SERVER="+plain))
		tc = append(tc, run("ACLI_SERVER="+sec.addr, "ACLI_CONFIG="+filepath.Join(sec.dir, "acli.yaml")))
		tt = append(tt, run("ACLI_SERVER="+sec.addr, "ACLI_CACERT="+sec.ca(), "ACLI_TOKEN="+token))
	}
	p, c, t := medianMs(tp), medianMs(tc), medianMs(tt)
	b.ReportMetric(p, "ms-plain")
	b.ReportMetric(c, "ms-tls-cert")
	b.ReportMetric(t, "ms-tls-token")
	b.ReportMetric(c/p, "ratio-cert")
	b.ReportMetric(t/p, "ratio-token")
}

// BenchmarkSecured16Clients is ListHosts throughput of 16 clients, each on
// its own connection, plaintext then TLS with a client certificate.
func BenchmarkSecured16Clients(b *testing.B) {
	plain, sec := securedPair(b)
	pk := func(f string) string { return filepath.Join(sec.dir, "pki", f) }
	const clients, calls = 16, 200
	rate := func(o client.Options) float64 {
		ctx := context.Background()
		cs := make([]*client.Client, clients)
		for i := range cs {
			c, err := client.Dial(ctx, o)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			cs[i] = c
		}
		start := time.Now()
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range calls {
					if _, err := c.Host.ListHosts(ctx, &acliv1.ListHostsRequest{}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return float64(clients*calls) / time.Since(start).Seconds()
	}
	var rp, rs []float64
	for i := 0; i < b.N; i++ {
		rp = append(rp, rate(client.Options{Addr: plain}))
		rs = append(rs, rate(client.Options{Addr: sec.addr, CACert: pk("ca.crt"), Cert: pk("admin.crt"), Key: pk("admin.key")}))
	}
	p, s := median(rp), median(rs)
	b.ReportMetric(p, "calls/s-plain")
	b.ReportMetric(s, "calls/s-tls-cert")
	b.ReportMetric(s/p, "ratio")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
