package render

import (
	"bytes"
	"testing"
)

// On a terminal, states that need attention are coloured after layout, so
// the columns line up as without colour; in a pipe nothing changes.
func TestColorAttentionStates(t *testing.T) {
	tbl := &TableData{Headers: []string{"Name", "Node state", "Status"}, Rows: [][]string{
		{"h1", "EnteredMaintenanceMode", "kSucceeded"},
		{"h2", "AcropolisNormal", "kFailed"},
	}}
	for _, c := range []struct {
		color bool
		want  string
	}{
		{false, "Name  Node state              Status\nh1    EnteredMaintenanceMode  kSucceeded\nh2    AcropolisNormal         kFailed\n"},
		{true, "Name  Node state              Status\nh1    \x1b[33mEnteredMaintenanceMode\x1b[0m  kSucceeded\nh2    AcropolisNormal         \x1b[31mkFailed\x1b[0m\n"},
	} {
		var out bytes.Buffer
		p := &Printer{IO: &IO{Out: &out}, Format: Table, Color: c.color}
		if err := p.Print(Doc{Table: tbl}); err != nil {
			t.Fatal(err)
		}
		if out.String() != c.want {
			t.Errorf("color %v:\n%q\nwant\n%q", c.color, out.String(), c.want)
		}
	}
}
