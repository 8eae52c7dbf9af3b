package install

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func (n *node) uninstall() UninstallReport {
	n.t.Helper()
	r, err := Uninstall(n.opts())
	if err != nil {
		n.t.Fatalf("Uninstall: %v", err)
	}
	return r
}

// assertRoundTrip installs, uninstalls and checks the node is back to what
// it was, byte for byte and mode for mode (mtimes aside: files were
// rewritten), with no binary left; then that a second uninstall changes
// nothing.
func (n *node) assertRoundTrip() UninstallReport {
	n.t.Helper()
	before := n.snapshot()
	n.install()
	r := n.uninstall()
	if !r.Changed() || !r.PluginRemoved || r.PluginKept {
		n.t.Errorf("uninstall report = %+v", r)
	}
	after := n.snapshot()
	if strings.Join(keys(after), ",") != strings.Join(keys(before), ",") {
		n.t.Errorf("files after uninstall %v, before install %v", keys(after), keys(before))
	}
	for p, b := range before {
		if a := after[p]; a.data != b.data || a.mode != b.mode {
			n.t.Errorf("%s after uninstall:\n%q (%v)\nbefore install:\n%q (%v)", p, a.data, a.mode, b.data, b.mode)
		}
	}
	again := n.uninstall()
	if again.Changed() || again.String() != "ratchet not installed: nothing to remove" {
		n.t.Errorf("second uninstall = %+v (%s)", again, again)
	}
	if again2 := n.snapshot(); len(again2) != len(after) {
		n.t.Errorf("second uninstall changed the files: %v", keys(again2))
	}
	return r
}

func TestUninstallRestoresAppendedConflistsByteForByte(t *testing.T) {
	for name, content := range map[string]string{
		"flannel":  flannelConflist,
		"ptp":      ptpConflist,
		"calico":   calicoConflist,
		"compact":  `{"cniVersion":"1.0.0","name":"c","plugins":[{"type":"ptp"},{"type":"portmap"}]}`,
		"crlf":     strings.ReplaceAll(flannelConflist, "\n", "\r\n"),
		"one-line": "{\n  \"cniVersion\": \"1.0.0\",\n  \"name\": \"k8stest\",\n  \"plugins\": [\n    {\"type\": \"ptp\"}\n  ]\n}\n",
	} {
		t.Run(name, func(t *testing.T) {
			n := newNode(t, map[string]string{"10-net.conflist": content})
			if err := os.Chmod(filepath.Join(n.confDir, "10-net.conflist"), 0o600); err != nil {
				t.Fatal(err)
			}
			r := n.assertRoundTrip()
			if len(r.Unchained) != 1 || filepath.Base(r.Unchained[0]) != "10-net.conflist" || len(r.Removed) != 0 {
				t.Errorf("report = %+v", r)
			}
			if s := r.String(); !strings.Contains(s, "removed ratchet from ") || !strings.Contains(s, "removed "+r.PluginPath) {
				t.Errorf("report string %q", s)
			}
		})
	}
}

func TestUninstallRemovesWrapperAndStandaloneFiles(t *testing.T) {
	n := newNode(t, map[string]string{"10-bridge.conf": bridgeConf, "20-other.conf": otherConf})
	r := n.assertRoundTrip()
	if len(r.Removed) != 1 || filepath.Base(r.Removed[0]) != "10-bridge-ratchet.conflist" || len(r.Unchained) != 0 {
		t.Errorf("wrapped: report = %+v", r)
	}
	n.assertRuntimeSees("10-bridge.conf", "bridge")

	m := newNode(t, nil)
	r = m.assertRoundTrip()
	if len(r.Removed) != 1 || filepath.Base(r.Removed[0]) != StandaloneFile {
		t.Errorf("standalone: report = %+v", r)
	}
}

func TestUninstallLeavesWhatInstallDidNotWrite(t *testing.T) {
	// ratchet as the operator's own first plugin, a corrupt file, a
	// .conf of type ratchet: none of them is install's doing.
	own := `{"cniVersion":"1.0.0","name":"own","plugins":[{"type":"ratchet"},{"type":"portmap"}]}`
	files := map[string]string{
		"10-own.conflist":    own,
		"20-broken.conflist": corruptConflist,
		"30-ratchet.conf":    `{"cniVersion":"1.0.0","name":"r","type":"ratchet"}`,
	}
	n := newNode(t, files)
	r := n.uninstall()
	if r.Changed() {
		t.Errorf("report = %+v", r)
	}
	for name, content := range files {
		if got := string(n.read(name)); got != content {
			t.Errorf("%s changed:\n%s", name, got)
		}
	}
}

func TestUninstallCutsAHandPlacedEntryAndLaterFiles(t *testing.T) {
	// ratchet placed by hand in the middle of one conflist, appended to a
	// second one that a later file has since shadowed.
	hand := `{"cniVersion":"1.0.0","name":"lab","plugins":[{"type":"ptp"},{"type":"ratchet","logLevel":"debug"},{"type":"portmap"}]}`
	n := newNode(t, map[string]string{"20-flannel.conflist": flannelConflist})
	n.install()
	n.write("10-lab.conflist", hand)
	r := n.uninstall()
	if len(r.Unchained) != 2 {
		t.Errorf("report = %+v", r)
	}
	if got := string(n.read("20-flannel.conflist")); got != flannelConflist {
		t.Errorf("20-flannel.conflist:\n%s", got)
	}
	if got, want := string(n.read("10-lab.conflist")), `{"cniVersion":"1.0.0","name":"lab","plugins":[{"type":"ptp"},{"type":"portmap"}]}`; got != want {
		t.Errorf("10-lab.conflist = %s, want %s", got, want)
	}
	n.assertRuntimeSees("10-lab.conflist", "ptp", "portmap")
	n.assertNoTempFiles()
}

func TestUninstallKeepsABinaryThatIsNotOurs(t *testing.T) {
	n := newNode(t, map[string]string{"10-flannel.conflist": flannelConflist})
	n.install()
	dst := filepath.Join(n.binDir, "ratchet")
	if err := os.WriteFile(dst, []byte("#!/bin/sh\necho someone else's\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := n.uninstall()
	if !r.PluginKept || r.PluginRemoved || len(r.Unchained) != 1 {
		t.Errorf("report = %+v", r)
	}
	if !strings.Contains(r.String(), "kept "+dst) {
		t.Errorf("report string %q", r)
	}
	if _, err := os.Stat(dst); err != nil {
		t.Errorf("someone else's binary was removed: %v", err)
	}

	// Without PluginBinary there is nothing to compare with: it goes.
	opts := n.opts()
	opts.PluginBinary = ""
	if r, err := Uninstall(opts); err != nil || !r.PluginRemoved {
		t.Errorf("Uninstall without PluginBinary: %+v, %v", r, err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("binary still there: %v", err)
	}
}

func TestUninstallNeedsBothDirs(t *testing.T) {
	for _, opts := range []Options{{ConfDir: t.TempDir()}, {BinDir: t.TempDir()}} {
		if _, err := Uninstall(opts); err == nil || !strings.Contains(err.Error(), "no path given") {
			t.Errorf("Uninstall(%+v) = %v", opts, err)
		}
	}
	// Missing dirs hold nothing to remove.
	root := t.TempDir()
	r, err := Uninstall(Options{BinDir: filepath.Join(root, "bin"), ConfDir: filepath.Join(root, "conf")})
	if err != nil || r.Changed() {
		t.Errorf("missing dirs: %+v, %v", r, err)
	}
}
