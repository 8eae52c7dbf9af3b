package ctl_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/kind"
	"github.com/ratchet-cni/ratchet/internal/testutil"
)

var binDir string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, remove, err := testutil.BuildCommands("ratchetctl", "ratchet")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer remove()
		binDir = dir
		return m.Run()
	}())
}

// ctl runs ratchetctl, inside node's namespace when node is not nil.
func ctl(t *testing.T, node ns.NetNS, args ...string) (string, string, int) {
	t.Helper()
	name, argv := filepath.Join(binDir, "ratchetctl"), args
	if node != nil {
		name, argv = "nsenter", append([]string{"--net=" + node.Path(), filepath.Join(binDir, "ratchetctl")}, args...)
	}
	cmd := exec.Command(name, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func mustCtl(t *testing.T, node ns.NetNS, args ...string) string {
	t.Helper()
	out, errOut, code := ctl(t, node, args...)
	if code != 0 {
		t.Fatalf("ratchetctl %v: exit %d: %s", args, code, errOut)
	}
	return out
}

func nsName(n ns.NetNS) string { return filepath.Base(n.Path()) }

func TestConnectVethByNameAndPath(t *testing.T) {
	a, b := testutil.NewNS(t), testutil.NewNS(t)
	out := mustCtl(t, nil, "connect", "-n", nsName(a)+",e1,192.0.2.1/24,2001:db8::1/64", "-a", b.Path()+",e2,192.0.2.2/24,2001:db8::2/64", "--mtu", "9000")
	if !strings.Contains(out, "connected") {
		t.Fatalf("output %q", out)
	}
	testutil.MustPing(t, a, "192.0.2.2")
	testutil.MustPing(t, a, "2001:db8::2")
	l, err := testutil.Handle(t, b).LinkByName("e2")
	if err != nil || l.Attrs().MTU != 9000 || !strings.HasPrefix(l.Attrs().Alias, "ratchet:") {
		t.Fatalf("e2: %v %+v", err, l)
	}
	mustCtl(t, nil, "disconnect", "-a", a.Path()+",e1")
	if left := append(testutil.Links(t, a), testutil.Links(t, b)...); len(left) != 0 {
		t.Fatalf("left after disconnect: %v", left)
	}
	if out := mustCtl(t, nil, "disconnect", "-n", nsName(a)+",e1"); !strings.Contains(out, "already gone") {
		t.Fatalf("second disconnect: %q", out)
	}
}

func TestConnectByPidAndCurrent(t *testing.T) {
	a, b := testutil.NewNS(t), testutil.NewNS(t)
	sleeper := exec.Command("nsenter", "--net="+b.Path(), "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	// nsenter joins b only after it has started: until then its pid names
	// the host's namespace, where the link must never go.
	testutil.WaitInNS(t, sleeper.Process.Pid, b)
	// -c is the namespace ratchetctl runs in: a.
	mustCtl(t, a, "connect", "-c", "e1,198.51.100.1/24", "-p", fmt.Sprintf("%d,e2,198.51.100.2/24", sleeper.Process.Pid))
	testutil.MustPing(t, a, "198.51.100.2")
	if got := testutil.Links(t, b); !slices.Equal(got, []string{"e2"}) {
		t.Fatalf("the pid's namespace holds %v", got)
	}
}

func TestDisconnectRefusesForeignInterface(t *testing.T) {
	a := testutil.NewNS(t)
	if out, err := exec.Command("ip", "-n", nsName(a), "link", "add", "mine", "type", "veth", "peer", "name", "theirs").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	_, errOut, code := ctl(t, nil, "disconnect", "-n", nsName(a)+",mine")
	if code != 1 || !strings.Contains(errOut, "not ratchet's") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if got := testutil.Links(t, a); len(got) != 2 {
		t.Fatalf("foreign pair touched: %v", got)
	}
}

func TestConnectVxlanAndMacvlan(t *testing.T) {
	nodeA, nodeB := testutil.NewNS(t), testutil.NewNS(t)
	testutil.Underlay(t, nodeA, nodeB, "underlay0")
	podA, podB := testutil.NewNS(t), testutil.NewNS(t)
	mustCtl(t, nodeA, "connect", "-n", nsName(podA)+",vx0,203.0.113.1/24", "-x", "underlay0,192.0.2.2,100,port=4790")
	mustCtl(t, nodeB, "connect", "-n", nsName(podB)+",vx0,203.0.113.2/24", "-x", "underlay0,192.0.2.1,100,port=4790")
	testutil.MustPing(t, podA, "203.0.113.2")
	mustCtl(t, nodeA, "connect", "-n", nsName(podA)+",mv0,192.0.2.50/24", "-M", "underlay0,bridge")
	testutil.MustPing(t, podA, "192.0.2.2") // through the macvlan to node B's underlay address
	mustCtl(t, nil, "disconnect", "-n", nsName(podA)+",vx0")
	mustCtl(t, nil, "disconnect", "-n", nsName(podA)+",mv0")
	if left := testutil.Links(t, podA); len(left) != 0 {
		t.Fatalf("left: %v", left)
	}
}

func TestConnectVlan(t *testing.T) {
	node, other, pod := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t)
	testutil.Underlay(t, node, other, "parent0")
	_, errOut, code := ctl(t, node, "connect", "-n", nsName(pod)+",vl0", "-V", "parent0,100")
	if code != 0 && strings.Contains(errOut, "not supported") {
		t.Skipf("this kernel has no vlan driver: %s", errOut)
	}
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if got := testutil.Links(t, pod); !slices.Equal(got, []string{"vl0"}) {
		t.Fatalf("pod holds %v", got)
	}
}

func TestBadArguments(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"connect", "-n", "x"}, `-n`},
		{[]string{"connect", "-n", "x,in1,192.0.2.1"}, `"192.0.2.1" is not a CIDR`},
		{[]string{"connect", "-n", "x,abcdefghijklmnopq"}, "longer than 15"},
		{[]string{"connect", "-n", "x,a"}, "two endpoints, got 1"},
		{[]string{"connect", "-n", "x,a", "-n", "y,b", "-n", "z,c"}, "two endpoints, got 3"},
		{[]string{"connect", "-n", "x,a", "-x", "eth0,nowhere,5"}, `remote "nowhere"`},
		{[]string{"connect", "-n", "x,a", "-x", "eth0,192.0.2.1,0"}, `VNI "0"`},
		{[]string{"connect", "-n", "x,a", "-x", "eth0,192.0.2.1,5,port=0"}, `"port=0"`},
		{[]string{"connect", "-n", "x,a", "-M", "eth0,turbo"}, `-M "eth0,turbo"`},
		{[]string{"connect", "-n", "x,a", "-V", "eth0,5000"}, `-V "eth0,5000"`},
		{[]string{"connect", "-n", "x,a", "-M", "eth0,bridge", "-V", "eth0,5"}, "exclude each other"},
		{[]string{"connect", "-n", "x,a", "-n", "y,b", "--mtu", "10"}, "--mtu 10"},
		{[]string{"disconnect"}, "one endpoint, got 0"},
		{[]string{"run", "--conf-dir", "/nonexistent-ratchet-dir", "--", "true"}, "/nonexistent-ratchet-dir"},
		{[]string{"run", "--name", "Bad/Name", "--", "true"}, `--name "Bad/Name"`},
		{[]string{"run", "--annotation", "novalue", "--", "true"}, `--annotation "novalue"`},
		{[]string{"run"}, "no command"},
		{[]string{"run", "--del"}, "--del takes --name"},
	} {
		_, errOut, code := ctl(t, nil, c.args...)
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		if code != 2 || !strings.Contains(lines[0], c.want) {
			t.Errorf("ratchetctl %v: exit %d, first line %q; want exit 2 naming %q", c.args, code, lines[0], c.want)
		}
	}
}

