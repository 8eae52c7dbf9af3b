package plugin_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/ratchet-cni/ratchet/internal/plugin"
	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// BenchmarkAddStaticVeth measures ADD of one static veth link in-process
// (no exec); DEL runs outside the timer.
func BenchmarkAddStaticVeth(b *testing.B) {
	pod, peer := testutil.NewNS(b), testutil.NewNS(b)
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"bench","type":"ratchet","store":{"dir":%q},
	  "links":[{"name":"in1","ips":["192.0.2.1/24"],"peer":{"netns":%q,"name":"in2","ips":["192.0.2.2/24"]}}]}`, b.TempDir(), peer.Path())
	args := &skel.CmdArgs{ContainerID: "bench", Netns: pod.Path(), IfName: "eth0", StdinData: []byte(conf)}
	p := &plugin.Plugin{}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := p.AddResult(ctx, args); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := p.DelContext(ctx, args); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
