// Package kube is ratchetd's Kubernetes side: it reports each pod's links
// where kubectl users look (a network-status entry per link in the pod's
// annotations, Events for failures), and applies edits of the
// ratchet.cni.dev/links annotation of running pods through the live-lab
// operations. It watches only its node's pods, and knows the rest of
// ratchet through the narrow Links interface; the plugin never imports
// it (no Kubernetes client on the ADD path).
package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	ktypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/topology"
)

// Event reasons (the pod's Events, as `kubectl describe pod` shows them).
const (
	// ReasonLinkBroken: the store and the kernel disagree about a link.
	ReasonLinkBroken = "LinkBroken"
	// ReasonPeerRefused: the peer pod does not declare the matching end,
	// so the link waits (the consent rule).
	ReasonPeerRefused = "PeerRefused"
	// ReasonLinkApplied: an edit of the links annotation was applied.
	ReasonLinkApplied = "LinkApplied"
	// ReasonLinkFailed: an edit of the links annotation could not be
	// applied.
	ReasonLinkFailed = "LinkFailed"
	// ReasonInvalidLinks: the links annotation does not parse.
	ReasonInvalidLinks = "InvalidLinks"
)

// ErrNotAttached says that a pod of this node has no attachment yet (its
// CNI ADD has not run): its ADD reads the annotation and makes its ends.
var ErrNotAttached = errors.New("not attached yet")

// Links is what this package needs of the node's ratchet: the node's pod
// links with their state, and the live-lab operations.
type Links interface {
	// Links returns the node's pod links (podlink.ViewLinks) with MACs.
	Links(ctx context.Context) ([]Link, error)
	// Apply makes the link between end specs[0] of pods[0], a pod of
	// this node, and end specs[1] of pods[1], on this node (peerHere) or
	// another; a link already made with the same specs is left alone. A
	// pod of this node that has no attachment yet is ErrNotAttached.
	Apply(ctx context.Context, pods [2]string, specs [2]netconf.LinkSpec, peerHere bool) error
	// Remove removes the link between end pod:ifName and peerPod:peerIf
	// that an annotation declared; no such link is no error, and a link
	// at pod:ifName to another peer, or one the administrator made, is
	// not removed.
	Remove(ctx context.Context, pod, ifName, peerPod, peerIf string) error
}

// Config configures Run.
type Config struct {
	Client kubernetes.Interface
	// Node is this node's name (spec.nodeName of its pods).
	Node  string
	Links Links
	// Rules are the network config's rules for annotations.
	Rules topology.Rules
	// Resync is how often every pod's status is written again if it
	// changed (the links' states change without any Kubernetes event).
	Resync time.Duration
	Log    *slog.Logger
}

// reporter is Run's state; one goroutine (loop) does all the work, the
// informer's handlers only queue it.
type reporter struct {
	cfg      Config
	pods     listerscorev1.PodLister
	recorder record.EventRecorder
	kick     chan struct{}

	mu    sync.Mutex
	edits []edit

	// told are the (link, pod, reason) events sent, so that a lasting
	// condition is told once; an entry goes when the condition does.
	told map[string]bool
}

// edit is one change of a running pod's links annotation.
type edit struct {
	old, new *corev1.Pod
}

// Run watches the node's pods until ctx is done: it applies edits of
// their links annotation and keeps their network-status entries and
// Events up to date.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Resync <= 0 {
		cfg.Resync = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	factory := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", cfg.Node).String()
		}))
	inf := factory.Core().V1().Pods()
	r := &reporter{cfg: cfg, pods: inf.Lister(), kick: make(chan struct{}, 1), told: map[string]bool{}}
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cfg.Client.CoreV1().Events("")})
	// Events are sent asynchronously: Shutdown waits for the queue.
	defer broadcaster.Shutdown()
	r.recorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "ratchetd", Host: cfg.Node})
	_, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { r.poke() },
		UpdateFunc: func(o, n any) {
			op, ok1 := o.(*corev1.Pod)
			np, ok2 := n.(*corev1.Pod)
			if ok1 && ok2 && op.Annotations[topology.LinksAnnotation] != np.Annotations[topology.LinksAnnotation] {
				r.mu.Lock()
				r.edits = append(r.edits, edit{old: op, new: np})
				r.mu.Unlock()
			}
			r.poke()
		},
	})
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		return ctx.Err()
	}
	cfg.Log.Info("watching the node's pods", "node", cfg.Node)
	tick := time.NewTicker(cfg.Resync)
	defer tick.Stop()
	for {
		r.applyEdits(ctx)
		r.report(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-r.kick:
		case <-tick.C:
		}
	}
}

func (r *reporter) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

func podID(p *corev1.Pod) topology.PodID {
	return topology.PodID{Namespace: p.Namespace, Name: p.Name}
}

