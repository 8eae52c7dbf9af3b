package plugin

import (
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// owner is how the netdevs of one attachment are marked (podlink.OwnerOf):
// an alias prefix unique to the attachment, and a netdev group derived
// from it so that DEL deletes them together.
type owner struct {
	prefix string
	group  uint32
}

func ownerOf(key store.AttachmentKey) owner {
	prefix, group := podlink.OwnerOf(key)
	return owner{prefix: prefix, group: group}
}

func (o owner) marker(linkName string) link.Marker {
	return link.Marker{Alias: o.prefix + linkName, Group: o.group}
}
