package kube_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ratchet-cni/ratchet/internal/kube"
	"github.com/ratchet-cni/ratchet/internal/labop"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/testutil"
	"github.com/ratchet-cni/ratchet/internal/topology"
)

// adminAdd makes the administrator's link a -- b, as `ratchetctl link add`
// does.
func adminAdd(t *testing.T, dir string, a, b labop.End) {
	t.Helper()
	ctx := context.Background()
	req := &labop.AddRequest{Ends: [2]labop.End{a, b}}
	for i, e := range req.Ends {
		other := req.Ends[1-i]
		nsName, pod, _ := strings.Cut(other.Pod, "/")
		spec, err := labop.CheckSpec(e, netconf.LinkSpec{Name: e.IfName, Peer: &netconf.Peer{Namespace: nsName, Pod: pod, Name: other.IfName}})
		if err != nil {
			t.Fatal(err)
		}
		req.Specs[i] = spec
	}
	s, err := labop.Open(ctx, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Add(ctx, req); err != nil {
		t.Fatal(err)
	}
}

func has(t *testing.T, n ns.NetNS, name string) bool {
	t.Helper()
	_, err := testutil.Handle(t, n).LinkByName(name)
	return err == nil
}

// watching is a log sink that closes c at Run's "watching" line.
type watching struct {
	once sync.Once
	c    chan struct{}
}

func (w *watching) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("watching the node's pods")) {
		w.once.Do(func() { close(w.c) })
	}
	return len(p), nil
}

