package audit

import (
	"context"

	"google.golang.org/grpc"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
)

// Service serves AuditService from a Log.
type Service struct {
	acliv1.UnimplementedAuditServiceServer
	Log *Log
}

// Register serves the AuditService on s.
func (sv *Service) Register(s *grpc.Server) { acliv1.RegisterAuditServiceServer(s, sv) }

// ListAudit returns the last matching entries, oldest first.
func (sv *Service) ListAudit(_ context.Context, req *acliv1.ListAuditRequest) (*acliv1.ListAuditResponse, error) {
	if req.GetLimit() < 0 {
		return nil, apierr.BadField("limit", "limit %d must be positive, e.g. limit=50", req.GetLimit())
	}
	es, err := sv.Log.List(req)
	if err != nil {
		return nil, apierr.Internal("reading the audit log", err)
	}
	return &acliv1.ListAuditResponse{Entries: es}, nil
}
