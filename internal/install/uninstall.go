package install

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

// UninstallReport says what Uninstall did.
type UninstallReport struct {
	// Unchained lists the cluster conflists a ratchet entry was cut out of.
	Unchained []string
	// Removed lists the config files install had generated (a wrapper, the
	// standalone file), now deleted.
	Removed []string
	// PluginPath is BinDir/ratchet.
	PluginPath string
	// PluginRemoved is true when PluginPath was there and was deleted.
	PluginRemoved bool
	// PluginKept is true when PluginPath was left in place because its
	// bytes differ from Options.PluginBinary: someone else put it there.
	PluginKept bool
}

// Changed reports whether Uninstall changed anything on the node.
func (r UninstallReport) Changed() bool {
	return len(r.Unchained) > 0 || len(r.Removed) > 0 || r.PluginRemoved
}

// String is a one-line summary for the CLI and the DaemonSet's log.
func (r UninstallReport) String() string {
	var parts []string
	for _, p := range r.Unchained {
		parts = append(parts, "removed ratchet from "+p)
	}
	for _, p := range r.Removed {
		parts = append(parts, "removed "+p)
	}
	switch {
	case r.PluginRemoved:
		parts = append(parts, "removed "+r.PluginPath)
	case r.PluginKept:
		parts = append(parts, "kept "+r.PluginPath+" (not the binary install copies)")
	}
	if len(parts) == 0 {
		return "ratchet not installed: nothing to remove"
	}
	return strings.Join(parts, "; ")
}

// Uninstall undoes Install on a node: it cuts every ratchet entry that
// follows another plugin out of the cluster's conflists, deletes the
// config files install generated, then deletes BinDir/ratchet. For a file
// Install appended to, the cut removes exactly the bytes the append
// inserted (the separator and the entry), so the file gets back the bytes
// it had before install, with its mode and owner.
//
// Every config file is looked at, not only the first: an earlier install
// may have chained into a file that another has since shadowed. Files
// Uninstall cannot parse, and a ratchet entry that is a conflist's first
// plugin (ratchet as the operator's own network), are not install's doing
// and are left alone.
//
// The config goes first and the binary last, so that no runtime sees a
// config naming a missing plugin (every ADD and DEL would fail). When
// PluginBinary is set, the binary is deleted only if it holds the same
// bytes; otherwise it is not install's copy and stays. Everything is
// computed before the first change, and a second run changes nothing.
func Uninstall(opts Options) (UninstallReport, error) {
	r := UninstallReport{PluginPath: filepath.Join(opts.BinDir, PluginType)}
	if opts.BinDir == "" {
		return r, errors.New("install: bin dir: no path given")
	}
	if opts.ConfDir == "" {
		return r, errors.New("install: conf dir: no path given")
	}
	files, err := configFiles(opts.ConfDir)
	if err != nil {
		return r, err
	}

	type cut struct {
		path    string
		content []byte
		perm    os.FileMode
		owner   *owner
	}
	var cuts []cut
	var generatedFiles []string
	for _, f := range files {
		data, fi, err := readConfig(f)
		if err != nil {
			return r, err
		}
		if isGenerated(data) {
			generatedFiles = append(generatedFiles, f)
			continue
		}
		if filepath.Ext(f) != ".conflist" {
			continue
		}
		c, err := parseConflist(data)
		if err != nil {
			continue // not chainable, so install never wrote into it
		}
		out, n := c.withoutChained(PluginType)
		if n == 0 {
			continue
		}
		if err := checkUnchained(c, out); err != nil {
			return r, fmt.Errorf("install: %s: removing ratchet would produce a bad file, not writing it: %w", f, err)
		}
		cuts = append(cuts, cut{path: f, content: out, perm: fi.Mode().Perm(), owner: ownerOf(fi)})
	}

	removePlugin := false
	switch _, err := os.Lstat(r.PluginPath); {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return r, fmt.Errorf("install: %w", err)
	case opts.PluginBinary == "":
		removePlugin = true
	default:
		same, err := sameBytes(opts.PluginBinary, r.PluginPath)
		if err != nil {
			return r, err
		}
		removePlugin, r.PluginKept = same, !same
	}

	for _, c := range cuts {
		if err := writeFileAtomic(c.path, c.content, c.perm, c.owner); err != nil {
			return r, err
		}
		r.Unchained = append(r.Unchained, c.path)
	}
	for _, f := range generatedFiles {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return r, fmt.Errorf("install: remove %s: %w", f, err)
		}
		r.Removed = append(r.Removed, f)
	}
	if removePlugin {
		if err := os.Remove(r.PluginPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return r, fmt.Errorf("install: remove %s: %w", r.PluginPath, err)
		}
		r.PluginRemoved = true
	}
	return r, nil
}

// withoutChained returns the file with every plugin of type typ that
// follows another plugin cut out, and how many were cut. Each cut runs from
// the end of the plugin before it to the end of the entry: the comma and
// blanks appendPlugin wrote before the entry, and the entry itself, so
// whatever followed (the closing bracket and its line) stays. Cuts go from
// the last plugin back, so earlier offsets stay valid.
func (c *conflist) withoutChained(typ string) ([]byte, int) {
	out := c.data
	n := 0
	for i := len(c.plugins) - 1; i > 0; i-- {
		if c.plugins[i].typ != typ {
			continue
		}
		from, to := c.plugins[i-1].end, c.plugins[i].end
		// A fresh slice each time: c.data stays the original.
		next := make([]byte, 0, len(out)-(to-from))
		next = append(next, out[:from]...)
		out = append(next, out[to:]...)
		n++
	}
	return out, n
}

// checkUnchained re-reads the cut file: it must be a conflist holding the
// original's other plugins, byte for byte and in order, and libcni must
// load it.
func checkUnchained(orig *conflist, out []byte) error {
	c, err := parseConflist(out)
	if err != nil {
		return err
	}
	var want [][]byte
	for i, p := range orig.plugins {
		if i == 0 || p.typ != PluginType {
			want = append(want, orig.raw(i))
		}
	}
	if len(c.plugins) != len(want) {
		return fmt.Errorf("want %d plugins, got %d", len(want), len(c.plugins))
	}
	for i := range want {
		if !bytes.Equal(want[i], c.raw(i)) {
			return fmt.Errorf("plugins[%d] changed", i)
		}
	}
	_, err = libcni.ConfListFromBytes(out)
	return err
}

// sameBytes reports whether two files hold the same bytes.
func sameBytes(a, b string) (bool, error) {
	da, err := os.ReadFile(a)
	if err != nil {
		return false, fmt.Errorf("install: plugin binary %s: %w", a, err)
	}
	db, err := os.ReadFile(b)
	if err != nil {
		return false, fmt.Errorf("install: %w", err)
	}
	return bytes.Equal(da, db), nil
}
