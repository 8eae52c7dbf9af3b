package kube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ratchet-cni/ratchet/internal/kube"
	"github.com/ratchet-cni/ratchet/internal/testutil"
	"github.com/ratchet-cni/ratchet/internal/topology"
)

var binDir string

// TestMain runs the tests in a network namespace of their own (etcd and
// the API server listen on its 127.0.0.1), with the plugin built. Without
// root only the pure tests run; the others say they need it.
func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	if os.Getenv(testutil.OwnNetnsEnv) == "" {
		os.Exit(testutil.RunInOwnNetns(m))
	}
	os.Exit(func() int {
		dir, remove, err := testutil.BuildCommands("ratchet")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer remove()
		binDir = dir
		return testutil.RunInOwnNetns(m)
	}())
}

// cni runs the plugin for pod lab/<pod> with its links annotation.
func cni(t *testing.T, cmd, dir, pod string, n ns.NetNS, annotation string) {
	t.Helper()
	if _, err := testutil.PodCNI(binDir, cmd, dir, pod, n.Path(), annotation); err != nil {
		t.Fatal(err)
	}
}

const (
	node    = "node-a"
	r1Links = `[{"name":"e1","ips":["192.0.2.1/24"],"peer":{"pod":"r2","name":"w1"}}]`
	r2Links = `[{"name":"w1","ips":["192.0.2.2/24"],"peer":{"pod":"r1","name":"e1"}}]`
	// r3 declares a link to r1:x1, which r1 does not declare: it waits.
	r3Links = `[{"name":"f1","peer":{"pod":"r1","name":"x1"}}]`
	// r4 declares a link to r2:z1, which r2 consents to only by an edit
	// made while ratchetd is not running.
	r4Links = `[{"name":"g1","ips":["203.0.113.1/30"],"peer":{"pod":"r2","name":"z1"}}]`
	r2Late  = `[{"name":"w1","ips":["192.0.2.2/24"],"peer":{"pod":"r1","name":"e1"}},` +
		`{"name":"z1","ips":["203.0.113.2/30"],"peer":{"pod":"r4","name":"g1"}}]`
	// multus is an entry another plugin wrote: ratchet keeps it.
	multus = `[{"name":"cbr0","interface":"eth0","ips":["192.0.2.100"],"default":true}]`
)

// eventually retries f every 100ms for up to 15s, failing with its last
// error.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = f(); err == nil {
			return
		}
	}
	t.Fatalf("%s: %v", what, err)
}

// statusOf returns pod lab/<name>'s network-status entries by name.
func statusOf(ctx context.Context, s *apiServer, name string) (map[string]kube.Entry, error) {
	p, err := s.client.CoreV1().Pods("lab").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	var entries []kube.Entry
	if err := json.Unmarshal([]byte(p.Annotations[kube.NetworkStatusAnnotation]), &entries); err != nil {
		return nil, fmt.Errorf("annotation %q: %w", p.Annotations[kube.NetworkStatusAnnotation], err)
	}
	m := map[string]kube.Entry{}
	for _, e := range entries {
		m[e.Name] = e
	}
	return m, nil
}

// eventOf waits for an Event with reason on pod lab/<name> whose message
// contains text.
func eventOf(t *testing.T, s *apiServer, name, reason, text string) {
	t.Helper()
	eventually(t, fmt.Sprintf("event %s on %s", reason, name), func() error {
		evs, err := s.client.CoreV1().Events("lab").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
		if err != nil {
			return err
		}
		var seen []string
		for _, e := range evs.Items {
			if e.Reason == reason && strings.Contains(e.Message, text) && e.InvolvedObject.Kind == "Pod" {
				return nil
			}
			seen = append(seen, e.Reason+": "+e.Message)
		}
		return fmt.Errorf("none with %q among %q", text, seen)
	})
}