// TestEditsConsentAndLimits: what annotation edits may do. A link made
// from an edit lasts while the annotations declare it: a pod recreated
// from its template (without the link) does not get it back. An edit
// removes only the link it declared, never the administrator's on that
// interface. The network config's maxLinksPerPod holds for edits, and a
// peer in another namespace is refused unless the rules allow it.
func TestEditsConsentAndLimits(t *testing.T) {
	testutil.RequireRoot(t)
	bin := k8sBin(t)
	s := startAPIServer(t, bin)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, name := range []string{"lab", "ns2"} {
		if _, err := s.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// r3 waits for r1:x1, which r1 never declares: r3 has a pod link
	// (the store knows it) and no link to r1 or r2.
	annotations := map[string]string{"r1": r1Links, "r2": r2Links, "r3": r3Links, "c": "[]"}
	newPod := func(namespace, name string) {
		t.Helper()
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Annotations: map[string]string{topology.LinksAnnotation: annotations[name]}},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		if _, err := s.client.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"r1", "r2", "r3"} {
		newPod("lab", name)
	}
	newPod("ns2", "c")
	dir := t.TempDir()
	t.Cleanup(func() { testutil.RemoveParking(dir) })
	nets := map[string]ns.NetNS{}
	for _, name := range []string{"r1", "r2", "r3"} {
		nets[name] = testutil.NewNS(t)
		cni(t, "ADD", dir, name, nets[name], annotations[name])
	}
	defer func() {
		for _, name := range []string{"r1", "r2", "r3"} {
			cni(t, "DEL", dir, name, nets[name], "")
		}
	}()
	testutil.MustPing(t, nets["r1"], "192.0.2.2")

	s.run(t, "apply", "-f", filepath.Join("..", "..", "deploy", "ratchetd-rbac.yaml"))
	ratchetd := s.as(t, "system:serviceaccount:kube-system:ratchetd")
	// run starts a reporter and returns once it watches (its informer
	// synced): an edit made before would be no edit to it.
	run := func(rules topology.Rules, limits labop.Limits) (stop func()) {
		runCtx, cancelRun := context.WithCancel(ctx)
		done := make(chan error, 1)
		w := &watching{c: make(chan struct{})}
		go func() {
			done <- kube.Run(runCtx, kube.Config{Client: ratchetd, Node: node,
				Links: kube.LocalLinks{Dir: dir, Socket: filepath.Join(dir, "no-agent.sock"), Limits: limits},
				Rules: rules, Resync: 200 * time.Millisecond, Log: slog.New(slog.NewTextHandler(w, nil))})
		}()
		select {
		case <-w.c:
		case <-time.After(30 * time.Second):
			t.Fatal("the reporter did not start watching")
		}
		return func() {
			cancelRun()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	stop := run(topology.Rules{MaxLinks: 16}, labop.Limits{MaxLinksPerPod: 2})
	defer func() { stop() }()
	annotate := func(pod, value string) {
		t.Helper()
		s.run(t, "-n", "lab", "annotate", "--overwrite", "pod/"+pod, topology.LinksAnnotation+"="+value)
	}
	absent := func(pod, name string) {
		t.Helper()
		if has(t, nets[pod], name) {
			t.Errorf("%s has %s", pod, name)
		}
	}

	// 1. Both pods consent by edits: e2 -- w2 is made. r1 is then deleted
	// and made again from its template (e1 only): its ADD does not make
	// e2, nor does ratchetd: r2's end waits, parked.
	r1With := r1Links[:len(r1Links)-1] + `,{"name":"e2","ips":["198.51.100.1/30"],"peer":{"pod":"r2","name":"w2"}}]`
	r2With := r2Links[:len(r2Links)-1] + `,{"name":"w2","ips":["198.51.100.2/30"],"peer":{"pod":"r1","name":"e2"}}]`
	annotate("r1", r1With)
	annotate("r2", r2With)
	eventually(t, "e2 made by the edits", func() error {
		if !has(t, nets["r1"], "e2") {
			return fmt.Errorf("no e2 in r1")
		}
		return nil
	})
	testutil.MustPing(t, nets["r1"], "198.51.100.2")
	cni(t, "DEL", dir, "r1", nets["r1"], "")
	if err := s.client.CoreV1().Pods("lab").Delete(ctx, "r1", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "r1 deleted", func() error {
		if _, err := s.client.CoreV1().Pods("lab").Get(ctx, "r1", metav1.GetOptions{}); err == nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
	newPod("lab", "r1")
	cni(t, "ADD", dir, "r1", nets["r1"], r1Links)
	testutil.MustPing(t, nets["r1"], "192.0.2.2")
	// Several of ratchetd's passes (every 200ms): none makes e2 either.
	time.Sleep(time.Second)
	absent("r1", "e2")
	links, err := kube.LocalLinks{Dir: dir}.Links(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		for _, e := range l.Ends {
			if e.Pod == "lab/r1" && e.IfName == "e2" && (e.Declared || e.Attachment != nil) {
				t.Errorf("link %s: the new r1's end e2 is %+v", l.ID, e)
			}
		}
	}
	// r2 takes its consent back: its end goes.
	annotate("r2", r2Links)
	eventually(t, "w2 gone", func() error {
		if has(t, nets["r2"], "w2") {
			return fmt.Errorf("w2 still in r2")
		}
		return nil
	})

	// 2. The administrator links r1:e4 to r3:y. An edit of r1 declares
	// that very link, refused by r3, then takes it back: the
	// administrator's link stays.
	adminAdd(t, dir, labop.End{Pod: "lab/r1", IfName: "e4"}, labop.End{Pod: "lab/r3", IfName: "y"})
	annotate("r1", r1Links[:len(r1Links)-1]+`,{"name":"e4","peer":{"pod":"r3","name":"y"}}]`)
	eventOf(t, s, "r1", kube.ReasonPeerRefused, "pod lab/r3 declares no link y")
	annotate("r1", r1Links)
	eventOf(t, s, "r1", kube.ReasonLinkFailed, "ratchetctl link add")
	if !has(t, nets["r1"], "e4") || !has(t, nets["r3"], "y") {
		t.Error("an annotation edit removed the administrator's link r1:e4 -- r3:y")
	}

	// 3. r1 has two links now (e1, the administrator's e4): with
	// maxLinksPerPod 2 a third, though both pods consent, is refused.
	annotate("r1", r1Links[:len(r1Links)-1]+`,{"name":"e5","peer":{"pod":"r2","name":"w5"}}]`)
	annotate("r2", r2Links[:len(r2Links)-1]+`,{"name":"w5","peer":{"pod":"r1","name":"e5"}}]`)
	eventOf(t, s, "r2", kube.ReasonLinkFailed, "maxLinksPerPod (2)")
	absent("r1", "e5")
	absent("r2", "w5")

	// 4. A peer in another namespace: refused by the default rules, let
	// through (to the consent check) when they allow it.
	crossNS := r1Links[:len(r1Links)-1] + `,{"name":"e6","peer":{"namespace":"ns2","pod":"c","name":"x"}}]`
	annotate("r1", crossNS)
	eventOf(t, s, "r1", kube.ReasonInvalidLinks, "ns2")
	stop()
	stop = run(topology.Rules{MaxLinks: 16, AllowCrossNamespace: true}, labop.Limits{})
	annotate("r1", r1Links)
	annotate("r1", crossNS)
	eventOf(t, s, "r1", kube.ReasonPeerRefused, "pod ns2/c declares no link x")
	absent("r1", "e6")
}
