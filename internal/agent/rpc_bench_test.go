package agent_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
)

// BenchmarkRegister is one plugin request to register a pod's end, through
// the agent's socket (the write to etcd is queued): what a cross-node ADD
// adds, with the agent busy. An idle agent on an idle VM takes longer to
// wake (docs/performance.md has both figures).
func BenchmarkRegister(b *testing.B) {
	c := newCluster(b, 1, startEtcd(b))
	n := c.nodes[0]
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		req := &agentapi.Request{Op: agentapi.OpRegister, Node: n.name, Prefix: c.prefix, Ends: []*agentapi.End{{
			Pod: fmt.Sprintf("lab/p%d", i), IfName: "e1", PeerPod: "lab/q", PeerIfName: "w1", Node: n.name,
			Attachment: agentapi.Attachment{Network: "lab", ContainerID: fmt.Sprint(i), IfName: "eth0"}}}}
		if _, err := agentapi.Call(ctx, n.socket, req); err != nil {
			b.Fatal(err)
		}
	}
}
