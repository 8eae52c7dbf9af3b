package install

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// owner is a file's uid and gid, kept when install replaces a file.
type owner struct{ uid, gid int }

// ownerOf returns fi's owner, or nil where the platform does not say.
func ownerOf(fi os.FileInfo) *owner {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return &owner{uid: int(st.Uid), gid: int(st.Gid)}
}

// writeFileAtomic replaces path with data. A symlink is followed, so the
// file it points to is replaced and the link stays a link.
func writeFileAtomic(path string, data []byte, perm os.FileMode, own *owner) error {
	target := path
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		if target, err = filepath.EvalSymlinks(path); err != nil {
			return fmt.Errorf("install: %s: %w", path, err)
		}
	}
	return replaceFile(target, perm, own, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// replaceFile writes a temporary file next to path, fsyncs it, gives it
// perm (and own, when set) and renames it over path, then fsyncs the
// directory. Readers see the old file or the new one, never a partial one:
// a kubelet may exec the plugin, and a runtime may reload the config dir
// on every change, at any moment. The temporary name starts with a dot and
// ends in ".tmp-<random>", an extension no runtime loads as a config. On
// any failure the temporary file is removed and path is untouched.
func replaceFile(path string, perm os.FileMode, own *owner, fill func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("install: write %s: %w", path, err)
	}
	tmp := f.Name()
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				f.Close()
			}
			os.Remove(tmp)
		}
	}()
	if err = fill(f); err != nil {
		return fmt.Errorf("install: write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("install: sync %s: %w", tmp, err)
	}
	// CreateTemp makes 0600 files and the umask does not apply to chmod,
	// so this is exactly perm.
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("install: chmod %s: %w", tmp, err)
	}
	if own != nil {
		if err = keepOwner(f, own); err != nil {
			return fmt.Errorf("install: chown %s: %w", tmp, err)
		}
	}
	closed = true
	if err = f.Close(); err != nil {
		return fmt.Errorf("install: write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("install: replace %s: %w", path, err)
	}
	// The rename is durable only once the directory entry is on disk.
	if err = syncDir(dir); err != nil {
		return fmt.Errorf("install: sync dir %s: %w", dir, err)
	}
	return nil
}

// keepOwner gives f the owner the replaced file had. It chowns only when
// that differs from the temporary file's, so an unprivileged run that owns
// the file does not need CAP_CHOWN.
func keepOwner(f *os.File, own *owner) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if cur := ownerOf(fi); cur != nil && *cur == *own {
		return nil
	}
	return f.Chown(own.uid, own.gid)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// copyPlugin installs src as dst (mode 0755) unless dst already is src or
// holds the same bytes with that mode. It reports whether it copied.
func copyPlugin(src, dst string) (bool, error) {
	same, err := upToDate(src, dst)
	if err != nil {
		return false, err
	}
	if same {
		return false, nil
	}
	in, err := os.Open(src)
	if err != nil {
		return false, fmt.Errorf("install: plugin binary %s: %w", src, err)
	}
	defer in.Close()
	err = replaceFile(dst, 0o755, nil, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
	return err == nil, err
}

// upToDate reports whether dst is src, or a regular 0755 file with src's
// bytes.
func upToDate(src, dst string) (bool, error) {
	dfi, err := os.Stat(dst)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("install: %s: %w", dst, err)
	}
	sfi, err := os.Stat(src)
	if err != nil {
		return false, fmt.Errorf("install: plugin binary %s: %w", src, err)
	}
	if os.SameFile(sfi, dfi) {
		return true, nil
	}
	if !dfi.Mode().IsRegular() || dfi.Mode().Perm() != 0o755 || dfi.Size() != sfi.Size() {
		return false, nil
	}
	return sameContent(src, dst)
}

// sameContent compares two files chunk by chunk.
func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, fmt.Errorf("install: %w", err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, fmt.Errorf("install: %w", err)
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		if ea != nil && ea != io.EOF && ea != io.ErrUnexpectedEOF {
			return false, fmt.Errorf("install: read %s: %w", a, ea)
		}
		nb, eb := io.ReadFull(fb, bb)
		if eb != nil && eb != io.EOF && eb != io.ErrUnexpectedEOF {
			return false, fmt.Errorf("install: read %s: %w", b, eb)
		}
		if !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		// A short read means the end of that file: equal so far and both
		// ended means equal.
		if ea != nil || eb != nil {
			return ea != nil && eb != nil, nil
		}
	}
}
