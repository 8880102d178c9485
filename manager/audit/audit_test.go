package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

func TestRecordListRotate(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{MaxSize: 600, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		res := "OK"
		if i%3 == 0 {
			res = "PermissionDenied"
		}
		if err := l.Record(&acliv1.AuditEntry{Principal: fmt.Sprintf("u%d", i%2), Rpc: "/acli.v1.VmService/CreateVm",
			Args: `{"name":"web` + fmt.Sprint(i) + `"}`, Result: res, TaskUuid: fmt.Sprint("t", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{FileName, FileName + ".1", FileName + ".2"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if st.Mode().Perm() != 0o600 || st.Size() > 600 {
			t.Errorf("%s: mode %v size %d", f, st.Mode().Perm(), st.Size())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, FileName+".3")); err == nil {
		t.Error("kept more than Keep rotated files")
	}
	// Every line of the current file is one JSON object with its args as JSON.
	f, _ := os.Open(filepath.Join(dir, FileName))
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if _, ok := m["args"].(map[string]any); !ok || m["rpc"] != "/acli.v1.VmService/CreateVm" || m["time"] == nil {
			t.Errorf("line %q", sc.Text())
		}
	}
	f.Close()

	all, err := l.List(&acliv1.ListAuditRequest{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 || all[len(all)-1].GetTaskUuid() != "t11" {
		t.Fatalf("List: %d entries, last %v", len(all), all[len(all)-1])
	}
	for i := 1; i < len(all); i++ {
		if all[i].GetTime().AsTime().Before(all[i-1].GetTime().AsTime()) {
			t.Fatal("List is not oldest first")
		}
	}
	denied, _ := l.List(&acliv1.ListAuditRequest{Denied: true, Principal: "u1"})
	for _, e := range denied {
		if e.GetResult() != "PermissionDenied" || e.GetPrincipal() != "u1" {
			t.Errorf("filtered entry %v", e)
		}
	}
	last2, _ := l.List(&acliv1.ListAuditRequest{Limit: 2})
	if len(last2) != 2 || last2[1].GetTaskUuid() != "t11" {
		t.Errorf("limit=2: %v", last2)
	}
	// Reopening appends.
	l.Close()
	l, err = Open(dir, Options{MaxSize: 600, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Record(&acliv1.AuditEntry{Principal: "z", Rpc: "/x", Result: "OK"}); err != nil {
		t.Fatal(err)
	}
	last, _ := l.List(&acliv1.ListAuditRequest{Limit: 1})
	if len(last) != 1 || last[0].GetPrincipal() != "z" {
		t.Errorf("after reopen: %v", last)
	}
}
