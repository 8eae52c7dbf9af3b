// Package install puts the ratchet plugin on a node: it copies the plugin
// binary into the CNI bin dir and chains ratchet after the cluster's own
// network plugin in the CNI config the runtime uses. It is the logic of
// `ratchetctl install`, which a DaemonSet init container runs on every node,
// so every step is idempotent (a second run changes nothing, byte for byte)
// and every write is atomic (a kubelet may exec the plugin or reload the
// config at any moment).
package install

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// PluginType is the CNI type of ratchet: the runtime looks for a binary of
// this name in its bin dir, and install looks for plugin entries of this
// type to decide whether ratchet is already chained.
const PluginType = "ratchet"

// StandaloneFile is the conflist install writes when the conf dir holds no
// network config at all, so that ratchet works on its own.
const StandaloneFile = "10-ratchet.conflist"

// Options says what to install where.
type Options struct {
	// PluginBinary is the ratchet plugin to copy (a path to an executable).
	PluginBinary string
	// BinDir is the CNI bin dir, e.g. /opt/cni/bin; created if missing.
	BinDir string
	// ConfDir is the CNI config dir, e.g. /etc/cni/net.d; created if missing.
	ConfDir string
	// Extra fields are merged into ratchet's plugin entry (e.g. "store",
	// "logLevel"). They may not set "type", "capabilities", "name" or
	// "cniVersion", which install owns, and must pass ratchet's own config
	// validation.
	Extra map[string]any
}

// Mode says how ratchet is wired into the config the runtime uses.
type Mode string

const (
	// Chained: ratchet is an entry at the end of the cluster's own conflist.
	Chained Mode = "chained"
	// Wrapped: the cluster's config is a single-plugin .conf/.json, so
	// install wrote a conflist that sorts before it, holding a copy of that
	// plugin followed by ratchet.
	Wrapped Mode = "wrapped"
	// Standalone: there is no cluster network; ratchet is the only plugin.
	Standalone Mode = "standalone"
)

// Report says what Install did.
type Report struct {
	// PluginPath is where the plugin binary now is (BinDir/ratchet).
	PluginPath string
	// PluginCopied is false when PluginPath already held identical bytes
	// with mode 0755.
	PluginCopied bool
	// ConfPath is the config file the runtime now picks: the first *.conf,
	// *.conflist or *.json in ConfDir.
	ConfPath string
	// Mode says how ratchet is wired into ConfPath.
	Mode Mode
	// WrappedFrom is, in Wrapped mode, the single-plugin config whose copy
	// the wrapper holds.
	WrappedFrom string
	// ConfChanged is false when ratchet was already there ("already
	// chained") and ConfPath was not written.
	ConfChanged bool
	// Removed lists config files that install itself had generated earlier
	// and that no longer apply (a standalone conflist after the cluster's
	// network appeared, a wrapper whose source is gone). They are removed
	// because they would shadow the config the runtime should pick.
	Removed []string
}

// Changed reports whether Install changed anything on the node.
func (r Report) Changed() bool {
	return r.PluginCopied || r.ConfChanged || len(r.Removed) > 0
}

// String is a one-line summary for the CLI and the init container's log.
func (r Report) String() string {
	var parts []string
	if r.PluginCopied {
		parts = append(parts, "copied "+r.PluginPath)
	} else {
		parts = append(parts, r.PluginPath+" up to date")
	}
	switch {
	case !r.ConfChanged && r.Mode == Standalone:
		parts = append(parts, "ratchet already standalone in "+r.ConfPath)
	case !r.ConfChanged:
		parts = append(parts, "ratchet already chained in "+r.ConfPath)
	case r.Mode == Chained:
		parts = append(parts, "appended ratchet to "+r.ConfPath)
	case r.Mode == Wrapped:
		parts = append(parts, "wrote "+r.ConfPath+" (chains ratchet after "+r.WrappedFrom+")")
	default:
		parts = append(parts, "wrote "+r.ConfPath+" (ratchet standalone)")
	}
	for _, p := range r.Removed {
		parts = append(parts, "removed stale "+p)
	}
	return strings.Join(parts, "; ")
}

// Install copies the plugin into opts.BinDir and chains ratchet into the
// config the runtime uses in opts.ConfDir (see the package doc and Mode).
// Everything is validated and every config change is computed before the
// first write, so a bad argument or a corrupt config leaves the node
// untouched. The binary is copied before the config names it, so no runtime
// ever sees a config whose plugin is missing.
func Install(opts Options) (Report, error) {
	if err := checkSource(opts.PluginBinary); err != nil {
		return Report{}, err
	}
	for _, d := range []struct{ what, path string }{{"bin dir", opts.BinDir}, {"conf dir", opts.ConfDir}} {
		if err := checkDir(d.what, d.path); err != nil {
			return Report{}, err
		}
	}
	entry, err := newEntry(opts.Extra)
	if err != nil {
		return Report{}, err
	}

	p, err := planConf(opts.ConfDir, entry)
	if err != nil {
		return Report{}, err
	}
	if err := entry.validate(p.mode != Standalone); err != nil {
		return Report{}, err
	}

	for _, dir := range []string{opts.BinDir, opts.ConfDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return Report{}, fmt.Errorf("install: create %s: %w", dir, err)
		}
	}
	r := Report{PluginPath: filepath.Join(opts.BinDir, PluginType)}
	if r.PluginCopied, err = copyPlugin(opts.PluginBinary, r.PluginPath); err != nil {
		return r, err
	}
	r.ConfPath, r.Mode, r.WrappedFrom = p.path, p.mode, p.source
	if p.content != nil {
		if err := writeFileAtomic(p.path, p.content, p.perm, p.owner); err != nil {
			return r, err
		}
		r.ConfChanged = true
	}
	// Stale generated files go last: until the new config is in place the
	// old one keeps the node's pods networked.
	for _, stale := range p.remove {
		if err := os.Remove(stale); err != nil && !errors.Is(err, os.ErrNotExist) {
			return r, fmt.Errorf("install: remove stale %s: %w", stale, err)
		}
		r.Removed = append(r.Removed, stale)
	}
	return r, nil
}

// DefaultPluginBinary is the plugin beside the running executable: in the
// ratchet image ratchetctl and ratchet sit in the same directory, so
// `ratchetctl install` needs no flag to find what it installs.
func DefaultPluginBinary() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("install: locate the running executable: %w", err)
	}
	return filepath.Join(filepath.Dir(exe), PluginType), nil
}

// checkSource refuses a plugin binary that the runtime could not exec.
func checkSource(path string) error {
	if path == "" {
		return errors.New("install: plugin binary: no path given")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("install: plugin binary %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("install: plugin binary %s: not a regular file", path)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("install: plugin binary %s: not executable (mode %v)", path, fi.Mode().Perm())
	}
	return nil
}

// checkDir accepts a directory or a path that MkdirAll can create later:
// its nearest existing ancestor must be a directory.
func checkDir(what, path string) error {
	if path == "" {
		return fmt.Errorf("install: %s: no path given", what)
	}
	for p := path; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		switch {
		case err == nil && fi.IsDir():
			return nil
		case err == nil:
			return fmt.Errorf("install: %s %s: %s is not a directory", what, path, p)
		case errors.Is(err, syscall.ENOTDIR):
			// A file on the way: the walk up names it.
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("install: %s %s: %w", what, path, err)
		}
		if parent := filepath.Dir(p); parent == p {
			return fmt.Errorf("install: %s %s: no existing parent", what, path)
		}
	}
}
