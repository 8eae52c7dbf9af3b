// Package linkparam holds the kernel's limits on link parameters (MTU, VNI,
// VLAN id, port, macvlan modes) and the parsing of tc-style impairments,
// defined once for the link library, the network config and the CLI. It
// depends on the standard library only, so that config parsing does not
// link the kernel library.
package linkparam

import (
	"fmt"
	"slices"
	"strings"
)

// Limits of the kernel and the protocols.
const (
	// MinMTU is the smallest MTU the kernel accepts on an IPv4-capable
	// Ethernet device (RFC 791's 68 bytes).
	MinMTU = 68
	// MaxMTU is the kernel's ETH_MAX_MTU, the largest MTU a veth, vxlan,
	// macvlan or vlan accepts.
	MaxMTU = 65535
	// DefaultMTU is the MTU the kernel gives a new Ethernet-like netdev
	// (ETH_DATA_LEN), and so a veth end whose spec sets none.
	DefaultMTU = 1500
	// MaxVNI is the largest VXLAN network identifier (24 bits).
	MaxVNI = 1<<24 - 1
	// MinVLANID and MaxVLANID bound an 802.1Q VLAN id (0 and 4095 are
	// reserved).
	MinVLANID = 1
	MaxVLANID = 4094
	// MaxPort is the largest UDP port.
	MaxPort = 65535
	// DefaultVXLANPort is the IANA VXLAN port (the kernel's own default is
	// the pre-standard 8472).
	DefaultVXLANPort = 4789
	// DefaultMacvlanMode is the mode of a macvlan whose spec names none.
	DefaultMacvlanMode = "bridge"
)

// Limits ratchet sets itself, on what one link end may ask of the kernel.
// Anyone who can create a pod writes its annotations, so every count an
// annotation chooses is bounded: each address and route is a netlink
// request made under the node lock, and is kept in the link's record.
const (
	// MaxAddrsPerLink bounds the addresses of one link end. A lab
	// interface carries one or two per family (a primary, a secondary, a
	// link-local); 64 leaves room for anycast and renumbering exercises
	// while keeping one end's requests and record small.
	MaxAddrsPerLink = 64
	// MaxRoutesPerLink bounds the routes of one link end, on the same
	// reasoning: a lab end routes a few prefixes through its peer, and a
	// lab that needs a full table runs a routing daemon, which installs
	// it without ratchet.
	MaxRoutesPerLink = 64
)

// MacvlanModes are the macvlan modes by name, in the kernel's order.
var MacvlanModes = []string{"bridge", "private", "vepa", "passthru"}

// CheckMTU reports an MTU outside MinMTU..MaxMTU.
func CheckMTU(mtu int) error {
	if mtu < MinMTU || mtu > MaxMTU {
		return fmt.Errorf("must be %d..%d", MinMTU, MaxMTU)
	}
	return nil
}

// CheckVNI reports a VNI outside 1..MaxVNI.
func CheckVNI(vni int) error {
	if vni < 1 || vni > MaxVNI {
		return fmt.Errorf("must be 1..%d", MaxVNI)
	}
	return nil
}

// CheckPort reports a port outside 1..MaxPort.
func CheckPort(port int) error {
	if port < 1 || port > MaxPort {
		return fmt.Errorf("must be 1..%d", MaxPort)
	}
	return nil
}

// CheckVLANID reports a VLAN id outside MinVLANID..MaxVLANID.
func CheckVLANID(id int) error {
	if id < MinVLANID || id > MaxVLANID {
		return fmt.Errorf("must be %d..%d", MinVLANID, MaxVLANID)
	}
	return nil
}

// CheckAddrCount reports more than MaxAddrsPerLink addresses.
func CheckAddrCount(n int) error {
	if n > MaxAddrsPerLink {
		return fmt.Errorf("%d addresses, at most %d per link", n, MaxAddrsPerLink)
	}
	return nil
}

// CheckRouteCount reports more than MaxRoutesPerLink routes.
func CheckRouteCount(n int) error {
	if n > MaxRoutesPerLink {
		return fmt.Errorf("%d routes, at most %d per link", n, MaxRoutesPerLink)
	}
	return nil
}

// CheckMacvlanMode reports a mode that is not one of MacvlanModes.
func CheckMacvlanMode(mode string) error {
	if !slices.Contains(MacvlanModes, mode) {
		return fmt.Errorf("want one of %s", strings.Join(MacvlanModes, ", "))
	}
	return nil
}
