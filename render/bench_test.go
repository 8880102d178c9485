package render

import (
	"fmt"
	"io"
	"testing"
)

// BenchmarkTable10k renders a vm.list-shaped table of 10,000 rows.
func BenchmarkTable10k(b *testing.B) {
	t := &TableData{Headers: []string{"VM name", "VM UUID", "Power state", "Host", "vCPUs", "Memory"}}
	for i := range 10000 {
		t.Rows = append(t.Rows, []string{fmt.Sprintf("vm%04d", i), fmt.Sprintf("00000000-0000-4000-8000-%012d", i), "kOn", "node-1", "2", "4G"})
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteTable(io.Discard, t, false); err != nil {
			b.Fatal(err)
		}
	}
}