func TestRunAttachesEveryNetwork(t *testing.T) {
	hub, dir := testutil.NewNS(t), t.TempDir()
	confDir, cniBin := cniDirs(t, dir)
	// Two networks: the first gets eth0 (a link with no name takes
	// CNI_IFNAME), the second eth1.
	confs := map[string]string{
		"10-a.conflist": `{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"ratchet","store":{"dir":"` + dir + `/state"},
		   "links":[{"ips":["192.0.2.1/24"],"peer":{"netns":"` + hub.Path() + `","name":"hub0","ips":["192.0.2.2/24"]}}]}]}`,
		"20-b.conf": `{"cniVersion":"1.0.0","name":"b","type":"ratchet","store":{"dir":"` + dir + `/state"},
		   "links":[{"ips":["198.51.100.1/24"],"peer":{"netns":"` + hub.Path() + `","name":"hub1","ips":["198.51.100.2/24"]}}]}`,
	}
	for f, c := range confs {
		if err := os.WriteFile(filepath.Join(confDir, f), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, code := ctl(t, nil, "run", "--conf-dir", confDir, "--bin-dir", cniBin, "--name", "runtest",
		"--", "sh", "-c", "ip -o link show lo | grep -q LOWER_UP && ip -o link show eth0 && ip -o link show eth1 && ping -c1 -W2 192.0.2.2 >/dev/null && ping -c1 -W2 198.51.100.2 >/dev/null && exit 7")
	if code != 7 {
		t.Fatalf("exit %d, want CMD's 7\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if !strings.Contains(errOut, `"name": "eth0"`) || !strings.Contains(errOut, `"name": "eth1"`) {
		t.Fatalf("results not shown:\n%s", errOut)
	}
	if _, err := os.Stat("/var/run/netns/runtest"); !os.IsNotExist(err) {
		t.Fatalf("netns left behind: %v", err)
	}
	if left := testutil.Links(t, hub); len(left) != 0 {
		t.Fatalf("hub still holds %v after run", left)
	}
}

func TestRunFailedAddUndoesEarlierNetworks(t *testing.T) {
	hub, dir := testutil.NewNS(t), t.TempDir()
	confDir, cniBin := cniDirs(t, dir)
	good := `{"cniVersion":"1.0.0","name":"a","type":"ratchet","store":{"dir":"` + dir + `/state"},"links":[{"peer":{"netns":"` + hub.Path() + `","name":"hub0"}}]}`
	bad := `{"cniVersion":"1.0.0","name":"b","type":"ratchet","store":{"dir":"` + dir + `/state"},"links":[{"peer":{"netns":"/var/run/netns/ratchet-absent"}}]}`
	_ = os.WriteFile(confDir+"/10-a.conf", []byte(good), 0o644)
	_ = os.WriteFile(confDir+"/20-b.conf", []byte(bad), 0o644)
	_, errOut, code := ctl(t, nil, "run", "--conf-dir", confDir, "--bin-dir", cniBin, "--name", "runfail", "--", "true")
	if code != 1 || !strings.Contains(errOut, "ratchet-absent") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if left := testutil.Links(t, hub); len(left) != 0 {
		t.Fatalf("the first network was not undone: hub holds %v", left)
	}
	if _, err := os.Stat("/var/run/netns/runfail"); !os.IsNotExist(err) {
		t.Fatalf("netns left behind: %v", err)
	}
}

func TestInstallChainsAfterTheNodeNetwork(t *testing.T) {
	dir := t.TempDir()
	confDir, cniBin := dir+"/net.d", dir+"/bin"
	_ = os.MkdirAll(confDir, 0o755)
	conflist := `{"cniVersion":"1.0.0","name":"cluster","plugins":[{"type":"ptp","ipam":{"type":"host-local","subnet":"198.51.100.0/24"}},{"type":"portmap","capabilities":{"portMappings":true}}]}`
	if err := os.WriteFile(confDir+"/10-cluster.conflist", []byte(conflist), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"install", "--bin-dir", cniBin, "--conf-dir", confDir, "--plugin", filepath.Join(binDir, "ratchet")}
	out := mustCtl(t, nil, args...)
	got, err := os.ReadFile(confDir + "/10-cluster.conflist")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), `"type":"ptp"`) || !strings.Contains(string(got), `"ratchet"`) || strings.Index(string(got), "portmap") > strings.Index(string(got), `"ratchet"`) {
		t.Fatalf("after install (%s):\n%s", out, got)
	}
	if fi, err := os.Stat(cniBin + "/ratchet"); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("plugin not installed: %v", err)
	}
	mustCtl(t, nil, args...)
	again, _ := os.ReadFile(confDir + "/10-cluster.conflist")
	if string(again) != string(got) {
		t.Fatalf("second install changed the conflist:\n%s", again)
	}
	if _, errOut, code := ctl(t, nil, "install", "--extra", "[1]"); code != 2 || !strings.Contains(errOut, "--extra") {
		t.Fatalf("bad --extra: exit %d %s", code, errOut)
	}
}

