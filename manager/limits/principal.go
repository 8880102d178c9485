package limits

import (
	"context"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Shares per principal, so one identity cannot starve the others: each
// caller's calls at once and streams are capped on their own, whatever
// connections they are spread over. A call beyond the cap waits for one of
// its owner's calls to end (within its deadline); beyond the queue it is
// refused. Calls are capped rather than rated: the cap bounds the work one
// identity holds in clusterd however long its calls take.
const (
	DefaultCallsPerPrincipal   = 64
	DefaultQueuedPerPrincipal  = 1024
	DefaultStreamsPerPrincipal = 256
)

// shares holds each principal's running calls, waiting calls and streams.
type shares struct {
	calls, queued, streams int

	mu sync.Mutex
	m  map[string]*share
}

type share struct {
	refs    int           // calls and streams using the entry; dropped at 0
	slots   chan struct{} // a token per running call
	waiting int
	streams int
}

func newShares(cfg Config) *shares {
	return &shares{calls: cfg.CallsPerPrincipal, queued: cfg.QueuedPerPrincipal, streams: cfg.StreamsPerPrincipal, m: map[string]*share{}}
}

func (s *shares) getLocked(who string) *share {
	sh := s.m[who]
	if sh == nil {
		sh = &share{slots: make(chan struct{}, s.calls)}
		s.m[who] = sh
	}
	sh.refs++
	return sh
}

func (s *shares) putLocked(who string, sh *share) {
	if sh.refs--; sh.refs == 0 {
		delete(s.m, who)
	}
}

func (s *shares) put(who string, sh *share) {
	s.mu.Lock()
	s.putLocked(who, sh)
	s.mu.Unlock()
}

// call admits one unary call of who, waiting for a slot when its calls
// are all running; done frees the slot.
func (s *shares) call(ctx context.Context, who string) (done func(), err error) {
	s.mu.Lock()
	sh := s.getLocked(who)
	s.mu.Unlock()
	done = func() {
		<-sh.slots
		s.put(who, sh)
	}
	select {
	case sh.slots <- struct{}{}:
		return done, nil
	default:
	}
	s.mu.Lock()
	if sh.waiting >= s.queued {
		s.putLocked(who, sh)
		s.mu.Unlock()
		return nil, status.Errorf(codes.ResourceExhausted, "%s already has %d calls running and %d waiting, the most one user may; retry later", who, s.calls, s.queued)
	}
	sh.waiting++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		sh.waiting--
		s.mu.Unlock()
	}()
	select {
	case sh.slots <- struct{}{}:
		return done, nil
	case <-ctx.Done():
		s.put(who, sh)
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// stream admits one stream of who; done frees its place.
func (s *shares) stream(who string) (done func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.getLocked(who)
	if sh.streams >= s.streams {
		s.putLocked(who, sh)
		return nil, status.Errorf(codes.ResourceExhausted, "%s already has %d streams open (event and task watches), the most one user may; close one first", who, s.streams)
	}
	sh.streams++
	return func() {
		s.mu.Lock()
		sh.streams--
		s.putLocked(who, sh)
		s.mu.Unlock()
	}, nil
}
