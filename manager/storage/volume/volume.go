// Package volume keeps vDisks as files in a storage container's directory.
//
// Every vDisk is a raw sparse file. Clones and snapshots are sparse copies:
// only the extents that hold data are copied (SEEK_DATA/SEEK_HOLE and
// copy_file_range, which shares blocks on file systems that can), so a clone
// of a 10 GiB image holding 20 MB copies 20 MB. Raw rather than qcow2
// overlays because every vDisk must stand on its own: the iSCSI targets that
// serve vDisks export plain files, an image or snapshot can be deleted
// while its clones live on, and migration and HA never have to find a
// backing chain.
package volume

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Create makes an empty (all holes) volume of size bytes at path. It fails
// when path exists.
func Create(path string, size int64) error {
	if size <= 0 {
		return fmt.Errorf("volume %s: size %d must be positive", path, size)
	}
	return publish(path, func(f *os.File) error { return f.Truncate(size) })
}

// Clone copies src to a new volume dst, sparse, then grows it to size when
// size is larger than src (0 keeps src's size). dst appears complete or not
// at all.
func Clone(src, dst string, size int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if size < st.Size() {
		size = st.Size()
	}
	return publish(dst, func(out *os.File) error {
		if err := out.Truncate(st.Size()); err != nil {
			return err
		}
		if err := copySparse(in, out, st.Size()); err != nil {
			return fmt.Errorf("clone %s: %w", filepath.Base(src), err)
		}
		return out.Truncate(size)
	})
}

// copySparse copies the data extents of in to the same offsets in out.
func copySparse(in, out *os.File, size int64) error {
	fdIn, fdOut := int(in.Fd()), int(out.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fdIn, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil // only holes remain
		}
		if err != nil {
			return err
		}
		hole, err := unix.Seek(fdIn, data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		for data < hole {
			rin, rout := data, data
			n, err := unix.CopyFileRange(fdIn, &rin, fdOut, &rout, int(min(hole-data, 1<<30)), 0)
			if err != nil {
				return err
			}
			if n == 0 {
				return io.ErrUnexpectedEOF
			}
			data += int64(n)
		}
		off = hole
	}
	return nil
}

// publish writes a new file through fill into a temporary name beside path,
// syncs it and renames it into place, so path never holds a partial volume.
func publish(path string, fill func(*os.File) error) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("volume %s: %w", path, os.ErrExist)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".part-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// link fails when path appeared meanwhile; rename would replace it.
		err = os.Link(tmp, path)
	}
	os.Remove(tmp)
	return err
}

// Resize grows a volume to size bytes; shrinking would cut off guest data
// and is refused.
func Resize(path string, size int64) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if size < st.Size() {
		return fmt.Errorf("volume %s: cannot shrink from %d to %d bytes", filepath.Base(path), st.Size(), size)
	}
	return os.Truncate(path, size)
}

// Remove deletes a volume; a missing one is not an error.
func Remove(path string) error {
	err := os.Remove(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Usage is a volume's logical size and the bytes it occupies on disk.
func Usage(path string) (size, allocated int64, err error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, 0, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return st.Size, st.Blocks * 512, nil
}
