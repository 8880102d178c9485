package commands

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/manager/driver/sim"
	"github.com/acli-dev/acli/manager/managertest"
	shlex "github.com/anmitsu/go-shlex"
)

// corpusCase is one script line of testdata/compat and what acli's
// documented behaviour says it does.
type corpusCase struct {
	file  string
	line  int
	args  string
	stdin []string
	want  []string // "= exact", "~ regexp", "*"
	code  int
	gap   string // a known gap: the case must fail
}

func readCorpus(t *testing.T, path string) []corpusCase {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []corpusCase
	for i, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "$ ") {
			out = append(out, corpusCase{file: filepath.Base(path), line: i + 1, args: l[2:]})
			continue
		}
		if len(out) == 0 {
			t.Fatalf("%s:%d: %q before the first $ line", path, i+1, l)
		}
		c := &out[len(out)-1]
		switch {
		case l == "*" || strings.HasPrefix(l, "= ") || strings.HasPrefix(l, "~ "):
			c.want = append(c.want, l)
		case strings.HasPrefix(l, "< "):
			c.stdin = append(c.stdin, l[2:])
		case strings.HasPrefix(l, "? "):
			if c.code, err = strconv.Atoi(l[2:]); err != nil {
				t.Fatalf("%s:%d: %v", path, i+1, err)
			}
		case strings.HasPrefix(l, "! "):
			c.gap = l[2:]
		default:
			t.Fatalf("%s:%d: cannot read %q", path, i+1, l)
		}
	}
	return out
}

// matchLines matches stdout's lines against the expected ones ("*" takes
// any number of lines).
func matchLines(want, got []string) bool {
	if len(want) == 0 {
		return len(got) == 0
	}
	w := want[0]
	if w == "*" {
		for k := 0; k <= len(got); k++ {
			if matchLines(want[1:], got[k:]) {
				return true
			}
		}
		return false
	}
	if len(got) == 0 {
		return false
	}
	ok := false
	if strings.HasPrefix(w, "= ") {
		ok = got[0] == w[2:]
	} else if re, err := regexp.Compile(w[2:]); err == nil {
		ok = re.MatchString(got[0])
	}
	return ok && matchLines(want[1:], got[1:])
}

// TestCompatCorpus replays the acli script lines of testdata/compat against
// a simulated cluster and reports how many behave as on acli. Known gaps
// must still fail, so a gap that closes is noticed and unmarked.
func TestCompatCorpus(t *testing.T) {
	files, err := filepath.Glob("../testdata/compat/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	// Host 2 has a passthrough GPU and a PCIe device, host 3 a GPU split
	// into vGPUs by profile (the corpus's device lines).
	conn, _ := managertest.Start(t, managertest.Options{Sim: &sim.Config{HostList: []sim.HostSpec{{}, {Devices: []sim.DeviceSpec{
		{Kind: "gpu", Vendor: "Nvidia", Model: "Tesla_M60"}, {Kind: "pcie", Vendor: "Intel", Model: "X710_VF"},
	}}, {Devices: []sim.DeviceSpec{{Kind: "gpu", Vendor: "Nvidia", Model: "Tesla_T4",
		Profiles: []sim.ProfileSpec{{Name: "2Q", Count: 2, Type: "nvidia-231"}, {Name: "16Q", Count: 1, Type: "nvidia-234"}}}}}}}})
	h := &harness{t: t, c: client.New(conn)}
	pass, total, gaps := 0, 0, 0
	for _, f := range files {
		for _, c := range readCorpus(t, f) {
			total++
			args, err := shlex.Split(c.args, true)
			if err != nil {
				t.Fatalf("%s:%d: %v", c.file, c.line, err)
			}
			h.in = ""
			if len(c.stdin) > 0 {
				h.in = strings.Join(c.stdin, "\n") + "\n"
			}
			code, out, errOut := h.run(args...)
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if out == "" {
				lines = nil
			}
			ok := code == c.code && matchLines(c.want, lines)
			switch {
			case ok && c.gap == "":
				pass++
			case ok:
				t.Errorf("%s:%d: acli %s passes: remove its gap (%s)", c.file, c.line, c.args, c.gap)
			case c.gap != "":
				gaps++
			default:
				t.Errorf("%s:%d: acli %s: exit %d (want %d)\nstdout:\n%s\nstderr:\n%s\nwant:\n%s",
					c.file, c.line, c.args, code, c.code, out, errOut, strings.Join(c.want, "\n"))
			}
		}
	}
	t.Logf("acli corpus: %d of %d lines behave as on acli; %d known gaps", pass, total, gaps)
}
