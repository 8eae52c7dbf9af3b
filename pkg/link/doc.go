// Package link creates, verifies and removes point-to-point links between
// network namespaces. It is ratchet's koko-style library and can be used on
// its own.
//
// A link is made of endpoints (an interface name, addresses, MAC, MTU,
// routes and impairments in a network namespace) and a kind: a veth pair, a
// VXLAN tunnel end, a macvlan or a vlan sub-interface. Every netdev is born in
// its final namespace: moving a netdev between namespaces costs an RCU grace
// period, creating it in place costs a small fraction of that (the README's
// performance section has the figures).
//
// Every netdev the library creates carries a Marker (an interface alias and
// a netdev group) so that removal and verification touch only what the
// library made. Create either makes every part of a link or nothing; Remove
// is idempotent.
//
// Every request goes through a Handle bound to one namespace, which acts
// there without switching the calling thread and refuses to act at all
// once closed. A Kernel holds the handles of one operation, one per
// namespace; its owner closes it when the operation, and any undo of it,
// is over. Functions that take a *Kernel accept nil for one-shot handles.
package link