// TestUninstallOnSignalGivesTheConfigBack runs what the DaemonSet runs:
// install, then a main container that waits for SIGTERM and uninstalls.
func TestUninstallOnSignalGivesTheConfigBack(t *testing.T) {
	dir := t.TempDir()
	confDir, cniBin := dir+"/net.d", dir+"/bin"
	_ = os.MkdirAll(confDir, 0o755)
	conflist := "{\n  \"cniVersion\": \"1.0.0\",\n  \"name\": \"cluster\",\n  \"plugins\": [\n    {\"type\": \"ptp\", \"ipam\": {\"type\": \"host-local\", \"subnet\": \"198.51.100.0/24\"}}\n  ]\n}\n"
	if err := os.WriteFile(confDir+"/10-cluster.conflist", []byte(conflist), 0o644); err != nil {
		t.Fatal(err)
	}
	dirs := []string{"--bin-dir", cniBin, "--conf-dir", confDir, "--plugin", filepath.Join(binDir, "ratchet")}
	mustCtl(t, nil, append([]string{"install"}, dirs...)...)

	if _, errOut, code := ctl(t, nil, "install", "--on-signal"); code != 2 || !strings.Contains(errOut, "--on-signal") {
		t.Fatalf("--on-signal alone: exit %d %s", code, errOut)
	}
	out := runUntilSIGTERM(t, nil, append([]string{"install", "--uninstall", "--on-signal"}, dirs...), func() {
		// Until the signal, nothing is removed.
		time.Sleep(200 * time.Millisecond)
		if got, _ := os.ReadFile(confDir + "/10-cluster.conflist"); !strings.Contains(string(got), `"ratchet"`) {
			t.Fatalf("uninstalled before the signal:\n%s", got)
		}
	})
	if got, _ := os.ReadFile(confDir + "/10-cluster.conflist"); string(got) != conflist {
		t.Fatalf("conflist after uninstall:\n%s\nwant:\n%s", got, conflist)
	}
	if _, err := os.Stat(cniBin + "/ratchet"); !os.IsNotExist(err) {
		t.Fatalf("plugin left in the bin dir: %v", err)
	}
	if !strings.Contains(out, "removed ratchet from "+confDir+"/10-cluster.conflist") {
		t.Fatalf("output %q", out)
	}
	// A second uninstall finds nothing to do.
	if out := mustCtl(t, nil, append([]string{"install", "--uninstall"}, dirs...)...); !strings.Contains(out, "nothing to remove") {
		t.Fatalf("second uninstall: %q", out)
	}
}

