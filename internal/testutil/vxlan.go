package testutil

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

// VXLANProbe plays a host that reaches a node's VXLAN port: from namespace
// from, it sends UDP datagrams to dst:port holding a VXLAN header with vni
// and an Ethernet probe frame addressed to interface to in namespace b
// (a pod's end of a cross-node link), and waits for that frame there. It
// returns nil when the frame arrived: the node decapsulated what anyone
// could have sent it. The datagrams come from from's own address, not a
// forged one, as an attacker on the underlay would send them.
func VXLANProbe(from ns.NetNS, dst net.IP, port int, vni uint32, b ns.NetNS, to string, timeout time.Duration) error {
	rx, end, err := packetSocket(b, to)
	if err != nil {
		return err
	}
	defer unix.Close(rx)

	family, sa := unix.AF_INET6, unix.Sockaddr(nil)
	if v4 := dst.To4(); v4 != nil {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: port, Addr: [4]byte(v4)}
	} else {
		sa = &unix.SockaddrInet6{Port: port, Addr: [16]byte(dst.To16())}
	}
	tx := -1
	// The socket is made inside from and stays there.
	if err := from.Do(func(ns.NetNS) error {
		tx, err = unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		return fmt.Errorf("udp socket in %s: %w", from.Path(), err)
	}
	defer unix.Close(tx)

	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	msg := []byte{0x08, 0, 0, 0} // flags: the VNI is valid
	msg = binary.BigEndian.AppendUint32(msg, vni<<8)
	msg = append(msg, end.mac...)
	msg = append(msg, 0x02, 0, 0x5e, 0x10, 0, 0x01) // a locally administered source
	msg = binary.BigEndian.AppendUint16(msg, probeEtherType)
	msg = append(msg, nonce...)
	msg = append(msg, make([]byte, 8+64-len(msg))...)

	deadline := time.Now().Add(timeout)
	buf := make([]byte, 2048)
	for time.Now().Before(deadline) {
		if err := unix.Sendto(tx, msg, 0, sa); err != nil {
			return fmt.Errorf("send to %s:%d: %w", dst, port, err)
		}
		if got, err := receiveNonce(rx, buf, nonce, 200*time.Millisecond); got || err != nil {
			return err
		}
	}
	return fmt.Errorf("no frame sent to %s:%d VNI %d reached %s within %v", dst, port, vni, to, timeout)
}
