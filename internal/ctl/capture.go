package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"github.com/ratchet-cni/ratchet/internal/labop"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// captureUsage is `ratchetctl capture`'s part of the usage.
const captureUsage = `  ratchetctl capture [--store DIR] -w FILE|- [-c COUNT] [--duration D] [-s SNAPLEN] NS/POD:IF...
                                                   the frames of pod links, both directions, as pcapng (one
                                                   interface block per link; -w -: to stdout, for a pipe),
                                                   taken on a parked end in the parking namespace; -s keeps
                                                   at most SNAPLEN bytes of each frame
`

// snapLen is the most of a frame capture keeps by default (and at most):
// a full 64 KiB GSO frame as a veth hands it over, and its headers.
const snapLen = 65536 + 256

// minSnapLen is the least -s takes: an Ethernet header.
const minSnapLen = 14

// captureEnd is one link a capture takes frames of: the parked netdev it
// reads, and how the pcapng file names it.
type captureEnd struct {
	ref   string // the end the user named
	on    string // the end whose parked netdev is read
	index int    // that netdev's index in the parking namespace
	name  string // and its name
	link  string // "NS/POD:IF -- NS/POD:IF"
	fd    int
}

// close closes the end's socket.
func (e *captureEnd) close() { unix.Close(e.fd) }

// drops returns how many frames the kernel dropped on the end's socket
// because its receive buffer was full (the reader fell behind).
func (e *captureEnd) drops() (uint32, error) {
	st, err := unix.GetsockoptTpacketStats(e.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return 0, err
	}
	return st.Drops, nil
}

// captureCmd runs `ratchetctl capture`.
func captureCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("capture")
	dir := fs.String("store", netconf.DefaultStoreDir, "the local store's directory (store.dir in the network config)")
	out := fs.String("w", "", "the pcapng file to write; - for stdout")
	count := fs.String("c", "0", "stop after this many frames (0: no limit)")
	duration := fs.String("duration", "0", "stop after this long (0: no limit)")
	snap := fs.String("s", strconv.Itoa(snapLen), "keep at most this many bytes of each frame")
	filter := fs.String("filter", "", "not supported (see the README)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	// Every value is checked before anything is opened.
	if *filter != "" {
		// tcpdump's expressions are compiled by libpcap, which needs cgo;
		// ratchet's binaries are static.
		return badArg("capture: --filter is not supported: filter expressions need libpcap (cgo); filter when reading the file (wireshark -Y, tshark -Y)")
	}
	if *out == "" {
		return badArg("capture: -w: give a file to write, or - for stdout")
	}
	n, err := strconv.Atoi(*count)
	if err != nil || n < 0 {
		return badArg("capture: -c %q: want a count of frames, 0 or more", *count)
	}
	d, err := time.ParseDuration(*duration)
	if err != nil || d < 0 {
		return badArg("capture: --duration %q: want a duration such as 10s, 0 for no limit", *duration)
	}
	sl, err := strconv.Atoi(*snap)
	if err != nil || sl < minSnapLen || sl > snapLen {
		return badArg("capture: -s %q: want a snap length in bytes, %d to %d", *snap, minSnapLen, snapLen)
	}
	if len(pos) == 0 {
		return badArg("capture: want at least one link end, NAMESPACE/POD:IFNAME")
	}
	refs := make([]labop.End, len(pos))
	for i, p := range pos {
		if refs[i], err = labop.ParseEnd(p); err != nil {
			return err
		}
	}
	ends, err := openCaptures(*dir, refs)
	if err != nil {
		return err
	}
	defer func() {
		for _, e := range ends {
			e.close()
		}
	}()
	w := stdout
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("-w %s: %w", *out, err)
		}
		defer f.Close()
		w = f
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	for _, e := range ends {
		note := ""
		if e.on != e.ref {
			note = fmt.Sprintf(" (%s is on another node; %s's end here carries the same frames)", e.ref, e.on)
		}
		fmt.Fprintf(stderr, "capturing %s on %s in the parking namespace%s\n", e.link, shown(e.name), note)
	}
	got, err := capture(ctx, ends, w, n, sl, *out == "-")
	fmt.Fprintf(stderr, "%d frames captured\n", got)
	var dropped uint32
	for _, e := range ends {
		if d, derr := e.drops(); derr == nil {
			dropped += d
		}
	}
	if dropped > 0 {
		fmt.Fprintf(stderr, "%d frames dropped: the capture fell behind the link (a smaller -s helps)\n", dropped)
	}
	if err != nil {
		return err
	}
	if f, ok := w.(*os.File); ok && f != os.Stdout {
		if err := f.Close(); err != nil {
			return fmt.Errorf("-w %s: %w", *out, err)
		}
	}
	return nil
}

