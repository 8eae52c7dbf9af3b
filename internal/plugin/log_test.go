package plugin

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/ratchet-cni/ratchet/internal/netconf"
)

// TestLogFileRefusesSymlink: a symlink planted at logFile is not followed,
// so the plugin (root) cannot be made to write into another file.
func TestLogFileRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "precious")
	if err := os.WriteFile(target, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "ratchet.log")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	args := &skel.CmdArgs{ContainerID: "ctr1", IfName: "eth0"}
	newLogger(&netconf.NetConf{LogFile: link, LogLevel: "debug"}, args).Error("written")
	if got, _ := os.ReadFile(target); string(got) != "precious" {
		t.Fatalf("the symlink's target was written: %q", got)
	}

	// A plain path is still logged to, and created 0600.
	plain := filepath.Join(dir, "plain.log")
	newLogger(&netconf.NetConf{LogFile: plain, LogLevel: "debug"}, args).Error("written")
	fi, err := os.Stat(plain)
	if err != nil || fi.Size() == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("plain log file: %v, %v", fi, err)
	}
}
