package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/crypto/blake2b"

	"github.com/ratchet-cni/ratchet/internal/fault"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/topology"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// How pod links work. Each pod's end of a link is a veth pair: the
// interface in the pod, and a "parked" end in a node-local parking
// namespace. A pod's ADD always makes its own ends, so its interfaces exist
// when ADD returns, whatever its peers are doing. When both pods of a link
// have declared it and both are present, their parked ends are stitched
// back to back with tc redirects, which moves nothing. A parked end is down
// while its peer is missing, so the pod's interface has no carrier: an
// unplugged cable. When a pod goes, its veth pairs go with it; its peers
// keep their interfaces (same name, same ifindex) with carrier down until
// it comes back and is stitched again.

func newLinkRecord(podA, ifA, podB, ifB string) *store.LinkRecord {
	id, aFirst := store.LinkID(podA, ifA, podB, ifB)
	ends := [2]store.LinkEnd{{Pod: podA, IfName: ifA}, {Pod: podB, IfName: ifB}}
	if !aFirst {
		ends[0], ends[1] = ends[1], ends[0]
	}
	return &store.LinkRecord{ID: id, Ends: ends}
}

// podLinker makes a pod's link ends during ADD. Every change it makes, in
// the kernel and in the store, is pushed on undo.
type podLinker struct {
	st    store.Store
	park  *link.Parking
	podNS ns.NetNS
	key   store.AttachmentKey
	owner owner
	pod   string
	undo  *undoStack
	// defaultMTU is the MTU of interfaces whose spec sets none (0: the
	// kernel's).
	defaultMTU int
	// made are the pod's own interfaces, in order, for the result.
	made []*link.Endpoint
	// changed are the records to write, all in one transaction at the end.
	changed []*store.LinkRecord
	// plugs are the stitched pairs of parked ends to bring up once every
	// end is made (see plugIn).
	plugs [][2]int
}

// declare registers the pod and makes every link end it declares or
// consents to.
func (p *podLinker) declare(ctx context.Context, d *topology.Declaration, uid, netns string) error {
	prevPod, err := p.st.Pod(ctx, p.pod)
	if err != nil {
		return storeError(err)
	}
	rec := &store.PodRecord{Pod: p.pod, UID: uid, Attachment: p.key, Netns: netns, LegacyConsent: d.LegacyConsent}
	if err := p.st.PutPod(ctx, rec); err != nil {
		return storeError(err)
	}
	p.undo.push(func() {
		if prevPod != nil {
			_ = p.st.PutPod(context.WithoutCancel(ctx), prevPod)
		} else {
			_ = p.st.DeletePod(context.WithoutCancel(ctx), p.pod)
		}
	})
	for i := range d.Links {
		if err := p.declared(ctx, &d.Links[i]); err != nil {
			return err
		}
	}
	if d.LegacyConsent {
		if err := p.consentToLegacy(ctx, d); err != nil {
			return err
		}
	}
	if err := p.plugIn(); err != nil {
		return err
	}
	// The records are written last, in one transaction: until then there is
	// nothing in the store to undo, and a crash before it leaves netdevs that
	// carry this attachment's marker, which DEL and GC remove.
	if err := p.st.PutLinks(ctx, p.changed); err != nil {
		return storeError(err)
	}
	return nil
}

// declared makes this pod's end of one declared link and joins it to the
// peer's end if the peer has declared it too and is present.
func (p *podLinker) declared(ctx context.Context, l *topology.Link) error {
	rec, err := p.load(ctx, l.Spec.Name, l.Peer.String(), l.Spec.Peer.Name)
	if err != nil {
		return err
	}
	mine, other := rec.End(p.pod, l.Spec.Name)
	mine.Declared = true
	mine.Spec = mustJSON(l.Spec)
	if l.PeerEnd != nil {
		rec.LegacyPrimary = p.pod
		other.Spec = mustJSON(*l.PeerEnd)
	}
	if err := p.makeEnd(ctx, rec, mine, other, l.Spec, p.podNS, p.owner, p.key, true); err != nil {
		return err
	}
	if l.PeerEnd != nil && !p.usable(other) {
		if err := p.completeLegacyPair(ctx, rec, other); err != nil {
			return err
		}
	}
	p.changed = append(p.changed, rec)
	return nil
}