// openCaptures finds each named end's link and opens a packet socket on a
// parked end of it on this node, holding the node lock only that long:
// the capture itself must not stop ADDs and DELs.
func openCaptures(dir string, refs []labop.End) (ends []*captureEnd, err error) {
	s, err := labop.Open(context.Background(), dir, "")
	if err != nil {
		return nil, storeFlag(err)
	}
	defer s.Close()
	defer func() {
		if err != nil {
			for _, e := range ends {
				e.close()
			}
		}
	}()
	if s.Parking() == nil {
		return nil, errors.New("this node has no parking namespace: no pod link has been made here")
	}
	for _, ref := range refs {
		rec, mine, err := s.Find(ref)
		if err != nil {
			return nil, err
		}
		on, err := captureSide(rec, mine, s.Executor().ObserveParked(rec))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", shown(ref.String()), err)
		}
		e := rec.Ends[on]
		c := &captureEnd{ref: ref.String(), on: endName(e), index: e.ParkedIndex, name: e.Parked,
			link: endName(rec.Ends[mine]) + " -- " + endName(rec.Ends[1-mine])}
		if c.fd, err = packetSocket(s.Parking(), c.index); err != nil {
			return nil, fmt.Errorf("%s: %w", shown(ref.String()), err)
		}
		ends = append(ends, c)
	}
	return ends, nil
}

// errNotHere is a link with no end parked on this node.
var errNotHere = errors.New("the link has no end parked on this node: run capture on the node of one of its pods")

// captureSide returns the end of rec whose parked netdev a capture of the
// end mine reads: mine when its pod is on this node, else the other end
// when that one is (a cross-node link: its end here is stitched to the
// tunnel, so every frame of the link crosses it).
func captureSide(rec *store.LinkRecord, mine int, obs podlink.Observation) (int, error) {
	for _, i := range []int{mine, 1 - mine} {
		if podlink.Present(&rec.Ends[i], obs.Ends[i]) {
			return i, nil
		}
	}
	return 0, errNotHere
}

// packetSocket opens an AF_PACKET socket bound to the netdev index of the
// parking namespace park. The socket is created inside park (n.Do locks
// the thread, switches it in and back, and leaves it locked, so the
// runtime discards it, should switching back fail); it keeps reading
// there whatever thread reads it. It is created with protocol 0 so that
// it receives nothing until bound to the one netdev.
//
// A plain socket, not a memory-mapped ring (TPACKET_V3): with a ring the
// kernel copies each frame into it on the link's own data path, in the
// softirq of the sender, and TCP over a captured link carried less
// (docs/performance.md, "Data plane"); here the data path only queues a reference to the frame,
// and the copy is this reader's.
func packetSocket(park ns.NetNS, index int) (int, error) {
	fd := -1
	err := park.Do(func(ns.NetNS) error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return -1, fmt.Errorf("packet socket in the parking namespace: %w", err)
	}
	// A short receive timeout lets a reader notice the end of the capture.
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("packet socket: %w", err)
	}
	// The default receive buffer, not a bigger one: with 32 MiB the
	// capture kept up with more frames, and so took more CPU from the
	// link on a small machine (docs/performance.md, "Data plane"); what
	// it cannot keep up with is dropped and counted.
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: index, Protocol: htons(unix.ETH_P_ALL)}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("packet socket on netdev %d of the parking namespace: %w", index, err)
	}
	return fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// frame is one captured frame and the interface block it belongs to;
// buf is the buffer data is in, which goes back to its reader once the
// frame is written.
type frame struct {
	ci    gopacket.CaptureInfo
	data  []byte
	buf   []byte
	free  chan<- []byte
	flags pcapgo.NgEpbFlags
}

// captureBuffers is how many frame buffers each reader has in flight:
// the reader waits for one to come back before it reads on.
const captureBuffers = 64

