package install

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

// generator is the "by" of every file install writes.
const generator = "ratchetctl install"

// confExtensions are the files runtimes read as network configs. containerd
// (go-cni), CRI-O and the CNI tools list these in the conf dir, sort the
// paths and use the first as the pod network.
var confExtensions = []string{".conf", ".conflist", ".json"}

// plan is a config change computed before anything is written.
type plan struct {
	// path is the config the runtime will pick once the plan is applied.
	path string
	mode Mode
	// source is, for Wrapped, the config the wrapper copies.
	source string
	// content is what path must hold; nil when it already does.
	content []byte
	perm    os.FileMode
	owner   *owner
	// remove are generated files that would shadow or duplicate path.
	remove []string
}

// planConf decides what ConfDir needs. The files install generated itself
// are set aside first: the decision rests on the cluster's files only, so a
// standalone or wrapper conflist from an earlier run is regenerated when
// it still applies and removed when it does not, instead of shadowing the
// cluster's network for good.
func planConf(dir string, e *entry) (*plan, error) {
	files, err := configFiles(dir)
	if err != nil {
		return nil, err
	}
	var ours, cluster []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err == nil && isGenerated(data) {
			ours = append(ours, f)
		} else {
			cluster = append(cluster, f)
		}
	}

	var p *plan
	switch {
	case len(cluster) == 0:
		p, err = planStandalone(dir, e)
	case filepath.Ext(cluster[0]) == ".conflist":
		p, err = planAppend(cluster[0], e)
	default:
		p, err = planWrap(cluster[0], e)
	}
	if err != nil {
		return nil, err
	}
	for _, f := range ours {
		if f != p.path {
			p.remove = append(p.remove, f)
		}
	}
	return p, nil
}

// configFiles lists the config files of dir the way the runtimes do:
// every non-directory entry with a config extension, sorted by name. A
// missing dir has none.
func configFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir) // sorted by file name
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("install: conf dir %s: %w", dir, err)
	}
	var files []string
	for _, ent := range ents {
		ext := filepath.Ext(ent.Name())
		for _, want := range confExtensions {
			if !ent.IsDir() && ext == want {
				files = append(files, filepath.Join(dir, ent.Name()))
			}
		}
	}
	return files, nil
}

// planStandalone: no cluster network, so ratchet runs alone (first-plugin
// mode) from StandaloneFile.
func planStandalone(dir string, e *entry) (*plan, error) {
	want, err := renderConflist(json.RawMessage(`"1.0.0"`), json.RawMessage(`"ratchet"`),
		generated{By: generator}, e.compact)
	if err != nil {
		return nil, fmt.Errorf("install: render %s: %w", StandaloneFile, err)
	}
	p := &plan{path: filepath.Join(dir, StandaloneFile), mode: Standalone, perm: 0o644}
	return p.unlessHolds(want)
}

// planAppend chains ratchet at the end of the cluster's conflist, unless a
// ratchet entry is already there: that entry is left exactly as it is,
// even if Extra differs, because the operator may have edited it by hand.
func planAppend(path string, e *entry) (*plan, error) {
	data, fi, err := readConfig(path)
	if err != nil {
		return nil, err
	}
	c, err := parseConflist(data)
	if err != nil {
		return nil, fmt.Errorf("install: refusing to modify %s: %w", path, err)
	}
	if _, err := libcni.ConfListFromBytes(data); err != nil {
		return nil, fmt.Errorf("install: refusing to modify %s: %w", path, err)
	}
	p := &plan{path: path, mode: Chained}
	switch i := c.indexOf(PluginType); {
	case i == 0:
		p.mode = Standalone
		return p, nil
	case i > 0:
		return p, nil
	}

	out := c.appendPlugin(e.compact)
	if err := checkAppended(c, out); err != nil {
		return nil, fmt.Errorf("install: %s: appending ratchet would produce a bad file, not writing it: %w", path, err)
	}
	p.content, p.perm, p.owner = out, fi.Mode().Perm(), ownerOf(fi)
	return p, nil
}

