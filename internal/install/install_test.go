package install

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// Real-looking configs, as the cluster network plugins write them.
const (
	// kube-flannel's cni-conf.json.
	flannelConflist = `{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "flannel",
      "delegate": {
        "hairpinMode": true,
        "isDefaultGateway": true
      }
    },
    {
      "type": "portmap",
      "capabilities": {
        "portMappings": true
      }
    }
  ]
}
`
	// containerd's example ptp network, with fields no struct knows:
	// numbers and escapes that a decode/re-encode would rewrite, keys
	// after "plugins", and a last plugin written on one line.
	ptpConflist = `{
  "cniVersion": "1.0.0",
  "name": "containerd-net",
  "x-vendor-build": {"id": 12345678901234567890, "note": "\u003cgenerated\u003e"},
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": true,
      "mtu": 1500,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "192.0.2.0/24"}], [{"subnet": "2001:db8:1::/64"}]],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
      },
      "x-unknown-plugin-field": [1.50, 2e3, null]
    },
    {"type": "portmap", "capabilities": {"portMappings": true}, "x-snat": true}
  ],
  "disableCheck": false,
  "x-trailing-field": "kept after plugins"
}
`
	// A single-plugin config, as the CNI README and kubeadm guides show it.
	bridgeConf = `{
	"cniVersion": "0.4.0",
	"name": "bridge",
	"type": "bridge",
	"bridge": "cni0",
	"isGateway": true,
	"ipMasq": true,
	"ipam": {
		"type": "host-local",
		"subnet": "198.51.100.0/24",
		"routes": [{ "dst": "0.0.0.0/0" }]
	}
}
`
	calicoConflist = `{
  "name": "k8s-pod-network",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "calico",
      "log_level": "info",
      "log_file_path": "/var/log/calico/cni/cni.log",
      "datastore_type": "kubernetes",
      "nodename": "node-1",
      "mtu": 0,
      "ipam": {
          "type": "calico-ipam"
      },
      "policy": {
          "type": "k8s"
      },
      "kubernetes": {
          "kubeconfig": "/etc/cni/net.d/calico-kubeconfig"
      }
    },
    {
      "type": "portmap",
      "snat": true,
      "capabilities": {"portMappings": true}
    },
    {
      "type": "bandwidth",
      "capabilities": {"bandwidth": true}
    }
  ]
}
`
	otherConf = `{"cniVersion": "0.3.1", "name": "other", "type": "bridge", "bridge": "other0"}
`
	corruptConflist = `{
  "name": "broken",
  "cniVersion": "1.0.0",
  "plugins": [
    {"type": "ptp"},
`
)

// node is a fake node: a conf dir and a bin dir in a temp dir, and the
// test binary itself as a real, multi-megabyte plugin binary to install.
type node struct {
	t               *testing.T
	confDir, binDir string
	plugin          string
}

