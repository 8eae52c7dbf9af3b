package link_test

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ratchet-cni/ratchet/internal/testutil"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// inNetns runs f on a thread that has entered n, as a plugin's thread is
// in the node's namespace. The thread is never used again.
func inNetns(t *testing.T, n ns.NetNS, f func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread ends with the goroutine
		if err := netns.Set(netns.NsHandle(n.Fd())); err != nil {
			done <- err
			return
		}
		f()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestClosedHandleRefuses: a request on a handle of a closed Kernel fails
// with ErrClosed and acts nowhere, not in the calling thread's namespace
// either (a closed *netlink.Handle falls back to it).
func TestClosedHandleRefuses(t *testing.T) {
	host, other := testutil.NewNS(t), testutil.NewNS(t)
	hh := testutil.Handle(t, host)
	if err := hh.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "keep0"}, PeerName: "keep1"}); err != nil {
		t.Fatal(err)
	}
	keep, err := hh.LinkByName("keep0")
	if err != nil {
		t.Fatal(err)
	}
	if err := hh.LinkSetUp(keep); err != nil {
		t.Fatal(err)
	}
	index := keep.Attrs().Index
	k := link.NewKernel()
	h, err := k.Handle(other)
	if err != nil {
		t.Fatal(err)
	}
	park, err := link.OpenParking(k, other)
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
	inNetns(t, host, func() {
		down := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index}}
		if err := h.LinkSetDown(down); !errors.Is(err, link.ErrClosed) {
			t.Errorf("LinkSetDown on a closed handle: %v, want ErrClosed", err)
		}
		if err := park.SetUp(index, false); !errors.Is(err, link.ErrClosed) {
			t.Errorf("Parking.SetUp after its Kernel closed: %v, want ErrClosed", err)
		}
		if _, err := h.LinkList(); !errors.Is(err, link.ErrClosed) {
			t.Errorf("LinkList on a closed handle: %v, want ErrClosed", err)
		}
	})
	if _, err := k.Handle(other); !errors.Is(err, link.ErrClosed) {
		t.Fatalf("Handle of a closed Kernel: %v, want ErrClosed", err)
	}
	l, err := hh.LinkByIndex(index)
	if err != nil || l.Attrs().Name != "keep0" || l.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("the calling thread's namespace was touched: %v, %v", l, err)
	}
}

// TestKernelHandlesByIdentity: two paths to one namespace share a handle;
// another namespace has its own.
func TestKernelHandlesByIdentity(t *testing.T) {
	a, b := testutil.NewNS(t), testutil.NewNS(t)
	again, err := ns.GetNS(fmt.Sprintf("/proc/self/fd/%d", a.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.Path() == a.Path() {
		t.Fatal("the test needs two paths")
	}
	k := link.NewKernel()
	defer k.Close()
	ha, err := k.Handle(a)
	if err != nil {
		t.Fatal(err)
	}
	hAgain, err := k.Handle(again)
	if err != nil {
		t.Fatal(err)
	}
	hb, err := k.Handle(b)
	if err != nil {
		t.Fatal(err)
	}
	if ha != hAgain || ha == hb || ha.NetnsID() == hb.NetnsID() {
		t.Fatalf("handles: %p %p %p, want the first two the same and the third another", ha, hAgain, hb)
	}
	// The shared handle acts in its namespace.
	v := &link.Veth{A: link.Endpoint{NS: again, Name: "s1"}, B: link.Endpoint{NS: b, Name: "s2"}, Marker: marker("id")}
	if err := v.Create(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(ctx, k); err != nil {
		t.Fatal(err)
	}
	if got := testutil.Links(t, a); len(got) != 1 || got[0] != "s1" {
		t.Fatalf("a holds %v, want s1", got)
	}
	if err := v.Remove(ctx, k); err != nil {
		t.Fatal(err)
	}
}
