package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager"

	"github.com/acli-dev/acli/manager/auth"
	"github.com/acli-dev/acli/manager/leader"
	"github.com/acli-dev/acli/manager/leader/readview"
	"github.com/acli-dev/acli/manager/store/etcd"
)

// retryDelay spaces attempts to reach etcd or to start a term.
const retryDelay = time.Second

// runShared is clusterd on etcd: it follows (forwarding every request to
// the leader) while it campaigns; once elected it runs the manager over the
// store view that fences each write on its leadership; when the leadership
// is lost it stops the manager and follows again.
func (sv *server) runShared(ctx context.Context, lis net.Listener, cfg etcd.Config, o *storeOptions) int {
	log := sv.log
	addr := lis.Addr().String()
	advertise := o.advertise
	if advertise == "" {
		advertise = addr
	}
	es, err := etcd.Open(ctx, cfg)
	if err != nil {
		lis.Close()
		fmt.Fprintf(sv.stderr, "clusterd: %v\n", err)
		return 1
	}
	defer es.Close()
	// The copy of the store reads are answered from while following; it
	// is kept while leading too, so a manager that loses its leadership
	// with the quorum still answers from the last state it saw.
	mctx, stopMirror := context.WithCancel(ctx)
	defer stopMirror()
	mi := etcd.NewMirror(es, manager.HistoryKeys...)
	go mi.Run(mctx, retryDelay)
	sv.views = readview.NewViews(mi, sv.o.driver, log)
	defer sv.views.Close()
	sv.status = func(ctx context.Context) (*acliv1.ClusterStatus, error) { return sharedStatus(ctx, es, advertise) }
	log.Info("store", "etcd", es.Endpoints(), "namespace", es.Namespace(), "advertise", advertise)
	for {
		// The candidacy is made while following, so a manager that cannot
		// reach a quorum keeps answering reads (from its copy) meanwhile.
		var el *etcd.Elector
		lis, err = sv.follow(ctx, lis, es, func(cctx context.Context) error {
			if el == nil {
				e, err := es.NewElector(cctx, o.leaseTTL)
				if err != nil {
					return fmt.Errorf("cannot join the election: %w", err)
				}
				el = e
			}
			err := el.Campaign(cctx, advertise)
			select {
			case <-el.Done():
				el.Close()
				el = nil
				return errLeaseGone
			default:
				return err
			}
		})
		if err != nil {
			if el != nil {
				el.Close()
			}
			return sv.relistenFailed(err)
		}
		if ctx.Err() != nil {
			if el != nil {
				el.Close()
			}
			lis.Close()
			return 0
		}
		if el == nil || !el.Leading() {
			if el != nil {
				el.Close()
			}
			continue
		}
		log.Info("elected leader", "advertise", advertise)
		if code := sv.serve(ctx, lis, el.Store(), el.Done()); ctx.Err() != nil {
			return code
		} else if code != 0 {
			// The term could not start (e.g. the store lost quorum):
			// give up the leadership and try again.
			el.Close()
			time.Sleep(retryDelay)
		}
		el.Close()
		if lis, err = net.Listen("tcp", addr); err != nil {
			return sv.relistenFailed(err)
		}
	}
}

// follow serves lis as a follower until campaign succeeds (it is tried
// again after each failure), then stops and returns a fresh listener on the
// same address for the next role.
func (sv *server) follow(ctx context.Context, lis net.Listener, es *etcd.Store, campaign func(context.Context) error) (net.Listener, error) {
	addr := lis.Addr().String()
	fw, sopts := sv.forwarder(es)
	srv := grpc.NewServer(sopts...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(lis)
	if l, err := es.Leader(ctx); err == nil {
		sv.log.Info("following", "listen", addr, "leader", l)
		fmt.Fprintf(sv.stdout, "clusterd: following on %s (leader %s)\n", addr, l)
	} else {
		sv.log.Info("following", "listen", addr, "leader", "none yet")
		fmt.Fprintf(sv.stdout, "clusterd: following on %s (no leader yet)\n", addr)
	}
	for {
		err := campaign(ctx)
		if err == nil || ctx.Err() != nil {
			break
		}
		sv.log.Warn("campaign", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(retryDelay):
		}
	}
	srv.Stop()
	fw.Close()
	if ctx.Err() != nil {
		return lis, nil
	}
	return net.Listen("tcp", addr)
}

// forwarder is how a follower serves: reads of the model from its own copy
// of the store (readview.Views), every other call forwarded to the leader.
// Callers are authenticated and authorized here. Over TLS the follower serves the same certificate as the leader, itself
// authenticates and authorizes each caller (denials audited here), and
// forwards over TLS presenting its manager certificate, which makes the
// leader believe the caller it names.
func (sv *server) forwarder(es *etcd.Store) (*leader.Forwarder, []grpc.ServerOption) {
	s := sv.sec
	authn := auth.New(auth.Config{ClientCAs: s.clientCAs, Tokens: auth.NewTokens(es, nil), Anonymous: s.anonymous, Audit: sv.audit, Logger: sv.log})
	if s.tls == nil {
		fw := leader.NewForwarder(es.Leader)
		fw.Local = sv.views.Route
		return fw, append(fw.ServerOptions(), grpc.ChainStreamInterceptor(authn.StreamInterceptor()))
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: s.clientCAs, Certificates: s.tls.Certificates}
	fw := leader.NewForwarder(es.Leader, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	fw.Identity = auth.ForwardedIdentity
	fw.Local = sv.views.Route
	return fw, append(fw.ServerOptions(), grpc.Creds(credentials.NewTLS(s.tls)), grpc.ChainStreamInterceptor(authn.StreamInterceptor()))
}

// errLeaseGone ends a campaign whose lease is lost: a new candidacy is needed.
var errLeaseGone = errors.New("lease gone")

func (sv *server) relistenFailed(err error) int {
	sv.log.Error("cannot listen again after a role change", "err", err)
	return 1
}

// sharedStatus is cluster.status on etcd: the candidates of the election
// (the leader first) and every etcd member's own report.
func sharedStatus(ctx context.Context, es *etcd.Store, self string) (*acliv1.ClusterStatus, error) {
	st := &acliv1.ClusterStatus{Store: "etcd", StoreLocation: es.Endpoints() + " " + es.Namespace(), Leader: self}
	cands, err := es.Candidates(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "reading the managers from etcd: %v", err)
	}
	for i, c := range cands {
		st.Managers = append(st.Managers, &acliv1.ManagerStatus{Address: c, Leader: i == 0})
	}
	members, err := es.Members(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "listing the etcd members: %v", err)
	}
	for _, m := range members {
		sm := &acliv1.StoreMember{Name: m.Name, Endpoint: m.Endpoint, Healthy: m.Healthy, Leader: m.Leader, Version: m.Version, DbSizeBytes: m.DBSize}
		if m.Err != nil {
			sm.Error = m.Err.Error()
		}
		st.StoreMembers = append(st.StoreMembers, sm)
	}
	return st, nil
}