func TestRunKeepThenDel(t *testing.T) {
	hub, dir := testutil.NewNS(t), t.TempDir()
	confDir, cniBin := cniDirs(t, dir)
	conf := `{"cniVersion":"1.0.0","name":"a","type":"ratchet","store":{"dir":"` + dir + `/state"},"links":[{"peer":{"netns":"` + hub.Path() + `","name":"hub0"}}]}`
	_ = os.WriteFile(confDir+"/10-a.conf", []byte(conf), 0o644)
	_, errOut, code := ctl(t, nil, "run", "--conf-dir", confDir, "--bin-dir", cniBin, "--name", "kept", "--keep", "--", "true")
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", "kept").Run() })
	if code != 0 || !strings.Contains(errOut, "ratchetctl run --del --name kept") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if got := testutil.Links(t, hub); len(got) != 1 {
		t.Fatalf("--keep kept nothing: hub holds %v", got)
	}
	mustCtl(t, nil, "run", "--del", "--name", "kept", "--conf-dir", confDir, "--bin-dir", cniBin)
	if left := testutil.Links(t, hub); len(left) != 0 {
		t.Fatalf("hub still holds %v after --del", left)
	}
	if _, err := os.Stat("/var/run/netns/kept"); !os.IsNotExist(err) {
		t.Fatalf("netns kept after --del: %v", err)
	}
}

