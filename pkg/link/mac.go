package link

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/blake2b"
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

// RandomName returns prefix followed by random hex digits, 15 bytes in all
// (the longest interface name): a temporary name that cannot collide by
// accident. Of a prefix longer than 11 bytes only the first 11 are kept, so
// that at least 4 digits are random.
func RandomName(prefix string) string {
	const hexdigits = "0123456789abcdef"
	const maxPrefix = 15 - 4
	if len(prefix) > maxPrefix {
		prefix = prefix[:maxPrefix]
	}
	b := make([]byte, 15-len(prefix))
	randomBytes(b)
	for i := range b {
		b[i] = hexdigits[b[i]&0xf]
	}
	return prefix + string(b)
}

// randomBytes fills b from the kernel's CSPRNG, the source crypto/rand
// reads too, through x/sys/unix's Getrandom (the vDSO's getrandom where the
// kernel has one). Not crypto/rand itself: since Go 1.24 any crypto
// package brings the FIPS 140-3 module's initialisers and a large buffer
// into every exec of the plugin (see docs/performance.md). Requests of up to
// 256 bytes are never cut short; a signal can interrupt one made before
// the kernel's pool is ready, and a kernel without getrandom (before 3.17)
// is served from /dev/urandom.
func randomBytes(b []byte) {
	for {
		n, err := unix.Getrandom(b, 0)
		if err == nil && n == len(b) {
			return
		}
		if err != unix.EINTR {
			break
		}
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
	for i := 0; i < len(b); i += blake2b.Size256 {
		seed := fmt.Sprintf("%d/%d/%d", os.Getpid(), time.Now().UnixNano(), fallbackCount.Add(1))
		sum := blake2b.Sum256([]byte(seed))
		copy(b[i:], sum[:])
	}
}

// fallbackCount tells apart the seeds of fallback draws made by one
// process within one clock tick.
var fallbackCount atomic.Uint64
