package commands

import (
	"context"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
	"github.com/acli-dev/acli/render"
	"google.golang.org/protobuf/proto"
)

// acli's cluster-wide HA and ADS settings.

var haReservationTypes = []EnumValue{
	{Name: "kAcropolisHAReserveSegments", Aliases: []string{"guarantee", "segments"}, Value: int32(acliv1.HaReservationType_kAcropolisHAReserveSegments)},
	{Name: "kAcropolisHANoReservations", Aliases: []string{"best_effort", "none"}, Value: int32(acliv1.HaReservationType_kAcropolisHANoReservations)},
}

func haCommands() []*Command {
	return []*Command{{
		Name:     "ha.get",
		Summary:  "Show the HA settings and the memory the guarantee reserves",
		Output:   OutputBlock,
		Examples: []string{"ha.get", "-o json ha.get"},
		Run:      runHaGet,
	}, {
		Name:    "ha.update",
		Summary: "Change the HA settings",
		Description: "enable_failover=false stops restarting the VMs of failed hosts. reservation_type=kAcropolisHAReserveSegments " +
			"(the guarantee) keeps memory free for the num_host_failures_to_tolerate largest hosts: a power-on that would take it is refused (exit 5), " +
			"and so is turning the guarantee on when the running VMs already take it.",
		Keys: []Key{
			{Name: "enable_failover", Type: TypeBool, Help: "restart the VMs of a failed host elsewhere"},
			{Name: "num_host_failures_to_tolerate", Type: TypeInt, Min: 1, Max: 1000, Help: "host failures the guarantee reserves memory for"},
			{Name: "reservation_type", Type: TypeEnum, Enum: haReservationTypes, Help: "kAcropolisHAReserveSegments (guarantee) or kAcropolisHANoReservations (best effort)"},
		},
		Output:   OutputTask,
		Validate: validateUpdate,
		Examples: []string{"ha.update reservation_type=kAcropolisHAReserveSegments", "ha.update num_host_failures_to_tolerate=1", "ha.update enable_failover=false"},
		Run: func(ctx context.Context, r *Req) error {
			req := &acliv1.UpdateHaConfigRequest{ReservationType: acliv1.HaReservationType(r.Int("reservation_type"))}
			if r.Has("enable_failover") {
				req.EnableFailover = proto.Bool(r.Bool("enable_failover"))
			}
			if r.Has("num_host_failures_to_tolerate") {
				req.NumHostFailuresToTolerate = proto.Int32(r.Int32("num_host_failures_to_tolerate"))
			}
			return r.EachTask(ctx, []Target{{Name: "ha", ID: "ha"}}, func(ctx context.Context, c *client.Client, _ Target) (*acliv1.Task, error) {
				return c.Cluster.UpdateHaConfig(ctx, req)
			})
		},
	}}
}

func adsCommands() []*Command {
	return []*Command{{
		Name:     "ads.get",
		Summary:  "Show whether ADS (dynamic scheduling) is on",
		Output:   OutputBlock,
		Examples: []string{"ads.get"},
		Run: func(ctx context.Context, r *Req) error {
			c, err := r.Client(ctx)
			if err != nil {
				return err
			}
			a, err := c.Cluster.GetAdsConfig(ctx, &acliv1.GetAdsConfigRequest{})
			if err != nil {
				return err
			}
			return r.Print(render.Doc{Data: a, Block: (&render.Block{}).Add("Enabled", yesNo(a.GetEnabled()))})
		},
	}, {
		Name:        "ads.update",
		Summary:     "Turn ADS (dynamic scheduling) on or off",
		Description: "Off, placement no longer keeps the members of an anti-affinity VM group apart (a should-rule ADS enforces); host affinity still holds.",
		Keys:        []Key{{Name: "enable", Type: TypeBool, Required: true, Help: "ADS on or off"}},
		Output:      OutputTask,
		Examples:    []string{"ads.update enable=false", "ads.update enable=true"},
		Run: func(ctx context.Context, r *Req) error {
			return r.EachTask(ctx, []Target{{Name: "ads", ID: "ads"}}, func(ctx context.Context, c *client.Client, _ Target) (*acliv1.Task, error) {
				return c.Cluster.UpdateAdsConfig(ctx, &acliv1.UpdateAdsConfigRequest{Enable: r.Bool("enable")})
			})
		},
	}}
}

func runHaGet(ctx context.Context, r *Req) error {
	c, err := r.Client(ctx)
	if err != nil {
		return err
	}
	h, err := c.Cluster.GetHaConfig(ctx, &acliv1.GetHaConfigRequest{})
	if err != nil {
		return err
	}
	b := &render.Block{}
	b.Add("Failover enabled", yesNo(h.GetFailoverEnabled())).
		Add("Host failures to tolerate", i32(h.GetNumHostFailuresToTolerate())).
		Add("Reservation type", enumText(h.GetReservationType().String(), h.GetReservationType() == 0))
	if h.GetReservationType() == acliv1.HaReservationType_kAcropolisHAReserveSegments {
		b.Add("Reserved memory", FormatSize(h.GetReservedMemoryBytes())).
			Add("Unreserved memory", FormatSize(h.GetUnreservedMemoryBytes()))
	}
	if u := h.GetUnprotected(); u != "" {
		b.Add("Unprotected", u)
	}
	return r.Print(render.Doc{Data: h, Block: b})
}
