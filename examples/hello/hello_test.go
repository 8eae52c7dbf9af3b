package main

// These tests run the two tutorial plugins, hello (built from this package)
// and examples/dummy/dummy.sh, the way a runtime does: as separate processes
// with CNI_* variables and the config on stdin, first by hand and then
// through libcni, the library containerd and CRI-O use.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// binDir holds the plugins under their CNI type names (hello, dummy,
// loopback), as a runtime's CNI_PATH directory does.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

// buildAndRun builds the plugins once for all tests (a build per test would
// cost seconds) and removes them when the tests end.
func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ratchet-examples-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for name, pkg := range map[string]string{
		"hello": ".",
		// loopback is the reference plugin that only touches the pod's lo:
		// a real first plugin for hello to chain after, without host side.
		"loopback": "github.com/containernetworking/plugins/plugins/main/loopback",
	} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	script, err := os.ReadFile("../dummy/dummy.sh")
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "dummy"), script, 0o755)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binDir = dir
	return m.Run()
}

// tutorialPlugins lists the plugins that share the tutorial's contract.
var tutorialPlugins = []string{"hello", "dummy"}

// plugin returns the path of the named plugin, skipping dummy when jq (which
// dummy.sh needs) is missing.
func plugin(t *testing.T, name string) string {
	t.Helper()
	if name == "dummy" {
		if _, err := exec.LookPath("jq"); err != nil {
			t.Skip("jq is not installed: dummy.sh needs it (`make check` installs it)")
		}
	}
	return filepath.Join(binDir, name)
}

// runtimeCall is one invocation: the CNI_* environment and the stdin config.
type runtimeCall struct {
	env    map[string]string
	config string
}

// newCall returns a complete call for command in netns, as a runtime makes it.
func newCall(command, netns, config string) runtimeCall {
	return runtimeCall{config: config, env: map[string]string{
		"CNI_COMMAND":     command,
		"CNI_CONTAINERID": "ctr-" + strings.ToLower(command) + "-1",
		"CNI_NETNS":       netns,
		"CNI_IFNAME":      "eth0",
		"CNI_ARGS":        "K8S_POD_NAMESPACE=lab;K8S_POD_NAME=r1",
		"CNI_PATH":        binDir,
	}}
}

