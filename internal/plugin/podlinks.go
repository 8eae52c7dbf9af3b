package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/ratchet-cni/ratchet/internal/kind"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/topology"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// Pod links: their state machine, and the one place that changes them in
// the kernel, are internal/podlink's. This file is the ADD's and DEL's
// side: which records to load, which ends to make, what to write back.

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
	k     *link.Kernel
	st    store.Store
	x     *podlink.Executor
	podNS ns.NetNS
	key   store.AttachmentKey
	owner owner
	pod   string
	undo  *podlink.Undo
	log   *slog.Logger
	// defaultMTU is the MTU of interfaces whose spec sets none (0: the
	// kernel's).
	defaultMTU int
	// made are the pod's own interfaces, in order, for the result.
	made []*link.Endpoint
	// stored are the stored versions of the records read, by id (nil for
	// a record that is new), to put back should the ADD be undone.
	stored map[string]*store.LinkRecord
	// changed are the records to write, all in one transaction at the end.
	changed []*store.LinkRecord
}

// declare registers the pod and makes every link end it declares or
// consents to.
func (p *podLinker) declare(ctx context.Context, d *topology.Declaration, uid, netns string) error {
	prevPod, err := p.st.Pod(ctx, p.pod)
	if err != nil {
		return storeError(err)
	}
	rec := &store.PodRecord{Pod: p.pod, UID: uid, Attachment: p.key, Netns: netns, LegacyPrimary: d.LegacyPrimary}
	rec.NetnsID = nsIDOf(p.podNS)
	if err := p.st.PutPod(ctx, rec); err != nil {
		return storeError(err)
	}
	p.undo.Push("restore pod record "+p.pod, func() error {
		if prevPod != nil {
			return p.st.PutPod(context.WithoutCancel(ctx), prevPod)
		}
		return p.st.DeletePod(context.WithoutCancel(ctx), p.pod)
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
	if err := p.remakeAdded(ctx, d); err != nil {
		return err
	}
	// The plugs come last, once every end is made (see Executor.PlugIn).
	if err := p.x.PlugIn(); err != nil {
		return linkError(err)
	}
	if err := p.k.Step("plug in"); err != nil {
		return err
	}
	// The records are written last, in one transaction: a crash before it
	// leaves netdevs that carry this attachment's marker, which DEL and GC
	// remove. A later failure puts the records back as they were.
	if err := p.st.PutLinks(ctx, p.changed); err != nil {
		return storeError(err)
	}
	p.undo.Push("restore link records", func() error { return p.restoreLinks(context.WithoutCancel(ctx)) })
	return p.k.Step("links recorded")
}

// remember keeps the stored version of record id as read, before this ADD
// changes it (nil: there was none), for restoreLinks. A decision replaces
// a record's ends and keys rather than writing through them, so a copy of
// the struct is the stored version.
func (p *podLinker) remember(id string, stored *store.LinkRecord) {
	if _, seen := p.stored[id]; seen {
		return
	}
	if p.stored == nil {
		p.stored = map[string]*store.LinkRecord{}
	}
	if stored != nil {
		c := *stored
		stored = &c
	}
	p.stored[id] = stored
}

// restoreLinks undoes PutLinks: each record goes back to its stored
// version, or away if it was new.
func (p *podLinker) restoreLinks(ctx context.Context) error {
	var errs []error
	for _, rec := range p.changed {
		var err error
		if prev := p.stored[rec.ID]; prev != nil {
			err = p.st.PutLink(ctx, prev)
		} else {
			err = p.st.DeleteLink(ctx, rec.ID)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("link %s: %w", rec.ID, err))
		}
	}
	return errors.Join(errs...)
}

// declared makes this pod's end of one declared link and joins it to the
// peer's end if the peer has declared it too and is present.
func (p *podLinker) declared(ctx context.Context, l *topology.Link) error {
	rec, err := p.load(ctx, l.Spec.Name, l.Peer.String(), l.Spec.Peer.Name)
	if err != nil {
		return err
	}
	mine, other, ok := rec.End(p.pod, l.Spec.Name)
	if !ok {
		return types.NewError(netconf.ErrStore, fmt.Sprintf("link %s: the record has no end %s:%s", rec.ID, p.pod, l.Spec.Name), "")
	}
	mine.Declared = true
	if mine.Spec, err = specJSON(l.Spec); err != nil {
		return err
	}
	if l.PeerEnd != nil {
		rec.LegacyPrimary = p.pod
		if other.Spec, err = specJSON(*l.PeerEnd); err != nil {
			return err
		}
	}
	if err := p.makeEnd(ctx, rec, indexOf(rec, mine), l.Spec, p.podNS, p.owner, p.key, true); err != nil {
		return err
	}
	// makeEnd forgot the peer's end if its parked netdev had vanished.
	if l.PeerEnd != nil && other.Attachment == nil {
		if err := p.completeLegacyPair(ctx, rec, other); err != nil {
			return err
		}
	}
	p.changed = append(p.changed, rec)
	return nil
}

// remakeAdded makes this pod's ends of the links the node's administrator
// added (`ratchetctl link add`, LinkRecord.Added): the pod's annotation
// does not declare them, yet they are the administrator's until `link
// del`, so every ADD of the pod re-makes its end from the recorded spec,
// as it would a declared one. An end whose name the pod's annotation now
// uses for another link is left pending, with a warning: the pod's own
// declaration comes first.
func (p *podLinker) remakeAdded(ctx context.Context, d *topology.Declaration) error {
	recs, err := p.st.LinksOf(ctx, p.pod)
	if err != nil {
		return storeError(err)
	}
	for _, rec := range recs {
		if _, seen := p.stored[rec.ID]; seen || !rec.Added {
			continue // this ADD has taken it up already, or not an added link
		}
		for i := range rec.Ends {
			mine := &rec.Ends[i]
			if mine.Pod != p.pod {
				continue
			}
			if slices.Contains(d.Names(), mine.IfName) {
				p.log.Warn("Added link left pending: the pod's annotation declares another link of that name", "link", rec.ID, "interface", mine.IfName)
				continue
			}
			spec, err := specOf(mine, "added link "+rec.ID)
			if err != nil {
				return err
			}
			p.remember(rec.ID, rec)
			mine.Declared = true
			if err := p.makeEnd(ctx, rec, i, *spec, p.podNS, p.owner, p.key, true); err != nil {
				return err
			}
			p.changed = append(p.changed, rec)
		}
	}
	return nil
}

// consentToLegacy makes this pod's end of the link its legacy primary (the
// pod it names in ratchet.pair_name, d.LegacyPrimary) has declared towards
// it. Links other primaries declare towards it are not its: they are not
// in its index (store.Topology.PutLinks), and are only found here, in the
// named primary's.
func (p *podLinker) consentToLegacy(ctx context.Context, d *topology.Declaration) error {
	recs, err := p.st.LinksOf(ctx, d.LegacyPrimary)
	if err != nil {
		return storeError(err)
	}
	for _, rec := range recs {
		if rec.LegacyPrimary != d.LegacyPrimary {
			continue
		}
		mine, ok := endOf(rec, p.pod)
		if !ok {
			continue // the primary's link to another pair
		}
		if mine.Attachment != nil && *mine.Attachment == p.key {
			continue // made already, by the primary's ADD
		}
		spec, err := specOf(mine, "legacy link "+rec.ID)
		if err != nil {
			return err
		}
		taken := func(name string) bool {
			for _, own := range d.Links {
				if own.Spec.Name == name {
					return true
				}
			}
			return false
		}
		if why, err := p.pairIfNameTaken(spec.Name, p.key, taken, p.podNS); err != nil {
			return err
		} else if why != "" {
			p.log.Warn("Ratchet link left pending: its pair's interface is taken", "link", rec.ID, "primary", rec.LegacyPrimary, "interface", spec.Name, "reason", why)
			continue
		}
		p.remember(rec.ID, rec)
		mine.Declared = true
		if err := p.makeEnd(ctx, rec, indexOf(rec, mine), *spec, p.podNS, p.owner, p.key, true); err != nil {
			return err
		}
		p.changed = append(p.changed, rec)
	}
	return nil
}

// pairIfNameTaken says why the interface name a legacy primary chose for
// its pair cannot be made in the pair ("": it can). The name is never the
// pair's CNI_IFNAME, one of the pair's own links (taken), or any interface
// the pair's namespace already has: the primary declares the pair's end,
// and must not take or block what the pair has. Such a link stays pending,
// and the pair's own ADD goes on: the primary's choice is not the pair's
// failure.
func (p *podLinker) pairIfNameTaken(name string, pairKey store.AttachmentKey, taken func(string) bool, pairNS ns.NetNS) (string, error) {
	switch {
	case name == pairKey.IfName:
		return "it is the pair's CNI_IFNAME", nil
	case taken(name):
		return "it is one of the pair's own links", nil
	}
	var h *link.Handle
	if p.k != nil {
		var err error
		if h, err = p.k.Handle(pairNS); err != nil {
			return "", linkError(err)
		}
	} else {
		var err error
		if h, err = link.NewHandle(pairNS); err != nil {
			return "", linkError(err)
		}
		defer h.Close()
	}
	_, err := h.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	switch {
	case err == nil:
		return "the pair already has an interface of that name", nil
	case errors.As(err, &notFound):
		return "", nil
	}
	return "", linkError(err)
}

// completeLegacyPair makes the pair's end in the pair's pod when the pair
// is present and consents to this primary: Ratchet's primary declares both
// ends.
func (p *podLinker) completeLegacyPair(ctx context.Context, rec *store.LinkRecord, pair *store.LinkEnd) error {
	pr, err := p.st.Pod(ctx, pair.Pod)
	if err != nil {
		return storeError(err)
	}
	if pr == nil || pr.LegacyPrimary != p.pod {
		return nil // not here, or no consent to this primary: the link waits
	}
	spec, err := specOf(pair, "legacy link "+rec.ID)
	if err != nil {
		return err
	}
	pairAtt, err := p.st.Attachment(ctx, pr.Attachment)
	if err != nil {
		return storeError(err)
	}
	taken := func(name string) bool {
		return pairAtt != nil && slices.Contains(pairAtt.Links, name)
	}
	pairNS := openRecorded(pr.Netns, pr.NetnsID, true)
	if pairNS == nil {
		return nil // the pair's namespace is gone (or its path names another); its DEL or GC will follow
	}
	p.undo.Own(func() { pairNS.Close() }) // the undo of makeEnd acts in it
	if why, err := p.pairIfNameTaken(spec.Name, pr.Attachment, taken, pairNS); err != nil {
		return err
	} else if why != "" {
		p.log.Warn("Ratchet link left pending: its pair's interface is taken", "link", rec.ID, "pair", pair.Pod, "interface", spec.Name, "reason", why)
		return nil
	}
	pair.Declared = true
	return p.makeEnd(ctx, rec, indexOf(rec, pair), *spec, pairNS, ownerOf(pr.Attachment), pr.Attachment, false)
}

// makeEnd makes end i of rec (its interface in netns, its parked end in
// the parking namespace) as podlink decides for an ADD: stitched to the
// other end when that is declared and present, plugged in once every end
// is made. own says whether the interface is this attachment's, to be
// listed in its result.
func (p *podLinker) makeEnd(ctx context.Context, rec *store.LinkRecord, i int, spec netconf.LinkSpec, netns ns.NetNS, o owner, key store.AttachmentKey, own bool) error {
	obs := p.x.ObserveParked(rec)
	var err error
	if obs.Collector, err = p.x.ObserveCollector(ctx, p.st, rec); err != nil {
		return storeError(err)
	}
	d := podlink.OnAdd(rec, i, key, obs)
	var made *link.Veth
	err = p.x.Apply(ctx, rec, &d, func(int) (*link.Veth, error) {
		made = podlink.EndVeth(rec, i, kind.Endpoint(spec.Local(), netns), key, p.defaultMTU)
		made.Marker = o.marker(spec.Name)
		return made, nil
	})
	if err != nil {
		return linkError(err)
	}
	*rec = d.Next
	// The end may be a collector: the links mirrored to it mirror to its
	// new parked netdev (the one they mirrored to went with its last pod).
	e := rec.Ends[i]
	if err := p.x.RepointMirrors(ctx, p.st, e.Pod, e.IfName, e.ParkedIndex); err != nil {
		return linkError(err)
	}
	if err := p.k.Step("pod link " + spec.Name); err != nil {
		return err
	}
	if own {
		p.made = append(p.made, &made.A)
	}
	return nil
}

// stableMAC is podlink.StableMAC.
func stableMAC(pod, ifName string) net.HardwareAddr { return podlink.StableMAC(pod, ifName) }

// load reads (or starts) the record of the link between this pod's ifName
// and peer's peerIf.
func (p *podLinker) load(ctx context.Context, ifName, peer, peerIf string) (*store.LinkRecord, error) {
	id, _ := store.LinkID(p.pod, ifName, peer, peerIf)
	rec, err := p.st.Link(ctx, id)
	if err != nil {
		return nil, storeError(err)
	}
	p.remember(id, rec)
	if rec == nil {
		return newLinkRecord(p.pod, ifName, peer, peerIf), nil
	}
	return rec, nil
}

// releasePodLinks runs at DEL and GC: podlink decides, for each record
// with an end in pod, what the release of attachment key does (the ends
// it made are forgotten, its peers' cables unplugged, records nobody
// declares any more removed); x (nil when the node has no parking
// namespace) takes the kernel steps. The veth pairs themselves go with
// the attachment's netdevs.
func releasePodLinks(ctx context.Context, st store.Store, x *podlink.Executor, pod string, key store.AttachmentKey) error {
	recs, err := st.LinksOf(ctx, pod)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		d := podlink.OnRelease(rec, pod, key, x != nil)
		if x != nil {
			if err := x.Apply(ctx, rec, &d, nil); err != nil {
				return err
			}
		}
		switch {
		case d.Has(podlink.PutRecord, 0):
			err = st.PutLink(ctx, &d.Next)
		case d.Has(podlink.DeleteRecord, 0):
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

// indexOf returns the index of end, which points into rec.Ends.
func indexOf(rec *store.LinkRecord, end *store.LinkEnd) int {
	if end == &rec.Ends[0] {
		return 0
	}
	return 1
}

// endOf returns pod's end of rec; ok is false when rec has none (never the
// other end instead).
func endOf(rec *store.LinkRecord, pod string) (mine *store.LinkEnd, ok bool) {
	for i := range rec.Ends {
		if rec.Ends[i].Pod == pod {
			return &rec.Ends[i], true
		}
	}
	return nil, false
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

// specJSON encodes an end's spec for its record.
func specJSON(spec netconf.LinkSpec) (json.RawMessage, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, types.NewError(netconf.ErrStore, fmt.Sprintf("encode the spec of %s: %v", spec.Name, err), "")
	}
	return b, nil
}