// consentToLegacy makes this pod's end of every link a legacy primary has
// declared towards it: ratchet: "true" is the pair's consent.
func (p *podLinker) consentToLegacy(ctx context.Context, d *topology.Declaration) error {
	recs, err := p.st.LinksOf(ctx, p.pod)
	if err != nil {
		return storeError(err)
	}
	for _, rec := range recs {
		if rec.LegacyPrimary == "" || rec.LegacyPrimary == p.pod {
			continue
		}
		mine, other := endOf(rec, p.pod)
		if mine.Attachment != nil && *mine.Attachment == p.key {
			continue // made already, by the primary's ADD
		}
		spec, err := specOf(mine, "legacy link "+rec.ID)
		if err != nil {
			return err
		}
		for _, own := range d.Links {
			if own.Spec.Name == spec.Name {
				return netconf.Invalid("annotation ratchet.cni.dev/links", spec.Name, "is also the interface of a Ratchet link from "+rec.LegacyPrimary)
			}
		}
		mine.Declared = true
		if err := p.makeEnd(ctx, rec, mine, other, *spec, p.podNS, p.owner, p.key, true); err != nil {
			return err
		}
		p.changed = append(p.changed, rec)
	}
	return nil
}

// completeLegacyPair makes the pair's end in the pair's pod when the pair
// is present and consents: Ratchet's primary declares both ends.
func (p *podLinker) completeLegacyPair(ctx context.Context, rec *store.LinkRecord, pair *store.LinkEnd) error {
	pr, err := p.st.Pod(ctx, pair.Pod)
	if err != nil {
		return storeError(err)
	}
	if pr == nil || !pr.LegacyConsent {
		return nil // not here, or no consent: the link waits
	}
	spec, err := specOf(pair, "legacy link "+rec.ID)
	if err != nil {
		return err
	}
	pairNS, err := ns.GetNS(pr.Netns)
	if err != nil {
		return nil // the pair's namespace is gone; its DEL or GC will follow
	}
	defer pairNS.Close()
	pair.Declared = true
	mine, _ := endOf(rec, p.pod)
	return p.makeEnd(ctx, rec, pair, mine, *spec, pairNS, ownerOf(pr.Attachment), pr.Attachment, false)
}

// makeEnd creates end's veth (its interface in netns, its parked end in
// the parking namespace), stitches it to other when other is declared and
// present, and records it. own says whether the interface is this
// attachment's, to be listed in its result.
func (p *podLinker) makeEnd(ctx context.Context, rec *store.LinkRecord, end, other *store.LinkEnd, spec netconf.LinkSpec, netns ns.NetNS, o owner, key store.AttachmentKey, own bool) error {
	if end.Attachment != nil && p.park.Has(end.Parked, end.ParkedIndex) {
		// An earlier incarnation of the pod still has its end: unplug it.
		if err := p.park.SetUp(end.ParkedIndex, false); err != nil {
			return linkError(err)
		}
	}
	joined := other.Declared && p.usable(other)
	v := &link.Veth{
		A:      spec.Local(),
		B:      link.Endpoint{NS: p.park.NS, Name: link.RandomName("rp"), Down: true},
		Marker: o.marker(spec.Name),
	}
	v.A.NS = netns
	if v.A.MTU == 0 {
		v.A.MTU = p.defaultMTU
	}
	if v.A.MAC == nil {
		v.A.MAC = stableMAC(end.Pod, end.IfName)
	}
	if err := v.Create(ctx); err != nil {
		return linkError(err)
	}
	p.undo.push(func() { _ = v.Remove(context.WithoutCancel(ctx)) })
	end.Attachment = &key
	end.Parked, end.ParkedIndex = v.B.Name, v.B.Index
	if joined {
		if err := p.park.Stitch(end.ParkedIndex, other.ParkedIndex); err != nil {
			return linkError(err)
		}
		p.plugs = append(p.plugs, [2]int{end.ParkedIndex, other.ParkedIndex})
		rec.Joined = true
	}
	if err := fault.Step(ctx, "pod link "+spec.Name); err != nil {
		return err
	}
	if own {
		p.made = append(p.made, &v.A)
	}
	return nil
}

// stableMAC derives a pod link interface's MAC from the pod and interface
// names: a pod that restarts comes back with the same MACs, so its peers'
// neighbour entries stay right (a new MAC would leave them sending to the
// old one until their entries expire). Locally administered, unicast.
func stableMAC(pod, ifName string) net.HardwareAddr {
	sum := blake2b.Sum256([]byte("ratchet-mac\x00" + pod + "\x00" + ifName))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&0xfe | 0x02
	return mac
}

