package plugin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ratchet-cni/ratchet/internal/plugin"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// netdevState is what a test compares of an interface: its name, flags
// and addresses.
type netdevState struct {
	name  string
	flags net.Flags
	addrs string
}

// busyHost makes a stand-in for a node's own namespace whose low ifindexes
// (2 to 41) are all taken by interfaces that are up and addressed, so that
// a request meant for another namespace's ifindex lands on one of them.
func busyHost(t *testing.T) ns.NetNS {
	t.Helper()
	host := testutil.NewNS(t)
	h := testutil.Handle(t, host)
	for i := 0; i < 20; i++ {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("hv%da", i)}, PeerName: fmt.Sprintf("hv%db", i)}
		if err := h.LinkAdd(v); err != nil {
			t.Fatal(err)
		}
		for j, name := range []string{v.Name, v.PeerName} {
			l, err := h.LinkByName(name)
			if err != nil {
				t.Fatal(err)
			}
			addr := &netlink.Addr{IPNet: testutil.MustCIDR(fmt.Sprintf("203.0.113.%d/32", 2*i+j+1))}
			if err := h.AddrAdd(l, addr); err != nil {
				t.Fatal(err)
			}
			if err := h.LinkSetUp(l); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Carrier follows with the kernel's own timing: wait for it, so that
	// the state compared is a settled one.
	for i := 0; i < 200; i++ {
		settled := true
		for _, d := range netdevs(t, host) {
			if d.name != "lo" && d.flags&net.FlagRunning == 0 {
				settled = false
			}
		}
		if settled {
			return host
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the host's veths have no carrier")
	return nil
}

// netdevs returns the state of every interface in n by ifindex.
func netdevs(t *testing.T, n ns.NetNS) map[int]netdevState {
	t.Helper()
	h := testutil.Handle(t, n)
	all, err := dumpAgain(h.LinkList)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]netdevState{}
	for _, l := range all {
		addrs, err := dumpAgain(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_ALL) })
		if err != nil {
			t.Fatal(err)
		}
		var list []string
		for _, a := range addrs {
			// Link-local addresses come and go with the kernel's own
			// timing; what ADD could touch are the assigned ones.
			if !a.IP.IsLinkLocalUnicast() {
				list = append(list, a.IPNet.String())
			}
		}
		slices.Sort(list)
		got[l.Attrs().Index] = netdevState{name: l.Attrs().Name, flags: l.Attrs().Flags, addrs: strings.Join(list, ",")}
	}
	return got
}

// storedLinks returns the link records of e's store as JSON, to compare.
func (e *podEnv) storedLinks() string {
	e.t.Helper()
	st, err := store.OpenLocal(e.dir)
	if err != nil {
		e.t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Links(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	slices.SortFunc(recs, func(a, b *store.LinkRecord) int { return strings.Compare(a.ID, b.ID) })
	b, err := json.Marshal(recs)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

// addInNetns runs ADD in this process with the calling thread in host, as
// the plugin binary runs in the node's namespace: a request that falls
// back to the thread's own namespace acts on host.
func addInNetns(t *testing.T, host ns.NetNS, hook func(string) error, args *skel.CmdArgs) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		// The thread never leaves host: it ends with the goroutine, as it
		// stays locked.
		runtime.LockOSThread()
		if err := netns.Set(netns.NsHandle(host.Fd())); err != nil {
			done <- fmt.Errorf("enter host netns: %w", err)
			return
		}
		_, _, err := (&plugin.Plugin{HostNS: host, Fault: hook}).AddResult(context.Background(), args)
		done <- err
	}()
	return <-done
}

// dumpAgain repeats a dump the kernel interrupted: the busy host's
// link-local addresses come and go while it is read (seen on Debian's 6.1
// under emulation, test/kernel), and a partial list is no snapshot.
func dumpAgain[T any](dump func() ([]T, error)) ([]T, error) {
	var err error
	for range 10 {
		var list []T
		if list, err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return list, err
		}
	}
	return nil, err
}

// TestAddFailureAfterPlugInLeavesHostAlone fails a pod's ADD at each step
// after its peer was plugged in, and checks that the undo unplugs the
// peer in the parking namespace and touches nothing of the node's own
// namespace, whose ifindexes collide with the parking namespace's.
func TestAddFailureAfterPlugInLeavesHostAlone(t *testing.T) {
	e := newPodEnv(t)
	e.add("pb", linksJSON(t, podLink("b0", "192.0.2.2/24", "pa", "a0")))
	annA := linksJSON(t, podLink("a0", "192.0.2.1/24", "pb", "b0"))
	host := busyHost(t)
	before := netdevs(t, host)
	links, pods, attachments := e.records()
	recorded := e.storedLinks()
	injected := errors.New("injected failure")
	for _, step := range []string{"plug in", "links recorded", "result"} {
		e.starts["pa"]++
		e.pods["pa"] = testutil.NewNS(t)
		c := e.call("ADD", "pa", annA)
		args := &skel.CmdArgs{ContainerID: c.containerID, Netns: c.netns, IfName: "eth0", Args: c.args, StdinData: []byte(c.conf)}
		seen := false
		hook := func(s string) error {
			if s == step && !seen {
				seen = true
				return injected
			}
			return nil
		}
		if err := addInNetns(t, host, hook, args); !errors.Is(err, injected) && (err == nil || !strings.Contains(err.Error(), injected.Error())) {
			t.Fatalf("failing after %q: got %v, want the injected failure", step, err)
		}
		if after := netdevs(t, host); !maps.Equal(after, before) {
			t.Fatalf("failing after %q changed the node's namespace:\nbefore %v\nafter  %v", step, before, after)
		}
		if up, _ := e.carrier("pb", "b0"); up {
			t.Fatalf("failing after %q left pb's cable plugged in", step)
		}
		if got := e.links("pa"); len(got) != 0 {
			t.Fatalf("failing after %q left %v in pa", step, got)
		}
		if got := testutil.Links(t, e.parking()); len(got) != 1 {
			t.Fatalf("failing after %q: parking holds %v, want pb's end only", step, got)
		}
		if l, p, a := e.records(); l != links || p != pods || a != attachments {
			t.Fatalf("failing after %q: records %d links, %d pods, %d attachments; want %d, %d, %d", step, l, p, a, links, pods, attachments)
		}
		if got := e.storedLinks(); got != recorded {
			t.Fatalf("failing after %q changed the link records:\nbefore %s\nafter  %s", step, recorded, got)
		}
	}
	// Without a failure the same ADD plugs pb in: the steps above ran after
	// a real plug-in.
	c := e.call("ADD", "pa", annA)
	args := &skel.CmdArgs{ContainerID: c.containerID, Netns: c.netns, IfName: "eth0", Args: c.args, StdinData: []byte(c.conf)}
	if err := addInNetns(t, host, nil, args); err != nil {
		t.Fatal(err)
	}
	if up, _ := e.carrier("pb", "b0"); !up {
		t.Fatal("pb's cable is not plugged in after pa's ADD")
	}
	if after := netdevs(t, host); !maps.Equal(after, before) {
		t.Fatalf("ADD changed the node's namespace:\nbefore %v\nafter  %v", before, after)
	}
	e.del("pa")
	e.del("pb")
	e.expectEmpty()
}
