package auth

import (
	"context"

	"google.golang.org/grpc"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
)

// Service serves TokenService over a token store.
type Service struct {
	acliv1.UnimplementedTokenServiceServer
	Tokens *Tokens
}

// Register serves the TokenService on s.
func (sv *Service) Register(s *grpc.Server) { acliv1.RegisterTokenServiceServer(s, sv) }

// CreateToken issues a token; the caller is recorded as its creator.
func (sv *Service) CreateToken(ctx context.Context, req *acliv1.CreateTokenRequest) (*acliv1.CreateTokenResponse, error) {
	role, err := ParseRole(req.GetRole())
	if err != nil {
		return nil, apierr.BadField("role", "%v", err)
	}
	if err := req.GetTtl().CheckValid(); req.GetTtl() != nil && err != nil {
		return nil, apierr.BadField("expires", "%v", err)
	}
	tok, secret, err := sv.Tokens.Create(ctx, req.GetUser(), role, req.GetTtl().AsDuration(), UserFromContext(ctx))
	if err != nil {
		return nil, err
	}
	return &acliv1.CreateTokenResponse{Token: tok, Secret: secret}, nil
}

// ListTokens lists tokens without secrets.
func (sv *Service) ListTokens(ctx context.Context, req *acliv1.ListTokensRequest) (*acliv1.ListTokensResponse, error) {
	toks, err := sv.Tokens.List(ctx, req.GetUser())
	if err != nil {
		return nil, err
	}
	return &acliv1.ListTokensResponse{Tokens: toks}, nil
}

// RevokeToken revokes a token by id.
func (sv *Service) RevokeToken(ctx context.Context, req *acliv1.RevokeTokenRequest) (*acliv1.ApiToken, error) {
	return sv.Tokens.Revoke(ctx, req.GetId())
}

// WhoAmI returns the caller.
func (sv *Service) WhoAmI(ctx context.Context, _ *acliv1.WhoAmIRequest) (*acliv1.Principal, error) {
	p, _ := FromContext(ctx)
	return &acliv1.Principal{User: p.User, Role: p.Role.String(), Method: p.Method}, nil
}
