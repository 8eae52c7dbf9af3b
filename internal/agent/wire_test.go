package agent

import (
	"testing"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// Every field of an end the plugin announces reaches the registry record.
func TestEndRecordFromWire(t *testing.T) {
	e := &agentapi.End{Pod: "ns/a", IfName: "e1", PeerPod: "ns/b", PeerIfName: "e2", Node: "n1",
		Attachment: agentapi.Attachment{Network: "lab", ContainerID: "c1", IfName: "eth0"}}
	want := store.EndRecord{Pod: "ns/a", IfName: "e1", PeerPod: "ns/b", PeerIfName: "e2", Node: "n1",
		Attachment: store.AttachmentKey{Network: "lab", ContainerID: "c1", IfName: "eth0"}}
	if got := endRecord(e); *got != want {
		t.Fatalf("endRecord = %+v, want %+v", *got, want)
	}
}
