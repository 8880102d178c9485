package render

import (
	"testing"
	"time"
)

func TestTerminalTimesAndWidth(t *testing.T) {
	now := time.Date(2026, 12, 4, 19, 40, 0, 0, time.UTC)
	cet := time.FixedZone("CET", 3600)
	table := &TableData{
		Headers: []string{"Task UUID", "Created", "Message"},
		Rows: [][]string{
			{"6f1c0000-0000-4000-8000-000000000001", "2026-12-04T19:39:15Z", "migrating vm web01 to h2: round 3, 1.2 GiB remaining"},
			{"6f1c0000-0000-4000-8000-000000000002", "2026-12-01T08:00:00Z", "done"},
			{"6f1c0000-0000-4000-8000-000000000003", "2026-12-04T20:10:00Z", "expires"},
		},
	}
	events := &TableData{Headers: []string{"Seq", "Time"}, Rows: [][]string{{"7", "2026-12-04T19:39:15.250Z"}}}
	block := &Block{}
	block.Add("Name", "web01").Add("Created", "2026-12-04T17:40:00Z").Section("Disk").Add("Created", "2026-12-02T19:40:00Z")
	for _, tc := range []struct {
		name     string
		terminal bool
		width    int
		want     string
	}{
		{"pipe", false, 80,
			"Task UUID                             Created               Message\n" +
				"6f1c0000-0000-4000-8000-000000000001  2026-12-04T19:39:15Z  migrating vm web01 to h2: round 3, 1.2 GiB remaining\n" +
				"6f1c0000-0000-4000-8000-000000000002  2026-12-01T08:00:00Z  done\n" +
				"6f1c0000-0000-4000-8000-000000000003  2026-12-04T20:10:00Z  expires\n" +
				"Seq  Time\n7    2026-12-04T19:39:15.250Z\n" +
				"Name:     web01\nCreated:  2026-12-04T17:40:00Z\nDisk:\n  Created:  2026-12-02T19:40:00Z\n"},
		{"terminal 80 columns", true, 80,
			"Task UUID                             Created  Message\n" +
				"6f1c0000-0000-4000-8000-000000000001  45s ago  migrating vm web01 to h2: round …\n" +
				"6f1c0000-0000-4000-8000-000000000002  3d ago   done\n" +
				"6f1c0000-0000-4000-8000-000000000003  in 30m   expires\n" +
				"Seq  Time\n7    2026-12-04 20:39:15.250\n" +
				"Name:     web01\nCreated:  2026-12-04 18:40:00 CET (2h ago)\nDisk:\n  Created:  2026-12-02 20:40:00 CET (2d ago)\n"},
		{"terminal of unknown width", true, 0,
			"Task UUID                             Created  Message\n" +
				"6f1c0000-0000-4000-8000-000000000001  45s ago  migrating vm web01 to h2: round 3, 1.2 GiB remaining\n" +
				"6f1c0000-0000-4000-8000-000000000002  3d ago   done\n" +
				"6f1c0000-0000-4000-8000-000000000003  in 30m   expires\n" +
				"Seq  Time\n7    2026-12-04 20:39:15.250\n" +
				"Name:     web01\nCreated:  2026-12-04 18:40:00 CET (2h ago)\nDisk:\n  Created:  2026-12-02 20:40:00 CET (2d ago)\n"},
	} {
		io, out, _ := Test("", tc.terminal)
		p := &Printer{IO: io, Terminal: tc.terminal, Width: tc.width, Now: func() time.Time { return now }, Location: cet}
		for _, d := range []Doc{{Table: table}, {Table: events}, {Block: block}} {
			if err := p.Print(d); err != nil {
				t.Fatal(err)
			}
		}
		if out.String() != tc.want {
			t.Errorf("%s:\n%s--- want ---\n%s", tc.name, out.String(), tc.want)
		}
	}
}

// A streamed event's time: local to the millisecond on a terminal (as
// event tables show it), UTC RFC 3339 in a pipe.
func TestEventTime(t *testing.T) {
	at := time.Date(2026, 12, 4, 19, 39, 15, 250e6, time.UTC)
	cet := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		terminal bool
		want     string
	}{{true, "2026-12-04 20:39:15.250"}, {false, "2026-12-04T19:39:15.250Z"}} {
		p := &Printer{Terminal: tc.terminal, Location: cet}
		if got := p.EventTime(at.In(cet)); got != tc.want {
			t.Errorf("terminal=%v: %q, want %q", tc.terminal, got, tc.want)
		}
	}
}
