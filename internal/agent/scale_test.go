package agent_test

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testutil"
	"github.com/ratchet-cni/ratchet/internal/testutil/etcdtest"
)

// meshLinks declares, for pods 0..pods-1, links from pod i to pods i+1 ..
// i+per (mod pods): pods*per links, 2*per ends per pod. Link l between i
// and j=i+k is f<k> in i (2001:db8:<l>::1/64) and b<k> in j (::2).
func meshLinks(pods, per int) (annotations []map[string]string, links []meshLink) {
	decl := make([][]map[string]any, pods)
	for i := range pods {
		for k := 1; k <= per; k++ {
			j, l := (i+k)%pods, len(links)
			links = append(links, meshLink{i: i, j: j, k: k, addrI: fmt.Sprintf("2001:db8:%x::1", l), addrJ: fmt.Sprintf("2001:db8:%x::2", l)})
			decl[i] = append(decl[i], podLink(fmt.Sprintf("f%d", k), links[l].addrI+"/64", podName(j), fmt.Sprintf("b%d", k)))
			decl[j] = append(decl[j], podLink(fmt.Sprintf("b%d", k), links[l].addrJ+"/64", podName(i), fmt.Sprintf("f%d", k)))
		}
	}
	for i := range pods {
		annotations = append(annotations, linksJSON(decl[i]...))
	}
	return annotations, links
}

type meshLink struct {
	i, j, k      int
	addrI, addrJ string
}

func podName(i int) string { return fmt.Sprintf("p%03d", i) }

// The bar: 1000 links across 4 simulated nodes, created by 200
// concurrent pod ADDs: no VNI shared by two links, and every link passes
// traffic.
func TestScale1000LinksFourNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test")
	}
	const pods, per, nodes = 200, 5, 4
	c := newCluster(t, nodes, startEtcd(t))
	annotations, links := meshLinks(pods, per)
	all := make([]*pod, pods)
	for i := range pods {
		all[i] = c.start(podName(i), c.nodes[i%nodes])
	}

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, pods)
	for i, p := range all {
		wg.Go(func() {
			if _, cniErr, err := c.run("ADD", p.node, p, annotations[i]); err != nil {
				errs <- err
			} else if cniErr != nil {
				errs <- fmt.Errorf("ADD %s: %v", p.name, cniErr)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	adds := time.Since(start)
	c.settle()
	t.Logf("%d pods, %d links on %d nodes: ADDs %v, tunnels settled %v later", pods, len(links), nodes, adds.Round(time.Millisecond), (time.Since(start) - adds).Round(time.Millisecond))

	// Every cross-node link has its own VNI, and each of its two nodes a
	// tunnel with it.
	vnis, err := c.nodes[0].reg.VNIs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byLink := map[string]uint32{}
	for vni, id := range vnis {
		if other, dup := byLink[id]; dup {
			t.Fatalf("link %s has two VNIs, %d and %d", id, other, vni)
		}
		byLink[id] = vni
	}
	tunnels := make([]map[string]int, nodes)
	for i, n := range c.nodes {
		tunnels[i] = c.tunnels(n)
	}
	cross := 0
	for _, l := range links {
		ni, nj := l.i%nodes, l.j%nodes
		if ni == nj {
			continue
		}
		cross++
		id, _ := store.LinkID("lab/"+podName(l.i), fmt.Sprintf("f%d", l.k), "lab/"+podName(l.j), fmt.Sprintf("b%d", l.k))
		vni, ok := byLink[id]
		if !ok {
			t.Fatalf("cross-node link %s has no VNI", id)
		}
		name := fmt.Sprintf("rvx%d", vni)
		if _, ok := tunnels[ni][name]; !ok {
			t.Fatalf("link %s: node%d has no tunnel %s", id, ni+1, name)
		}
		if _, ok := tunnels[nj][name]; !ok {
			t.Fatalf("link %s: node%d has no tunnel %s", id, nj+1, name)
		}
	}
	if len(vnis) != cross {
		t.Fatalf("%d VNIs allocated for %d cross-node links", len(vnis), cross)
	}

	// Every link carries frames, both ways, 8 links at a time. Frames,
	// not pings: 2000 ends resolving neighbours at once would overflow the
	// host's neighbour table, which all namespaces share (gc_thresh3).
	start = time.Now()
	sem := make(chan struct{}, 8)
	failures := make(chan string, len(links))
	for _, l := range links {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fi, bj := fmt.Sprintf("f%d", l.k), fmt.Sprintf("b%d", l.k)
			err := testutil.L2Probe(all[l.i].ns, fi, all[l.j].ns, bj, 5*time.Second)
			if err == nil {
				err = testutil.L2Probe(all[l.j].ns, bj, all[l.i].ns, fi, 5*time.Second)
			}
			if err != nil {
				failures <- fmt.Sprintf("%s %s <-> %s %s: %v", podName(l.i), fi, podName(l.j), bj, err)
			}
		})
	}
	wg.Wait()
	close(failures)
	n := 0
	for f := range failures {
		if n < 10 {
			t.Error(f)
		}
		n++
	}
	if n > 0 {
		t.Fatalf("%d of %d links carry no frames", n, len(links))
	}
	// And IP works on them: a ping over a sample of links, few enough for
	// the neighbour table.
	for i := 0; i < len(links); i += 97 {
		l := links[i]
		pingOrFail(t, all[l.i], l.addrJ)
	}
	t.Logf("%d links (%d across nodes, %d VNIs, none shared) all carry frames both ways (%v)", len(links), cross, len(vnis), time.Since(start).Round(time.Millisecond))
}

// A member of a 3-member etcd cluster dies: ADDs, tunnels and traffic
// carry on with the other two.
func TestEtcdMemberLoss(t *testing.T) {
	etcd := etcdtest.StartEtcdCluster(t, 3)
	// The production default: a leader election fits in it.
	c := newCluster(t, 2, etcd.Endpoints(), clusterOpts{timeout: 5 * time.Second})
	annA, annB := pair()
	a := c.add("a", c.nodes[0], annA)
	etcd.Members[0].Kill()
	c.add("b", c.nodes[1], annB)
	c.settle()
	if _, err := c.exec("STATUS", c.nodes[0], a, nil); err != nil {
		t.Fatalf("STATUS with 2 of 3 members: %v", err)
	}
	pingOrFail(t, a, "198.51.100.2")
	etcd.Members[1].Kill() // no quorum now
	if _, err := c.exec("STATUS", c.nodes[0], a, nil); err == nil {
		t.Fatal("STATUS without quorum: 0, want 50")
	}
	etcd.Members[0].Restart(t, true)
	c.del("b")
	c.settle()
	c.add("b", c.nodes[1], annB)
	c.settle()
	pingOrFail(t, a, "198.51.100.2")
}

func pingOrFail(t *testing.T, p *pod, addr string) {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+p.ns.Path(), "ping", "-c", "2", "-i", "0.2", "-W", "3", addr).CombinedOutput()
	if err != nil {
		t.Fatalf("ping %s from %s: %v\n%s", addr, p.name, err, out)
	}
}
