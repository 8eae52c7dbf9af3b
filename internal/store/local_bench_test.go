package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// BenchmarkOpenWriteClose is what each plugin process does to the node's
// store: open it, record one attachment, close it. Its cost must not grow
// with the number of attachments the node already holds.
func BenchmarkOpenWriteClose(b *testing.B) {
	ctx := context.Background()
	for _, held := range []int{0, 1000, 5000} {
		b.Run(fmt.Sprintf("held=%d", held), func(b *testing.B) {
			dir := b.TempDir()
			st, err := store.OpenLocal(dir)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < held; i++ {
				key := store.AttachmentKey{Network: "net", ContainerID: fmt.Sprintf("%064d", i), IfName: "eth0"}
				rec := &store.Attachment{AttachmentKey: key, Netns: fmt.Sprintf("/var/run/netns/cni-%d", i),
					Pod: fmt.Sprintf("default/pod-%d", i), Links: []string{"eth1", "eth2", "eth3", "eth4"}}
				if err := st.PutAttachment(ctx, rec); err != nil {
					b.Fatal(err)
				}
			}
			if err := st.Close(); err != nil {
				b.Fatal(err)
			}
			key := store.AttachmentKey{Network: "net", ContainerID: "probe", IfName: "eth0"}
			for b.Loop() {
				st, err := store.OpenLocal(dir)
				if err != nil {
					b.Fatal(err)
				}
				if err := st.PutAttachment(ctx, &store.Attachment{AttachmentKey: key, Links: []string{"eth1"}}); err != nil {
					b.Fatal(err)
				}
				if err := st.DeleteAttachment(ctx, key); err != nil {
					b.Fatal(err)
				}
				if err := st.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