func newNode(t *testing.T, files map[string]string) *node {
	t.Helper()
	root := t.TempDir()
	n := &node{t: t, confDir: filepath.Join(root, "etc/cni/net.d"), binDir: filepath.Join(root, "opt/cni/bin")}
	if err := os.MkdirAll(n.confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		n.write(name, content)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	n.plugin = exe
	return n
}

func (n *node) write(name, content string) {
	n.t.Helper()
	if err := os.WriteFile(filepath.Join(n.confDir, name), []byte(content), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) read(name string) []byte {
	n.t.Helper()
	b, err := os.ReadFile(filepath.Join(n.confDir, name))
	if err != nil {
		n.t.Fatal(err)
	}
	return b
}

func (n *node) opts() Options {
	return Options{PluginBinary: n.plugin, BinDir: n.binDir, ConfDir: n.confDir}
}

func (n *node) install() Report {
	n.t.Helper()
	r, err := Install(n.opts())
	if err != nil {
		n.t.Fatalf("Install: %v", err)
	}
	return r
}

// fileState is what a second run must not change: content, mode and mtime.
type fileState struct {
	data  string
	mode  fs.FileMode
	mtime time.Time
}

// snapshot records every file under the node, temp files included.
func (n *node) snapshot() map[string]fileState {
	n.t.Helper()
	snap := map[string]fileState{}
	for _, dir := range []string{n.confDir, n.binDir} {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			n.t.Fatal(err)
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			fi, err := os.Lstat(p)
			if err != nil {
				n.t.Fatal(err)
			}
			b, _ := os.ReadFile(p)
			snap[p] = fileState{data: string(b), mode: fi.Mode(), mtime: fi.ModTime()}
		}
	}
	return snap
}

// assertIdempotent runs Install again and checks it reports no change and
// changed nothing: same files, same bytes, same modes, same mtimes.
func (n *node) assertIdempotent() {
	n.t.Helper()
	before := n.snapshot()
	r := n.install()
	if r.Changed() || r.PluginCopied || r.ConfChanged || len(r.Removed) != 0 {
		n.t.Errorf("second run reports a change: %+v", r)
	}
	if !strings.Contains(r.String(), "already") {
		n.t.Errorf("second run's report %q does not say ratchet was already there", r)
	}
	after := n.snapshot()
	if len(after) != len(before) {
		n.t.Errorf("second run changed the file set: before %v, after %v", keys(before), keys(after))
	}
	for p, b := range before {
		if a, ok := after[p]; !ok || a != b {
			n.t.Errorf("second run changed %s", p)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// assertPluginInstalled checks the binary: mode 0755, the source's bytes.
func (n *node) assertPluginInstalled(r Report) {
	n.t.Helper()
	dst := filepath.Join(n.binDir, "ratchet")
	if r.PluginPath != dst {
		n.t.Errorf("PluginPath = %s, want %s", r.PluginPath, dst)
	}
	fi, err := os.Stat(dst)
	if err != nil {
		n.t.Fatalf("plugin not installed: %v", err)
	}
	if fi.Mode() != 0o755 {
		n.t.Errorf("%s mode = %v, want -rwxr-xr-x", dst, fi.Mode())
	}
	want, _ := os.ReadFile(n.plugin)
	got, _ := os.ReadFile(dst)
	if !bytes.Equal(got, want) {
		n.t.Errorf("%s: %d bytes differ from the source's %d", dst, len(got), len(want))
	}
}

// assertNoTempFiles checks no temporary file was left behind.
func (n *node) assertNoTempFiles() {
	n.t.Helper()
	for p := range n.snapshot() {
		if strings.HasPrefix(filepath.Base(p), ".") {
			n.t.Errorf("temporary file left behind: %s", p)
		}
	}
}

// runtimeView loads the conf dir the way containerd's go-cni does: list the
// config files with libcni, sort them, load the first (a .conf/.json is
// up-converted to a list). It returns the file and its plugin types.
func (n *node) runtimeView() (string, []string) {
	n.t.Helper()
	files, err := libcni.ConfFiles(n.confDir, []string{".conf", ".conflist", ".json"})
	if err != nil || len(files) == 0 {
		n.t.Fatalf("libcni finds no config in %s: %v", n.confDir, err)
	}
	sort.Strings(files)
	var list *libcni.NetworkConfigList
	if strings.HasSuffix(files[0], ".conflist") {
		list, err = libcni.ConfListFromFile(files[0])
	} else {
		var conf *libcni.NetworkConfig
		if conf, err = libcni.ConfFromFile(files[0]); err == nil {
			list, err = libcni.ConfListFromConf(conf)
		}
	}
	if err != nil {
		n.t.Fatalf("libcni cannot load %s: %v", files[0], err)
	}
	var types []string
	for _, p := range list.Plugins {
		types = append(types, p.Network.Type)
	}
	return files[0], types
}

func (n *node) assertRuntimeSees(wantFile string, wantTypes ...string) {
	n.t.Helper()
	file, types := n.runtimeView()
	if filepath.Base(file) != wantFile {
		n.t.Errorf("runtime picks %s, want %s", filepath.Base(file), wantFile)
	}
	if strings.Join(types, ",") != strings.Join(wantTypes, ",") {
		n.t.Errorf("runtime's plugin chain = %v, want %v", types, wantTypes)
	}
}

// assertOneInsertion checks that got is orig with one run of bytes
// inserted, and returns that run: every byte of the original file is kept,
// in order. Where the run could sit at several places (",{..}}" after a
// "}" is "},{..}" before it), the one starting with a comma is returned.
func assertOneInsertion(t *testing.T, orig, got []byte) []byte {
	t.Helper()
	k := len(got) - len(orig)
	if k <= 0 {
		t.Fatalf("file did not grow: %d → %d bytes", len(orig), len(got))
	}
	var found []byte
	for p := 0; p <= len(orig); p++ {
		if p > 0 && got[p-1] != orig[p-1] {
			break // got[:p] == orig[:p] no longer holds
		}
		if bytes.Equal(got[p+k:], orig[p:]) && (found == nil || got[p] == ',') {
			found = got[p : p+k]
		}
	}
	if found == nil {
		t.Fatalf("the original bytes were not kept; got:\n%s", got)
	}
	return found
}

// topLevel decodes a conflist's top level, keeping every value's raw bytes.
func topLevel(t *testing.T, data []byte) (map[string]json.RawMessage, []json.RawMessage) {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, data)
	}
	var plugins []json.RawMessage
	if err := json.Unmarshal(top["plugins"], &plugins); err != nil {
		t.Fatalf("plugins: %v", err)
	}
	return top, plugins
}

// assertRatchetEntry checks the entry install writes.
func assertRatchetEntry(t *testing.T, raw json.RawMessage, extra map[string]any) {
	t.Helper()
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"type":         "ratchet",
		"capabilities": map[string]any{"io.kubernetes.cri.pod-annotations": true},
	}
	for k, v := range extra {
		want[k] = v
	}
	wantJSON, _ := json.Marshal(want)
	gotJSON, _ := json.Marshal(got)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("ratchet entry = %s, want %s", gotJSON, wantJSON)
	}
}

