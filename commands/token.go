package commands

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/render"
	"google.golang.org/protobuf/types/known/durationpb"
)

var roleEnum = []EnumValue{{Name: "viewer", Value: 1}, {Name: "operator", Value: 2}, {Name: "admin", Value: 3}}

func tokenCommands() []*Command {
	return []*Command{
		{
			Name:        "token.create",
			Summary:     "Issue a bearer token for a user with a role; the token is shown once",
			Description: "The token is printed once and stored only as a hash. Give it to acli with --token, ACLI_TOKEN or a context's token.",
			Keys: []Key{
				{Name: "user", Type: TypeString, Required: true, Help: "user the token acts as", Example: "alice"},
				{Name: "role", Type: TypeEnum, Required: true, Enum: roleEnum, Help: "viewer (reads), operator (power, migrate, maintenance, VG attach) or admin (everything)"},
				{Name: "expires", Type: TypeString, Help: "lifetime, e.g. 12h or 30d (default: never)", Example: "30d"},
			},
			Validate: func(inv *Invocation) error {
				if v, ok := inv.Values["expires"]; ok && inv.Set["expires"] {
					if _, err := parseLifetime(v.Raw); err != nil {
						return usageErrorf("expires=%s: %v", v.Raw, err)
					}
				}
				return nil
			},
			Output:   OutputBlock,
			Examples: []string{"token.create user=ci role=operator expires=30d"},
			Run:      runTokenCreate,
		},
		{
			Name:     "token.list",
			Summary:  "List tokens (never their secrets), newest first",
			Keys:     []Key{{Name: "user", Type: TypeString, Help: "only this user's tokens"}},
			Output:   OutputTable,
			Examples: []string{"token.list", "token.list user=ci"},
			Run:      runTokenList,
		},
		{
			Name:        "token.revoke",
			Summary:     "Revoke tokens at once",
			Args:        []Arg{{Name: "token", Kind: KindToken, Many: true, Help: "token id (see token.list)"}},
			Destructive: "Revoke",
			Output:      OutputTable,
			Examples:    []string{"token.revoke 3f2a9c0b1d4e"},
			Run:         runTokenRevoke,
		},
		{
			Name:     "token.whoami",
			Summary:  "Show who clusterd takes you for: user, role and how you were identified",
			Output:   OutputBlock,
			Examples: []string{"token.whoami"},
			Run:      runWhoAmI,
		},
	}
}

// parseLifetime reads Go durations plus a d (days) suffix.
func parseLifetime(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("not a lifetime; use e.g. 12h or 30d")
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("not a lifetime; use e.g. 12h or 30d")
	}
	return d, nil
}

func runTokenCreate(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	req := &acliv1.CreateTokenRequest{User: r.String("user"), Role: r.String("role")}
	if r.Has("expires") {
		d, _ := parseLifetime(r.String("expires"))
		req.Ttl = durationpb.New(d)
	}
	resp, err := c.Token.CreateToken(ctx, req)
	if err != nil {
		return err
	}
	b := tokenBlock(resp.GetToken())
	b.Add("Token", resp.GetSecret())
	return r.Print(render.Doc{Data: resp, Block: b})
}

func runTokenList(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Token.ListTokens(ctx, &acliv1.ListTokensRequest{User: r.String("user")})
	if err != nil {
		return err
	}
	return r.Print(render.Doc{Data: resp.GetTokens(), Table: tokenTable(resp.GetTokens())})
}

func runTokenRevoke(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	var out []*acliv1.ApiToken
	for _, t := range r.Targets(0) {
		tok, err := c.Token.RevokeToken(ctx, &acliv1.RevokeTokenRequest{Id: t.ID})
		if err != nil {
			return err
		}
		out = append(out, tok)
	}
	return r.Print(render.Doc{Data: out, Table: tokenTable(out)})
}

func runWhoAmI(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	p, err := c.Token.WhoAmI(ctx, &acliv1.WhoAmIRequest{})
	if err != nil {
		return err
	}
	b := &render.Block{}
	b.Add("User", p.GetUser()).Add("Role", p.GetRole()).Add("Identified by", p.GetMethod())
	return r.Print(render.Doc{Data: p, Block: b})
}

func tokenState(t *acliv1.ApiToken) string {
	switch {
	case t.GetRevokeTime() != nil:
		return "revoked"
	case t.GetExpireTime() != nil && !time.Now().Before(t.GetExpireTime().AsTime()):
		return "expired"
	}
	return "active"
}

func tokenTable(toks []*acliv1.ApiToken) *render.TableData {
	t := &render.TableData{Headers: []string{"Token id", "User", "Role", "State", "Created", "Expires", "Created by"}}
	for _, k := range toks {
		t.Rows = append(t.Rows, []string{k.GetId(), k.GetUser(), k.GetRole(), tokenState(k), ts(k.GetCreateTime()), ts(k.GetExpireTime()), k.GetCreatedBy()})
	}
	return t
}

func tokenBlock(k *acliv1.ApiToken) *render.Block {
	b := &render.Block{}
	b.Add("Token id", k.GetId()).Add("User", k.GetUser()).Add("Role", k.GetRole()).
		Add("State", tokenState(k)).Add("Created", ts(k.GetCreateTime())).Add("Expires", ts(k.GetExpireTime()))
	return b
}

func auditCommands() []*Command {
	return []*Command{
		{
			Name:    "audit.list",
			Summary: "List audit log entries, oldest first: mutations and denied calls",
			Keys: []Key{
				{Name: "limit", Type: TypeInt, Default: "100", Min: 1, Max: 100000, Help: "the last this many"},
				{Name: "principal", Type: TypeString, Help: "only this user", Example: "alice"},
				{Name: "rpc", Type: TypeString, Help: "only RPCs whose name contains this", Example: "CreateVm"},
				{Name: "denied", Type: TypeBool, Default: "false", Help: "only denied calls"},
			},
			Output:   OutputTable,
			Examples: []string{"audit.list", "audit.list denied=true limit=20", "audit.list principal=alice rpc=Migrate"},
			Run:      runAuditList,
		},
	}
}

func runAuditList(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Audit.ListAudit(ctx, &acliv1.ListAuditRequest{Limit: r.Int32("limit"), Principal: r.String("principal"),
		Rpc: r.String("rpc"), Denied: r.Bool("denied")})
	if err != nil {
		return err
	}
	t := &render.TableData{Headers: []string{"Time", "Principal", "Role", "Source", "RPC", "Result", "Task UUID", "Error"}}
	for _, e := range resp.GetEntries() {
		rpc := e.GetRpc()
		if i := strings.LastIndex(rpc, "."); i >= 0 {
			rpc = rpc[i+1:]
		}
		t.Rows = append(t.Rows, []string{ts(e.GetTime()), e.GetPrincipal(), e.GetRole(), e.GetSource(), rpc, e.GetResult(), e.GetTaskUuid(), e.GetError()})
	}
	return r.Print(render.Doc{Data: resp.GetEntries(), Table: t})
}
