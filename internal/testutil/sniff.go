package testutil

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

// Sniffer receives every frame that arrives on one interface of a
// namespace, through an AF_PACKET socket opened in it: also frames
// addressed to another MAC, which the pod's stack drops (a mirror's
// copies are such frames).
type Sniffer struct {
	fd int
}

// Sniff opens a Sniffer on ifName in n; the test's cleanup closes it.
func Sniff(t testing.TB, n ns.NetNS, ifName string) *Sniffer {
	t.Helper()
	fd := -1
	err := n.Do(func(ns.NetNS) error {
		ifc, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifc.Index, Protocol: htons(unix.ETH_P_ALL)})
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		t.Fatalf("sniff %s in %s: %v", ifName, n.Path(), err)
	}
	s := &Sniffer{fd: fd}
	t.Cleanup(func() { unix.Close(s.fd) })
	return s
}

// Echo is an ICMPv4 echo request or reply a Sniffer saw.
type Echo struct {
	Src, Dst netip.Addr
	Reply    bool
}

func (e Echo) String() string {
	kind := "request"
	if e.Reply {
		kind = "reply"
	}
	return fmt.Sprintf("%s %v>%v", kind, e.Src, e.Dst)
}

// Echoes returns the ICMPv4 echoes among the frames received so far,
// reading until no frame has come for quiet; other frames are skipped.
func (s *Sniffer) Echoes(quiet time.Duration) ([]Echo, error) {
	var out []Echo
	buf := make([]byte, 65536)
	for {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}, int(quiet.Milliseconds()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return out, err
		}
		if n == 0 {
			return out, nil
		}
		got, from, err := unix.Recvfrom(s.fd, buf, unix.MSG_DONTWAIT)
		if err != nil {
			continue
		}
		// Frames the interface sends itself are not arrivals.
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if e, ok := parseEcho(buf[:got]); ok {
			out = append(out, e)
		}
	}
}

// parseEcho reads an Ethernet frame carrying an ICMPv4 echo.
func parseEcho(f []byte) (Echo, bool) {
	if len(f) < 14+20+8 || binary.BigEndian.Uint16(f[12:14]) != unix.ETH_P_IP {
		return Echo{}, false
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[9] != unix.IPPROTO_ICMP || len(ip) < ihl+8 {
		return Echo{}, false
	}
	e := Echo{Src: netip.AddrFrom4([4]byte(ip[12:16])), Dst: netip.AddrFrom4([4]byte(ip[16:20]))}
	switch ip[ihl] {
	case 8:
	case 0:
		e.Reply = true
	default:
		return Echo{}, false
	}
	return e, true
}

// CountEchoes counts echoes by their String.
func CountEchoes(es []Echo) map[string]int {
	m := map[string]int{}
	for _, e := range es {
		m[e.String()]++
	}
	return m
}

// PingExactly sends count echo requests from n to addr and fails the test
// unless each is answered exactly once (ping reports a duplicate reply as
// "DUP!").
func PingExactly(t testing.TB, n ns.NetNS, addr string, count int) {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+n.Path(), "ping", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "2", addr).CombinedOutput()
	if err != nil || strings.Contains(string(out), "DUP!") || !strings.Contains(string(out), fmt.Sprintf("%d received", count)) {
		t.Fatalf("ping -c %d %s from %s: %v\n%s", count, addr, n.Path(), err, out)
	}
}