// assertChainedAppend is the check for every conflist case: ratchet was
// appended last, nothing else moved, libcni loads it.
func assertChainedAppend(t *testing.T, orig, got []byte) {
	t.Helper()
	ins := assertOneInsertion(t, orig, got)
	if !bytes.HasPrefix(ins, []byte(",")) || !json.Valid(bytes.TrimPrefix(ins, []byte(","))) {
		t.Errorf("inserted text is not one JSON value after a comma: %q", ins)
	}
	origTop, origPlugins := topLevel(t, orig)
	gotTop, gotPlugins := topLevel(t, got)
	for k, v := range origTop {
		if k != "plugins" && !bytes.Equal(gotTop[k], v) {
			t.Errorf("top-level %q changed: %s → %s", k, v, gotTop[k])
		}
	}
	if len(gotTop) != len(origTop) {
		t.Errorf("top-level keys: %d → %d", len(origTop), len(gotTop))
	}
	if len(gotPlugins) != len(origPlugins)+1 {
		t.Fatalf("plugins: %d → %d, want one more", len(origPlugins), len(gotPlugins))
	}
	for i, p := range origPlugins {
		if !bytes.Equal(gotPlugins[i], p) {
			t.Errorf("plugins[%d] changed:\n%s\n→\n%s", i, p, gotPlugins[i])
		}
	}
	assertRatchetEntry(t, gotPlugins[len(gotPlugins)-1], nil)
	if _, err := libcni.ConfListFromBytes(got); err != nil {
		t.Errorf("libcni refuses the result: %v", err)
	}
}

func TestFlannelConflistGetsRatchetAppended(t *testing.T) {
	n := newNode(t, map[string]string{"10-flannel.conflist": flannelConflist})
	r := n.install()

	n.assertPluginInstalled(r)
	if !r.PluginCopied || !r.ConfChanged || r.Mode != Chained {
		t.Errorf("report = %+v, want copied, changed, chained", r)
	}
	if r.ConfPath != filepath.Join(n.confDir, "10-flannel.conflist") {
		t.Errorf("ConfPath = %s", r.ConfPath)
	}
	got := n.read("10-flannel.conflist")
	assertChainedAppend(t, []byte(flannelConflist), got)
	// The entry is formatted like its neighbours.
	if !strings.Contains(string(got), "\n    },\n    {\n      \"type\": \"ratchet\",\n      \"capabilities\": {\n        \"io.kubernetes.cri.pod-annotations\": true\n      }\n    }\n  ]\n}\n") {
		t.Errorf("ratchet entry not indented like the other plugins:\n%s", got)
	}
	n.assertRuntimeSees("10-flannel.conflist", "flannel", "portmap", "ratchet")
	n.assertNoTempFiles()
	n.assertIdempotent()
}

