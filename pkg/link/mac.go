package link

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ratchet-cni/ratchet/internal/sha256"
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
// own work. And crypto/rand, like every crypto package since Go 1.24,
// brings the FIPS 140-3 module's initialisers into every exec (see
// internal/sha256). Requests of up to 256 bytes are never cut short; a
// kernel without getrandom (before 3.17) is served from /dev/urandom.
func randomBytes(b []byte) {
	if n, err := unix.Getrandom(b, 0); err == nil && n == len(b) {
		return
	}
	if f, err := os.Open("/dev/urandom"); err == nil {
		defer f.Close()
		if _, err := io.ReadFull(f, b); err == nil {
			return
		}
	}
	// Neither failing is known on Linux. Should both, names and MACs need
	// to be unique, not secret: derive them from the process, the time and
	// a count.
	for i := 0; i < len(b); i += sha256.Size {
		seed := fmt.Sprintf("%d/%d/%d", os.Getpid(), time.Now().UnixNano(), fallbackCount.Add(1))
		sum := sha256.Sum256([]byte(seed))
		copy(b[i:], sum[:])
	}
}

var fallbackCount atomic.Uint64
