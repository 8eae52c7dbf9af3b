// Package link creates, verifies and removes point-to-point links between
// network namespaces. It is ratchet's koko-style library and can be used on
// its own.
//
// A link is made of endpoints (an interface name, addresses, MAC, MTU,
// routes and impairments in a network namespace) and a kind: a veth pair, a
// VXLAN tunnel end, a macvlan or a vlan sub-interface. Every netdev is born in
// its final namespace: moving a netdev between namespaces costs an RCU grace
// period (about 20 ms), creating it in place costs well under a millisecond.
//
// Every netdev the library creates carries a Marker (an interface alias and
// a netdev group) so that removal and verification touch only what the
// library made. Create either makes every part of a link or nothing; Remove
// is idempotent.
package link
