package ctl

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A TPACKET_V3 receive ring, hand-written on golang.org/x/sys/unix: the
// kernel copies each frame (up to the snap length) into blocks of a
// memory region shared with this process and hands a block over when it
// is full or after ringRetire, so that a capture costs one wake-up and
// no copy per block instead of a recvfrom, a copy and an allocation per
// frame (docs/performance.md, "Capture"). gopacket's afpacket package
// needs cgo, which ratchet's static binaries do not have, and no
// maintained pure-Go ring library was found (README, "Hand-written").
//
// The layout read here is the kernel's UAPI (linux/if_packet.h): a block
// starts with struct tpacket_block_desc (version, offset to private
// data, then struct tpacket_hdr_v1: block_status, num_pkts,
// offset_to_first_pkt, ...), and each frame with struct tpacket3_hdr,
// followed at TPACKET_ALIGN(sizeof(struct tpacket3_hdr)) by the struct
// sockaddr_ll that carries its packet type (the direction).

const (
	// ringBlockSize holds a whole 64 KiB GSO frame many times over; a
	// block must be a power-of-two number of pages.
	ringBlockSize = 1 << 20
	// ringBlocks: 32 MiB per captured end, about 10 ms of a veth at full
	// TCP speed here, for the writer's hiccups.
	ringBlocks = 32
	// ringFrameSize only has to divide the block: version 3 packs frames
	// of any length back to back.
	ringFrameSize = 1 << 11
	// ringRetire is how long (ms) the kernel waits before it hands over a
	// block that is not full, so that a slow link's frames come through
	// in good time.
	ringRetire = 20

	// Offsets in a block (struct tpacket_block_desc, then tpacket_hdr_v1).
	blockStatusOff = 8
	blockNumOff    = 12
	blockFirstOff  = 16
	// sllOff is where a frame's struct sockaddr_ll starts:
	// TPACKET_ALIGN(sizeof(struct tpacket3_hdr)), 16-byte alignment.
	sllOff = (unix.SizeofTpacket3Hdr + 15) &^ 15
	// sllPkttypeOff is sll_pkttype's offset in struct sockaddr_ll.
	sllPkttypeOff = 10
)

// packetRing is the receive ring of one AF_PACKET socket.
type packetRing struct {
	fd   int
	mem  []byte
	next int // the block to read next
}

// ringFrame is one frame in the ring: data points into the shared
// memory, valid until its block is handed back to the kernel.
type ringFrame struct {
	data    []byte
	length  int // the frame's length on the wire (data may be shorter)
	at      time.Time
	pkttype uint8
}

// newRing sets fd (an AF_PACKET socket, not bound yet) to TPACKET_V3,
// keeps at most snap bytes of each frame, and maps its receive ring.
func newRing(fd, snap int) (*packetRing, error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("packet socket: TPACKET_V3: %w", err)
	}
	// The snap length: a classic BPF program that accepts every frame
	// and returns how many of its bytes to keep, so that the kernel
	// copies no more than that into the ring.
	prog := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: uint32(snap)}}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}); err != nil {
		return nil, fmt.Errorf("packet socket: snap length: %w", err)
	}
	req := unix.TpacketReq3{
		Block_size: ringBlockSize, Block_nr: ringBlocks,
		Frame_size: ringFrameSize, Frame_nr: ringBlockSize / ringFrameSize * ringBlocks,
		Retire_blk_tov: ringRetire,
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, fmt.Errorf("packet socket: receive ring: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, ringBlockSize*ringBlocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("packet socket: map the receive ring: %w", err)
	}
	return &packetRing{fd: fd, mem: mem}, nil
}

// close unmaps the ring (the socket is its owner's to close).
func (r *packetRing) close() error {
	if r.mem == nil {
		return nil
	}
	err := unix.Munmap(r.mem)
	r.mem = nil
	return err
}

func (r *packetRing) word(off int) *uint32 { return (*uint32)(unsafe.Pointer(&r.mem[off])) }

// block waits until the kernel hands over the next block or ctx ends,
// and returns the block's frames (nil when ctx ended). The frames stay
// valid until release.
func (r *packetRing) block(ctx context.Context, frames []ringFrame) ([]ringFrame, error) {
	base := r.next * ringBlockSize
	status := r.word(base + blockStatusOff)
	for atomic.LoadUint32(status)&unix.TP_STATUS_USER == 0 {
		if ctx.Err() != nil {
			return nil, nil
		}
		// A short timeout lets the reader notice the end of the capture.
		_, err := unix.Poll([]unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN | unix.POLLERR}}, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return nil, fmt.Errorf("reading frames: %w", err)
		}
	}
	n := int(*r.word(base + blockNumOff))
	off := base + int(*r.word(base + blockFirstOff))
	frames = frames[:0]
	for range n {
		if off+sllOff+sllPkttypeOff >= base+ringBlockSize {
			return nil, errors.New("reading frames: a frame header past the end of its block")
		}
		h := (*unix.Tpacket3Hdr)(unsafe.Pointer(&r.mem[off]))
		start, end := off+int(h.Mac), off+int(h.Mac)+int(h.Snaplen)
		if end > base+ringBlockSize {
			return nil, errors.New("reading frames: a frame past the end of its block")
		}
		frames = append(frames, ringFrame{
			data:    r.mem[start:end:end],
			length:  int(h.Len),
			at:      time.Unix(int64(h.Sec), int64(h.Nsec)),
			pkttype: r.mem[off+sllOff+sllPkttypeOff],
		})
		off += int(h.Next_offset)
	}
	return frames, nil
}

// release hands the block block returned last back to the kernel.
func (r *packetRing) release() {
	atomic.StoreUint32(r.word(r.next*ringBlockSize+blockStatusOff), unix.TP_STATUS_KERNEL)
	r.next = (r.next + 1) % ringBlocks
}

// drops returns how many frames the kernel dropped since the last call
// because the ring was full (the writer fell behind).
func (r *packetRing) drops() (uint32, error) {
	st, err := unix.GetsockoptTpacketStatsV3(r.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return 0, err
	}
	return st.Drops, nil
}