func macOf(t *testing.T, n ns.NetNS, name string) string {
	t.Helper()
	l, err := testutil.Handle(t, n).LinkByName(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return l.Attrs().HardwareAddr.String()
}

// TestStatusEventsAndEdits runs the reporter against a real API server and
// a real lab of three pods: r1 and r2 linked by their annotations, r3
// waiting for r1's consent. It checks the network-status entries (and
// that another plugin's entry stays), the PeerRefused and LinkBroken
// Events, and that `kubectl annotate --overwrite` adding a link on both
// pods makes it in both pods' namespaces, removing it takes it away, and
// changing it makes it anew.
func TestStatusEventsAndEdits(t *testing.T) {
	testutil.RequireRoot(t)
	bin := k8sBin(t)
	s := startAPIServer(t, bin)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	if _, err := s.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "lab"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	annotations := map[string]map[string]string{
		"r1": {topology.LinksAnnotation: r1Links, kube.NetworkStatusAnnotation: multus},
		"r2": {topology.LinksAnnotation: r2Links},
		"r3": {topology.LinksAnnotation: r3Links},
		"r4": {topology.LinksAnnotation: r4Links},
	}
	for _, name := range []string{"r1", "r2", "r3", "r4"} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "lab", Annotations: annotations[name]},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		if _, err := s.client.CoreV1().Pods("lab").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// A pod of another node: not this node's to report.
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere", Namespace: "lab"},
		Spec: corev1.PodSpec{NodeName: "node-b", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if _, err := s.client.CoreV1().Pods("lab").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	t.Cleanup(func() { testutil.RemoveParking(dir) })
	nets := map[string]ns.NetNS{}
	for _, name := range []string{"r1", "r2", "r3", "r4"} {
		nets[name] = testutil.NewNS(t)
		cni(t, "ADD", dir, name, nets[name], annotations[name][topology.LinksAnnotation])
	}
	testutil.MustPing(t, nets["r1"], "192.0.2.2")
	// r2 consents to r4's link while no ratchetd runs: no edit is seen,
	// the pending link is made on the first pass.
	s.run(t, "-n", "lab", "annotate", "--overwrite", "pod/r2", topology.LinksAnnotation+"="+r2Late)

	// ratchetd runs with deploy/ratchetd-rbac.yaml's permissions only.
	s.run(t, "apply", "-f", filepath.Join("..", "..", "deploy", "ratchetd-rbac.yaml"))
	ratchetd := s.as(t, "system:serviceaccount:kube-system:ratchetd")
	done := make(chan error, 1)
	go func() {
		done <- kube.Run(ctx, kube.Config{Client: ratchetd, Node: node,
			Links: kube.LocalLinks{Dir: dir, Socket: filepath.Join(dir, "no-agent.sock")},
			Rules: topology.Rules{MaxLinks: 16}, Resync: 200 * time.Millisecond})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	// Status: r1's entry for e1, next to the other plugin's.
	e1MAC := macOf(t, nets["r1"], "e1")
	eventually(t, "r1's network-status", func() error {
		st, err := statusOf(ctx, s, "r1")
		if err != nil {
			return err
		}
		if st["cbr0"].Interface != "eth0" || len(st["cbr0"].IPs) != 1 {
			return fmt.Errorf("the other plugin's entry is gone: %+v", st)
		}
		e := st["ratchet.cni.dev/e1"]
		if e.Interface != "e1" || e.MAC != e1MAC || !slices.Equal(e.IPs, []string{"192.0.2.1"}) || e.DeviceInfo == nil {
			return fmt.Errorf("entry e1 = %+v, want interface e1, mac %s, ips [192.0.2.1]", e, e1MAC)
		}
		if d := *e.DeviceInfo; d.Peer != "lab/r2:w1" || d.Kind != "veth" || d.State != "up" || d.Type != "ratchet" {
			return fmt.Errorf("device-info = %+v", d)
		}
		return nil
	})
	eventually(t, "r2's network-status", func() error {
		st, err := statusOf(ctx, s, "r2")
		if err != nil {
			return err
		}
		if e := st["ratchet.cni.dev/w1"]; e.DeviceInfo == nil || e.DeviceInfo.Peer != "lab/r1:e1" {
			return fmt.Errorf("entry w1 = %+v", e)
		}
		return nil
	})
	if p, err := s.client.CoreV1().Pods("lab").Get(ctx, "elsewhere", metav1.GetOptions{}); err != nil || p.Annotations[kube.NetworkStatusAnnotation] != "" {
		t.Errorf("another node's pod got a network-status: %v %v", p.Annotations, err)
	}
	eventually(t, "r2's late consent to r4's link applied", func() error {
		if _, err := testutil.Handle(t, nets["r2"]).LinkByName("z1"); err != nil {
			return fmt.Errorf("z1 in r2: %w", err)
		}
		st, err := statusOf(ctx, s, "r4")
		if err != nil {
			return err
		}
		if e := st["ratchet.cni.dev/g1"]; e.DeviceInfo == nil || e.DeviceInfo.State != "up" || e.DeviceInfo.Peer != "lab/r2:z1" {
			return fmt.Errorf("r4's entry g1 = %+v", e)
		}
		return nil
	})
	testutil.MustPing(t, nets["r4"], "203.0.113.2")
	// r3's link waits for r1, which does not declare x1.
	eventOf(t, s, "r3", kube.ReasonPeerRefused, "pod lab/r1 declares no link x1")

	// kubectl annotate: r1 declares e2 first; r2 has not consented yet.
	r1With := `[{"name":"e1","ips":["192.0.2.1/24"],"peer":{"pod":"r2","name":"w1"}},` +
		`{"name":"e2","ips":["198.51.100.1/30"],"peer":{"pod":"r2","name":"w2"}}]`
	r2With := `[{"name":"w1","ips":["192.0.2.2/24"],"peer":{"pod":"r1","name":"e1"}},` +
		`{"name":"w2","ips":["198.51.100.2/30"],"peer":{"pod":"r1","name":"e2"}}]`
	s.run(t, "-n", "lab", "annotate", "--overwrite", "pod/r1", topology.LinksAnnotation+"="+r1With)
	eventOf(t, s, "r1", kube.ReasonPeerRefused, "pod lab/r2 declares no link w2")
	if _, err := testutil.Handle(t, nets["r1"]).LinkByName("e2"); err == nil {
		t.Fatal("e2 was made without r2's consent")
	}
	s.run(t, "-n", "lab", "annotate", "--overwrite", "pod/r2", topology.LinksAnnotation+"="+r2With)
	eventually(t, "e2 and w2 in the pods", func() error {
		for pod, name := range map[string]string{"r1": "e2", "r2": "w2"} {
			if _, err := testutil.Handle(t, nets[pod]).LinkByName(name); err != nil {
				return fmt.Errorf("%s in %s: %w", name, pod, err)
			}
		}
		return nil
	})
	testutil.MustPing(t, nets["r1"], "198.51.100.2")
	eventually(t, "r1's entry for e2", func() error {
		st, err := statusOf(ctx, s, "r1")
		if err != nil {
			return err
		}
		if e := st["ratchet.cni.dev/e2"]; e.MAC != macOf(t, nets["r1"], "e2") || e.DeviceInfo == nil || e.DeviceInfo.Peer != "lab/r2:w2" || e.DeviceInfo.State != "up" {
			return fmt.Errorf("entry e2 = %+v", e)
		}
		return nil
	})

	// kubectl annotate back: the link goes from both pods and the status.
	s.run(t, "-n", "lab", "annotate", "--overwrite", "pod/r1", topology.LinksAnnotation+"="+r1Links)
	eventually(t, "e2 and w2 gone", func() error {
		for pod, name := range map[string]string{"r1": "e2", "r2": "w2"} {
			if _, err := testutil.Handle(t, nets[pod]).LinkByName(name); err == nil {
				return fmt.Errorf("%s still in %s", name, pod)
			}
		}
		st, err := statusOf(ctx, s, "r1")
		if err != nil {
			return err
		}
		if _, ok := st["ratchet.cni.dev/e2"]; ok || st["ratchet.cni.dev/e1"].Interface != "e1" || st["cbr0"].Interface != "eth0" {
			return fmt.Errorf("r1's entries: %+v", st)
		}
		return nil
	})
	testutil.MustPing(t, nets["r1"], "192.0.2.2")

	// kubectl annotate a changed link: r1's e1 gets another address; the
	// link is made anew, r2 still consenting.
	r1Changed := strings.Replace(r1Links, "192.0.2.1/24", "192.0.2.11/24", 1)
	s.run(t, "-n", "lab", "annotate", "--overwrite", "pod/r1", topology.LinksAnnotation+"="+r1Changed)
	eventually(t, "r1's e1 readdressed", func() error {
		st, err := statusOf(ctx, s, "r1")
		if err != nil {
			return err
		}
		if e := st["ratchet.cni.dev/e1"]; !slices.Equal(e.IPs, []string{"192.0.2.11"}) || e.DeviceInfo == nil || e.DeviceInfo.State != "up" {
			return fmt.Errorf("entry e1 = %+v", e)
		}
		return nil
	})
	testutil.MustPing(t, nets["r2"], "192.0.2.11")
	eventOf(t, s, "r1", kube.ReasonLinkApplied, "link e1 to lab/r2:w1 made")

	// Break r1:e1 behind ratchet's back: its parked end goes.
	parking := filepath.Base(testutil.ParkingPath(dir))
	links, err := kube.LocalLinks{Dir: dir}.Links(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var parked string
	for _, l := range links {
		for _, e := range l.Ends {
			if e.Pod == "lab/r1" && e.IfName == "e1" {
				parked = e.Parked
			}
		}
	}
	if parked == "" {
		t.Fatalf("no parked end of lab/r1:e1 in %+v", links)
	}
	if out, err := exec.Command("ip", "-n", parking, "link", "del", parked).CombinedOutput(); err != nil {
		t.Fatalf("ip link del %s: %v: %s", parked, err, out)
	}
	eventOf(t, s, "r1", kube.ReasonLinkBroken, "link e1 to lab/r2:w1 is broken")
	eventually(t, "r1's entry says broken", func() error {
		st, err := statusOf(ctx, s, "r1")
		if err != nil {
			return err
		}
		if e := st["ratchet.cni.dev/e1"]; e.DeviceInfo == nil || e.DeviceInfo.State != "broken" {
			return fmt.Errorf("entry e1 = %+v", e)
		}
		return nil
	})
	for _, name := range []string{"r1", "r2", "r3", "r4"} {
		cni(t, "DEL", dir, name, nets[name], annotations[name][topology.LinksAnnotation])
	}
}