// applyEdits applies the queued annotation edits, in order: a link gone
// from the annotation, or changed, is removed; a link new or changed is
// made if its peer pod consents (declares the matching end), else the
// pod gets a PeerRefused event. Each side of a link acts on its own
// pod's edits only: the peer's consent, given later, is the peer's edit.
func (r *reporter) applyEdits(ctx context.Context) {
	r.mu.Lock()
	edits := r.edits
	r.edits = nil
	r.mu.Unlock()
	for _, e := range edits {
		if e.new.DeletionTimestamp != nil {
			continue // going: its DEL removes its links
		}
		self := podID(e.new)
		newD, err := topology.Declared(e.new.Annotations, self, r.cfg.Rules)
		if err != nil {
			r.recorder.Eventf(e.new, corev1.EventTypeWarning, ReasonInvalidLinks, "%s: %v", topology.LinksAnnotation, err)
			continue
		}
		oldD, err := topology.Declared(e.old.Annotations, self, r.cfg.Rules)
		if err != nil {
			oldD = &topology.Declaration{} // nothing of it was made
		}
		before := map[string]topology.Link{}
		for _, l := range oldD.Links {
			before[l.Spec.Name] = l
		}
		for name, l := range before {
			nl, kept := findLink(newD, name)
			if kept && sameLink(l, nl) {
				continue
			}
			// Only the link the old annotation declared: the interface may
			// hold another link (the administrator's, or one this
			// declaration never got because the peer refused it).
			if err := r.cfg.Links.Remove(ctx, podKey(e.new), name, l.Peer.String(), l.Spec.Peer.Name); err != nil {
				r.recorder.Eventf(e.new, corev1.EventTypeWarning, ReasonLinkFailed, "remove link %s: %v", name, err)
				continue
			}
			if !kept {
				r.recorder.Eventf(e.new, corev1.EventTypeNormal, ReasonLinkApplied, "link %s removed", name)
			}
		}
		for _, l := range newD.Links {
			if ol, had := before[l.Spec.Name]; had && sameLink(ol, l) || l.PeerEnd != nil {
				continue
			}
			r.applyLink(ctx, e.new, l)
		}
	}
}

// applyLink makes l, declared by pod p, if its peer consents. It reports
// whether it made it (or found it made).
func (r *reporter) applyLink(ctx context.Context, p *corev1.Pod, l topology.Link) bool {
	peerEnd, peer, ok, why := r.consent(ctx, podID(p), l)
	if !ok {
		if why != "" {
			r.recorder.Eventf(p, corev1.EventTypeWarning, ReasonPeerRefused, "link %s waits: %s", l.Spec.Name, why)
		}
		return false
	}
	err := r.cfg.Links.Apply(ctx, [2]string{podKey(p), l.Peer.String()}, [2]netconf.LinkSpec{l.Spec, peerEnd.Spec}, peer.Spec.NodeName == r.cfg.Node)
	if errors.Is(err, ErrNotAttached) {
		// A pod of this node that is not running yet: its ADD makes its
		// end, and the pass after it (report) the other.
		r.cfg.Log.Debug("link waits for a pod's ADD", "pod", podKey(p), "link", l.Spec.Name, "error", err)
		return false
	}
	if err != nil {
		r.recorder.Eventf(p, corev1.EventTypeWarning, ReasonLinkFailed, "link %s to %s:%s: %v", l.Spec.Name, l.Peer, l.Spec.Peer.Name, err)
		return false
	}
	r.recorder.Eventf(p, corev1.EventTypeNormal, ReasonLinkApplied, "link %s to %s:%s made", l.Spec.Name, l.Peer, l.Spec.Peer.Name)
	return true
}

// consent checks that l's peer pod declares the end matching l (declared
// by self), with topology's consent rule. A peer pod that does not exist
// (yet) refuses nothing: why is then empty.
func (r *reporter) consent(ctx context.Context, self topology.PodID, l topology.Link) (topology.Link, *corev1.Pod, bool, string) {
	peer, err := r.pods.Pods(l.Peer.Namespace).Get(l.Peer.Name)
	if apierrors.IsNotFound(err) {
		// Not on this node: ask the API server.
		peer, err = r.cfg.Client.CoreV1().Pods(l.Peer.Namespace).Get(ctx, l.Peer.Name, metav1.GetOptions{})
	}
	if apierrors.IsNotFound(err) {
		return topology.Link{}, nil, false, ""
	}
	if err != nil {
		return topology.Link{}, nil, false, fmt.Sprintf("pod %s: %v", l.Peer, err)
	}
	d, err := topology.Declared(peer.Annotations, podID(peer), r.cfg.Rules)
	if err != nil {
		return topology.Link{}, nil, false, fmt.Sprintf("pod %s: %v", l.Peer, err)
	}
	end, ok, why := d.Reverse(self, l)
	return end, peer, ok, why
}