// checkAppended re-reads the spliced file: it must be a conflist whose
// plugins are the original ones, byte for byte and in order, then ratchet,
// and libcni must load it. This guards the splice against any input its
// formatting rules did not foresee.
func checkAppended(orig *conflist, out []byte) error {
	c, err := parseConflist(out)
	if err != nil {
		return err
	}
	n := len(orig.plugins)
	if len(c.plugins) != n+1 || c.plugins[n].typ != PluginType {
		return fmt.Errorf("want %d plugins ending with %s, got %d", n+1, PluginType, len(c.plugins))
	}
	for i := range n {
		if !bytes.Equal(orig.raw(i), c.raw(i)) {
			return fmt.Errorf("plugins[%d] changed", i)
		}
	}
	_, err = libcni.ConfListFromBytes(out)
	return err
}

// planWrap handles a cluster network given as one plugin in a .conf/.json
// file. Install does not rewrite that file: it belongs to the cluster's
// network agent, which may rewrite it at any time (and would drop a
// ratchet entry, or fight over a renamed file), and leaving it intact
// makes uninstalling a matter of deleting ratchet's own file. Instead it
// writes a wrapper conflist that sorts before the original, so runtimes
// pick it, holding a copy of the plugin followed by ratchet. Each run
// regenerates the wrapper from the original, so a rewritten original is
// picked up at the next install (e.g. when the DaemonSet pod restarts).
func planWrap(path string, e *entry) (*plan, error) {
	data, fi, err := readConfig(path)
	if err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("install: refusing to wrap %s: not valid JSON: %w", path, err)
	}
	// The runtimes load a .conf/.json with ConfFromBytes, which wants a
	// type: without one (e.g. a conflist saved as .conf) they refuse it too.
	conf, err := libcni.ConfFromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("install: refusing to wrap %s: %w", path, err)
	}
	if conf.Network.Type == PluginType {
		return &plan{path: path, mode: Standalone}, nil
	}
	if conf.Network.Name == "" {
		return nil, fmt.Errorf("install: refusing to wrap %s: it has no name", path)
	}

	base := filepath.Base(path)
	want, err := renderConflist(top["cniVersion"], top["name"], generated{By: generator, Wraps: base}, data, e.compact)
	if err != nil {
		return nil, fmt.Errorf("install: wrap %s: %w", path, err)
	}
	if _, err := libcni.ConfListFromBytes(want); err != nil {
		return nil, fmt.Errorf("install: wrap %s: the wrapper would not load: %w", path, err)
	}
	// The perm of the wrapper is the original's: it holds a copy of the
	// same settings, so it must not be more readable than they are.
	p := &plan{path: wrapperPath(path), mode: Wrapped, source: path, perm: fi.Mode().Perm()}
	return p.unlessHolds(want)
}

// wrapperPath names the wrapper of a single-plugin config: its stem plus
// "-ratchet.conflist", e.g. 10-bridge.conf → 10-bridge-ratchet.conflist.
// That always sorts just before the original: both share the stem, then
// the wrapper has '-' (0x2d) where the original has the '.' (0x2e) of its
// extension. As the original was the first config, the wrapper now is.
func wrapperPath(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + "-" + PluginType + ".conflist"
}

// unlessHolds sets p.content to want unless p.path already holds exactly
// that, which keeps a second run from writing anything.
func (p *plan) unlessHolds(want []byte) (*plan, error) {
	have, err := os.ReadFile(p.path)
	if err == nil && bytes.Equal(have, want) {
		return p, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("install: %s: %w", p.path, err)
	}
	p.content = want
	return p, nil
}

// readConfig reads a config file and its (symlink-followed) metadata.
func readConfig(path string) ([]byte, os.FileInfo, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("install: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("install: %w", err)
	}
	return data, fi, nil
}
