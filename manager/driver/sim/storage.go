package sim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/acli-dev/acli/manager/driver"
	"github.com/acli-dev/acli/manager/storage/volume"
)

// Simulated storage: each host brings 8 TiB of disks, divided by the
// redundancy factor; imports read the source for real (size, checksum,
// format) at no less than the simulated throughput; clones take the time
// of a sparse copy.
const (
	hostStorageBytes = 8 << 40
	importBytesPerS  = 400 << 20
	cloneTime        = 50 * time.Millisecond
)

var _ driver.Storage = (*Driver)(nil)

// ContainerCapacity implements driver.Storage.
func (d *Driver) ContainerCapacity(string) (int64, error) {
	hosts := max(len(d.cfg.Hosts), 1)
	return int64(hosts) * hostStorageBytes / int64(max(d.cfg.RedundancyFactor, 1)), nil
}

// ImportImage implements driver.Storage: the source is fetched and
// converted like on real hosts, then the bytes are dropped.
func (d *Driver) ImportImage(ctx context.Context, _, id, url, sha256 string, progress func(done, total int64)) (driver.Imported, error) {
	dir, err := os.MkdirTemp("", "acli-sim-import-")
	if err != nil {
		return driver.Imported{}, err
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	res, err := volume.Import(ctx, url, filepath.Join(dir, id), volume.ImportOptions{Progress: progress, SHA256: sha256})
	if err != nil {
		return driver.Imported{}, err
	}
	sim := time.Duration(float64(res.Fetched) / importBytesPerS * float64(time.Second))
	if err := d.sleep(ctx, sim-time.Duration(float64(time.Since(start))*d.cfg.Speed)); err != nil {
		return driver.Imported{}, err
	}
	return driver.Imported{Size: res.Size, SHA256: res.SHA256, SourceFormat: res.SourceType}, nil
}

// CloneVolume implements driver.Storage.
func (d *Driver) CloneVolume(ctx context.Context, _, _, _ string, _ int64) error {
	return d.sleep(ctx, cloneTime)
}

// DeleteVolume implements driver.Storage.
func (d *Driver) DeleteVolume(context.Context, string, string) error { return nil }

// CreateVolume implements driver.Storage.
func (d *Driver) CreateVolume(context.Context, string, string, int64) error { return nil }

// ResizeVolume implements driver.Storage.
func (d *Driver) ResizeVolume(context.Context, string, string, int64) error { return nil }

// FileSize implements driver.Storage: simulated containers hold only
// vDisks, which the manager knows by their paths.
func (d *Driver) FileSize(_ context.Context, path string) (int64, error) {
	return 0, fmt.Errorf("%s: %w (simulated containers hold only vDisks)", path, os.ErrNotExist)
}

// CloneFile implements driver.Storage.
func (d *Driver) CloneFile(ctx context.Context, _, _, _ string, _ int64) error {
	return d.sleep(ctx, cloneTime)
}
