package plugin_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
)

// PrebuiltBinEnv names a directory that already holds ratchet, ratchet-fault,
// ptp and host-local; when set, TestMain builds nothing.
const PrebuiltBinEnv = "RATCHET_TEST_PLUGIN_BIN"

// binDir holds the plugin binaries the tests exec: ratchet built from this
// tree, and the reference plugins from the module versions in go.mod.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ratchet-plugin-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	// A machine without the Go toolchain (the second kernel's VM, see
	// test/kernel) hands over binaries built beforehand.
	if pre := os.Getenv(PrebuiltBinEnv); pre != "" {
		binDir = pre
		return m.Run()
	}
	build := exec.Command("go", "build", "-o", dir+"/",
		"github.com/ratchet-cni/ratchet/cmd/ratchet",
		"github.com/containernetworking/plugins/plugins/main/ptp",
		"github.com/containernetworking/plugins/plugins/ipam/host-local")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build plugins: %v\n%s", err, out)
		return 1
	}
	// A build that can be killed after any step (crash-safety tests).
	build = exec.Command("go", "build", "-tags", "faultinject", "-o", dir+"/ratchet-fault", "github.com/ratchet-cni/ratchet/cmd/ratchet")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build ratchet-fault: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// call is one exec of the plugin, as a runtime makes it.
type call struct {
	cmd         string
	containerID string
	netns       string
	ifname      string
	args        string
	conf        string
	// node, when set, is the namespace the plugin runs in (a simulated node).
	node ns.NetNS
	// wrap, when set, is a command the plugin runs under (its last argument).
	wrap []string
	// env replaces the CNI environment entirely when set (bad-env tests).
	env []string
}

// run execs bin/ratchet; it returns stdout, or the CNI error it printed.
func run(t testing.TB, c call) ([]byte, *types.Error) {
	t.Helper()
	name, argv := filepath.Join(binDir, "ratchet"), []string{}
	if c.node != nil {
		name, argv = "nsenter", []string{"--net=" + c.node.Path(), filepath.Join(binDir, "ratchet")}
	}
	if c.wrap != nil {
		name, argv = c.wrap[0], append(append([]string{}, c.wrap[1:]...), append([]string{name}, argv...)...)
	}
	cmd := exec.Command(name, argv...)
	if c.ifname == "" {
		c.ifname = "eth0"
	}
	if c.containerID == "" {
		c.containerID = "ctr1"
	}
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "CNI_COMMAND=" + c.cmd, "CNI_CONTAINERID=" + c.containerID,
		"CNI_NETNS=" + c.netns, "CNI_IFNAME=" + c.ifname, "CNI_ARGS=" + c.args, "CNI_PATH=" + binDir}
	if c.env != nil {
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, c.env...)
	}
	cmd.Stdin = strings.NewReader(c.conf)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	cniErr := &types.Error{}
	if jerr := json.Unmarshal(stdout.Bytes(), cniErr); jerr != nil || cniErr.Code == 0 {
		t.Fatalf("%s failed without a CNI error: %v\nstdout: %s\nstderr: %s", c.cmd, err, stdout.String(), stderr.String())
	}
	return nil, cniErr
}

// mustRun fails the test unless the call succeeds.
func mustRun(t testing.TB, c call) []byte {
	t.Helper()
	out, cniErr := run(t, c)
	if cniErr != nil {
		t.Fatalf("%s: %v", c.cmd, cniErr)
	}
	return out
}

// confJSON renders a ratchet config with the given extra top-level fields.
func confJSON(t testing.TB, version, storeDir string, fields map[string]any) string {
	t.Helper()
	conf := map[string]any{"cniVersion": version, "name": "lab", "type": "ratchet",
		"store": map[string]any{"dir": storeDir}, "logLevel": "debug"}
	for k, v := range fields {
		conf[k] = v
	}
	b, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// vethTo is a static link to a peer netns, as written in a config.
func vethTo(name, ip string, peer ns.NetNS, peerName, peerIP string) map[string]any {
	return map[string]any{"name": name, "ips": []string{ip},
		"peer": map[string]any{"netns": peer.Path(), "name": peerName, "ips": []string{peerIP}}}
}
