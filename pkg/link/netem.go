package link

import (
	"fmt"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
)

// Netem impairs traffic leaving an interface, as tc-netem does.
type Netem struct {
	Delay  time.Duration
	Jitter time.Duration
	// Loss is a percentage, 0 to 100.
	Loss float64
	// Rate limits the interface, in bits per second; 0 means no limit.
	Rate uint64
}

// ParseNetem parses impairments written as tc writes them: "10ms", "1ms",
// "0.5%", "100mbit". Empty strings mean none. The error names the field.
// The parsing lives in internal/linkparam, which config parsing shares
// without linking netlink.
func ParseNetem(delay, jitter, loss, rate string) (*Netem, error) {
	p, err := linkparam.ParseNetem(delay, jitter, loss, rate)
	if err != nil {
		return nil, err
	}
	n := Netem(*p)
	return &n, nil
}

// ParseRate parses a rate in tc's units ("100mbit", "1gbit", "500kbps").
func ParseRate(s string) (uint64, error) { return linkparam.ParseRate(s) }

func (n *Netem) qdisc(index int) *netlink.Netem {
	return netlink.NewNetem(
		netlink.QdiscAttrs{LinkIndex: index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
		netlink.NetemQdiscAttrs{
			Latency: uint32(n.Delay.Microseconds()),
			Jitter:  uint32(n.Jitter.Microseconds()),
			Loss:    float32(n.Loss),
			Rate64:  n.Rate / 8,
		})
}

func (n *Netem) verify(h *Handle, l netlink.Link, where string) error {
	qdiscs, err := h.QdiscList(l)
	if err != nil {
		return fmt.Errorf("%s: list qdiscs: %w", where, err)
	}
	want := n.qdisc(l.Attrs().Index)
	for _, q := range qdiscs {
		got, ok := q.(*netlink.Netem)
		if !ok || got.Parent != netlink.HANDLE_ROOT {
			continue
		}
		if got.Latency != want.Latency || got.Jitter != want.Jitter || got.Loss != want.Loss || got.Rate64 != want.Rate64 {
			return &MismatchError{End: where, What: "netem", Want: n.String(), Got: fmt.Sprintf("latency=%d jitter=%d loss=%d rate=%dB/s (kernel units)", got.Latency, got.Jitter, got.Loss, got.Rate64)}
		}
		return nil
	}
	return &MismatchError{End: where, What: "netem qdisc is missing"}
}

func (n *Netem) String() string {
	return fmt.Sprintf("delay=%s jitter=%s loss=%g%% rate=%dbit", n.Delay, n.Jitter, n.Loss, n.Rate)
}
