// Package bolt is the embedded store.Store backend: one bbolt file,
// DIR/state.db.
//
// Writes go through a single committer goroutine that implements group
// commit: every transaction queued while the previous bbolt transaction was
// being fsynced is applied in the next one, so N concurrent writers share one
// fsync instead of paying N. Each queued transaction still succeeds or fails
// on its own (a failed compare rejects only that transaction); only an I/O
// error fails the whole group.
//
// Value layout in the "kv" bucket: 8 bytes create revision, 8 bytes mod
// revision (big endian), then the value. The "meta" bucket holds the store
// revision under "rev".
package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/acli-dev/acli/manager/store"
)

// FileName is the data file inside the data directory.
const FileName = "state.db"

var (
	bucketKV   = []byte("kv")
	bucketMeta = []byte("meta")
	keyRev     = []byte("rev")
)

const headerLen = 16

// maxGroup bounds how many queued transactions share one bbolt transaction,
// so one huge group cannot stall the writers behind it for long.
const maxGroup = 2048

// Options tune the store.
type Options struct {
	// LockTimeout is how long Open waits for another process's lock (default 1s).
	LockTimeout time.Duration
	// NoSync skips fsync: for tests and benchmark set-up only, never production.
	NoSync bool
}

// Store is the bbolt store.Store.
type Store struct {
	db   *bbolt.DB
	reqs chan *request

	mu     sync.RWMutex // guards closed; held for reading while enqueuing
	closed bool
	done   chan struct{}
}

type request struct {
	conds []store.Cond
	ops   []store.Op
	rev   int64
	err   error
	done  chan struct{}
}

// OpenError says why the data file could not be opened; its message is one
// line meant for an operator.
type OpenError struct {
	Path string
	// Reason is "locked", "corrupt" or "io".
	Reason string
	Err    error
}

func (e *OpenError) Error() string {
	switch e.Reason {
	case "locked":
		return fmt.Sprintf("data file %s is locked by another process (is another clusterd using this data dir?)", e.Path)
	case "corrupt":
		return fmt.Sprintf("data file %s is corrupt or not a clusterd data file (%v); it was left untouched — restore it from a backup or move it away", e.Path, e.Err)
	default:
		return fmt.Sprintf("data file %s: %v", e.Path, e.Err)
	}
}

func (e *OpenError) Unwrap() error { return e.Err }

// Open opens (creating if needed) DIR/state.db. A file locked by another
// process or a corrupt file gives an *OpenError and nothing is written.
func Open(dir string, opts Options) (*Store, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, &OpenError{Path: dir, Reason: "io", Err: err}
	}
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); err == nil {
		// An existing file is a cluster's state, whatever its size: check
		// it is whole, then validate read-only, so a damaged file is never
		// written to nor mistaken for a new one.
		if err := checkLength(path); err != nil {
			return nil, err
		}
		if err := validate(path, opts.LockTimeout); err != nil {
			return nil, err
		}
	}
	db, err := openDB(path, &bbolt.Options{
		Timeout: opts.LockTimeout,
		NoSync:  opts.NoSync,
		// The freelist stays synced: rebuilding it at open walks every page
		// in a goroutine that panics on a damaged file, which no caller can
		// recover from; with it synced, validate() catches damage first.
		FreelistType: bbolt.FreelistMapType,
	})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketKV); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketMeta)
		return err
	})
	if err != nil {
		db.Close()
		return nil, &OpenError{Path: path, Reason: "io", Err: err}
	}
	s := &Store{db: db, reqs: make(chan *request, maxGroup), done: make(chan struct{})}
	go s.commitLoop()
	return s, nil
}

// openDB opens bbolt, turning its errors (and panics on garbage input) into
// an *OpenError.
func openDB(path string, o *bbolt.Options) (db *bbolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, &OpenError{Path: path, Reason: "corrupt", Err: fmt.Errorf("%v", r)}
		}
	}()
	db, err = bbolt.Open(path, 0o600, o)
	if err == nil {
		return db, nil
	}
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, &OpenError{Path: path, Reason: "locked", Err: err}
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum),
		errors.Is(err, bolterrors.ErrVersionMismatch), errors.Is(err, bolterrors.ErrInvalidMapping):
		return nil, &OpenError{Path: path, Reason: "corrupt", Err: err}
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return nil, &OpenError{Path: path, Reason: "io", Err: err}
	}
	// Anything else bbolt rejects while reading the file is damage.
	return nil, &OpenError{Path: path, Reason: "corrupt", Err: err}
}

