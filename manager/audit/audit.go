// Package audit keeps clusterd's audit log: one JSON line per mutation and
// per denied call, appended and synced before the call answers, rotated by
// size, and read back for audit.list.
package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

// FileName is the current log inside the audit directory; rotated ones
// are FileName.1 (newest) to FileName.<Keep>.
const FileName = "audit.log"

// Defaults for Options.
const (
	DefaultMaxSize = 16 << 20
	DefaultKeep    = 5
)

// Options tune rotation.
type Options struct {
	// MaxSize rotates the log before a line would take it past this many bytes.
	MaxSize int64
	// Keep is how many rotated files are kept.
	Keep int
}

// Log is an append-only audit log; safe for concurrent use.
type Log struct {
	dir  string
	opts Options

	mu   sync.Mutex
	f    *os.File
	size int64
}

// line is the JSON form of an entry (stable names, args as JSON).
type line struct {
	Time      time.Time       `json:"time"`
	Principal string          `json:"principal"`
	Role      string          `json:"role,omitempty"`
	Source    string          `json:"source,omitempty"`
	RPC       string          `json:"rpc"`
	Args      json.RawMessage `json:"args,omitempty"`
	Result    string          `json:"result"`
	Error     string          `json:"error,omitempty"`
	TaskUUID  string          `json:"task_uuid,omitempty"`
}

// Open opens (creating) dir/audit.log for appending; the directory is 0700
// and the files 0600.
func Open(dir string, opts Options) (*Log, error) {
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.Keep <= 0 {
		opts.Keep = DefaultKeep
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	l := &Log{dir: dir, opts: opts}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Log) open() error {
	f, err := os.OpenFile(filepath.Join(l.dir, FileName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit: %w", err)
	}
	l.f, l.size = f, st.Size()
	return nil
}

// Record appends one entry and syncs it to disk before returning.
func (l *Log) Record(e *acliv1.AuditEntry) error {
	ln := line{Time: e.GetTime().AsTime().UTC(), Principal: e.GetPrincipal(), Role: e.GetRole(), Source: e.GetSource(),
		RPC: e.GetRpc(), Result: e.GetResult(), Error: e.GetError(), TaskUUID: e.GetTaskUuid()}
	if e.GetTime() == nil {
		ln.Time = time.Now().UTC()
	}
	if a := e.GetArgs(); a != "" && json.Valid([]byte(a)) {
		ln.Args = json.RawMessage(a)
	}
	b, err := json.Marshal(ln)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return errors.New("audit: log is closed")
	}
	if l.size > 0 && l.size+int64(len(b)) > l.opts.MaxSize {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	n, err := l.f.Write(b)
	l.size += int64(n)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// rotate shifts audit.log.N to N+1 (dropping the oldest) and starts a new file.
func (l *Log) rotate() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	l.f = nil
	base := filepath.Join(l.dir, FileName)
	_ = os.Remove(base + "." + strconv.Itoa(l.opts.Keep))
	for i := l.opts.Keep - 1; i >= 1; i-- {
		if err := os.Rename(base+"."+strconv.Itoa(i), base+"."+strconv.Itoa(i+1)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("audit: %w", err)
		}
	}
	if err := os.Rename(base, base+".1"); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if err := l.open(); err != nil {
		return err
	}
	if d, err := os.Open(l.dir); err == nil {
		_ = d.Sync() // the renames survive a crash
		d.Close()
	}
	return nil
}

// Close closes the file; later Records fail.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// List returns the last req.Limit (default 100) entries that match, oldest
// first, reading the rotated files too.
func (l *Log) List(req *acliv1.ListAuditRequest) ([]*acliv1.AuditEntry, error) {
	limit := int(req.GetLimit())
	if limit <= 0 {
		limit = 100
	}
	l.mu.Lock()
	defer l.mu.Unlock() // no rotation while reading
	base := filepath.Join(l.dir, FileName)
	files := []string{}
	for i := l.opts.Keep; i >= 1; i-- {
		files = append(files, base+"."+strconv.Itoa(i))
	}
	files = append(files, base)
	var out []*acliv1.AuditEntry
	for _, name := range files {
		data, err := os.ReadFile(name)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var ln line
			if json.Unmarshal(sc.Bytes(), &ln) != nil {
				continue // a torn last line after a crash
			}
			e := &acliv1.AuditEntry{Time: timestamppb.New(ln.Time), Principal: ln.Principal, Role: ln.Role,
				Source: ln.Source, Rpc: ln.RPC, Args: string(ln.Args), Result: ln.Result, Error: ln.Error, TaskUuid: ln.TaskUUID}
			if matches(req, e) {
				out = append(out, e)
				if len(out) > limit {
					out = out[1:]
				}
			}
		}
	}
	return out, nil
}

func matches(req *acliv1.ListAuditRequest, e *acliv1.AuditEntry) bool {
	if req.GetPrincipal() != "" && e.GetPrincipal() != req.GetPrincipal() {
		return false
	}
	if req.GetRpc() != "" && !strings.Contains(strings.ToLower(e.GetRpc()), strings.ToLower(req.GetRpc())) {
		return false
	}
	if req.GetDenied() && !Denied(e.GetResult()) {
		return false
	}
	return true
}

// Denied reports whether a result names a refused call.
func Denied(result string) bool { return result == "PermissionDenied" || result == "Unauthenticated" }
