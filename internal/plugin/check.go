package plugin

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/ratchet-cni/ratchet/internal/kind"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/parking"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/topology"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// Check implements CNI CHECK: every link end this attachment should have
// exists and matches its spec.
func (p *Plugin) Check(args *skel.CmdArgs) error {
	return p.CheckContext(context.Background(), args)
}

// CheckContext runs CHECK.
func (p *Plugin) CheckContext(ctx context.Context, args *skel.CmdArgs) error {
	conf, err := netconf.Load(args.StdinData, args.IfName)
	if err != nil {
		return err
	}
	pod, err := topology.PodFromArgs(args.Args, args.ContainerID)
	if err != nil {
		return err
	}
	decl, err := declaredPodLinks(conf, pod, args.IfName)
	if err != nil {
		return err
	}
	podNS, err := openPodNS(args.Netns)
	if err != nil {
		return err
	}
	defer podNS.Close()
	host, err := p.hostNS()
	if err != nil {
		return err
	}
	defer host.Close()
	key := attachmentKey(conf, args)
	links, err := buildStaticCheck(conf, podNS, host, ownerOf(key))
	if err != nil {
		return err
	}
	defer links.close()
	for _, l := range links {
		if err := l.Verify(ctx, nil); err != nil {
			return types.NewError(netconf.ErrCheckFailed, err.Error(), "")
		}
	}
	if len(decl.Links) == 0 && !decl.LegacyConsent {
		return nil
	}
	st, err := openStore(conf)
	if err != nil {
		return err
	}
	defer st.Close()
	return verifyPodLinks(ctx, st, conf, podNS, key, pod.String(), decl)
}

// verifyPodLinks checks each pod link end this attachment holds: its
// interface as declared, its parked end, and, when the peer is there, that
// the two are stitched. A link whose peer has not come (pending) is fine.
func verifyPodLinks(ctx context.Context, st store.Store, conf *netconf.NetConf, podNS ns.NetNS, key store.AttachmentKey, pod string, decl *topology.Declaration) error {
	mismatch := func(format string, a ...any) error {
		return types.NewError(netconf.ErrCheckFailed, fmt.Sprintf(format, a...), "")
	}
	parkNS, err := parking.Open(ctx, st, conf.Store.Dir, false)
	if err != nil {
		return mismatch("pod links: the parking namespace is gone: %v", err)
	}
	defer parkNS.Close()
	x, err := podlink.NewExecutor(nil, parkNS, nil)
	if err != nil {
		return linkError(err)
	}
	defer x.Close()
	recs, err := st.LinksOf(ctx, pod)
	if err != nil {
		return storeError(err)
	}
	held := map[string]bool{}
	for _, rec := range recs {
		mine, ok := endOf(rec, pod)
		if !ok || mine.Attachment == nil || *mine.Attachment != key {
			continue
		}
		held[mine.IfName] = true
		spec, err := specOf(mine, "link "+rec.ID)
		if err != nil {
			return err
		}
		obs := x.ObserveParked(rec)
		if obs.Collector, err = x.ObserveCollector(ctx, st, rec); err != nil {
			return storeError(err)
		}
		d := podlink.OnCheck(rec, indexOf(rec, mine), obs)
		err = x.Apply(ctx, rec, &d, func(int) (*link.Veth, error) {
			v := &link.Veth{A: kind.Endpoint(spec.Local(), podNS), Marker: ownerOf(key).marker(spec.Name)}
			return v, nil
		})
		var mm *podlink.MismatchError
		switch {
		case errors.As(err, &mm):
			return mismatch("%v", mm.Err)
		case err != nil:
			return linkError(err)
		}
	}
	for _, l := range decl.Links {
		if !held[l.Spec.Name] {
			return mismatch("pod link %s to %s: this attachment does not hold it", l.Spec.Name, l.Peer)
		}
	}
	return nil
}
