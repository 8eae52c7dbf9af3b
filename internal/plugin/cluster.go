package plugin

import (
	"context"
	"errors"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/topology"
)

// With the etcd store the node's own state stays in the local store, and
// the plugin tells the cluster which pod link ends it holds through
// ratchetd, the node agent, which keeps the etcd connection and makes the
// tunnels to peers on other nodes. The plugin talks to it over a unix
// socket and links no etcd client.

func multiNode(conf *netconf.NetConf) bool { return conf.Store.Type == "etcd" }

// registerEnds announces the pod's link ends before anything is made, so
// that an unreachable cluster fails the ADD (code 11) with nothing to undo.
// It returns the node's tunnel MTU.
func registerEnds(ctx context.Context, conf *netconf.NetConf, key store.AttachmentKey, pod string, decl *topology.Declaration) (int, error) {
	req := &agentapi.Request{Op: agentapi.OpRegister, Node: conf.Node.Name, Prefix: conf.Store.Prefix}
	for _, l := range decl.Links {
		req.Ends = append(req.Ends, &agentapi.End{
			Pod: pod, IfName: l.Spec.Name, PeerPod: l.Peer.String(), PeerIfName: l.Spec.Peer.Name,
			Node: conf.Node.Name, Attachment: wireAttachment(key),
		})
	}
	resp, err := callAgent(ctx, conf, req)
	if err != nil {
		return 0, err
	}
	return resp.MTU, nil
}

// unregisterEnds withdraws what registerEnds announced. DEL calls it best
// effort: when the agent is unreachable, its next resync withdraws the
// ends of attachments that are gone from the node.
func unregisterEnds(ctx context.Context, conf *netconf.NetConf, key store.AttachmentKey, pod string, ifNames []string) error {
	_, err := callAgent(ctx, conf, &agentapi.Request{
		Op: agentapi.OpUnregister, Node: conf.Node.Name, Prefix: conf.Store.Prefix,
		Attachment: wireAttachment(key), Pod: pod, IfNames: ifNames,
	})
	return err
}

// wireAttachment is key as the agent protocol carries it.
func wireAttachment(key store.AttachmentKey) agentapi.Attachment {
	return agentapi.Attachment{Network: key.Network, ContainerID: key.ContainerID, IfName: key.IfName}
}

// agentHealth is STATUS's question: does the agent reach the cluster?
func agentHealth(ctx context.Context, conf *netconf.NetConf) error {
	_, err := callAgent(ctx, conf, &agentapi.Request{Op: agentapi.OpHealth, Node: conf.Node.Name, Prefix: conf.Store.Prefix})
	return err
}

// callAgent makes one call within store.timeout and maps its failures to
// CNI errors: an agent or cluster that does not answer is code 11, try
// again later.
func callAgent(ctx context.Context, conf *netconf.NetConf, req *agentapi.Request) (*agentapi.Response, error) {
	// A second more than the agent's own deadline for the same call, so
	// that its answer (and why it failed) arrives before ours expires.
	ctx, cancel := context.WithTimeout(ctx, conf.Store.CallTimeout()+time.Second)
	defer cancel()
	resp, err := agentapi.Call(ctx, conf.Store.AgentSocket, req)
	var callErr *agentapi.CallError
	switch {
	case err == nil:
		return resp, nil
	case errors.As(err, &callErr) && callErr.Code != 0:
		return nil, types.NewError(callErr.Code, "ratchetd: "+callErr.Msg, "")
	case errors.Is(err, agentapi.ErrUnreachable):
		return nil, types.NewError(types.ErrTryAgainLater, err.Error()+" (is ratchetd running on this node?)", "")
	}
	return nil, types.NewError(types.ErrTryAgainLater, err.Error(), "")
}