// plugIn brings up both parked ends of every pair stitched during this
// ADD, once all of its ends are made. Their pod interfaces get their
// carrier at once; the kernel's reaction to it (IPv6 address
// configuration, which walks the pod's whole IPv6 routing table for every
// interface) runs in its linkwatch worker. Done link by link in the middle
// of the ADD, that work competed with the ADD's own requests for the RTNL
// lock: the second pod's ADD with 1024 links took 1.37 - 1.44 s, and
// 1.14 - 1.19 s with the plugs last, the kernel floor's own time
// (docs/performance.md). A failed ADD no longer flaps its peers' cables
// either.
func (p *podLinker) plugIn() error {
	for _, pair := range p.plugs {
		mine, other := pair[0], pair[1]
		if err := p.park.SetUp(mine, true); err != nil {
			return linkError(err)
		}
		if err := p.park.SetUp(other, true); err != nil {
			return linkError(err)
		}
		// Mine goes with its veth if the ADD is undone; the peer's end is
		// unplugged again.
		p.undo.push(func() { _ = p.park.SetUp(other, false) })
	}
	return nil
}

// usable reports whether end's parked interface is there to stitch to. An
// end whose parked interface vanished (its pod's namespace went without a
// DEL) is marked gone.
func (p *podLinker) usable(end *store.LinkEnd) bool {
	if end.Attachment == nil {
		return false
	}
	if p.park.Has(end.Parked, end.ParkedIndex) {
		return true
	}
	end.Attachment, end.Parked, end.ParkedIndex = nil, "", 0
	return false
}

// load reads (or starts) the record of the link between this pod's ifName
// and peer's peerIf.
func (p *podLinker) load(ctx context.Context, ifName, peer, peerIf string) (*store.LinkRecord, error) {
	id, _ := store.LinkID(p.pod, ifName, peer, peerIf)
	rec, err := p.st.Link(ctx, id)
	if err != nil {
		return nil, storeError(err)
	}
	if rec == nil {
		return newLinkRecord(p.pod, ifName, peer, peerIf), nil
	}
	return rec, nil
}

// releasePodLinks runs at DEL and GC: the attachment's ends are marked
// gone, its peers' cables unplugged, and records nobody declares any more
// are removed. The veth pairs themselves go with the attachment's netdevs.
func releasePodLinks(ctx context.Context, st store.Store, park *link.Parking, pod string, key store.AttachmentKey) error {
	recs, err := st.LinksOf(ctx, pod)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		changed := false
		for i := range rec.Ends {
			end, other := &rec.Ends[i], &rec.Ends[1-i]
			if end.Pod != pod {
				continue
			}
			if end.Attachment != nil && *end.Attachment == key {
				end.Attachment, end.Parked, end.ParkedIndex, end.Declared = nil, "", 0, false
				changed = true
			}
			// With this pod's end gone, the peer's cable is unplugged. That
			// holds also after an ADD killed before it recorded its ends,
			// which may have plugged the peer in already.
			if end.Attachment == nil && other.Attachment != nil && park != nil {
				if err := park.SetUp(other.ParkedIndex, false); err != nil {
					return err
				}
			}
		}
		if !changed {
			continue
		}
		if declaredOrPresent(rec) {
			err = st.PutLink(ctx, rec)
		} else {
			err = st.DeleteLink(ctx, rec.ID)
		}
		if err != nil {
			return err
		}
	}
	pr, err := st.Pod(ctx, pod)
	if err == nil && pr != nil && pr.Attachment == key {
		return st.DeletePod(ctx, pod)
	}
	return err
}

func declaredOrPresent(rec *store.LinkRecord) bool {
	for _, e := range rec.Ends {
		if e.Declared || e.Attachment != nil {
			return true
		}
	}
	return false
}

func endOf(rec *store.LinkRecord, pod string) (mine, other *store.LinkEnd) {
	if rec.Ends[0].Pod == pod {
		return &rec.Ends[0], &rec.Ends[1]
	}
	return &rec.Ends[1], &rec.Ends[0]
}

// specOf decodes and revalidates an end's recorded spec: records are
// input too.
func specOf(end *store.LinkEnd, where string) (*netconf.LinkSpec, error) {
	spec := &netconf.LinkSpec{}
	if err := json.Unmarshal(end.Spec, spec); err != nil {
		return nil, types.NewError(netconf.ErrStore, fmt.Sprintf("%s: bad end spec: %v", where, err), "")
	}
	if err := spec.Validate(where, netconf.Annotation); err != nil {
		return nil, err
	}
	return spec, nil
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