// A run kept with --annotation declaring links: --del, given no
// annotation, must not tell the plugin that the pod declares none (it
// would then skip DEL, as a runtime's word is trusted), but let it find
// the attachment in its store. docs/lab.md cleans up this way.
func TestRunDelOfAnnotatedPods(t *testing.T) {
	dir := t.TempDir()
	confDir, cniBin := cniDirs(t, dir)
	store := dir + "/state"
	conf := `{"cniVersion":"1.1.0","name":"lab","plugins":[{"type":"ratchet","store":{"dir":"` + store + `"},` +
		`"capabilities":{"io.kubernetes.cri.pod-annotations":true}}]}`
	_ = os.WriteFile(confDir+"/10-lab.conflist", []byte(conf), 0o644)
	t.Cleanup(func() { testutil.RemoveParking(store) })
	// netns names are the host's: unique per run.
	a, b := fmt.Sprintf("rdel%d-a", os.Getpid()), fmt.Sprintf("rdel%d-b", os.Getpid())
	for _, p := range [][2]string{{a, b}, {b, a}} {
		ann := fmt.Sprintf(`ratchet.cni.dev/links=[{"name":"e1","peer":{"pod":%q,"name":"e1"}}]`, p[1])
		_, errOut, code := ctl(t, nil, "run", "--conf-dir", confDir, "--bin-dir", cniBin, "--name", p[0], "--namespace", "lab",
			"--annotation", ann, "--keep", "--", "true")
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", p[0]).Run() })
		if code != 0 || !strings.Contains(errOut, "ratchetctl run --del --name "+p[0]+" --namespace lab ") {
			t.Fatalf("run %s: exit %d: %s", p[0], code, errOut)
		}
	}
	if out := mustCtl(t, nil, "links", "--store", store); !regexp.MustCompile(`(?m)^up +lab/` + a + `:e1 +lab/` + b + `:e1$`).MatchString(out) {
		t.Fatalf("before --del, links:\n%s", out)
	}
	mustCtl(t, nil, "run", "--del", "--name", a, "--namespace", "lab", "--conf-dir", confDir, "--bin-dir", cniBin)
	out := mustCtl(t, nil, "links", "--store", store)
	if strings.Contains(out, "lab/"+a+" ") || !regexp.MustCompile(`(?m)^parked +lab/`+a+`:e1 +lab/`+b+`:e1$`).MatchString(out) {
		t.Fatalf("after --del of %s, links:\n%s", a, out)
	}
	mustCtl(t, nil, "run", "--del", "--name", b, "--namespace", "lab", "--conf-dir", confDir, "--bin-dir", cniBin)
	if out := mustCtl(t, nil, "links", "--store", store); strings.Contains(out, "lab/") {
		t.Fatalf("after --del of both pods, links:\n%s", out)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"connect", "-h"}} {
		out, _, code := ctl(t, nil, args...)
		if code != 0 || !strings.Contains(out, "--annotation K=V") || !strings.Contains(out, "-x PARENT,REMOTE,VNI") {
			t.Errorf("ratchetctl %v: exit %d\n%s", args, code, out)
		}
		// Every kind's connect flag, from the kind units' registry.
		for _, u := range kind.Flags() {
			if line := "ratchetctl connect EP -" + u.Flag.Name + " " + u.Flag.Arg; !strings.Contains(out, line) {
				t.Errorf("ratchetctl %v does not show %q\n%s", args, line, out)
			}
		}
	}
}

// cniDirs makes a conf dir and a plugin dir holding ratchet under dir.
func cniDirs(t *testing.T, dir string) (confDir, cniBin string) {
	t.Helper()
	confDir, cniBin = dir+"/net.d", dir+"/bin"
	for _, d := range []string{confDir, cniBin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", filepath.Join(binDir, "ratchet"), cniBin).CombinedOutput(); err != nil {
		t.Fatal(err, string(out))
	}
	return confDir, cniBin
}

// With no agent on the socket, ratchetctl health fails (exit 1, the
// liveness probe's failure) and says where it looked. Its answers from a
// real agent are tested with one (internal/agent/health_test.go).
func TestHealthWithoutAgent(t *testing.T) {
	sock := t.TempDir() + "/none.sock"
	if _, stderr, code := ctl(t, nil, "health", "--socket", sock); code != 1 || !strings.Contains(stderr, "ratchetd unreachable at "+sock) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if _, _, code := ctl(t, nil, "health", "extra"); code != 2 {
		t.Fatalf("an extra argument: exit %d, want 2", code)
	}
}
