package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// On a real terminal: vm.list --watch prints the listing, then a line per
// changed or deleted row, and Ctrl-C ends it with exit 0; a table wider than the
// terminal has its free-text column cut; in a pipe the same watch is
// one line per change and times stay UTC RFC 3339.
func TestTmuxListWatch(t *testing.T) {
	addr := startClusterd(t)
	if r := acli(t, addr, "", "vm.create", "web01,web02,db01", "memory=1G"); r.code != 0 {
		t.Fatalf("%+v", r)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "run.sh")
	body := fmt.Sprintf("#!/bin/sh\nexec env -i HOME=%s PATH=%s:/usr/bin:/bin ACLI_SERVER=%s NO_COLOR=1 TERM=xterm PS1='$ ' bash --norc --noprofile\n", dir, binDir, addr)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	tm := newTmux(t, 60, 30, script)
	tm.waitFor("$")
	tm.typeText("acli -c name,power_state,host -w vm.list 'web*';echo x$?\n")
	tm.waitFor("web02    kOff")
	if r := acli(t, addr, "", "vm.on", "web01", "host=h1"); r.code != 0 {
		t.Fatalf("%+v", r)
	}
	tm.waitFor("web01    kOn          h1")
	if r := acli(t, addr, "", "vm.on", "db01"); r.code != 0 { // not watched
		t.Fatalf("%+v", r)
	}
	if r := acli(t, addr, "", "vm.on", "web02", "host=h2"); r.code != 0 {
		t.Fatalf("%+v", r)
	}
	tm.waitFor("web02    kOn          h2")
	for _, args := range [][]string{{"vm.off", "web02"}, {"-y", "vm.delete", "web02"}} {
		if r := acli(t, addr, "", args...); r.code != 0 {
			t.Fatalf("%v: %+v", args, r)
		}
	}
	tm.waitFor("(deleted)")
	tm.keys("C-c")
	sc := tm.waitFor("x0")
	want := "$ acli -c name,power_state,host -w vm.list 'web*';echo x$?\n" +
		"VM name  Power state  Host\n" +
		"web01    kOff\n" +
		"web02    kOff\n" +
		"web01    kOn          h1\n" +
		"web02    kOn          h2\n" +
		"web02    kOff\n" +
		"web02    kOff               (deleted)\n" +
		"^Cx0\n"
	if got := screenLines(t, sc, "$ acli -c name,power_state,host -w", 9); got+"\n" != want {
		t.Fatalf("watch on a terminal:\n%s\nwant:\n%s", got, want)
	}

	// 60 columns: event messages are cut to fit; event times are local.
	tm.typeText("clear;acli -c time,message,severity event.list limit=2\n")
	sc = ""
	for deadline := time.Now().Add(15 * time.Second); strings.Count(sc, "  info") < 2 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		sc = tm.screen()
	}
	lines := strings.Split(screenLines(t, sc, "Time", 3), "\n")
	// The power-off message is cut; the deletion's fits.
	local := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}  \S.*  info$`)
	if len(lines) != 3 || !local.MatchString(lines[1]) || !strings.Contains(lines[1], "…  info") || !local.MatchString(lines[2]) {
		t.Fatalf("event.list on 60 columns:\n%s", sc)
	}
	for _, l := range lines {
		if len([]rune(l)) > 60 {
			t.Fatalf("line wider than the terminal: %q", l)
		}
	}
	// In a pipe: UTC RFC 3339, nothing cut.
	r := acli(t, addr, "", "-c", "time,severity", "--no-headers", "event.list", "limit=1")
	if pipe := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z  info\n$`); r.code != 0 || !pipe.MatchString(r.out) {
		t.Fatalf("event.list in a pipe: %+v", r)
	}
}

// event.watch writes an event's time as local time to the millisecond on a
// terminal, one-shot and in the shell (as event.list's table does), and
// UTC RFC 3339 in a pipe. TZ names a zone far from UTC; ZONEINFO points
// at Go's own zone data so the test needs no tzdata package.
func TestTmuxEventWatchLocalTime(t *testing.T) {
	addr := startClusterd(t)
	// Two: since_seq=0 replays nothing, so the watch replays the second.
	// One at a time: a list's creates run at once, their events in no set order.
	for _, vg := range []string{"firstvg", "tzvg"} {
		if r := acli(t, addr, "", "vg.create", vg); r.code != 0 {
			t.Fatalf("vg.create %s: %+v", vg, r)
		}
	}
	var evs []struct {
		Seq     uint64    `json:"seq"`
		Time    time.Time `json:"time"`
		Message string    `json:"message"`
	}
	data(t, addr, &evs, "event.list", "type=vg")
	if len(evs) != 2 || !strings.HasPrefix(evs[1].Message, "volume group tzvg created") {
		t.Fatalf("events: %+v", evs)
	}
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatal(err)
	}
	zoneinfo := filepath.Join(strings.TrimSpace(string(goroot)), "lib", "time", "zoneinfo.zip")
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Setenv("ZONEINFO", zoneinfo)
		if kolkata, err = time.LoadLocation("Asia/Kolkata"); err != nil {
			t.Fatal(err)
		}
	}
	since, ev := fmt.Sprint(evs[0].Seq), evs[1]
	utc := ev.Time.UTC().Format("2006-01-02T15:04:05.000Z") + "  vg         " + ev.Message + "\n"
	local := ev.Time.In(kolkata).Format("2006-01-02 15:04:05.000") + "  vg         " + ev.Message

	// A pipe: UTC.
	if r := acli(t, addr, "", "--timeout", "1s", "event.watch", "type=vg", "since_seq="+since); r.code != 0 || r.out != utc {
		t.Fatalf("pipe: exit %d\n%q, want %q\n%s", r.code, r.out, utc, r.err)
	}

	dir := t.TempDir()
	env := fmt.Sprintf("HOME=%s ACLI_SERVER=%s TZ=Asia/Kolkata ZONEINFO=%s", dir, addr, zoneinfo)
	acliBin := filepath.Join(binDir, "acli")

	// One-shot on a terminal: local.
	oneShot := filepath.Join(dir, "oneshot.sh")
	body := fmt.Sprintf("#!/bin/sh\n%s %s --timeout 1s event.watch type=vg since_seq=%s\necho \"rc=$?\"\nsleep 30\n", env, acliBin, since)
	if err := os.WriteFile(oneShot, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	term := newTmux(t, 160, 30, oneShot)
	if sc := term.waitFor("rc="); !strings.Contains(sc, local+"\nrc=0\n") || strings.Contains(sc, "Z  vg") {
		t.Fatalf("one-shot on a terminal, want %q:\n%s", local, sc)
	}

	// The shell: local.
	shell := filepath.Join(dir, "shell.sh")
	body = fmt.Sprintf("#!/bin/sh\n%s %s\nsleep 30\n", env, acliBin)
	if err := os.WriteFile(shell, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	term = newTmux(t, 160, 30, shell)
	term.waitPrompt()
	term.typeText("event.watch type=vg since_seq=" + since)
	term.waitFor("<acropolis> event.watch type=vg since_seq=" + since)
	term.keys("Enter")
	sc := term.waitFor("volume group tzvg created")
	if !strings.Contains(sc, "\n"+local+"\n") || strings.Contains(sc, "Z  vg") {
		t.Fatalf("shell, want %q:\n%s", local, sc)
	}
	term.keys("C-c")
	term.waitPrompt()
}