func findLink(d *topology.Declaration, name string) (topology.Link, bool) {
	for _, l := range d.Links {
		if l.Spec.Name == name {
			return l, true
		}
	}
	return topology.Link{}, false
}

// sameLink reports whether two declarations of one interface are the same
// link with the same spec.
func sameLink(a, b topology.Link) bool {
	ja, errA := json.Marshal(a.Spec)
	jb, errB := json.Marshal(b.Spec)
	return errA == nil && errB == nil && string(ja) == string(jb) && a.Peer == b.Peer && reflect.DeepEqual(a.PeerEnd, b.PeerEnd)
}

// report writes every node pod's network-status entries where they
// changed, and sends an Event for each link newly broken and each
// pending link whose peer pod refuses it.
func (r *reporter) report(ctx context.Context) {
	links, err := r.cfg.Links.Links(ctx)
	if err != nil {
		r.cfg.Log.Warn("read the node's links", "error", err)
		return
	}
	pods, err := r.pods.List(labels.Everything())
	if err != nil {
		r.cfg.Log.Warn("list the node's pods", "error", err)
		return
	}
	byKey := map[string]*corev1.Pod{}
	for _, p := range pods {
		byKey[podKey(p)] = p
		if err := r.writeStatus(ctx, p, Entries(podKey(p), links)); err != nil {
			r.cfg.Log.Warn("write the pod's network-status", "pod", podKey(p), "error", err)
		}
	}
	told := map[string]bool{}
	for _, l := range links {
		for i, e := range l.Ends {
			p := byKey[e.Pod]
			if p == nil || e.Attachment == nil {
				continue
			}
			switch {
			case l.State == podlink.StateBroken:
				key := l.ID + "|" + e.Pod + "|" + ReasonLinkBroken
				if told[key] = true; !r.told[key] {
					r.recorder.Eventf(p, corev1.EventTypeWarning, ReasonLinkBroken,
						"link %s to %s:%s is broken: the node's store and kernel disagree (ratchetctl links; ratchetctl check)", e.IfName, l.Ends[1-i].Pod, l.Ends[1-i].IfName)
				}
			case l.State == podlink.StatePending && e.Declared:
				// The peer, a pod of this node, declares the link now
				// but did not at its ADD (its annotation was edited
				// before its ADD, or while ratchetd was down): made
				// once per pending spell, as its edit would have.
				other := l.Ends[1-i]
				if op := byKey[other.Pod]; op != nil && !other.Declared {
					if decl, err := topology.Declared(op.Annotations, podID(op), r.cfg.Rules); err == nil {
						if ol, ok := findLink(decl, other.IfName); ok && ol.PeerEnd == nil && ol.Peer.String() == e.Pod && ol.Spec.Peer.Name == e.IfName {
							key := l.ID + "|" + other.Pod + "|apply"
							if told[key] = true; !r.told[key] {
								r.applyLink(ctx, op, ol)
							}
							continue
						}
					}
				}
				key := l.ID + "|" + e.Pod + "|" + ReasonPeerRefused
				if r.told[key] {
					told[key] = true
					continue
				}
				decl, err := topology.Declared(p.Annotations, podID(p), r.cfg.Rules)
				if err != nil {
					continue
				}
				if dl, ok := findLink(decl, e.IfName); ok && dl.PeerEnd == nil {
					if _, _, ok, why := r.consent(ctx, podID(p), dl); !ok && why != "" {
						told[key] = true
						r.recorder.Eventf(p, corev1.EventTypeWarning, ReasonPeerRefused, "link %s waits: %s", e.IfName, why)
					}
				}
			}
		}
	}
	r.told = told
}

// writeStatus merges ours into p's network-status annotation and patches
// the pod if the value changed. The patch names the resourceVersion read,
// so that a concurrent writer (Multus) is never overwritten: a conflict
// is retried at the next pass.
func (r *reporter) writeStatus(ctx context.Context, p *corev1.Pod, ours []Entry) error {
	cur, had := p.Annotations[NetworkStatusAnnotation]
	value, remove, err := MergeNetworkStatus(cur, ours)
	if err != nil {
		return err
	}
	if remove && !had || !remove && value == cur {
		return nil
	}
	var v any = value
	if remove {
		v = nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": p.ResourceVersion,
		"annotations":     map[string]any{NetworkStatusAnnotation: v},
	}})
	if err != nil {
		return err
	}
	_, err = r.cfg.Client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, ktypes.MergePatchType, patch, metav1.PatchOptions{FieldManager: "ratchetd"})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil // the informer brings the new version, and a pass with it
	}
	return err
}