// exec runs the plugin at path. The test's own CNI_* and DUMMY_LOG_FILE
// variables are dropped so that only the call's values reach the plugin.
func (c runtimeCall) exec(t *testing.T, path string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(path)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CNI_") && !strings.HasPrefix(kv, "DUMMY_LOG_FILE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range c.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = strings.NewReader(c.config)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

func TestLogsCallToStderrAndLogFile(t *testing.T) {
	netns := testutil.NewNS(t).Path()
	for _, name := range tutorialPlugins {
		t.Run(name, func(t *testing.T) {
			path := plugin(t, name)
			logFile := filepath.Join(t.TempDir(), "plugin.log")
			cases := map[string]runtimeCall{
				"stderr only":       newCall("ADD", netns, `{"cniVersion":"1.1.0","name":"lab","type":"`+name+`"}`),
				"logFile in config": newCall("ADD", netns, `{"cniVersion":"1.1.0","name":"lab","type":"`+name+`","logFile":"`+logFile+`"}`),
			}
			if name == "dummy" {
				c := newCall("ADD", netns, `{"cniVersion":"1.1.0","name":"lab","type":"dummy"}`)
				c.env["DUMMY_LOG_FILE"] = logFile
				cases["DUMMY_LOG_FILE"] = c
			}
			for what, c := range cases {
				t.Run(what, func(t *testing.T) {
					_ = os.Remove(logFile)
					stdout, stderr, err := c.exec(t, path)
					if err != nil {
						t.Fatalf("ADD failed: %v\nstdout: %s\nstderr: %s", err, stdout, stderr)
					}
					want := []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=ctr-add-1", "CNI_NETNS=" + netns, "CNI_IFNAME=eth0", c.config}
					if name == "hello" {
						want = append(want, "CNI_ARGS=K8S_POD_NAMESPACE=lab;K8S_POD_NAME=r1")
					}
					for _, w := range want {
						if !strings.Contains(stderr, w) {
							t.Errorf("stderr lacks %q:\n%s", w, stderr)
						}
					}
					if !json.Valid([]byte(stdout)) {
						t.Errorf("stdout is not one JSON document (logs leaked into it?): %q", stdout)
					}
					logged, err := os.ReadFile(logFile)
					switch {
					case what == "stderr only" && err == nil:
						t.Errorf("log file written with no logFile configured:\n%s", logged)
					case what != "stderr only" && err != nil:
						t.Errorf("log file: %v", err)
					case what != "stderr only" && string(logged) != stderr:
						t.Errorf("log file differs from stderr:\nfile:   %q\nstderr: %q", logged, stderr)
					}
				})
			}
		})
	}
}

func TestOtherCommandsLogAndSucceed(t *testing.T) {
	netns := testutil.NewNS(t).Path()
	for _, name := range tutorialPlugins {
		for _, command := range []string{"CHECK", "DEL", "STATUS", "GC"} {
			t.Run(name+"/"+command, func(t *testing.T) {
				c := newCall(command, netns, `{"cniVersion":"1.1.0","name":"lab","type":"`+name+`"}`)
				stdout, stderr, err := c.exec(t, plugin(t, name))
				if err != nil || stdout != "" {
					t.Fatalf("%s: err %v, stdout %q (want success, no output)\nstderr: %s", command, err, stdout, stderr)
				}
				if !strings.Contains(stderr, "CNI_COMMAND="+command) {
					t.Errorf("stderr lacks CNI_COMMAND=%s:\n%s", command, stderr)
				}
			})
		}
	}
}

// prevResult is what ptp would return for a pod: the host veth, the pod's
// eth0 with one address, a route and DNS.
const prevResult = `{
	"cniVersion": "1.0.0",
	"interfaces": [
		{"name": "veth5e2a9c1f", "mac": "02:00:c0:00:02:01"},
		{"name": "eth0", "mac": "02:00:c0:00:02:0a", "sandbox": "/var/run/netns/pod-r1"}
	],
	"ips": [{"interface": 1, "address": "192.0.2.10/24", "gateway": "192.0.2.1"}],
	"routes": [{"dst": "198.51.100.0/24", "gw": "192.0.2.1"}],
	"dns": {"nameservers": ["192.0.2.53"], "search": ["lab.example"]}
}`

func TestHelloPassesPrevResultThrough(t *testing.T) {
	netns := testutil.NewNS(t).Path()
	c := newCall("ADD", netns, `{"cniVersion":"1.0.0","name":"lab","type":"hello","prevResult":`+prevResult+`}`)
	stdout, stderr, err := c.exec(t, plugin(t, "hello"))
	if err != nil {
		t.Fatalf("ADD failed: %v\nstdout: %s\nstderr: %s", err, stdout, stderr)
	}
	var got, want any
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("result is not JSON: %v: %q", err, stdout)
	}
	if err := json.Unmarshal([]byte(prevResult), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("result differs from prevResult:\ngot:  %s\nwant: %s", stdout, prevResult)
	}
}

func TestAddWithoutPrevResultIsEmptyResult(t *testing.T) {
	netns := testutil.NewNS(t).Path()
	for _, name := range tutorialPlugins {
		for _, v := range version.All.SupportedVersions() {
			t.Run(name+"/"+v, func(t *testing.T) {
				c := newCall("ADD", netns, `{"cniVersion":"`+v+`","name":"lab","type":"`+name+`"}`)
				stdout, stderr, err := c.exec(t, plugin(t, name))
				if err != nil {
					t.Fatalf("ADD failed: %v\nstdout: %s\nstderr: %s", err, stdout, stderr)
				}
				var fields struct {
					CNIVersion string `json:"cniVersion"`
				}
				if err := json.Unmarshal([]byte(stdout), &fields); err != nil || fields.CNIVersion != v {
					t.Fatalf("result %q: cniVersion %q, err %v; want %q", stdout, fields.CNIVersion, err, v)
				}
				// Decode it as a runtime does, in the config's version.
				res, err := create.Create(v, []byte(stdout))
				if err != nil {
					t.Fatalf("result %q is not a valid %s result: %v", stdout, v, err)
				}
				r, err := current.NewResultFromResult(res)
				if err != nil {
					t.Fatal(err)
				}
				if len(r.Interfaces)+len(r.IPs)+len(r.Routes) != 0 {
					t.Errorf("result %q is not empty", stdout)
				}
			})
		}
	}
}

