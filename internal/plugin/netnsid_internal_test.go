package plugin

import "testing"

// TestOpenRecorded: a recorded path is opened only while it names the
// recorded namespace, and a pod's never when it names the plugin's own
// (also for records of older versions, which carry no identity).
func TestOpenRecorded(t *testing.T) {
	const own = "/proc/self/ns/net"
	if n := openRecorded(own, nil, true); n != nil {
		n.Close()
		t.Error("a pod path naming the plugin's own namespace was opened")
	}
	n := openRecorded(own, nil, false)
	if n == nil {
		t.Fatal("a peer path with no recorded identity was not opened")
	}
	id := nsIDOf(n)
	n.Close()
	if id == nil {
		t.Fatal("no identity")
	}
	if n := openRecorded(own, id, false); n == nil {
		t.Error("the recorded namespace was not opened")
	} else {
		n.Close()
	}
	if n := openRecorded(own, id, true); n != nil {
		n.Close()
		t.Error("the plugin's own namespace was opened as a pod's, its identity recorded or not")
	}
	other := *id
	other.Ino++
	if n := openRecorded(own, &other, false); n != nil {
		n.Close()
		t.Error("a path naming another namespace than recorded was opened")
	}
	if n := openRecorded("/proc/0/ns/net", nil, false); n != nil {
		n.Close()
		t.Error("a missing path was opened")
	}
}
