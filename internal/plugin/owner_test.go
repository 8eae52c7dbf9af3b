package plugin

import (
	"testing"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// DEL finds an attachment's netdevs by the alias prefix and group derived
// from its key, and a restarted pod keeps its MACs: a change to either
// derivation would strand what an older version made. The expected values
// are SHA-256 digests taken with another implementation (Python's hashlib).
func TestDerivedNamesAreStable(t *testing.T) {
	o := ownerOf(store.AttachmentKey{Network: "bench", ContainerID: "veth-1", IfName: "eth0"})
	if o.prefix != "ratchet:8f310e42b378:" || o.group != 1333914949 {
		t.Errorf("ownerOf = %q, group %d; want \"ratchet:8f310e42b378:\", group 1333914949", o.prefix, o.group)
	}
	if mac := stableMAC("default/router-a", "eth1").String(); mac != "de:e7:95:7f:66:db" {
		t.Errorf("stableMAC = %s, want de:e7:95:7f:66:db", mac)
	}
}
