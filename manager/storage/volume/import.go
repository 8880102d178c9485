package volume

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ImportOptions tune one import.
type ImportOptions struct {
	// Progress, when set, is called as bytes arrive with the bytes read so
	// far and the total (-1 when the source does not say).
	Progress func(done, total int64)
	// SHA256, when set, is the hex digest the source must have.
	SHA256 string
	// Client fetches http(s) sources (default http.DefaultClient).
	Client *http.Client
}

// Imported describes a finished import.
type Imported struct {
	Size       int64  // the raw volume's size in bytes
	Fetched    int64  // bytes read from the source
	SHA256     string // hex digest of the bytes read
	SourceType string // raw, qcow2, vmdk, vhdx or vdi, as found in the source
}

// Import fetches src (http://, https:// or file://) into a new raw volume at
// dst, converting a qcow2 (or vmdk, vhdx, vdi) source with qemu-img. On any
// failure or cancellation dst does not exist and no temporary file remains.
func Import(ctx context.Context, src, dst string, o ImportOptions) (Imported, error) {
	var res Imported
	if _, err := os.Lstat(dst); err == nil {
		return res, fmt.Errorf("volume %s: %w", dst, os.ErrExist)
	}
	body, total, err := open(ctx, src, o.Client)
	if err != nil {
		return res, err
	}
	defer body.Close()

	dl, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".fetch-*")
	if err != nil {
		return res, err
	}
	defer os.Remove(dl.Name())
	defer dl.Close()

	h := sha256.New()
	r := io.TeeReader(body, h)
	res.Fetched, err = copyHoles(ctx, dl, r, total, o.Progress)
	if err != nil {
		return res, fmt.Errorf("fetch %s: %w", src, err)
	}
	if total >= 0 && res.Fetched != total {
		return res, fmt.Errorf("fetch %s: got %d of %d bytes", src, res.Fetched, total)
	}
	res.SHA256 = hex.EncodeToString(h.Sum(nil))
	if o.SHA256 != "" && !strings.EqualFold(o.SHA256, res.SHA256) {
		return res, fmt.Errorf("fetch %s: sha256 is %s, want %s", src, res.SHA256, o.SHA256)
	}
	if err := dl.Truncate(res.Fetched); err != nil {
		return res, err
	}
	head := make([]byte, 512)
	n, _ := dl.ReadAt(head, 0)
	res.SourceType = sniff(head[:n])
	if res.SourceType == "raw" {
		err = publish(dst, func(out *os.File) error {
			if err := out.Truncate(res.Fetched); err != nil {
				return err
			}
			return copySparse(dl, out, res.Fetched)
		})
	} else {
		err = publish(dst, func(out *os.File) error {
			return convert(ctx, res.SourceType, dl.Name(), out.Name())
		})
	}
	if err != nil {
		return res, err
	}
	res.Size, _, err = Usage(dst)
	return res, err
}

// open returns the source's bytes and their length (-1 when unknown).
func open(ctx context.Context, src string, c *http.Client) (io.ReadCloser, int64, error) {
	u, err := url.Parse(src)
	if err != nil {
		return nil, 0, fmt.Errorf("source_url %q: %v", src, err)
	}
	switch u.Scheme {
	case "file":
		f, err := os.Open(u.Path)
		if err != nil {
			return nil, 0, err
		}
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			f.Close()
			return nil, 0, fmt.Errorf("source_url %s: not a regular file", src)
		}
		return f, st.Size(), nil
	case "http", "https":
		if c == nil {
			c = http.DefaultClient
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return nil, 0, err
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, 0, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, 0, fmt.Errorf("fetch %s: %s", src, resp.Status)
		}
		return resp.Body, resp.ContentLength, nil
	}
	return nil, 0, fmt.Errorf("source_url %q: scheme must be http, https or file", src)
}

// copyHoles copies r to f, leaving holes where whole blocks are zero, so a
// mostly empty raw image stays sparse on arrival.
func copyHoles(ctx context.Context, f *os.File, r io.Reader, total int64, progress func(done, total int64)) (int64, error) {
	buf := make([]byte, 1<<20)
	var done int64
	for {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			for b := 0; b < n; b += 64 << 10 {
				blk := buf[b:min(b+64<<10, n)]
				if allZero(blk) {
					continue
				}
				if _, werr := f.WriteAt(blk, done+int64(b)); werr != nil {
					return done, werr
				}
			}
			done += int64(n)
			if progress != nil {
				progress(done, total)
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return done, nil
		}
		if err != nil {
			return done, err
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// sniff names an image format by its magic bytes; anything else is raw
// (ISO 9660 images included).
func sniff(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("QFI\xfb")):
		return "qcow2"
	case bytes.HasPrefix(head, []byte("KDMV")):
		return "vmdk"
	case bytes.HasPrefix(head, []byte("vhdxfile")):
		return "vhdx"
	case len(head) >= 0x44 && bytes.Equal(head[0x40:0x44], []byte{0x7f, 0x10, 0xda, 0xbe}):
		return "vdi"
	}
	return "raw"
}

// convert writes src (in format from) as a raw sparse image to dst.
func convert(ctx context.Context, from, src, dst string) error {
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		return fmt.Errorf("converting a %s image needs qemu-img (Debian package qemu-utils)", from)
	}
	out, err := exec.CommandContext(ctx, qemuImg, "convert", "-q", "-f", from, "-O", "raw", "-S", "4k", src, dst).CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("convert %s image: %v: %s", from, err, strings.TrimSpace(string(out)))
	}
	return nil
}
