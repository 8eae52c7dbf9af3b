package kind

import "github.com/ratchet-cni/ratchet/internal/netconf"

// units are the link kinds, in the order messages list them. A new kind
// is one file and one line here.
var units = []Unit{
	podUnit,
	netnsUnit,
	vxlanUnit,
	macvlanUnit,
	vlanUnit,
}

func init() {
	for _, u := range units {
		netconf.RegisterKind(u.Kind)
	}
}

// Lookup returns the unit of the kind named name.
func Lookup(name string) (Unit, bool) {
	for _, u := range units {
		if u.Name == name {
			return u, true
		}
	}
	return Unit{}, false
}

// Flags returns the units that have a ratchetctl connect flag, in
// registry order.
func Flags() []Unit {
	var with []Unit
	for _, u := range units {
		if u.Flag != nil {
			with = append(with, u)
		}
	}
	return with
}
