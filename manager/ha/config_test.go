package ha

import (
	"strings"
	"testing"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
)

func TestUpdate(t *testing.T) {
	yes, one, three := true, int32(1), int32(3)
	no := false
	tests := []struct {
		name string
		req  *acliv1.UpdateHaConfigRequest
		line string // "" when refused
		err  string
	}{
		{"nothing", &acliv1.UpdateHaConfigRequest{}, "", "nothing to update"},
		{"failover off", &acliv1.UpdateHaConfigRequest{EnableFailover: &no}, "HA updated: enable_failover=false", ""},
		{"all", &acliv1.UpdateHaConfigRequest{EnableFailover: &yes, NumHostFailuresToTolerate: &one, ReservationType: acliv1.HaReservationType_kAcropolisHAReserveSegments},
			"HA updated: enable_failover=true, num_host_failures_to_tolerate=1, reservation_type=kAcropolisHAReserveSegments", ""},
		{"too many failures", &acliv1.UpdateHaConfigRequest{NumHostFailuresToTolerate: &three}, "", "num_host_failures_to_tolerate 3 is out of range; use 1 to 2 (one less than the 3 hosts)"},
		{"unknown reservation", &acliv1.UpdateHaConfigRequest{ReservationType: 42}, "", "reservation_type 42 is unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := &acliv1.Cluster{Name: "c"}
			line, err := Update(next, tt.req, 3)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || line != tt.line {
				t.Fatalf("%q %v, want %q", line, err, tt.line)
			}
			if tt.req.EnableFailover != nil && FailoverEnabled(next) != *tt.req.EnableFailover {
				t.Fatalf("failover %v after %v", FailoverEnabled(next), *tt.req.EnableFailover)
			}
		})
	}
	if !FailoverEnabled(&acliv1.Cluster{}) {
		t.Fatal("failover is on unless turned off")
	}
}
