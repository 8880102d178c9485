package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/manager/apierr"
	"github.com/acli-dev/acli/manager/store"
)

// tokenPrefix is where token records live in the store, beside the model,
// so that every manager sharing a store sees the same tokens.
const tokenPrefix = "/tokens/"

// tokenMark starts every token, so that a token in a log or a config file is
// recognisable (and scanners can find leaked ones).
const tokenMark = "acli_"

// userPattern is the alphabet of user names in tokens and certificates.
var userPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// Tokens issues and checks bearer tokens. A token is "acli_<id>_<secret>":
// the id names the record, only the SHA-256 of the 256-bit secret is stored.
type Tokens struct {
	st  store.Store
	now func() time.Time
}

// NewTokens keeps tokens in st; now defaults to time.Now.
func NewTokens(st store.Store, now func() time.Time) *Tokens {
	if now == nil {
		now = time.Now
	}
	return &Tokens{st: st, now: now}
}

// CheckUser validates a user name (tokens and certificate CNs).
func CheckUser(user string) error {
	if !userPattern.MatchString(user) {
		return fmt.Errorf("user %q is not a user name: 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", user)
	}
	return nil
}

// Create issues a token for user with role, expiring after ttl (0: never).
// The secret is returned once and never stored.
func (t *Tokens) Create(ctx context.Context, user string, role Role, ttl time.Duration, by string) (*acliv1.ApiToken, string, error) {
	if err := CheckUser(user); err != nil {
		return nil, "", apierr.BadField("user", "%v", err)
	}
	if role < Viewer {
		return nil, "", apierr.BadField("role", "role is required: viewer, operator or admin")
	}
	if ttl < 0 {
		return nil, "", apierr.BadField("expires", "a token's lifetime must be positive, e.g. expires=24h")
	}
	var idb [6]byte
	var sec [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return nil, "", apierr.Internal("token", err)
	}
	if _, err := rand.Read(sec[:]); err != nil {
		return nil, "", apierr.Internal("token", err)
	}
	id := hex.EncodeToString(idb[:])
	secret := base64.RawURLEncoding.EncodeToString(sec[:])
	now := t.now()
	rec := &acliv1.ApiToken{Id: id, User: user, Role: role.String(), CreateTime: timestamppb.New(now),
		CreatedBy: by, SecretSha256: hashSecret(secret)}
	if ttl > 0 {
		rec.ExpireTime = timestamppb.New(now.Add(ttl))
	}
	b, err := proto.Marshal(rec)
	if err != nil {
		return nil, "", apierr.Internal("token", err)
	}
	if _, err := t.st.Txn(ctx, []store.Cond{{Key: tokenPrefix + id}}, []store.Op{store.PutOp(tokenPrefix+id, b)}); err != nil {
		return nil, "", apierr.Internal("storing the token", err)
	}
	return public(rec), tokenMark + id + "_" + secret, nil
}

// List returns every token (of user, when set), newest first, without hashes.
func (t *Tokens) List(ctx context.Context, user string) ([]*acliv1.ApiToken, error) {
	kvs, err := t.st.List(ctx, tokenPrefix)
	if err != nil {
		return nil, apierr.Internal("listing tokens", err)
	}
	var out []*acliv1.ApiToken
	for _, kv := range kvs {
		rec := &acliv1.ApiToken{}
		if err := proto.Unmarshal(kv.Value, rec); err != nil {
			continue // a damaged record authenticates nobody
		}
		if user == "" || rec.GetUser() == user {
			out = append(out, public(rec))
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].GetCreateTime().AsTime().After(out[j].GetCreateTime().AsTime())
	})
	return out, nil
}

// Revoke ends the token with this id (or a whole token, whose id is read
// from it); revoking a revoked token changes nothing.
func (t *Tokens) Revoke(ctx context.Context, id string) (*acliv1.ApiToken, error) {
	if tid, _, ok := splitToken(id); ok {
		id = tid
	}
	for {
		kv, rec, err := t.get(ctx, id)
		if err != nil {
			return nil, err
		}
		if rec.GetRevokeTime() != nil {
			return public(rec), nil
		}
		rec.RevokeTime = timestamppb.New(t.now())
		b, err := proto.Marshal(rec)
		if err != nil {
			return nil, apierr.Internal("token", err)
		}
		_, err = t.st.Txn(ctx, []store.Cond{{Key: kv.Key, ModRev: kv.ModRev}}, []store.Op{store.PutOp(kv.Key, b)})
		var ce *store.ConflictError
		if errors.As(err, &ce) {
			continue // changed meanwhile: read again
		}
		if err != nil {
			return nil, apierr.Internal("revoking the token", err)
		}
		return public(rec), nil
	}
}

func (t *Tokens) get(ctx context.Context, id string) (store.KV, *acliv1.ApiToken, error) {
	if id == "" || strings.ContainsAny(id, "/") {
		return store.KV{}, nil, apierr.BadField("id", "token id %q is not an id (see token.list)", id)
	}
	kv, err := t.st.Get(ctx, tokenPrefix+id)
	if errors.Is(err, store.ErrNotFound) {
		return store.KV{}, nil, apierr.NotFound("token", id, nil)
	}
	if err != nil {
		return store.KV{}, nil, apierr.Internal("reading the token", err)
	}
	rec := &acliv1.ApiToken{}
	if err := proto.Unmarshal(kv.Value, rec); err != nil {
		return store.KV{}, nil, apierr.Internal("reading the token", err)
	}
	return kv, rec, nil
}

// errBadToken is the one answer for tokens that name no record or whose
// secret does not match: which of the two is not said.
var errBadToken = errors.New("the token is not valid")

// Verify returns the principal a token stands for, or why it stands for none.
func (t *Tokens) Verify(ctx context.Context, token string) (Principal, error) {
	id, secret, ok := splitToken(token)
	if !ok {
		return Principal{}, errBadToken
	}
	kv, err := t.st.Get(ctx, tokenPrefix+id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Principal{}, errBadToken
		}
		return Principal{}, err
	}
	rec := &acliv1.ApiToken{}
	if err := proto.Unmarshal(kv.Value, rec); err != nil {
		return Principal{}, errBadToken
	}
	if subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(rec.GetSecretSha256())) != 1 {
		return Principal{}, errBadToken
	}
	if rec.GetRevokeTime() != nil {
		return Principal{}, fmt.Errorf("token %s was revoked at %s", id, rec.GetRevokeTime().AsTime().UTC().Format(time.RFC3339))
	}
	if e := rec.GetExpireTime(); e != nil && !t.now().Before(e.AsTime()) {
		return Principal{}, fmt.Errorf("token %s expired at %s", id, e.AsTime().UTC().Format(time.RFC3339))
	}
	role, err := ParseRole(rec.GetRole())
	if err != nil {
		return Principal{}, errBadToken
	}
	return Principal{User: rec.GetUser(), Role: role, Method: MethodToken}, nil
}

func splitToken(tok string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(tok), tokenMark)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) != 12 || secret == "" {
		return "", "", false
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", "", false
	}
	return id, secret, true
}

func hashSecret(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// public is the record as the API shows it: without the hash.
func public(rec *acliv1.ApiToken) *acliv1.ApiToken {
	c := proto.Clone(rec).(*acliv1.ApiToken)
	c.SecretSha256 = ""
	return c
}