func TestVersionListsLatest(t *testing.T) {
	for _, name := range tutorialPlugins {
		t.Run(name, func(t *testing.T) {
			// VERSION needs only CNI_COMMAND; the stdin is what libcni sends.
			c := runtimeCall{env: map[string]string{"CNI_COMMAND": "VERSION"}, config: `{"cniVersion":"1.1.0"}`}
			stdout, stderr, err := c.exec(t, plugin(t, name))
			if err != nil {
				t.Fatalf("VERSION failed: %v\nstdout: %s\nstderr: %s", err, stdout, stderr)
			}
			info, err := new(version.PluginDecoder).Decode([]byte(stdout))
			if err != nil {
				t.Fatalf("VERSION answer %q: %v", stdout, err)
			}
			if !slices.Contains(info.SupportedVersions(), "1.1.0") {
				t.Errorf("supported versions %v lack 1.1.0", info.SupportedVersions())
			}
		})
	}
}

func TestHelloErrorsAreCNIErrors(t *testing.T) {
	netns := testutil.NewNS(t).Path()
	config := `{"cniVersion":"1.1.0","name":"lab","type":"hello"}`
	without := func(command, variable string) runtimeCall {
		c := newCall(command, netns, config)
		delete(c.env, variable)
		return c
	}
	cases := []struct {
		name string
		call runtimeCall
		code uint
		msg  string
	}{
		{"ADD without CNI_CONTAINERID", without("ADD", "CNI_CONTAINERID"), types.ErrInvalidEnvironmentVariables, "CNI_CONTAINERID"},
		{"CHECK without CNI_NETNS", without("CHECK", "CNI_NETNS"), types.ErrInvalidEnvironmentVariables, "CNI_NETNS"},
		{"DEL without CNI_IFNAME", without("DEL", "CNI_IFNAME"), types.ErrInvalidEnvironmentVariables, "CNI_IFNAME"},
		{"ADD without CNI_PATH", without("ADD", "CNI_PATH"), types.ErrInvalidEnvironmentVariables, "CNI_PATH"},
		{"logFile that cannot be opened", newCall("ADD", netns,
			`{"cniVersion":"1.1.0","name":"lab","type":"hello","logFile":"/nonexistent-dir/hello.log"}`),
			types.ErrInvalidNetworkConfig, "/nonexistent-dir/hello.log"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := tc.call.exec(t, plugin(t, "hello"))
			if err == nil {
				t.Fatalf("succeeded; want error code %d\nstdout: %s", tc.code, stdout)
			}
			var cniErr types.Error
			if err := json.Unmarshal([]byte(stdout), &cniErr); err != nil {
				t.Fatalf("stdout %q is not a CNI error: %v\nstderr: %s", stdout, err, stderr)
			}
			if cniErr.Code != tc.code || !strings.Contains(cniErr.Msg, tc.msg) {
				t.Errorf("error %+v; want code %d and a message naming %q", cniErr, tc.code, tc.msg)
			}
		})
	}
}