func TestPtpConflistKeepsUnknownFieldsByteForByte(t *testing.T) {
	n := newNode(t, map[string]string{"10-containerd-net.conflist": ptpConflist})
	n.install()

	got := n.read("10-containerd-net.conflist")
	assertChainedAppend(t, []byte(ptpConflist), got)
	for _, kept := range []string{`12345678901234567890`, `\u003cgenerated\u003e`, `[1.50, 2e3, null]`, `"x-trailing-field": "kept after plugins"`} {
		if !strings.Contains(string(got), kept) {
			t.Errorf("lost %s", kept)
		}
	}
	// The last plugin is on one line, so ratchet's is too, on its own line.
	if !strings.Contains(string(got), "\"x-snat\": true},\n    {\"type\":\"ratchet\",") {
		t.Errorf("ratchet entry not written in the one-line style of its neighbour:\n%s", got)
	}
	n.assertRuntimeSees("10-containerd-net.conflist", "ptp", "portmap", "ratchet")
	n.assertIdempotent()
}

func TestCompactConflistStaysCompact(t *testing.T) {
	orig := `{"cniVersion":"1.0.0","name":"c","plugins":[{"type":"ptp","ipam":{"type":"host-local","subnet":"203.0.113.0/24"}}]}`
	n := newNode(t, map[string]string{"00-compact.conflist": orig})
	n.install()
	got := n.read("00-compact.conflist")
	assertChainedAppend(t, []byte(orig), got)
	if bytes.ContainsRune(got, '\n') {
		t.Errorf("compact file got newlines:\n%s", got)
	}
	n.assertIdempotent()
}

func TestExtraFieldsGoIntoTheEntry(t *testing.T) {
	n := newNode(t, map[string]string{"10-flannel.conflist": flannelConflist})
	opts := n.opts()
	opts.Extra = map[string]any{
		"store":    map[string]any{"type": "local", "dir": "/var/lib/cni/ratchet"},
		"logLevel": "debug",
	}
	if _, err := Install(opts); err != nil {
		t.Fatal(err)
	}
	_, plugins := topLevel(t, n.read("10-flannel.conflist"))
	assertRatchetEntry(t, plugins[len(plugins)-1], opts.Extra)

	// The same options again: nothing changes.
	before := n.snapshot()
	r, err := Install(opts)
	if err != nil || r.Changed() {
		t.Fatalf("second run: %+v, %v", r, err)
	}
	if after := n.snapshot(); len(after) != len(before) {
		t.Error("second run changed files")
	}
}

func TestBadExtraIsRefusedBeforeAnyWrite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra map[string]any
		want  string
	}{
		{"reserved type", map[string]any{"type": "bridge"}, `Extra["type"]`},
		{"reserved capabilities", map[string]any{"capabilities": map[string]any{}}, `Extra["capabilities"]`},
		{"reserved name", map[string]any{"name": "x"}, `Extra["name"]`},
		{"not JSON", map[string]any{"logFile": func() {}}, `Extra["logFile"]`},
		{"plugin refuses it", map[string]any{"store": map[string]any{"type": "bogus"}}, `store.type "bogus"`},
		{"relative log file", map[string]any{"logFile": "ratchet.log"}, `logFile "ratchet.log"`},
		{"unnamed link when chained", map[string]any{"links": []any{map[string]any{"peer": map[string]any{"netns": "/run/netns/x"}}}}, "links[0].name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, map[string]string{"10-flannel.conflist": flannelConflist})
			before := n.snapshot()
			opts := n.opts()
			opts.Extra = tc.extra
			_, err := Install(opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
			if after := n.snapshot(); len(after) != len(before) || string(n.read("10-flannel.conflist")) != flannelConflist {
				t.Errorf("a refused install changed the node: %v", keys(after))
			}
		})
	}
}

func TestSingleBridgeConfIsWrappedInAConflistThatSortsFirst(t *testing.T) {
	n := newNode(t, map[string]string{"10-bridge.conf": bridgeConf})
	r := n.install()

	wrapper := "10-bridge-ratchet.conflist"
	if r.Mode != Wrapped || !r.ConfChanged || r.ConfPath != filepath.Join(n.confDir, wrapper) ||
		r.WrappedFrom != filepath.Join(n.confDir, "10-bridge.conf") {
		t.Errorf("report = %+v", r)
	}
	if got := n.read("10-bridge.conf"); string(got) != bridgeConf {
		t.Errorf("the original was modified:\n%s", got)
	}
	got := n.read(wrapper)
	top, plugins := topLevel(t, got)
	if string(top["cniVersion"]) != `"0.4.0"` || string(top["name"]) != `"bridge"` {
		t.Errorf("wrapper cniVersion %s name %s, want the original's", top["cniVersion"], top["name"])
	}
	if len(plugins) != 2 {
		t.Fatalf("wrapper has %d plugins, want bridge then ratchet", len(plugins))
	}
	var a, b bytes.Buffer
	_ = json.Compact(&a, []byte(bridgeConf))
	_ = json.Compact(&b, plugins[0])
	if a.String() != b.String() {
		t.Errorf("wrapped plugin differs from the original:\n%s\n%s", b.String(), a.String())
	}
	assertRatchetEntry(t, plugins[1], nil)
	n.assertRuntimeSees(wrapper, "bridge", "ratchet")
	n.assertIdempotent()

	// The runtime's other entry point, by network name, still finds the
	// network (now as the wrapper, the first conflist with that name).
	list, err := libcni.LoadConfList(n.confDir, "bridge")
	if err != nil || len(list.Plugins) != 2 || list.Plugins[1].Network.Type != "ratchet" {
		t.Errorf("LoadConfList(bridge) = %v, %v", list, err)
	}
}

