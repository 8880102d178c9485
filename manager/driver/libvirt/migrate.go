package libvirt

import (
	"context"
	"errors"
	"fmt"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// ErrMigrationAborted: the migration was cancelled (deadline or context) and the domain stays
// on its source host.
var ErrMigrationAborted = errors.New("migration aborted")

// MigrateFlags are the flags acli always migrates with: live, peer-to-peer (the source daemon
// drives the whole job, so it survives the client going away), the definition moves with the
// domain.
const MigrateFlags = golibvirt.MigrateLive | golibvirt.MigratePeer2peer |
	golibvirt.MigratePersistDest | golibvirt.MigrateUndefineSource

// MigrateOptions tunes one live migration.
type MigrateOptions struct {
	// DestURI is the destination as the SOURCE daemon reaches it, e.g. qemu+tcp://127.0.0.3/system.
	DestURI string
	// BandwidthMbps caps the migration stream in megabits per second; 0 means unlimited.
	BandwidthMbps uint64
	// Deadline after which the job is aborted and the domain stays on its source; 0 means none.
	Deadline time.Duration
	// PollInterval between job statistics polls; default 100ms.
	PollInterval time.Duration
	// Progress receives each polled statistic, from the calling goroutine's helper; keep it quick.
	Progress func(MigrationProgress)
	// Dest, when set, is a connection to the destination, used to read the completed job's
	// statistics (actual downtime) after the domain has left the source.
	Dest *Conn
	// SharedDisks says the domain's disks are files every host reaches:
	// migrate them in place (VIR_MIGRATE_UNSAFE skips libvirt's check for
	// a shared file system it recognises).
	SharedDisks bool
	// DestXML, when set, is the domain's definition on the destination
	// (its disks pointed at the destination host's iSCSI redirector).
	DestXML string
}

// MigrationProgress is one sample of the migration job.
type MigrationProgress struct {
	Elapsed       time.Duration
	Iteration     uint64 // memory pass; 1 is the bulk copy, later passes resend dirtied pages
	DataTotal     uint64 // bytes
	DataProcessed uint64
	DataRemaining uint64
	MemoryBps     uint64        // transfer rate, bytes/s
	DirtyRate     uint64        // pages/s
	Downtime      time.Duration // expected while running, actual once completed
	Percent       int
	Completed     bool
}

// MigrationResult summarizes a finished migration.
type MigrationResult struct {
	Elapsed time.Duration // wall time of the whole call
	// Downtime is how long the guest was paused, as measured by libvirt; zero when unknown
	// (no Dest connection and the job ended between two polls).
	Downtime   time.Duration
	Iterations uint64
	Bytes      uint64
	Samples    int // progress samples taken
}

// MbpsToMiBps converts acli's bandwidth_mbps to libvirt's MiB/s, rounding up so a small
// non-zero cap never becomes "unlimited".
func MbpsToMiBps(mbps uint64) uint64 {
	if mbps == 0 {
		return 0
	}
	const bitsPerMiB = 8 << 20
	return (mbps*1000*1000 + bitsPerMiB - 1) / bitsPerMiB
}

// migrateParams builds the typed parameters for DomainMigratePerform3Params.
func migrateParams(o MigrateOptions) []golibvirt.TypedParam {
	var p []golibvirt.TypedParam
	if bw := MbpsToMiBps(o.BandwidthMbps); bw > 0 {
		p = append(p, golibvirt.TypedParam{Field: golibvirt.MigrateParamBandwidth, Value: *golibvirt.NewTypedParamValueUllong(bw)})
	}
	if o.DestXML != "" {
		p = append(p, golibvirt.TypedParam{Field: golibvirt.MigrateParamDestXML, Value: *golibvirt.NewTypedParamValueString(o.DestXML)})
	}
	return p
}

// MigratableXML is the running domain's definition as a migration
// destination takes it.
func (c *Conn) MigratableXML(ref string) (string, error) {
	dom, err := c.lookup(ref)
	if err != nil {
		return "", err
	}
	x, err := call(c, "read the definition of "+dom.Name, func() (string, error) {
		return c.l.DomainGetXMLDesc(dom, golibvirt.DomainXMLSecure|golibvirt.DomainXMLMigratable)
	})
	return x, c.wrap(err)
}

// Migrate live-migrates a domain peer-to-peer to opts.DestURI, reporting progress until it
// completes. Past opts.Deadline, or when ctx ends, it aborts the job (killing the client does
// not stop a p2p job) and returns ErrMigrationAborted with the domain still on this host.
func (c *Conn) Migrate(ctx context.Context, ref string, o MigrateOptions) (MigrationResult, error) {
	var res MigrationResult
	if _, err := ParseURI(o.DestURI); err != nil {
		return res, fmt.Errorf("migrate: destination: %w", err)
	}
	dom, err := c.lookup(ref)
	if err != nil {
		return res, fmt.Errorf("migrate: %w", err)
	}
	poll := o.PollInterval
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		flags := MigrateFlags
		if o.SharedDisks {
			flags |= golibvirt.MigrateUnsafe
		}
		_, err := c.l.DomainMigratePerform3Params(dom, golibvirt.OptString{o.DestURI}, migrateParams(o), nil, flags)
		done <- err
	}()

	var deadline <-chan time.Time
	if o.Deadline > 0 {
		t := time.NewTimer(o.Deadline)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	var abortWhy error
	var last MigrationProgress
	abortSent := false
	abort := func() {
		// libvirt records an abort that arrives before QEMU starts sending and cancels the job
		// when it gets there; a refused request (job not begun yet) is retried every tick.
		if !abortSent {
			abortSent = c.run("abort the migration of "+dom.Name, func() error { return c.l.DomainAbortJob(dom) }) == nil
		}
	}
	for {
		select {
		case err := <-done:
			res.Elapsed = time.Since(start)
			res.Iterations, res.Bytes, res.Downtime = last.Iteration, last.DataProcessed, 0
			if err != nil {
				if abortWhy != nil {
					return res, fmt.Errorf("migrate %s to %s: %w (%w) after %v: %v", dom.Name, o.DestURI, ErrMigrationAborted, abortWhy, res.Elapsed.Round(time.Millisecond), err)
				}
				return res, fmt.Errorf("migrate %s to %s: %w", dom.Name, o.DestURI, c.wrap(err))
			}
			if o.Dest != nil {
				if p, err := o.Dest.completedJob(dom.UUID); err == nil {
					p.Elapsed = res.Elapsed
					last = p
					res.Iterations, res.Bytes, res.Downtime = p.Iteration, p.DataProcessed, p.Downtime
					if o.Progress != nil {
						o.Progress(p)
					}
				}
			}
			return res, nil
		case <-tick.C:
			if abortWhy != nil {
				abort()
				continue
			}
			typ, params, err := c.jobStats(dom, 0)
			if err != nil || golibvirt.DomainJobType(typ) == golibvirt.DomainJobNone {
				continue // not started yet, or already finishing: the done branch decides
			}
			p := progressFromParams(params)
			p.Elapsed = time.Since(start)
			last = p
			res.Samples++
			if o.Progress != nil {
				o.Progress(p)
			}
		case <-deadline:
			abortWhy = fmt.Errorf("deadline %v passed", o.Deadline)
			deadline = nil
			abort()
		case <-ctx.Done():
			if abortWhy == nil {
				abortWhy = ctx.Err()
				abort()
			}
		}
	}
}

// completedJob reads the statistics the destination keeps for the incoming migration it just
// finished; unlike the source's, they survive the source domain being undefined.
func (c *Conn) completedJob(id golibvirt.UUID) (MigrationProgress, error) {
	d, err := call(c, "look up the migrated domain", func() (golibvirt.Domain, error) { return c.l.DomainLookupByUUID(id) })
	if err != nil {
		return MigrationProgress{}, err
	}
	typ, params, err := c.jobStats(d, golibvirt.DomainJobStatsCompleted)
	if err != nil {
		return MigrationProgress{}, err
	}
	if golibvirt.DomainJobType(typ) == golibvirt.DomainJobNone {
		return MigrationProgress{}, errors.New("no completed job")
	}
	p := progressFromParams(params)
	p.Completed = true
	p.Percent = 100
	return p, nil
}

// jobStats reads a domain's job statistics.
func (c *Conn) jobStats(d golibvirt.Domain, flags golibvirt.DomainGetJobStatsFlags) (int32, []golibvirt.TypedParam, error) {
	type stats struct {
		typ    int32
		params []golibvirt.TypedParam
	}
	s, err := call(c, "read the job of "+d.Name, func() (stats, error) {
		typ, params, err := c.l.DomainGetJobStats(d, flags)
		return stats{typ, params}, err
	})
	return s.typ, s.params, err
}

func progressFromParams(params []golibvirt.TypedParam) MigrationProgress {
	var p MigrationProgress
	for _, tp := range params {
		v, ok := paramUint(tp)
		if !ok {
			continue
		}
		switch tp.Field {
		case golibvirt.DomainJobMemoryIteration:
			p.Iteration = v
		case golibvirt.DomainJobDataTotal:
			p.DataTotal = v
		case golibvirt.DomainJobDataProcessed:
			p.DataProcessed = v
		case golibvirt.DomainJobDataRemaining:
			p.DataRemaining = v
		case golibvirt.DomainJobMemoryBps:
			p.MemoryBps = v
		case golibvirt.DomainJobMemoryDirtyRate:
			p.DirtyRate = v
		case golibvirt.DomainJobDowntime:
			p.Downtime = time.Duration(v) * time.Millisecond
		}
	}
	if p.DataTotal > 0 {
		p.Percent = int((p.DataTotal - min(p.DataRemaining, p.DataTotal)) * 100 / p.DataTotal)
	}
	return p
}

// paramUint reads any integer-typed parameter; libvirt's types differ between fields.
func paramUint(tp golibvirt.TypedParam) (uint64, bool) {
	switch v := tp.Value.I.(type) {
	case uint64:
		return v, true
	case int64:
		return uint64(max(v, 0)), true
	case uint32:
		return uint64(v), true
	case int32:
		return uint64(max(v, 0)), true
	}
	return 0, false
}