// bbolt's file layout, read before bbolt maps the file: reading a page past
// the end of a truncated file faults (SIGBUS) rather than failing.
const (
	boltMagic      = 0xED0CDAED
	boltPageHeader = 16 // page id, flags, count, overflow
	boltMetaSum    = 56 // meta bytes covered by its checksum
)

// checkLength refuses an empty file and one shorter than its meta page says
// (pages up to the high-water mark must all be there).
func checkLength(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return &OpenError{Path: path, Reason: "io", Err: err}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return &OpenError{Path: path, Reason: "io", Err: err}
	}
	size := fi.Size()
	if size == 0 {
		return &OpenError{Path: path, Reason: "corrupt", Err: errors.New("the file is empty; a new cluster is created only in a data dir without " + FileName)}
	}
	var pageSize, pages int64
	var txid uint64
	// The first meta page sits at 0, the second one page further; the valid
	// one with the higher transaction id is current, as bbolt reads them.
	for i := 0; i < 2; i++ {
		off := int64(0)
		if i == 1 {
			if pageSize == 0 {
				break
			}
			off = pageSize
		}
		var b [boltPageHeader + boltMetaSum + 8]byte
		if _, err := f.ReadAt(b[:], off); err != nil {
			continue
		}
		m := b[boltPageHeader:]
		le := binary.LittleEndian
		if le.Uint32(m[0:4]) != boltMagic || le.Uint64(m[boltMetaSum:]) != fnv64a(m[:boltMetaSum]) {
			continue
		}
		ps, hw, tx := int64(le.Uint32(m[8:12])), int64(le.Uint64(m[40:48])), le.Uint64(m[48:56])
		if i == 0 {
			pageSize = ps
		}
		if pages == 0 || tx > txid {
			pages, txid = hw, tx
			pageSize = ps
		}
	}
	if pages == 0 || pageSize == 0 {
		return &OpenError{Path: path, Reason: "corrupt", Err: fmt.Errorf("no valid meta page in its %d bytes", size)}
	}
	if need := pages * pageSize; size < need {
		return &OpenError{Path: path, Reason: "corrupt", Err: fmt.Errorf("truncated: %d bytes of the %d its meta page records", size, need)}
	}
	return nil
}

func fnv64a(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// validate opens the file read-only and checks its page structure and the
// buckets clusterd expects.
func validate(path string, timeout time.Duration) error {
	db, err := openDB(path, &bbolt.Options{Timeout: timeout, ReadOnly: true})
	if err != nil {
		return err
	}
	defer db.Close()
	var problem error
	func() {
		defer func() {
			if r := recover(); r != nil {
				problem = fmt.Errorf("%v", r)
			}
		}()
		problem = db.View(func(tx *bbolt.Tx) error {
			for err := range tx.Check() {
				return err
			}
			if tx.Bucket(bucketKV) == nil && tx.Bucket(bucketMeta) != nil {
				return errors.New("missing kv bucket")
			}
			return nil
		})
	}()
	if problem != nil {
		return &OpenError{Path: path, Reason: "corrupt", Err: problem}
	}
	return nil
}

// Path returns the data file path.
func (s *Store) Path() string { return s.db.Path() }

func decode(k, v []byte) store.KV {
	kv := store.KV{Key: string(k)}
	if len(v) >= headerLen {
		kv.CreateRev = int64(binary.BigEndian.Uint64(v[0:8]))
		kv.ModRev = int64(binary.BigEndian.Uint64(v[8:16]))
		kv.Value = append([]byte(nil), v[headerLen:]...) // bbolt memory is only valid inside the tx
	}
	return kv
}

func encode(createRev, modRev int64, value []byte) []byte {
	b := make([]byte, headerLen+len(value))
	binary.BigEndian.PutUint64(b[0:8], uint64(createRev))
	binary.BigEndian.PutUint64(b[8:16], uint64(modRev))
	copy(b[headerLen:], value)
	return b
}

func (s *Store) view(fn func(tx *bbolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	return s.db.View(fn)
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, key string) (store.KV, error) {
	var kv store.KV
	err := s.view(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketKV).Get([]byte(key))
		if v == nil {
			return store.ErrNotFound
		}
		kv = decode([]byte(key), v)
		return nil
	})
	return kv, err
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, prefix string) ([]store.KV, error) {
	var out []store.KV
	p := []byte(prefix)
	err := s.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketKV).Cursor()
		for k, v := c.Seek(p); k != nil && hasPrefix(k, p); k, v = c.Next() {
			out = append(out, decode(k, v))
		}
		return nil
	})
	return out, err
}

