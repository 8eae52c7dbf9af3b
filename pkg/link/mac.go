package link

import (
	"crypto/rand"
	"net"
)

// fillMAC gives end a random MAC when it has none, so the caller learns the
// address without asking the kernel.
func fillMAC(end *Endpoint) {
	if end.MAC == nil {
		end.MAC = RandomMAC()
	}
}

// RandomMAC returns a random locally administered unicast MAC.
func RandomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	_, _ = rand.Read(mac)
	mac[0] = mac[0]&0xfe | 0x02
	return mac
}

// RandomName returns prefix followed by random hex digits, at most 15 bytes
// in all: a temporary interface name that cannot collide by accident.
func RandomName(prefix string) string {
	const hexdigits = "0123456789abcdef"
	b := make([]byte, 15-len(prefix))
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = hexdigits[b[i]&0xf]
	}
	return prefix + string(b)
}
