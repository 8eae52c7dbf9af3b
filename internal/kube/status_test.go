package kube_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/kube"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// TestEntries: one entry per end the pod holds on this node, addresses
// without prefix length, peer and kind in device-info; ends of other pods
// and ends not held here give none.
func TestEntries(t *testing.T) {
	key := &store.AttachmentKey{Network: "lab", ContainerID: "c1", IfName: "eth0"}
	links := []kube.Link{
		{LinkView: podlink.LinkView{ID: "a", State: podlink.StateUp, Ends: [2]store.LinkEnd{
			{Pod: "lab/r1", IfName: "e1", Attachment: key, Spec: json.RawMessage(`{"name":"e1","ips":["192.0.2.1/24","2001:db8::1/64"]}`)},
			{Pod: "lab/r2", IfName: "w1", Attachment: key}}},
			MAC: [2]string{"02:00:00:00:00:01", "02:00:00:00:00:02"}},
		{LinkView: podlink.LinkView{ID: "b", State: podlink.StateRemote, Ends: [2]store.LinkEnd{
			{Pod: "lab/r0", IfName: "x"},
			{Pod: "lab/r1", IfName: "a0", Attachment: key}}}, VNI: 4097},
		{LinkView: podlink.LinkView{ID: "c", State: podlink.StatePending, Ends: [2]store.LinkEnd{
			{Pod: "lab/r1", IfName: "gone"},
			{Pod: "lab/r3", IfName: "f1", Attachment: key}}}},
	}
	got := kube.Entries("lab/r1", links)
	if len(got) != 2 {
		t.Fatalf("Entries = %+v, want 2", got)
	}
	if e := got[0]; e.Name != "ratchet.cni.dev/a0" || e.DeviceInfo.Kind != "vxlan" || e.DeviceInfo.VNI != 4097 || e.DeviceInfo.Peer != "lab/r0:x" || e.DeviceInfo.State != "remote" {
		t.Errorf("a0: %+v %+v", e, e.DeviceInfo)
	}
	if e := got[1]; e.Name != "ratchet.cni.dev/e1" || e.MAC != "02:00:00:00:00:01" || strings.Join(e.IPs, ",") != "192.0.2.1,2001:db8::1" ||
		e.DeviceInfo.Kind != "veth" || e.DeviceInfo.Peer != "lab/r2:w1" || e.DeviceInfo.Type != "ratchet" {
		t.Errorf("e1: %+v %+v", e, e.DeviceInfo)
	}
}

// TestMergeNetworkStatus: others' entries stay, in their order; ratchet's
// previous entries are replaced; nothing left removes the annotation; a
// value that is not a list is left alone, with an error.
func TestMergeNetworkStatus(t *testing.T) {
	ours := []kube.Entry{{Name: "ratchet.cni.dev/e1", Interface: "e1"}}
	cases := []struct {
		cur, want string
		remove    bool
		err       bool
	}{
		{"", `[{"name":"ratchet.cni.dev/e1","interface":"e1"}]`, false, false},
		{`[ {"name": "cbr0", "default": true},
		    {"name":"ratchet.cni.dev/old"}, {"name":"lab/macvlan"} ]`,
			`[{"name":"cbr0","default":true},{"name":"lab/macvlan"},{"name":"ratchet.cni.dev/e1","interface":"e1"}]`, false, false},
		{`{"name":"cbr0"}`, "", false, true},
		// Ours already there, laid out by someone else: nothing changes.
		{`[ {"name": "cbr0"},
		    {"interface": "e1", "name": "ratchet.cni.dev/e1"} ]`,
			`[ {"name": "cbr0"},
		    {"interface": "e1", "name": "ratchet.cni.dev/e1"} ]`, false, false},
		{`[1]`, "", false, true},
	}
	for _, c := range cases {
		got, remove, err := kube.MergeNetworkStatus(c.cur, ours)
		if (err != nil) != c.err || got != c.want || remove != c.remove {
			t.Errorf("Merge(%q) = %q %v %v, want %q %v error %v", c.cur, got, remove, err, c.want, c.remove, c.err)
		}
	}
	if got, remove, err := kube.MergeNetworkStatus(`[{"name":"ratchet.cni.dev/e1"}]`, nil); err != nil || !remove || got != "" {
		t.Errorf("Merge of ours alone, none now = %q %v %v, want removal", got, remove, err)
	}
	// A pod with no ratchet link: Multus's pretty-printed value is left
	// as it is, so that writeStatus does not patch the pod.
	multus := "[{\n    \"name\": \"cbr0\",\n    \"ips\": [ \"192.0.2.7\" ],\n    \"default\": true\n}]"
	if got, remove, err := kube.MergeNetworkStatus(multus, nil); err != nil || remove || got != multus {
		t.Errorf("Merge of Multus's alone, none of ours = %q %v %v, want it unchanged", got, remove, err)
	}
	if got, remove, err := kube.MergeNetworkStatus("[]", nil); err != nil || remove || got != "[]" {
		t.Errorf("Merge of an empty list, none of ours = %q %v %v, want it unchanged", got, remove, err)
	}
	if got, remove, err := kube.MergeNetworkStatus("", nil); err != nil || remove || got != "" {
		t.Errorf("Merge of nothing = %q %v %v, want nothing to do", got, remove, err)
	}
}