// capture writes the frames the sockets of ends receive to w as pcapng
// until ctx ends or count frames (0: no limit) are written, and returns
// how many it wrote, keeping at most snap bytes of each. The file is
// complete when it returns: every block written whole and flushed. flush
// writes the frames through whenever no more are waiting, for a reader
// at the other end of a pipe.
func capture(ctx context.Context, ends []*captureEnd, w io.Writer, count, snap int, flush bool) (int, error) {
	intf := func(e *captureEnd) pcapgo.NgInterface {
		return pcapgo.NgInterface{Name: e.name, Description: e.link + ", on the parked end of " + e.on,
			OS: "linux", LinkType: layers.LinkTypeEthernet, SnapLength: uint32(snap)}
	}
	opts := pcapgo.DefaultNgWriterOptions
	opts.SectionInfo.Application = "ratchetctl capture"
	nw, err := pcapgo.NewNgWriterInterface(w, intf(ends[0]), opts)
	if err != nil {
		return 0, err
	}
	for _, e := range ends[1:] {
		if _, err := nw.AddInterface(intf(e)); err != nil {
			return 0, err
		}
	}
	if err := nw.Flush(); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	frames := make(chan frame, captureBuffers*len(ends))
	errs := make(chan error, len(ends))
	var readers sync.WaitGroup
	for i, e := range ends {
		readers.Add(1)
		go func() {
			defer readers.Done()
			errs <- readFrames(ctx, e.fd, i, snap, frames)
		}()
	}
	// The readers are waited for before returning: none may write to
	// frames, or read a socket the caller closes, afterwards.
	defer readers.Wait()
	defer cancel()
	written := 0
	for count == 0 || written < count {
		var f frame
		select {
		case <-ctx.Done():
			return written, nw.Flush()
		case err := <-errs:
			if err != nil {
				nw.Flush()
				return written, err
			}
			continue
		case f = <-frames:
		}
		err := nw.WritePacketWithOptions(f.ci, f.data, pcapgo.NgPacketOptions{Flags: &f.flags})
		// The buffer is free again: the writer copied the frame.
		f.free <- f.buf
		if err != nil {
			return written, err
		}
		written++
		if flush && len(frames) == 0 {
			if err := nw.Flush(); err != nil {
				return written, err
			}
		}
	}
	return written, nw.Flush()
}

// readFrames reads the socket fd until ctx ends, handing each frame to
// frames as interface iface's, in one of its own buffers of snap bytes
// (the kernel copies no more), which the writer hands back: no
// allocation or copy per frame. A parked end's frames from its pod arrive
// (inbound); those toward its pod leave (PACKET_OUTGOING, outbound).
func readFrames(ctx context.Context, fd, iface, snap int, frames chan<- frame) error {
	free := make(chan []byte, captureBuffers)
	for range captureBuffers {
		free <- make([]byte, snap)
	}
	for ctx.Err() == nil {
		var buf []byte
		select {
		case buf = <-free:
		case <-ctx.Done():
			return nil
		}
		// MSG_TRUNC: n is the frame's length even when longer than buf.
		n, from, err := unix.Recvfrom(fd, buf, unix.MSG_TRUNC)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			free <- buf
			continue
		}
		if err != nil {
			return fmt.Errorf("reading frames: %w", err)
		}
		at := time.Now()
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok {
			free <- buf
			continue
		}
		f := frame{data: buf[:min(n, len(buf))], buf: buf, free: free, flags: direction(ll.Pkttype)}
		f.ci = gopacket.CaptureInfo{Timestamp: at, CaptureLength: len(f.data), Length: n, InterfaceIndex: iface}
		select {
		case frames <- f:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// direction returns the pcapng flags of a frame of packet type pkttype.
func direction(pkttype uint8) pcapgo.NgEpbFlags {
	var f pcapgo.NgEpbFlags
	switch pkttype {
	case unix.PACKET_OUTGOING:
		f.Direction = pcapgo.NgEpbFlagDirectionOutbound
	case unix.PACKET_BROADCAST:
		f.Direction, f.Reception = pcapgo.NgEpbFlagDirectionInbound, pcapgo.NgEpbFlagReceptionTypeBroadcast
	case unix.PACKET_MULTICAST:
		f.Direction, f.Reception = pcapgo.NgEpbFlagDirectionInbound, pcapgo.NgEpbFlagReceptionTypeMulticast
	case unix.PACKET_HOST:
		f.Direction, f.Reception = pcapgo.NgEpbFlagDirectionInbound, pcapgo.NgEpbFlagReceptionTypeUnicast
	default: // PACKET_OTHERHOST: a parked end has no address of its own
		f.Direction, f.Reception = pcapgo.NgEpbFlagDirectionInbound, pcapgo.NgEpbFlagReceptionTypePromiscuous
	}
	return f
}
