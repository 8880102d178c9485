package etcd

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// MemberStatus is one etcd member as its own endpoint reports it.
type MemberStatus struct {
	Name     string
	Endpoint string
	Healthy  bool
	// Leader: the member is etcd's raft leader.
	Leader  bool
	Version string
	DBSize  int64
	Err     error
}

// Members lists the etcd cluster's members and asks each for its status
// (at most a second each, in parallel).
func (s *Store) Members(ctx context.Context) ([]MemberStatus, error) {
	var list *clientv3.MemberListResponse
	err := s.call(ctx, func(ctx context.Context) error {
		var err error
		list, err = s.cli.MemberList(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]MemberStatus, len(list.Members))
	done := make(chan struct{}, len(list.Members))
	for i, m := range list.Members {
		out[i] = MemberStatus{Name: m.Name}
		if len(m.ClientURLs) == 0 {
			out[i].Err = errNoClientURL
			done <- struct{}{}
			continue
		}
		out[i].Endpoint = m.ClientURLs[0]
		go func(ms *MemberStatus, id uint64) {
			defer func() { done <- struct{}{} }()
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			st, err := s.cli.Status(sctx, ms.Endpoint)
			if err != nil {
				ms.Err = s.wrap(err)
				return
			}
			ms.Healthy = len(st.Errors) == 0 && st.Leader != 0
			ms.Leader = st.Leader == id
			ms.Version = st.Version
			ms.DBSize = st.DbSize
		}(&out[i], m.ID)
	}
	for range list.Members {
		<-done
	}
	return out, nil
}

type memberError string

func (e memberError) Error() string { return string(e) }

const errNoClientURL = memberError("the member has no client URL (not started yet?)")

// Candidates returns the address every manager announced in the election,
// the leader first.
func (s *Store) Candidates(ctx context.Context) ([]string, error) {
	var out []string
	err := s.call(ctx, func(ctx context.Context) error {
		resp, err := s.cli.Get(ctx, s.ns+"/election/", clientv3.WithPrefix(),
			clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
		if err != nil {
			return err
		}
		for _, kv := range resp.Kvs {
			out = append(out, string(kv.Value))
		}
		return nil
	})
	return out, err
}
