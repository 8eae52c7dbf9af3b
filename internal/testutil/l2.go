package testutil

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

// probeEtherType is IEEE's "local experimental" EtherType: frames no stack
// answers or forwards on its own.
const probeEtherType = 0x88b5

// L2Probe sends an Ethernet frame out of interface from in namespace a,
// addressed to to's MAC, and waits for it on interface to in namespace b.
// It proves a link carries frames end to end without touching any
// neighbour table: the kernel's ARP and ND tables are shared by every
// namespace of the host and overflow (gc_thresh3, 1024 by default) when a
// test resolves thousands of addresses at once.
func L2Probe(a ns.NetNS, from string, b ns.NetNS, to string, timeout time.Duration) error {
	rx, dst, err := packetSocket(b, to)
	if err != nil {
		return err
	}
	defer unix.Close(rx)
	tx, src, err := packetSocket(a, from)
	if err != nil {
		return err
	}
	defer unix.Close(tx)

	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	frame := make([]byte, 0, 64)
	frame = append(frame, dst.mac...)
	frame = append(frame, src.mac...)
	frame = binary.BigEndian.AppendUint16(frame, probeEtherType)
	frame = append(frame, nonce...)
	frame = append(frame, make([]byte, 64-len(frame))...)
	to6 := &unix.SockaddrLinklayer{Ifindex: src.index, Protocol: htons(probeEtherType), Halen: 6}
	copy(to6.Addr[:], dst.mac)

	deadline := time.Now().Add(timeout)
	buf := make([]byte, 2048)
	for try := 0; time.Now().Before(deadline); try++ {
		if err := unix.Sendto(tx, frame, 0, to6); err != nil {
			return fmt.Errorf("send on %s: %w", from, err)
		}
		// Wait up to 200 ms for it, then send again: a first frame may
		// meet a link still coming up.
		if got, err := receiveNonce(rx, buf, nonce, 200*time.Millisecond); got || err != nil {
			return err
		}
	}
	return fmt.Errorf("no frame from %s reached %s within %v", from, to, timeout)
}

type probeEnd struct {
	index int
	mac   net.HardwareAddr
}

// packetSocket opens an AF_PACKET socket for probe frames bound to ifName
// in n. The socket is made inside n and stays there.
func packetSocket(n ns.NetNS, ifName string) (int, probeEnd, error) {
	fd := -1
	var end probeEnd
	err := n.Do(func(ns.NetNS) error {
		ifc, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		end = probeEnd{index: ifc.Index, mac: ifc.HardwareAddr}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(probeEtherType)))
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifc.Index, Protocol: htons(probeEtherType)})
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, end, fmt.Errorf("packet socket on %s in %s: %w", ifName, n.Path(), err)
	}
	return fd, end, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// receiveNonce waits up to wait for a probe frame carrying nonce on the
// packet socket rx; frames of other probes are skipped.
func receiveNonce(rx int, buf, nonce []byte, wait time.Duration) (bool, error) {
	until := time.Now().Add(wait)
	for time.Now().Before(until) {
		ms := int(time.Until(until).Milliseconds()) + 1
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(rx), Events: unix.POLLIN}}, ms)
		if err != nil && err != unix.EINTR {
			return false, err
		}
		if n == 0 {
			return false, nil
		}
		got, _, err := unix.Recvfrom(rx, buf, unix.MSG_DONTWAIT)
		if err != nil {
			continue
		}
		if got >= 30 && bytes.Equal(buf[14:30], nonce) {
			return true, nil
		}
	}
	return false, nil
}
