package shell

import (
	"context"
	"fmt"
	"strings"
	"time"

	acliv1 "github.com/acli-dev/acli/api/acli/v1"
	"github.com/acli-dev/acli/commands"
)

// banner is what the shell says when it starts: which cluster, where the
// history goes, and hosts left in maintenance mode (operators forget
// them). clusterd is asked once, briefly; unreachable, the banner says so
// and the shell starts anyway.
func banner(ctx context.Context, f *commands.Factory, g commands.Globals, historyPath string) string {
	var sb strings.Builder
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	g.Timeout = 2 * time.Second
	var cl *acliv1.Cluster
	var hosts []*acliv1.Host
	c, err := f.Client(ctx, g)
	if err == nil {
		cl, err = c.Cluster.GetCluster(ctx, &acliv1.GetClusterRequest{})
	}
	if err == nil {
		var resp *acliv1.ListHostsResponse
		resp, err = c.Host.ListHosts(ctx, &acliv1.ListHostsRequest{})
		hosts = resp.GetHosts()
	}
	if err != nil {
		fmt.Fprintf(&sb, "clusterd at %s does not answer yet; commands will say why.\n", g.Server)
	} else {
		fmt.Fprintf(&sb, "Cluster %s at %s (%s driver, %d hosts). help lists commands; exit or Ctrl-D leaves.\n",
			cl.GetName(), g.Server, cl.GetDriver(), len(hosts))
	}
	if historyPath != "" {
		fmt.Fprintf(&sb, "History: %s (set %s to move it, or to empty to keep none).\n", historyPath, HistoryEnv)
	}
	sb.WriteString(maintenanceWarning(hosts))
	return sb.String()
}

// maintenanceWarning names the hosts out of service for maintenance and
// how to bring them back.
func maintenanceWarning(hosts []*acliv1.Host) string {
	var names []string
	for _, h := range hosts {
		switch h.GetNodeState() {
		case acliv1.NodeState_EnteredMaintenanceMode, acliv1.NodeState_EnteringMaintenanceMode:
			names = append(names, h.GetName())
		}
	}
	switch len(names) {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf("Warning: host %s is in maintenance mode; host.exit_maintenance_mode %s returns it to service.\n", names[0], names[0])
	}
	return fmt.Sprintf("Warning: hosts %s are in maintenance mode; host.exit_maintenance_mode <host> returns each to service.\n", strings.Join(names, ", "))
}
