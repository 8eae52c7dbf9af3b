package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/pkg/link"
	"github.com/ratchet-cni/ratchet/pkg/store"
)

// parkingKey is the store's meta key for the parking namespace's path.
const parkingKey = "parking-netns"

// openParking opens the node-local namespace where the far end of every
// pod link waits (parked) and where two pods' ends are stitched together.
// With create, it is made on first use: a named netns (one per store
// directory) with IPv6 off, so parked ends never speak on their own.
func openParking(ctx context.Context, st store.Store, storeDir string, create bool) (ns.NetNS, error) {
	path, err := st.Meta(ctx, parkingKey)
	if err != nil {
		return nil, storeError(err)
	}
	if path != "" {
		park, err := ns.GetNS(path)
		if err == nil || !create {
			return park, err
		}
	}
	if !create {
		return nil, errNoParking
	}
	sum := sha256.Sum256([]byte(storeDir))
	name := "ratchet-park-" + hex.EncodeToString(sum[:4])
	path = link.NetnsDir + "/" + name
	park, err := ns.GetNS(path)
	if err != nil {
		if path, err = link.CreateNamedNetns(name); err != nil {
			return nil, fmt.Errorf("create parking netns %s: %w", name, err)
		}
		if park, err = ns.GetNS(path); err != nil {
			return nil, err
		}
		for _, key := range []string{"net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/default/disable_ipv6"} {
			_ = link.WriteSysctl(park, key, "1")
		}
	}
	if err := st.PutMeta(ctx, parkingKey, path); err != nil {
		park.Close()
		return nil, storeError(err)
	}
	return park, nil
}

var errNoParking = errors.New("no parking namespace")
