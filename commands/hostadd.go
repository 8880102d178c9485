package commands

import (
	"context"
	"net/netip"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/client"
)

// hostJoinCommands add and remove hosts at run time (clusterd --driver
// libvirt); a sim cluster's hosts come from its configuration.
func hostJoinCommands() []*Command {
	return []*Command{
		{
			Name:    "host.add",
			Summary: "Add a libvirt host to the cluster",
			Description: "clusterd connects to the host's libvirtd at libvirt_uri and records the host with the " +
				"UUID, CPU and memory it reports. Only clusters run with clusterd --driver libvirt take new hosts.",
			Args: []Arg{{Name: "name", Kind: KindHost, Generate: true, Help: "name of the new host"}},
			Keys: []Key{
				{Name: "hypervisor_ip", Type: TypeString, Required: true, Help: "the host's hypervisor IP address", Example: "10.0.0.21"},
				{Name: "libvirt_uri", Type: TypeString, Required: true, Help: "how clusterd reaches libvirtd: qemu+tcp, qemu+tls, qemu+ssh or qemu+unix", Example: "qemu+tcp://10.0.0.21/system"},
				{Name: "cvm_ip", Type: TypeString, Help: "the IP address of the host's CVM, if it has one", Example: "10.0.0.31"},
			},
			Output:   OutputTask,
			Validate: validateHostAdd,
			Examples: []string{
				"host.add h1 hypervisor_ip=10.0.0.21 libvirt_uri=qemu+tcp://10.0.0.21/system",
				"host.add h2 hypervisor_ip=10.0.0.22 cvm_ip=10.0.0.32 libvirt_uri=qemu+ssh://root@10.0.0.22/system",
			},
			Run: runHostAdd,
		},
		{
			Name:        "host.remove",
			Summary:     "Remove a host from the cluster",
			Description: "Refused while VMs run on the host, return to it after maintenance or have affinity to it. Its domains are left as they are.",
			Args:        []Arg{{Name: "host", Kind: KindHost, Help: "host name, UUID or hypervisor IP"}},
			Destructive: "Remove",
			Output:      OutputTask,
			Examples:    []string{"host.remove h3", "-y host.remove 10.0.0.23"},
			Run: func(ctx context.Context, r *Req) error {
				return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
					return c.Host.RemoveHost(ctx, &acliv1.RemoveHostRequest{Host: t.ID})
				})
			},
		},
	}
}

// validateHostAdd refuses a malformed address before anything is sent.
func validateHostAdd(inv *Invocation) error {
	for _, k := range []string{"hypervisor_ip", "cvm_ip"} {
		v, ok := inv.Values[k]
		if !ok {
			continue
		}
		if _, err := netip.ParseAddr(v.Raw); err != nil {
			return usageErrorf("host.add: %s=%q is not an IP address, e.g. %s=10.0.0.21", k, v.Raw, k)
		}
	}
	if inv.Set["cvm_ip"] && inv.Values["cvm_ip"].Raw == inv.Values["hypervisor_ip"].Raw {
		return usageErrorf("host.add: cvm_ip must differ from hypervisor_ip (the CVM is a VM with its own address)")
	}
	return nil
}

func runHostAdd(ctx context.Context, r *Req) error {
	return r.EachTask(ctx, r.Targets(0), func(ctx context.Context, c *client.Client, t Target) (*acliv1.Task, error) {
		return c.Host.AddHost(ctx, &acliv1.AddHostRequest{
			Name:         t.ID,
			HypervisorIp: r.String("hypervisor_ip"),
			LibvirtUri:   r.String("libvirt_uri"),
			CvmIp:        r.String("cvm_ip"),
		})
	})
}
