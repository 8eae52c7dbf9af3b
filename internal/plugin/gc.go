package plugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/parking"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// GC implements CNI GC: it removes what belongs to attachments of this
// network that the runtime no longer lists as valid.
func (p *Plugin) GC(args *skel.CmdArgs) error {
	return p.GCContext(context.Background(), args)
}

// GCContext runs GC.
func (p *Plugin) GCContext(ctx context.Context, args *skel.CmdArgs) error {
	conf, log, st, err := decodeAndOpen(args)
	if err != nil {
		return err
	}
	defer st.Close()
	recs, err := st.Attachments(ctx, conf.Name)
	if err != nil {
		return storeError(err)
	}
	valid := conf.ValidAttachmentsFor()
	var errs []error
	for _, rec := range recs {
		if slices.ContainsFunc(valid, func(v types.GCAttachment) bool {
			return v.ContainerID == rec.ContainerID && v.IfName == rec.IfName
		}) {
			continue
		}
		if _, err := release(ctx, st, conf, rec); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", rec.AttachmentKey, err))
			continue
		}
		log.Info("GC removed attachment", "attachment", rec.AttachmentKey.String())
	}
	if err := sweepParking(ctx, st, conf); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return types.NewError(netconf.ErrLinkFailed, err.Error(), "")
	}
	return nil
}

// sweepParking deletes parked ends that no recorded attachment owns:
// leftovers of a crash. (A parked end normally goes with its pod end.)
func sweepParking(ctx context.Context, st store.Store, conf *netconf.NetConf) error {
	parkNS, err := parking.Open(ctx, st, conf.Store.Dir, false)
	if err != nil {
		return nil
	}
	defer parkNS.Close()
	x, err := podlink.NewExecutor(nil, parkNS, nil)
	if err != nil {
		return err
	}
	defer x.Close()
	all, err := st.Attachments(ctx, "")
	if err != nil {
		return err
	}
	owners := map[string]bool{}
	for _, a := range all {
		owners[ownerOf(a.AttachmentKey).prefix] = true
	}
	_, err = x.Sweep(func(alias string) bool {
		for prefix := range owners {
			if strings.HasPrefix(alias, prefix) {
				return true
			}
		}
		return !strings.HasPrefix(alias, "ratchet:")
	})
	return err
}
