package plugin

import (
	"encoding/binary"
	"encoding/hex"

	"golang.org/x/crypto/blake2b"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// owner is how the netdevs of one attachment are marked: an alias prefix
// unique to the attachment, and a netdev group derived from it so that DEL
// deletes them together. Both are derived from the attachment key, so DEL,
// CHECK and GC find them with no state at all.
type owner struct {
	prefix string
	group  uint32
}

func ownerOf(key store.AttachmentKey) owner {
	sum := blake2b.Sum256([]byte(key.String()))
	return owner{
		prefix: "ratchet:" + hex.EncodeToString(sum[:6]) + ":",
		// 2^30 and up keeps clear of the small group numbers admins use;
		// under 2^31, ip(8) shows it as the positive number it is.
		group: binary.BigEndian.Uint32(sum[6:10])&(1<<30-1) | 1<<30,
	}
}

func (o owner) marker(linkName string) link.Marker {
	return link.Marker{Alias: o.prefix + linkName, Group: o.group}
}
