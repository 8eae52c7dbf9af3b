package plugin

import (
	"context"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/parking"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/topology"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// Del implements CNI DEL: idempotent and best-effort. It succeeds when the
// namespace is gone, CNI_NETNS is empty, or nothing was ever added.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	return p.DelContext(context.Background(), args)
}

// DelContext runs DEL.
func (p *Plugin) DelContext(ctx context.Context, args *skel.CmdArgs) error {
	if conf, err := netconf.Decode(args.StdinData); err == nil && recordedNothing(conf, args) {
		newLogger(conf, args).Debug("DEL: nothing was made for this pod")
		return nil
	}
	conf, log, st, err := decodeAndOpen(args)
	if err != nil {
		return err
	}
	defer st.Close()
	key := attachmentKey(conf, args)
	rec, err := st.Attachment(ctx, key)
	if err != nil {
		return storeError(err)
	}
	if rec == nil {
		// Nothing recorded (a DEL after a failed or crashed ADD): fall back
		// to what the runtime says.
		pod, _ := topology.PodFromArgs(args.Args, args.ContainerID)
		rec = &store.Attachment{AttachmentKey: key, Netns: args.Netns, Pod: pod.String()}
	}
	if args.Netns != "" && args.Netns != rec.Netns {
		// The runtime's word: the recorded identity is of another path.
		rec.Netns, rec.NetnsID = args.Netns, nil
	}
	removed, err := release(ctx, st, conf, rec)
	if err != nil {
		log.Error("DEL failed", "error", err)
		return err
	}
	log.Info("DEL done", "removed", removed)
	return nil
}

// recordedNothing says, without the store, that the ADD of this attachment
// made and recorded nothing (makesNothing): the config has no links and no
// delegates, and the runtime passes the pod's annotations (containerd and
// CRI-O pass the sandbox's, the same at DEL as at ADD) and they declare
// nothing. A DEL without annotations (ctr, cnitool, podman), with
// annotations that cannot be read, or with any link declared, takes the
// store's word instead: the runtime may not say what ADD was told.
func recordedNothing(conf *netconf.NetConf, args *skel.CmdArgs) bool {
	if len(conf.RawLinks) != 0 || conf.HasDelegate() || conf.HasBootNetwork() || conf.RuntimeConfig.PodAnnotations == nil {
		return false
	}
	pod, err := topology.PodFromArgs(args.Args, args.ContainerID)
	if err != nil {
		return false
	}
	maxLinks := conf.MaxLinksPerPod
	if maxLinks <= 0 {
		maxLinks = netconf.DefaultMaxLinksPerPod
	}
	decl, err := topology.Declared(conf.RuntimeConfig.PodAnnotations, pod, topology.Rules{AllowCrossNamespace: conf.AllowCrossNamespace, LegacyKeys: conf.LegacyKeys, MaxLinks: maxLinks})
	return err == nil && len(decl.Links) == 0 && !decl.LegacyConsent
}

// release undoes an attachment: its netdevs (static links and its pod
// ends, whose parked ends go with them), its pod-link records, its record.
func release(ctx context.Context, st store.Store, conf *netconf.NetConf, rec *store.Attachment) (int, error) {
	removed := 0
	// The peer namespaces too: with an empty CNI_NETNS (as ctr sends) the
	// recorded pod path may be gone while the namespace itself lives on.
	for i, path := range append([]string{rec.Netns}, rec.PeerNetns...) {
		want := rec.NetnsID
		if i > 0 {
			want = nil
			if len(rec.PeerNetnsIDs) == len(rec.PeerNetns) {
				want = &rec.PeerNetnsIDs[i-1]
			}
		}
		n, err := removeAttachment(path, want, i == 0, ownerOf(rec.AttachmentKey))
		if err != nil {
			return removed, types.NewError(netconf.ErrLinkFailed, err.Error(), "")
		}
		removed += n
	}
	if rec.Pod != "" {
		var x *podlink.Executor
		if parkNS, err := parking.Open(ctx, st, conf.Store.Dir, false); err == nil {
			defer parkNS.Close()
			if x, err = podlink.NewExecutor(nil, parkNS, nil); err != nil {
				return removed, linkError(err)
			}
			defer x.Close()
		}
		if err := releasePodLinks(ctx, st, x, rec.Pod, rec.AttachmentKey); err != nil {
			return removed, storeError(err)
		}
		if multiNode(conf) {
			// Best effort: with the agent unreachable, its next resync
			// withdraws the ends of attachments gone from the node.
			_ = unregisterEnds(ctx, conf, rec.AttachmentKey, rec.Pod, rec.Links)
		}
	}
	for _, which := range delegatesOf(conf, rec) {
		if err := delegateDel(ctx, conf, which); err != nil {
			return removed, err
		}
	}
	if err := st.DeleteAttachment(ctx, rec.AttachmentKey); err != nil {
		return removed, storeError(err)
	}
	return removed, nil
}

// delegatesOf returns the delegates whose DEL an attachment needs: the one
// it recorded, or, with no record, every one configured (DEL is idempotent).
func delegatesOf(conf *netconf.NetConf, rec *store.Attachment) []string {
	if rec.Delegated != "" {
		return []string{rec.Delegated}
	}
	if !rec.Created.IsZero() {
		return nil
	}
	var all []string
	if conf.HasDelegate() {
		all = append(all, usedDelegate)
	}
	if conf.HasBootNetwork() {
		all = append(all, usedBootNetwork)
	}
	return all
}

// removeAttachment deletes every netdev an attachment owns in the
// namespace at nsPath; a namespace that is gone owns nothing, and so does
// one that is no longer the namespace recorded there (want), or, for the
// pod's namespace (pod), the plugin's own (see openRecorded).
func removeAttachment(nsPath string, want *store.NetnsID, pod bool, owner owner) (int, error) {
	podNS := openRecorded(nsPath, want, pod)
	if podNS == nil {
		return 0, nil
	}
	defer podNS.Close()
	return link.RemoveOwned(nil, podNS, owner.group, owner.prefix)
}