func hasPrefix(b, p []byte) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == string(p)
}

// Revision implements store.Store.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	var rev int64
	err := s.view(func(tx *bbolt.Tx) error {
		rev = readRev(tx)
		return nil
	})
	return rev, err
}

func readRev(tx *bbolt.Tx) int64 {
	if v := tx.Bucket(bucketMeta).Get(keyRev); len(v) == 8 {
		return int64(binary.BigEndian.Uint64(v))
	}
	return 0
}

// Txn implements store.Store. Once queued, the transaction is committed or
// rejected regardless of ctx, so the caller always learns its outcome.
func (s *Store) Txn(ctx context.Context, conds []store.Cond, ops []store.Op) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r := &request{conds: conds, ops: ops, done: make(chan struct{})}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return 0, store.ErrClosed
	}
	s.reqs <- r
	s.mu.RUnlock()
	<-r.done
	return r.rev, r.err
}

func (s *Store) commitLoop() {
	defer close(s.done)
	group := make([]*request, 0, maxGroup)
	for r := range s.reqs {
		group = append(group[:0], r)
	drain:
		for len(group) < maxGroup {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break drain
				}
				group = append(group, r)
			default:
				break drain
			}
		}
		s.commitGroup(group)
	}
}

func (s *Store) commitGroup(group []*request) {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		kvb, meta := tx.Bucket(bucketKV), tx.Bucket(bucketMeta)
		rev := readRev(tx)
		for _, r := range group {
			r.rev, r.err = 0, nil
			if ce := checkConds(kvb, r.conds); ce != nil {
				r.err = ce
				continue
			}
			if len(r.ops) == 0 {
				r.rev = rev
				continue
			}
			rev++
			for _, op := range r.ops {
				k := []byte(op.Key)
				if op.Delete {
					if err := kvb.Delete(k); err != nil {
						return err
					}
					continue
				}
				create := rev
				if old := kvb.Get(k); len(old) >= headerLen {
					create = int64(binary.BigEndian.Uint64(old[0:8]))
				}
				if err := kvb.Put(k, encode(create, rev, op.Value)); err != nil {
					return err
				}
			}
			r.rev = rev
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(rev))
		return meta.Put(keyRev, b[:])
	})
	for _, r := range group {
		if err != nil {
			r.rev, r.err = 0, fmt.Errorf("commit to %s: %w", s.db.Path(), err)
		}
		close(r.done)
	}
}

func checkConds(b *bbolt.Bucket, conds []store.Cond) *store.ConflictError {
	var ce *store.ConflictError
	for _, c := range conds {
		var actual int64
		if v := b.Get([]byte(c.Key)); len(v) >= headerLen {
			actual = int64(binary.BigEndian.Uint64(v[8:16]))
		}
		if actual != c.ModRev {
			if ce == nil {
				ce = &store.ConflictError{}
			}
			ce.Mismatches = append(ce.Mismatches, store.Mismatch{Key: c.Key, Expected: c.ModRev, Actual: actual})
		}
	}
	return ce
}

// Close implements store.Store: queued transactions are committed, then the
// file is closed. Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.mu.Unlock()
	<-s.done
	return s.db.Close()
}
