package store_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/store"
)

func TestEndRecordCheck(t *testing.T) {
	good := store.EndRecord{Pod: "lab/r1", IfName: "e1", PeerPod: "0123abcdef", PeerIfName: "w%1", Node: "node-1.example"}
	if err := good.Check(); err != nil {
		t.Fatalf("good end: %v", err)
	}
	for name, mutate := range map[string]func(e *store.EndRecord){
		"empty pod":         func(e *store.EndRecord) { e.Pod = "" },
		"pod with two /":    func(e *store.EndRecord) { e.Pod = "a/b/c" },
		"pod with a space":  func(e *store.EndRecord) { e.Pod = "lab/r 1" },
		"pod starting -":    func(e *store.EndRecord) { e.Pod = "-x" },
		"long ifname":       func(e *store.EndRecord) { e.IfName = "abcdefghijklmnop" },
		"ifname with /":     func(e *store.EndRecord) { e.IfName = "a/b" },
		"ifname ..":         func(e *store.EndRecord) { e.IfName = ".." },
		"peer ifname space": func(e *store.EndRecord) { e.PeerIfName = "a b" },
		"peer pod empty":    func(e *store.EndRecord) { e.PeerPod = "" },
		"no node":           func(e *store.EndRecord) { e.Node = "" },
		"node with newline": func(e *store.EndRecord) { e.Node = "n1\n" },
	} {
		e := good
		mutate(&e)
		if err := e.Check(); !errors.Is(err, store.ErrBadRecord) {
			t.Errorf("%s: Check() = %v, want ErrBadRecord", name, err)
		}
	}
}

func TestNodeRecordCheck(t *testing.T) {
	underlay := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}
	for _, n := range []store.NodeRecord{
		{Name: "n1", VTEP: "192.0.2.1", Port: 4789},
		{Name: "n2", VTEP: "2001:db8::2"},
		{Name: "n3", VTEP: "::ffff:192.0.2.3"},
	} {
		if err := n.Check(underlay); err != nil {
			t.Errorf("%+v: %v", n, err)
		}
	}
	for _, n := range []store.NodeRecord{
		{Name: "n1", VTEP: "203.0.113.66"}, // outside the underlay
		{Name: "n1", VTEP: "nonsense"},
		{Name: "n1", VTEP: "fe80::1%eth0"},
		{Name: "n1", VTEP: "192.0.2.1", Port: 70000},
		{Name: "", VTEP: "192.0.2.1"},
	} {
		if err := n.Check(underlay); !errors.Is(err, store.ErrBadRecord) {
			t.Errorf("%+v: Check() = %v, want ErrBadRecord", n, err)
		}
	}
	// Without an underlay any unicast address will do, but never one that
	// is not a unicast address.
	if err := (&store.NodeRecord{Name: "n1", VTEP: "203.0.113.66"}).Check(nil); err != nil {
		t.Errorf("no underlay: %v", err)
	}
	for _, vtep := range []string{"0.0.0.0", "127.0.0.1", "224.0.0.1", "ff02::1", "169.254.0.1", "::"} {
		if err := (&store.NodeRecord{Name: "n1", VTEP: vtep}).Check(nil); !errors.Is(err, store.ErrBadRecord) {
			t.Errorf("VTEP %s: Check() = %v, want ErrBadRecord", vtep, err)
		}
	}
}