// TestThroughLibcni runs the plugins with libcni, the library containerd and
// CRI-O use, against a throwaway netns: the proof that a real client accepts
// them, alone and chained.
func TestThroughLibcni(t *testing.T) {
	cases := []struct {
		name    string
		plugins []string
		// wantIfaces are the interface names the chain's ADD result must list.
		wantIfaces []string
		// wantLog is the (plugin, command) sequence the shared log must show.
		wantLog []string
	}{
		{
			name:    "dummy then hello",
			plugins: []string{"dummy", "hello"},
			wantLog: []string{
				"dummy ADD", "hello ADD", "dummy CHECK", "hello CHECK",
				"hello DEL", "dummy DEL", // DEL runs the chain in reverse
				"dummy STATUS", "hello STATUS", "dummy GC", "hello GC",
			},
		},
		{
			name:       "hello after loopback",
			plugins:    []string{"loopback", "hello"},
			wantIfaces: []string{"lo"}, // loopback's result, passed on by hello
			wantLog:    []string{"hello ADD", "hello CHECK", "hello DEL", "hello STATUS", "hello GC"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range tc.plugins {
				plugin(t, p) // skips when a plugin's tools are missing
			}
			t.Setenv("DUMMY_LOG_FILE", "") // dummy must use the config's logFile
			netns := testutil.NewNS(t)
			logFile := filepath.Join(t.TempDir(), "chain.log")
			var confs []string
			for _, p := range tc.plugins {
				confs = append(confs, fmt.Sprintf(`{"type":%q,"logFile":%q}`, p, logFile))
			}
			list, err := libcni.ConfListFromBytes([]byte(
				`{"cniVersion":"1.1.0","name":"lab","plugins":[` + strings.Join(confs, ",") + `]}`))
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cni := libcni.NewCNIConfigWithCacheDir([]string{binDir}, t.TempDir(),
				&invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: &stderr}})
			defer func() { t.Logf("plugins' stderr:\n%s", stderr.String()) }()
			rt := &libcni.RuntimeConf{
				ContainerID: "ctr-libcni-1",
				NetNS:       netns.Path(),
				IfName:      "eth0",
				Args:        [][2]string{{"K8S_POD_NAMESPACE", "lab"}, {"K8S_POD_NAME", "r1"}},
			}
			ctx := context.Background()

			if _, err := cni.ValidateNetworkList(ctx, list); err != nil {
				t.Fatalf("validate (VERSION): %v", err)
			}
			res, err := cni.AddNetworkList(ctx, list, rt)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			r, err := current.NewResultFromResult(res)
			if err != nil {
				t.Fatal(err)
			}
			var ifaces []string
			for _, i := range r.Interfaces {
				ifaces = append(ifaces, i.Name)
			}
			if r.CNIVersion != "1.1.0" || !slices.Equal(ifaces, tc.wantIfaces) {
				t.Errorf("ADD result version %s, interfaces %v; want 1.1.0, %v", r.CNIVersion, ifaces, tc.wantIfaces)
			}
			if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
				t.Errorf("CHECK: %v", err)
			}
			if err := cni.DelNetworkList(ctx, list, rt); err != nil {
				t.Errorf("DEL: %v", err)
			}
			if err := cni.GetStatusNetworkList(ctx, list); err != nil {
				t.Errorf("STATUS: %v", err)
			}
			if err := cni.GCNetworkList(ctx, list, &libcni.GCArgs{}); err != nil {
				t.Errorf("GC: %v", err)
			}

			logged, err := os.ReadFile(logFile)
			if err != nil {
				t.Fatal(err)
			}
			var calls []string
			for _, line := range strings.Split(string(logged), "\n") {
				if _, cmd, ok := strings.Cut(line, "CNI_COMMAND="); ok {
					calls = append(calls, strings.TrimSuffix(strings.Fields(line)[0], ":")+" "+strings.Fields(cmd)[0])
				}
			}
			if !slices.Equal(calls, tc.wantLog) {
				t.Errorf("plugin calls in the log:\n%q\nwant\n%q", calls, tc.wantLog)
			}
			// libcni hands hello the previous plugin's result as prevResult.
			if !strings.Contains(string(logged), `"prevResult":`) {
				t.Errorf("hello never logged a prevResult:\n%s", logged)
			}
		})
	}
}
