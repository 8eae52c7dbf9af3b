package plugin

import (
	"testing"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// DEL finds an attachment's netdevs by the alias prefix and group derived
// from its key, and a restarted pod keeps its MACs: a change to either
// derivation would strand what an older version made. The expected values
// are BLAKE2b-256 digests taken with another implementation: Python's
// hashlib.blake2b(data, digest_size=32), the same function as Go's
// blake2b.Sum256.
func TestDerivedNamesAreStable(t *testing.T) {
	o := ownerOf(store.AttachmentKey{Network: "bench", ContainerID: "veth-1", IfName: "eth0"})
	if o.prefix != "ratchet:76404802acf3:" || o.group != 1652824255 {
		t.Errorf("ownerOf = %q, group %d; want \"ratchet:76404802acf3:\", group 1652824255", o.prefix, o.group)
	}
	if mac := stableMAC("default/router-a", "eth1").String(); mac != "76:f5:6a:5e:e8:d1" {
		t.Errorf("stableMAC = %s, want 76:f5:6a:5e:e8:d1", mac)
	}
}