func TestWrapperFollowsItsSource(t *testing.T) {
	n := newNode(t, map[string]string{"10-bridge.conf": bridgeConf})
	n.install()

	// The cluster's agent rewrites its config: the next run refreshes the
	// wrapper, once.
	changed := strings.Replace(bridgeConf, "198.51.100.0/24", "203.0.113.0/24", 1)
	n.write("10-bridge.conf", changed)
	r := n.install()
	if !r.ConfChanged || r.Mode != Wrapped {
		t.Errorf("report after the source changed = %+v", r)
	}
	if !strings.Contains(string(n.read("10-bridge-ratchet.conflist")), "203.0.113.0/24") {
		t.Error("wrapper still holds the old subnet")
	}
	n.assertIdempotent()

	// The cluster network is removed: the wrapper would keep running it,
	// so it goes, and ratchet falls back to standalone.
	if err := os.Remove(filepath.Join(n.confDir, "10-bridge.conf")); err != nil {
		t.Fatal(err)
	}
	r = n.install()
	if r.Mode != Standalone || len(r.Removed) != 1 || filepath.Base(r.Removed[0]) != "10-bridge-ratchet.conflist" {
		t.Errorf("report after the source went = %+v", r)
	}
	n.assertRuntimeSees(StandaloneFile, "ratchet")
}

