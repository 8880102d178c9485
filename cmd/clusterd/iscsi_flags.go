package main

import (
	"fmt"
	flag "github.com/spf13/pflag"
	"time"

	"github.com/acli-dev/acli/manager"
)

// iscsiOptions are the iSCSI session failover and failback settings.
type iscsiOptions struct {
	deadline      time.Duration
	failback      string
	failbackDelay time.Duration
}

// Failback policies of --iscsi-failback.
const (
	failbackImmediate = "immediate"
	failbackDelayed   = "delayed"
	failbackOff       = "off"
)

func addIscsiFlags(fs *flag.FlagSet) *iscsiOptions {
	o := &iscsiOptions{}
	fs.DurationVar(&o.deadline, "iscsi-failover-deadline", manager.DefaultFailoverDeadline,
		"how long (simulated time under --sim) re-establishing the sessions of a failed CVM may take before it is reported")
	fs.StringVar(&o.failback, "iscsi-failback", failbackImmediate,
		"when sessions return to a recovered CVM: immediate, delayed (after --iscsi-failback-delay up) or off (they stay where failover put them)")
	fs.DurationVar(&o.failbackDelay, "iscsi-failback-delay", time.Minute,
		"with --iscsi-failback delayed: how long a recovered CVM must stay up before its sessions return")
	return o
}

func (o *iscsiOptions) check() error {
	switch {
	case o.deadline <= 0:
		return fmt.Errorf("--iscsi-failover-deadline %v must be positive, e.g. 5s", o.deadline)
	case o.failback != failbackImmediate && o.failback != failbackDelayed && o.failback != failbackOff:
		return fmt.Errorf("--iscsi-failback %q is not a policy; use immediate, delayed or off", o.failback)
	case o.failback == failbackDelayed && o.failbackDelay <= 0:
		return fmt.Errorf("--iscsi-failback-delay %v must be positive with --iscsi-failback delayed, e.g. 60s", o.failbackDelay)
	}
	return nil
}

func (o *iscsiOptions) config() manager.IscsiConfig {
	c := manager.IscsiConfig{FailoverDeadline: o.deadline}
	switch o.failback {
	case failbackDelayed:
		c.FailbackDelay = o.failbackDelay
	case failbackOff:
		c.NoFailback = true
	}
	return c
}
