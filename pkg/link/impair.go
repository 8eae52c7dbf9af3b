package link

import (
	"errors"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
)

// Impairment impairs the traffic leaving a parked end, and so the traffic
// flowing toward the pod whose interface is that end's veth peer (a stitch
// redirects what arrives on one parked end out of the other). Durations
// and percentages are as tc-netem takes them; Rate is in bits per second.
// A rate alone is shaped by a token bucket (tbf); anything else takes the
// netem qdisc, with its own rate.
type Impairment struct {
	Delay     time.Duration
	Jitter    time.Duration
	Loss      float64
	Corrupt   float64
	Duplicate float64
	Reorder   float64
	Rate      uint64
}

// ImpairmentOf converts the validated form ratchet records
// (internal/linkparam) to the library's; nil stays nil.
func ImpairmentOf(m *linkparam.Impairment) *Impairment {
	if m == nil {
		return nil
	}
	i := Impairment(*m)
	return &i
}

func (m *Impairment) param() *linkparam.Impairment {
	p := linkparam.Impairment(*m)
	return &p
}

func (m *Impairment) String() string { return m.param().String() }

// tbfBurstTime is how long a token bucket's burst lasts at its rate, and
// tbfLatency how long a packet may wait in its queue: tc's usual choices.
const (
	tbfBurstTime = 10 * time.Millisecond
	tbfLatency   = 50 * time.Millisecond
	// tbfMinBurst holds a GSO segment's worth of a veth's largest frames:
	// a bucket smaller than a frame would drop every frame.
	tbfMinBurst = 16 << 10
)

func (m *Impairment) qdisc(index int) netlink.Qdisc {
	// No handle: the kernel picks one, and a replace with another kind
	// (tbf to netem) swaps the root qdisc instead of failing (EINVAL) as a
	// change of the qdisc at a fixed handle would.
	attrs := netlink.QdiscAttrs{LinkIndex: index, Parent: netlink.HANDLE_ROOT}
	if m.param().NeedsNetem() {
		return netlink.NewNetem(attrs, netlink.NetemQdiscAttrs{
			Latency:     uint32(m.Delay.Microseconds()),
			Jitter:      uint32(m.Jitter.Microseconds()),
			Loss:        float32(m.Loss),
			CorruptProb: float32(m.Corrupt),
			Duplicate:   float32(m.Duplicate),
			ReorderProb: float32(m.Reorder),
			Rate64:      m.Rate / 8,
		})
	}
	rate := m.Rate / 8 // bytes a second
	burst := max(uint64(float64(rate)*tbfBurstTime.Seconds()), tbfMinBurst)
	limit := burst + uint64(float64(rate)*tbfLatency.Seconds())
	return &netlink.Tbf{
		QdiscAttrs: attrs,
		Rate:       rate,
		Buffer:     netlink.Xmittime(rate, uint32(min(burst, 1<<31))),
		Limit:      uint32(min(limit, 1<<31)),
	}
}

// Impair replaces the root qdisc of the parked interface at index with
// one that applies m to the traffic leaving it; a nil or empty m clears
// it (ClearImpairment). Nothing changes in the pods. On a kernel without
// netem, an impairment that needs it fails with an error wrapping
// ErrNoNetem and leaves the interface as it was.
func (p *Parking) Impair(index int, m *Impairment) error {
	if m == nil || m.param().IsZero() {
		return p.ClearImpairment(index)
	}
	if err := p.h.QdiscReplace(m.qdisc(index)); err != nil {
		if errors.Is(err, unix.ENOENT) && m.param().NeedsNetem() {
			return fmt.Errorf("impair parked ifindex %d (%s): %w", index, m, ErrNoNetem)
		}
		return fmt.Errorf("impair parked ifindex %d (%s): %w", index, m, err)
	}
	return nil
}

// ClearImpairment removes the impairment of the parked interface at index:
// its root qdisc goes back to the kernel's default. Clearing an interface
// with none, or one that is gone, is not an error.
func (p *Parking) ClearImpairment(index int) error {
	q, err := p.impairment(index)
	if err != nil || q == nil {
		return err
	}
	if err := p.h.QdiscDel(q); err != nil && !errors.Is(err, unix.ENOENT) && !isGone(err) {
		return fmt.Errorf("clear impairment of parked ifindex %d: %w", index, err)
	}
	return nil
}

// impairment returns the interface's root qdisc if it is one an
// impairment makes (tbf or netem), or nil.
func (p *Parking) impairment(index int) (netlink.Qdisc, error) {
	qs, err := p.h.QdiscList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index}})
	if err != nil {
		if isGone(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list qdiscs of parked ifindex %d: %w", index, err)
	}
	for _, q := range qs {
		if q.Attrs().Parent != netlink.HANDLE_ROOT {
			continue
		}
		switch q.(type) {
		case *netlink.Tbf, *netlink.Netem:
			return q, nil
		}
	}
	return nil, nil
}

// VerifyImpairment checks that the parked interface at index applies m: a
// missing or different root qdisc is a *MismatchError. A nil m checks
// nothing.
func (p *Parking) VerifyImpairment(index int, m *Impairment) error {
	if m == nil || m.param().IsZero() {
		return nil
	}
	where := fmt.Sprintf("parked ifindex %d", index)
	got, err := p.impairment(index)
	if err != nil {
		return err
	}
	if got == nil {
		return &MismatchError{End: where, What: "impairment qdisc is missing", Want: m.String(), Got: "none"}
	}
	switch want := m.qdisc(index).(type) {
	case *netlink.Tbf:
		if g, ok := got.(*netlink.Tbf); !ok || g.Rate != want.Rate {
			return &MismatchError{End: where, What: "impairment", Want: m.String(), Got: describe(got)}
		}
	case *netlink.Netem:
		g, ok := got.(*netlink.Netem)
		if !ok || g.Latency != want.Latency || g.Jitter != want.Jitter || g.Loss != want.Loss ||
			g.CorruptProb != want.CorruptProb || g.Duplicate != want.Duplicate || g.ReorderProb != want.ReorderProb ||
			g.Rate64 != want.Rate64 {
			return &MismatchError{End: where, What: "impairment", Want: m.String(), Got: describe(got)}
		}
	}
	return nil
}

// describe writes a qdisc for a mismatch, in the kernel's units.
func describe(q netlink.Qdisc) string {
	switch q := q.(type) {
	case *netlink.Tbf:
		return fmt.Sprintf("tbf rate %dB/s", q.Rate)
	case *netlink.Netem:
		return fmt.Sprintf("netem latency=%d jitter=%d loss=%d corrupt=%d duplicate=%d reorder=%d rate=%dB/s (kernel units)",
			q.Latency, q.Jitter, q.Loss, q.CorruptProb, q.Duplicate, q.ReorderProb, q.Rate64)
	}
	return q.Type()
}