func TestCalicoFirstIsChangedAndLaterConfigsAreNot(t *testing.T) {
	n := newNode(t, map[string]string{"10-calico.conflist": calicoConflist, "99-other.conf": otherConf})
	// Calico's file is private to root: install must keep that.
	if err := os.Chmod(filepath.Join(n.confDir, "10-calico.conflist"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := n.install()
	if r.ConfPath != filepath.Join(n.confDir, "10-calico.conflist") || r.Mode != Chained {
		t.Errorf("report = %+v", r)
	}
	assertChainedAppend(t, []byte(calicoConflist), n.read("10-calico.conflist"))
	if string(n.read("99-other.conf")) != otherConf {
		t.Error("99-other.conf was modified; only the first config may be")
	}
	fi, err := os.Stat(filepath.Join(n.confDir, "10-calico.conflist"))
	if err != nil || fi.Mode() != 0o600 {
		t.Errorf("10-calico.conflist mode = %v, want the original -rw-------", fi.Mode())
	}
	n.assertRuntimeSees("10-calico.conflist", "calico", "portmap", "bandwidth", "ratchet")
	n.assertIdempotent()
}

func TestEmptyConfDirGetsAStandaloneConflist(t *testing.T) {
	n := newNode(t, nil)
	r := n.install()
	n.assertPluginInstalled(r)
	if r.Mode != Standalone || !r.ConfChanged || r.ConfPath != filepath.Join(n.confDir, StandaloneFile) {
		t.Errorf("report = %+v", r)
	}
	top, plugins := topLevel(t, n.read(StandaloneFile))
	if len(plugins) != 1 {
		t.Fatalf("standalone conflist has %d plugins", len(plugins))
	}
	assertRatchetEntry(t, plugins[0], nil)
	if string(top["name"]) != `"ratchet"` || string(top["cniVersion"]) != `"1.0.0"` {
		t.Errorf("standalone name %s cniVersion %s", top["name"], top["cniVersion"])
	}
	fi, _ := os.Stat(filepath.Join(n.confDir, StandaloneFile))
	if fi.Mode() != 0o644 {
		t.Errorf("standalone mode %v, want -rw-r--r--", fi.Mode())
	}
	n.assertRuntimeSees(StandaloneFile, "ratchet")
	n.assertIdempotent()
}

func TestMissingDirsAreCreated(t *testing.T) {
	n := newNode(t, nil)
	n.confDir = filepath.Join(n.confDir, "sub", "net.d")
	n.binDir = filepath.Join(n.binDir, "sub")
	n.assertPluginInstalled(n.install())
	n.assertRuntimeSees(StandaloneFile, "ratchet")
}

func TestStandaloneGivesWayToTheClusterNetwork(t *testing.T) {
	// The DaemonSet ran before the cluster's network wrote its config...
	n := newNode(t, nil)
	n.install()
	// ...which then sorts after ratchet's standalone file and would be
	// shadowed by it for good.
	n.write("20-flannel.conflist", flannelConflist)
	r := n.install()
	if r.Mode != Chained || len(r.Removed) != 1 || filepath.Base(r.Removed[0]) != StandaloneFile {
		t.Errorf("report = %+v", r)
	}
	if _, err := os.Stat(filepath.Join(n.confDir, StandaloneFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("standalone file still there: %v", err)
	}
	n.assertRuntimeSees("20-flannel.conflist", "flannel", "portmap", "ratchet")
	n.assertIdempotent()
}

func TestCorruptConflistIsRefusedAndLeftAlone(t *testing.T) {
	n := newNode(t, map[string]string{"10-broken.conflist": corruptConflist, "20-flannel.conflist": flannelConflist})
	before := n.snapshot()
	_, err := Install(n.opts())
	if err == nil || !strings.Contains(err.Error(), filepath.Join(n.confDir, "10-broken.conflist")) ||
		!strings.Contains(err.Error(), "not valid JSON") {
		t.Fatalf("err = %v, want a refusal naming 10-broken.conflist", err)
	}
	after := n.snapshot()
	if len(after) != len(before) {
		t.Errorf("files changed: %v → %v", keys(before), keys(after))
	}
	for p, b := range before {
		if after[p] != b {
			t.Errorf("%s changed", p)
		}
	}
	// Nothing at all happened on the node: not even the binary.
	if _, err := os.Stat(filepath.Join(n.binDir, "ratchet")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("plugin copied although the install was refused: %v", err)
	}
}

func TestConflistsInstallCannotChainOntoAreRefused(t *testing.T) {
	for name, conf := range map[string]string{
		"no plugins":        `{"cniVersion":"1.0.0","name":"x"}`,
		"empty plugins":     `{"cniVersion":"1.0.0","name":"x","plugins":[]}`,
		"plugins twice":     `{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"ptp"}],"plugins":[{"type":"bridge"}]}`,
		"plugin not object": `{"cniVersion":"1.0.0","name":"x","plugins":["ptp"]}`,
		"plugin no type":    `{"cniVersion":"1.0.0","name":"x","plugins":[{"ipam":{}}]}`,
		"no name":           `{"cniVersion":"1.0.0","plugins":[{"type":"ptp"}]}`,
		"array":             `[{"type":"ptp"}]`,
	} {
		t.Run(name, func(t *testing.T) {
			n := newNode(t, map[string]string{"10-x.conflist": conf})
			_, err := Install(n.opts())
			if err == nil || !strings.Contains(err.Error(), "10-x.conflist") {
				t.Fatalf("err = %v, want a refusal naming the file", err)
			}
			if string(n.read("10-x.conflist")) != conf {
				t.Error("refused file was modified")
			}
			n.assertNoTempFiles()
		})
	}
}

func TestConfWithoutTypeIsRefused(t *testing.T) {
	// A conflist saved as .conf: runtimes load it as a single plugin and
	// find no type.
	n := newNode(t, map[string]string{"10-x.conf": flannelConflist})
	_, err := Install(n.opts())
	if err == nil || !strings.Contains(err.Error(), "10-x.conf") || !strings.Contains(err.Error(), "type") {
		t.Fatalf("err = %v", err)
	}
}

func TestRatchetAlreadyInTheChainIsLeftAsItIs(t *testing.T) {
	// An operator placed ratchet by hand, not last and with own settings.
	hand := `{"cniVersion":"1.0.0","name":"lab","plugins":[{"type":"ptp"},{"type":"ratchet","logLevel":"debug"},{"type":"portmap"}]}`
	n := newNode(t, map[string]string{"10-lab.conflist": hand})
	r := n.install()
	if r.ConfChanged || r.Mode != Chained {
		t.Errorf("report = %+v", r)
	}
	if string(n.read("10-lab.conflist")) != hand {
		t.Error("hand-placed ratchet entry was changed")
	}

	// A single .conf of type ratchet is ratchet standalone already.
	m := newNode(t, map[string]string{"10-ratchet.conf": `{"cniVersion":"1.0.0","name":"r","type":"ratchet"}`})
	if r := m.install(); r.ConfChanged || r.Mode != Standalone {
		t.Errorf("report = %+v", r)
	}
	if len(m.snapshot()) != 2 { // the conf and the binary
		t.Errorf("files: %v", keys(m.snapshot()))
	}
}

func TestSymlinkedConflistStaysALink(t *testing.T) {
	n := newNode(t, nil)
	real := filepath.Join(t.TempDir(), "flannel.conflist")
	if err := os.WriteFile(real, []byte(flannelConflist), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(n.confDir, "10-flannel.conflist")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	n.install()
	fi, err := os.Lstat(link)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("%s is no longer a symlink: %v", link, err)
	}
	got, _ := os.ReadFile(real)
	assertChainedAppend(t, []byte(flannelConflist), got)
	n.assertIdempotent()
}

func TestPluginIsReplacedOnlyWhenItDiffers(t *testing.T) {
	n := newNode(t, nil)
	if err := os.MkdirAll(n.binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(n.binDir, "ratchet")
	// An older build, with the wrong mode.
	if err := os.WriteFile(dst, []byte("#!/bin/sh\necho old\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	r := n.install()
	if !r.PluginCopied {
		t.Error("an outdated plugin was not replaced")
	}
	n.assertPluginInstalled(r)
	n.assertIdempotent()

	// Same bytes but the wrong mode: fixed.
	if err := os.Chmod(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	if r := n.install(); !r.PluginCopied {
		t.Error("a plugin with mode 0700 was left as it is")
	}
	n.assertPluginInstalled(r)

	// Installing the installed binary onto itself is a no-op.
	opts := n.opts()
	opts.PluginBinary = dst
	if r, err := Install(opts); err != nil || r.PluginCopied {
		t.Errorf("self-install: %+v, %v", r, err)
	}
}

func TestBadOptionsNameThePath(t *testing.T) {
	root := t.TempDir()
	notExec := filepath.Join(root, "ratchet-noexec")
	if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	aFile := filepath.Join(root, "a-file")
	if err := os.WriteFile(aFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	good := Options{PluginBinary: exe, BinDir: filepath.Join(root, "bin"), ConfDir: filepath.Join(root, "net.d")}

	for _, tc := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no binary", func(o *Options) { o.PluginBinary = "" }, "plugin binary"},
		{"missing binary", func(o *Options) { o.PluginBinary = filepath.Join(root, "nope") }, filepath.Join(root, "nope")},
		{"binary is a dir", func(o *Options) { o.PluginBinary = root }, root + ": not a regular file"},
		{"binary not executable", func(o *Options) { o.PluginBinary = notExec }, notExec + ": not executable"},
		{"no bin dir", func(o *Options) { o.BinDir = "" }, "bin dir"},
		{"no conf dir", func(o *Options) { o.ConfDir = "" }, "conf dir"},
		{"conf dir is a file", func(o *Options) { o.ConfDir = aFile }, "conf dir " + aFile},
		{"bin dir under a file", func(o *Options) { o.BinDir = filepath.Join(aFile, "bin") }, aFile + " is not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.edit(&o)
			_, err := Install(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			for _, d := range []string{good.BinDir, good.ConfDir} {
				if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("refused install created %s", d)
				}
			}
		})
	}
}

func TestFailedWriteLeavesTheOldFileAndNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "10-x.conflist")
	if err := os.WriteFile(path, []byte(flannelConflist), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	err := replaceFile(path, 0o644, nil, func(w io.Writer) error {
		if _, err := w.Write([]byte(`{"name": "half`)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want the fill error naming %s", err, path)
	}
	if got, _ := os.ReadFile(path); string(got) != flannelConflist {
		t.Errorf("the old file was damaged:\n%s", got)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("files left: %v", ents)
	}
}

func TestReportString(t *testing.T) {
	r := Report{PluginPath: "/opt/cni/bin/ratchet", PluginCopied: true, ConfPath: "/etc/cni/net.d/10-flannel.conflist", Mode: Chained, ConfChanged: true}
	if got, want := r.String(), "copied /opt/cni/bin/ratchet; appended ratchet to /etc/cni/net.d/10-flannel.conflist"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	r = Report{PluginPath: "/opt/cni/bin/ratchet", ConfPath: "/etc/cni/net.d/10-flannel.conflist", Mode: Chained}
	if got, want := r.String(), "/opt/cni/bin/ratchet up to date; ratchet already chained in /etc/cni/net.d/10-flannel.conflist"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestWrapperPathSortsJustBeforeItsSource(t *testing.T) {
	for _, src := range []string{"10-bridge.conf", "00-a.json", "0.conf", "a.b.conf", "99-loopback.conf", "-.conf"} {
		w := filepath.Base(wrapperPath("/d/" + src))
		if !(w < src) || filepath.Ext(w) != ".conflist" {
			t.Errorf("wrapper of %s is %s, which does not sort before it as a conflist", src, w)
		}
	}
}

// TestRuntimeRunsTheInstalledChain goes the whole way: it installs a real
// ratchet build next to the reference ptp plugin, then does what
// containerd does with the conf dir (load the first config with libcni,
// ADD and DEL a pod through it) and checks ratchet ran after ptp, with the
// settings given in Extra, passing ptp's result through.
func TestRuntimeRunsTheInstalledChain(t *testing.T) {
	testutil.RequireRoot(t)
	src := t.TempDir()
	build := exec.Command("go", "build", "-o", src+"/",
		"github.com/ratchet-cni/ratchet/cmd/ratchet",
		"github.com/containernetworking/plugins/plugins/main/ptp",
		"github.com/containernetworking/plugins/plugins/ipam/host-local")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build plugins: %v\n%s", err, out)
	}
	state := t.TempDir()
	n := newNode(t, map[string]string{"10-ptp.conflist": fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "pods",
  "plugins": [
    {"type": "ptp", "ipMasq": false, "ipam": {"type": "host-local", "subnet": "198.51.100.0/24", "dataDir": %q}}
  ]
}
`, state+"/ipam")})
	for _, p := range []string{"ptp", "host-local"} {
		if err := os.MkdirAll(n.binDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(src, p), filepath.Join(n.binDir, p)); err != nil {
			t.Fatal(err)
		}
	}
	logFile := filepath.Join(state, "ratchet.log")
	opts := n.opts()
	opts.PluginBinary = filepath.Join(src, "ratchet")
	opts.Extra = map[string]any{"store": map[string]any{"dir": state + "/ratchet"}, "logFile": logFile}
	if _, err := Install(opts); err != nil {
		t.Fatal(err)
	}

	first, _ := n.runtimeView()
	conf, err := libcni.ConfListFromFile(first)
	if err != nil {
		t.Fatal(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{n.binDir}, state+"/cache", nil)
	rt := &libcni.RuntimeConf{
		ContainerID: "pod1", NetNS: testutil.NewNS(t).Path(), IfName: "eth0",
		// The CNI_ARGS the kubelet passes.
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", "pod1"}},
		// What containerd passes for the capability ratchet declares.
		CapabilityArgs: map[string]any{"io.kubernetes.cri.pod-annotations": map[string]string{"example.com/a": "b"}},
	}
	// ptp puts its host end in the namespace it runs in: a simulated node.
	nodeNS := testutil.NewNS(t)
	var res types.Result
	err = nodeNS.Do(func(ns.NetNS) error {
		var err error
		res, err = cni.AddNetworkList(context.Background(), conf, rt)
		return err
	})
	if err != nil {
		t.Fatalf("ADD through %s: %v", first, err)
	}
	r, err := current.NewResultFromResult(res)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.IPs) != 1 || !strings.HasPrefix(r.IPs[0].Address.String(), "198.51.100.") {
		t.Errorf("chain result IPs %v: want ptp's address passed through", r.IPs)
	}
	logged, err := os.ReadFile(logFile)
	if err != nil || !strings.Contains(string(logged), "ADD done") {
		t.Errorf("ratchet did not run with the installed settings (log %s: %v):\n%s", logFile, err, logged)
	}
	if err := nodeNS.Do(func(ns.NetNS) error { return cni.DelNetworkList(context.Background(), conf, rt) }); err != nil {
		t.Errorf("DEL: %v", err)
	}
}

func TestDefaultPluginBinaryIsBesideTheExecutable(t *testing.T) {
	got, err := DefaultPluginBinary()
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	if got != filepath.Join(filepath.Dir(exe), "ratchet") {
		t.Errorf("DefaultPluginBinary() = %s, want ratchet beside %s", got, exe)
	}
}
