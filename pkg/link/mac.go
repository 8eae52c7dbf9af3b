package link

import (
	"crypto/rand"
	"net"

	"golang.org/x/sys/unix"
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
	randomBytes(mac)
	mac[0] = mac[0]&0xfe | 0x02
	return mac
}

// RandomName returns prefix followed by random hex digits, at most 15 bytes
// in all: a temporary interface name that cannot collide by accident.
func RandomName(prefix string) string {
	const hexdigits = "0123456789abcdef"
	b := make([]byte, 15-len(prefix))
	randomBytes(b)
	for i := range b {
		b[i] = hexdigits[b[i]&0xf]
	}
	return prefix + string(b)
}

// randomBytes fills b from the kernel's CSPRNG with one getrandom(2) call,
// as crypto/rand does in the end. A plugin process asks for a few bytes
// once; crypto/rand's first call sets up its vDSO state first (a syscall
// and a mapping), which cost more than the call itself: 2 - 3 % of ADD's
// own work. Requests of up to 256 bytes are never cut short; anything
// unexpected falls back to crypto/rand.
func randomBytes(b []byte) {
	if n, err := unix.Getrandom(b, 0); err == nil && n == len(b) {
		return
	}
	_, _ = rand.Read(b)
}
